"""The model to fine-tune (``Base``: how transformers loads it, the GGUF its adapters are made for),
loading it, and writing a folder whole: what the training loop (``train``) and the Unsloth path
(``fast``) share, so that neither imports the other's internals. No training here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from ..errors import LLMJudgeError


@dataclass
class Base:
    """The model to fine-tune: how transformers loads it, and the GGUF the adapters are made for."""

    spec: str  # the candidate spec of the base model (what the checkpoints are compared with)
    gguf: Path
    load: dict = field(default_factory=dict)  # from_pretrained arguments


def resolve_base(spec: str, base_gguf: str | None = None, settings: Settings | None = None) -> Base:
    """``embedded``, ``gguf:PATH``, ``hf:OWNER/REPO/FILE.gguf`` (all loaded by transformers from the
    GGUF, dequantised) or ``hf:OWNER/REPO`` (a transformers model; ``base_gguf`` names the GGUF of
    it that llama.cpp runs and the adapters are made for); a name from the config file is resolved
    under ``settings``."""
    from ..backends import parse_spec
    from ..backends.gguf import check_gguf, resolve_path

    prefix, rest = parse_spec(spec, settings)
    if prefix not in ("embedded", "gguf", "hf") or "+lora:" in rest:
        raise LLMJudgeError(f"cannot fine-tune {spec!r}: use embedded, gguf:PATH, hf:OWNER/REPO/FILE.gguf or hf:OWNER/REPO")
    if prefix != "hf" or rest.endswith(".gguf"):
        path = resolve_path(prefix, rest)
        return Base(spec, path, {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name})
    if not base_gguf:
        raise LLMJudgeError(f"{spec} is a transformers model: name the GGUF of it that llama.cpp runs with --base-gguf PATH "
                            "(the adapters are written for that file)")
    path = check_gguf(Path(base_gguf).expanduser())
    return Base(f"gguf:{path}", path, {"pretrained_model_name_or_path": rest.strip("/")})



def _quiet_gguf_loader() -> None:
    """transformers' GGUF loader draws a progress bar of its own; llm-judge draws one for the run."""
    import functools

    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    if not isinstance(gguf_utils.tqdm, functools.partial):
        gguf_utils.tqdm = functools.partial(gguf_utils.tqdm, disable=True)


def load_base(base: Base):
    """(tokenizer, model) of the base as transformers loads it, in float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    _quiet_gguf_loader()
    try:
        tokenizer = AutoTokenizer.from_pretrained(**base.load)
        model = AutoModelForCausalLM.from_pretrained(**base.load, dtype=torch.float32)
    except Exception as exc:  # unsupported architecture, missing files, no network for hf:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise LLMJudgeError(f"transformers cannot load {base.spec} for training: {reason}") from None
    return tokenizer, model


def atomic_dir(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder whole: into ``.part`` first, then put in place of the old one."""
    tmp = target.with_name(target.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.replace(old)
    tmp.replace(target)
    shutil.rmtree(old, ignore_errors=True)
