"""A PEFT LoRA adapter written as a GGUF LoRA adapter that llama.cpp loads (``--lora``, ``lora_path``):
the layout of llama.cpp's ``convert_lora_to_gguf.py``, done with the ``gguf`` package.

Each adapted weight ``W`` (GGUF name, e.g. ``blk.0.attn_q.weight``) gets ``W.lora_a`` (r x in) and
``W.lora_b`` (out x r); ``adapter.lora.alpha`` carries the scale. llama.cpp stores the query and key
projections of Llama-family models with their rows permuted for its rotary embedding (transformers
undoes this when it loads a GGUF), so ``lora_b`` of those two is permuted the same way; without it
the adapter would change the wrong rows.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import LLMJudgeError

PERMUTED_ARCHS = {"llama"}  # convert_hf_to_gguf permutes attn_q/attn_k rows for these
PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def permute_rows(weights, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's row order for a rotary projection (``LlamaModel.permute`` of the converter)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def base_facts(base_gguf: Path) -> dict:
    """Architecture, blocks and attention heads of the base model, read from its GGUF header."""
    from gguf import GGUFReader

    reader = GGUFReader(str(base_gguf))

    def value(key):
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    if not arch:
        raise LLMJudgeError(f"{base_gguf} has no general.architecture: is it a model GGUF?")
    return {"arch": arch, "blocks": int(value(f"{arch}.block_count")),
            "n_head": int(value(f"{arch}.attention.head_count")),
            "n_head_kv": int(value(f"{arch}.attention.head_count_kv") or value(f"{arch}.attention.head_count"))}


def gguf_tensor_name(module: str, arch: str, blocks: int) -> str:
    """``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q.weight`` (gguf's own name map)."""
    import gguf

    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_enum is None:
        raise LLMJudgeError(f"the gguf package does not know the architecture {arch!r}")
    name = gguf.get_tensor_name_map(arch_enum, blocks).get_name(module)
    if name is None:
        raise LLMJudgeError(f"cannot place the adapted layer {module!r} in a {arch} GGUF")
    return name + ".weight"


def write_adapter(state: dict, alpha: float, base_gguf: Path, out: Path, *, permute: bool = True) -> Path:
    """Write the PEFT adapter tensors ``state`` (name -> tensor) as a GGUF LoRA adapter for ``base_gguf``."""
    import gguf
    import numpy as np

    facts = base_facts(base_gguf)
    pairs: dict[str, dict] = {}
    for key, tensor in state.items():
        m = PEFT_KEY.match(key)
        if m is None:
            raise LLMJudgeError(f"unexpected tensor {key!r} in the adapter: only LoRA A/B matrices can be exported")
        pairs.setdefault(m["module"], {})[m["ab"]] = tensor.detach().float().cpu().numpy()
    tmp = out.with_suffix(out.suffix + ".part")  # written whole, then moved: no half file after an interruption
    writer = gguf.GGUFWriter(str(tmp), facts["arch"])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for module in sorted(pairs):
        a, b = pairs[module].get("A"), pairs[module].get("B")
        if a is None or b is None:
            raise LLMJudgeError(f"the adapter has only half of the LoRA pair for {module!r}")
        name = gguf_tensor_name(module, facts["arch"], facts["blocks"])
        if permute and facts["arch"] in PERMUTED_ARCHS:
            if ".attn_q." in name:
                b = permute_rows(b, facts["n_head"], facts["n_head"])
            elif ".attn_k." in name:
                b = permute_rows(b, facts["n_head"], facts["n_head_kv"])
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out
