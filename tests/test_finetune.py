"""Fine-tuning end to end on the built-in model: the recipe, assistant-only labels, a real LoRA
fine-tune (PyTorch + PEFT), its GGUF adapter in llama.cpp moving the model the same way PyTorch
does, resume after an interruption, merging, and a study with the checkpoints as candidates.

The extra (``scripts/setup.sh --finetune``) is installed in CI; elsewhere these tests skip without it.
"""

import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from llm_judge.cli import main
from llm_judge.errors import LLMJudgeError
from llm_judge.finetune.data import assistant_spans, normalise, read_conversations
from llm_judge.finetune.recipe import RECIPES, with_overrides

HAVE_EXTRA = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "peft", "gguf"))
needs_extra = pytest.mark.skipif(not HAVE_EXTRA and not os.environ.get("CI"),
                                 reason="the finetune extra is not installed (scripts/setup.sh --finetune)")
SMOKE = ["grad_accum=1", "learning_rate=1e-2", "warmup_steps=0", "max_seq_length=256"]
PROMPT = [{"role": "user", "content": "What is the capital of Japan?"}]


def test_the_seed_recipe_is_the_spaces_hyperparameters():
    seed = RECIPES["seed"]
    assert (seed.r, seed.lora_alpha, seed.lora_dropout, seed.batch_size, seed.grad_accum) == (16, 16, 0.0, 2, 4)
    assert (seed.learning_rate, seed.weight_decay, seed.scheduler, seed.optimizer) == (2e-4, 0.01, "linear", "adamw_8bit")
    assert seed.max_seq_length == 2048 and set(seed.target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    third = RECIPES["seed-overfit"]
    assert (third.lora_dropout, third.batch_size, third.grad_accum, third.learning_rate) == (0.3, 20, 40, 2e-2)


@pytest.mark.parametrize("override,needle", [
    ("nope=1", "NAME one of"), ("r=abc", "r takes a int"), ("lora_dropout=1.5", "lora_dropout must be in"),
    ("scheduler=step", "use linear, constant or cosine"), ("learning_rate=0", "learning_rate must be positive"),
])
def test_bad_recipe_overrides_say_what_to_write(override, needle):
    with pytest.raises(LLMJudgeError, match=needle):
        with_overrides(RECIPES["seed"], [override])


def test_both_chat_forms_read_and_bad_lines_are_named(tmp_path):
    sharegpt = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    openai = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello"}]}
    assert normalise(sharegpt, "x")[1] == normalise(openai, "x")[2] == {"role": "assistant", "content": "Hello"}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(sharegpt) + "\n" + json.dumps({"conversations": [{"from": "human", "value": "q"}]}) + "\n")
    with pytest.raises(LLMJudgeError, match=r"d.jsonl:2: the conversation has no assistant turn"):
        read_conversations(str(path))
    path.write_text("{not json\n")
    with pytest.raises(LLMJudgeError, match=r"d.jsonl line 1: not valid JSON"):
        read_conversations(str(path))
    assert len(read_conversations("tiny-instructions")) == 40


@needs_extra
def test_only_the_assistants_turns_are_learned():
    from transformers import AutoTokenizer

    from llm_judge.backends.llamacpp import embedded_model_path
    from llm_judge.finetune.data import encode

    path = embedded_model_path()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    convo = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
             {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Green."}]
    ids, labels = encode(tok, convo, 2048)
    learned = tok.decode([t for t, y in zip(ids, labels) if y != -100])
    assert learned == "Blue.<|im_end|>\nGreen.<|im_end|>\n"
    assert "colour" not in learned and "Another" not in learned and len(ids) == len(labels)
    text, spans = assistant_spans(lambda ms, gen: tok.apply_chat_template(ms, tokenize=False, add_generation_prompt=gen)
                                  if ms else "", convo)
    assert [text[a:b] for a, b in spans] == ["Blue.<|im_end|>\n", "Green.<|im_end|>\n"]


def test_without_the_extra_the_command_says_what_to_install(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert main(["finetune", "--out", str(tmp_path / "ft")]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    # torch among what is missing (alone where the extra is installed; with the others where it is not)
    assert len(lines) == 1 and 'pip install "llm-judge[finetune]"' in lines[0]
    assert re.search(r"\((?:[a-z]+, )*torch(?:, [a-z]+)* not installed\)", lines[0]), lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--save-steps", "9"], "--save-steps 9 is outside 1..3"),
    (["--save-steps", "x"], "write step numbers separated by commas"),
    (["--data", "/no/such.jsonl"], "training data not found"),
    (["--set", "r=0"], "r must be positive"),
    (["gguf:/no/model.gguf"], "model file not found"),
])
@needs_extra
def test_bad_finetune_input_gives_one_line(args, needle, capsys, tmp_path):
    base = [a for a in args if not a.startswith("-") and ":" in a]
    rest = [a for a in args if a not in base]
    assert main(["finetune", *base, "--out", str(tmp_path / "ft"), "--steps", "3", *rest]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0], lines


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A 3-step fine-tune of the built-in model on 8 conversations, checkpoints at 2 and 3."""
    if not HAVE_EXTRA:
        pytest.skip("the finetune extra is not installed")
    from llm_judge.finetune.train import FinetuneConfig, finetune

    out = tmp_path_factory.mktemp("ft") / "run"
    result = finetune(FinetuneConfig(base="embedded", data="tiny-instructions", out=out,
                                     recipe=with_overrides(RECIPES["seed"], SMOKE), max_steps=3, save_steps=[2], limit=8,
                                     state_every=1), notify=lambda _: None)
    return result


def _torch_delta(tuned_dir: Path, recipe_overrides, checkpoint: str):
    """Next-token logits on PROMPT without and with the checkpoint's adapter, in PyTorch."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from llm_judge.finetune.train import load_model, resolve_base

    base = resolve_base("embedded")
    tok, model = load_model(base, with_overrides(RECIPES["seed"], recipe_overrides), "cpu")
    ids = tok(tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True), add_special_tokens=False,
              return_tensors="pt")["input_ids"]
    model.eval()
    with torch.no_grad():
        with model.disable_adapter():
            before = model(input_ids=ids).logits[0, -1].numpy()
        set_peft_model_state_dict(model, load_file(str(tuned_dir / checkpoint / "adapter_model.safetensors")))
        after = model(input_ids=ids).logits[0, -1].numpy()
    return base, ids[0].tolist(), before, after


def _llama_logits(model: Path, tokens: list[int], lora: Path | None = None):
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, verbose=False, lora_path=str(lora) if lora else None)
    llm.eval(tokens)
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).copy()


def _cos(a, b) -> float:
    import numpy as np

    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.model
def test_a_fine_tune_writes_checkpoints_log_curve_and_gguf_adapters(tuned):
    out = Path(tuned["out"])
    assert list(tuned["checkpoints"]) == ["step-0002", "step-0003"]
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["loss"] > 0 and r["tokens_per_second"] > 0 for r in rows)
    assert (out / "loss.svg").read_text().startswith("<svg")
    for path in tuned["checkpoints"].values():
        assert Path(path).read_bytes()[:4] == b"GGUF"
    meta = json.loads((out / "finetune.json").read_text())
    assert meta["recipe"]["grad_accum"] == 1 and meta["optimizer"] == "AdamW" and meta["examples"] == 8


@pytest.mark.model
def test_the_adapter_moves_llama_cpp_the_way_it_moves_pytorch(tuned):
    out = Path(tuned["out"])
    base, tokens, before, after = _torch_delta(out, SMOKE, "step-0003")
    plain = _llama_logits(base.gguf, tokens)
    adapted = _llama_logits(base.gguf, tokens, out / "step-0003.gguf")
    assert _cos(after - before, adapted - plain) > 0.95  # Q4_1 weights in llama.cpp, dequantised in PyTorch
    assert int(after.argmax()) == int(adapted.argmax())


def _flipped_by(permute, rows: int, rank: int, rng):
    """A LoRA ``B`` (rows x rank) that ``permute`` turns into exactly its negation: along each
    even-length cycle of the row permutation the rows alternate in sign (rows of odd cycles are 0)."""
    import numpy as np

    moved = permute(np.arange(rows))  # row r of permute(B) is row moved[r] of B
    b, seen = np.zeros((rows, rank), dtype=np.float32), set()
    for first in (r for r in range(rows) if r not in seen):
        cycle = [first]
        while int(moved[cycle[-1]]) != first:
            cycle.append(int(moved[cycle[-1]]))
        seen.update(cycle)
        if len(cycle) % 2 == 0:
            v = rng.standard_normal(rank).astype(np.float32)
            for k, row in enumerate(cycle):
                b[row] = v if k % 2 == 0 else -v
    return b


def _qk_adapter(facts: dict, hidden: int, rank: int, scale: float, flip: bool) -> dict:
    """LoRA pairs {module: (A, B)} on every block's q_proj and k_proj (alpha = rank: scale 1); with
    ``flip``, each B is one that llama.cpp's query/key row permutation negates, else a random one."""
    import functools

    import numpy as np

    from llm_judge.finetune.gguf_lora import permute_rows

    rng = np.random.default_rng(0)
    heads = {"q_proj": facts["n_head"], "k_proj": facts["n_head_kv"]}
    pairs = {}
    for i in range(facts["blocks"]):
        for proj, n in heads.items():
            rows = hidden // facts["n_head"] * n
            b = (_flipped_by(functools.partial(permute_rows, n_head=facts["n_head"], n_head_kv=n), rows, rank, rng)
                 if flip else rng.standard_normal((rows, rank)).astype(np.float32))
            a = (rng.standard_normal((rank, hidden)) * scale / np.sqrt(hidden * rank)).astype(np.float32)
            pairs[f"model.layers.{i}.self_attn.{proj}"] = (a, b)
    return pairs


def _torch_logits_with(model, ids, pairs: dict, sign: float):
    """PyTorch's next-token logits with ``sign * B @ A`` added to each adapted weight, then restored."""
    import torch

    params = dict(model.named_parameters())
    kept = {m: params[m + ".weight"].detach().clone() for m in pairs}
    with torch.no_grad():
        for module, (a, b) in pairs.items():
            params[module + ".weight"] += sign * torch.from_numpy(b) @ torch.from_numpy(a)
        logits = model(input_ids=ids).logits[0, -1].numpy()
        for module, weight in kept.items():
            params[module + ".weight"].copy_(weight)
    return logits


def _f32_copy(model: Path, out: Path) -> Path:
    """``model`` with every tensor dequantised to F32 (llama-quantize, built by the set-up): llama.cpp
    then runs the weights PyTorch runs, and a small adapter's effect stands clear of Q4_1's rounding."""
    import subprocess

    from llm_judge.engine import find_binary

    tool = find_binary("llama-quantize")
    assert tool, "llama-quantize not found: run scripts/setup.sh"
    subprocess.run([str(tool), "--allow-requantize", str(model), str(out), "F32"], check=True, capture_output=True)
    return out


@pytest.mark.model
@needs_extra
def test_query_and_key_rows_are_permuted_for_llama_cpp(tmp_path):
    """Llama-family GGUFs store the query/key rows permuted for rotary embeddings; an adapter of
    q_proj/k_proj written without the same permutation moves llama.cpp the wrong way.

    Separated by construction, not by a bound tuned on one CPU (a trained delta left the unpermuted
    adapter at cosine 0.75 here, 0.82 elsewhere): each B is one the permutation negates (checked
    exactly), so the unpermuted adapter is the delta -BA, and moves llama.cpp opposite to PyTorch's
    +BA. Nothing is trained, so the adapter is the same on any CPU. A random B then pins which way
    the rows go (the inverse permutation negates the same Bs)."""
    import numpy as np
    import torch

    from llm_judge.backends.llamacpp import embedded_model_path
    from llm_judge.finetune.gguf_lora import base_facts, permute_rows, write_adapter
    from llm_judge.finetune.train import load_base, resolve_base

    base = resolve_base(f"gguf:{_f32_copy(embedded_model_path(), tmp_path / 'base-f32.gguf')}")
    facts = base_facts(base.gguf)
    tok, model = load_base(base)
    model.eval()
    ids = tok(tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True), add_special_tokens=False,
              return_tensors="pt")["input_ids"]
    tokens, hidden, rank = ids[0].tolist(), model.config.hidden_size, 8
    plain, before = _llama_logits(base.gguf, tokens), _torch_logits_with(model, ids, {}, 1.0)

    def llama_change(pairs: dict, name: str, permute: bool):
        state = {f"{m}.lora_{ab}.weight": torch.from_numpy(t) for m, (a, b) in pairs.items() for ab, t in (("A", a), ("B", b))}
        return _llama_logits(base.gguf, tokens, write_adapter(state, rank, base.gguf, tmp_path / name, permute=permute)) - plain

    flip = _qk_adapter(facts, hidden, rank, 0.15, flip=True)
    for module, (_, b) in flip.items():
        n = facts["n_head_kv"] if module.endswith("k_proj") else facts["n_head"]
        assert np.array_equal(permute_rows(b, facts["n_head"], n), -b) and (b != 0).any(axis=1).mean() > 0.8
    plus, minus = (_torch_logits_with(model, ids, flip, s) - before for s in (1.0, -1.0))
    assert _cos(plus, minus) < -0.5  # +BA and -BA move PyTorch opposite ways (to first order exactly)
    permuted, unpermuted = llama_change(flip, "flip.gguf", True), llama_change(flip, "flip-unpermuted.gguf", False)
    right, wrong, negated = _cos(plus, permuted), _cos(plus, unpermuted), _cos(minus, unpermuted)
    assert right > 0.9 and negated > 0.9 and wrong < -0.5, (right, wrong, negated)
    generic = _qk_adapter(facts, hidden, rank, 0.15, flip=False)
    plus = _torch_logits_with(model, ids, generic, 1.0) - before
    assert _cos(plus, llama_change(generic, "generic.gguf", True)) > 0.9


@pytest.mark.model
def test_an_interrupted_fine_tune_resumes_to_the_same_adapter(tuned, tmp_path):
    from safetensors.torch import load_file

    from llm_judge.finetune.train import FinetuneConfig, finetune

    cfg = dict(base="embedded", data="tiny-instructions", out=tmp_path / "run", recipe=with_overrides(RECIPES["seed"], SMOKE),
               max_steps=3, save_steps=[2], limit=8, state_every=1)

    def interrupt(done, total, loss):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(FinetuneConfig(**cfg), progress=interrupt, notify=lambda _: None)
    said = []
    finetune(FinetuneConfig(**cfg), notify=said.append)
    assert said[-1].startswith("resuming") and "at step 2 of 3" in said[-1]
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    resumed = load_file(str(tmp_path / "run" / "step-0003" / "adapter_model.safetensors"))
    straight = load_file(str(Path(tuned["out"]) / "step-0003" / "adapter_model.safetensors"))
    assert resumed.keys() == straight.keys()
    assert all((resumed[k] - straight[k]).abs().max() < 1e-5 for k in resumed)
    with pytest.raises(LLMJudgeError, match="holds a fine-tune of other settings"):
        finetune(FinetuneConfig(**{**cfg, "recipe": with_overrides(RECIPES["seed"], [*SMOKE, "r=8"])}))


@pytest.mark.model
@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_a_checkpoint_merges_into_a_full_model_that_answers_like_base_plus_adapter(tuned, tmp_path, kind):
    from llm_judge.backends.llamacpp import embedded_model_path
    from llm_judge.finetune.merge import merge

    base = embedded_model_path()
    adapter = Path(tuned["checkpoints"]["step-0003"])
    merged = merge(base, adapter, tmp_path / f"merged-{kind}.gguf", kind)
    import llama_cpp

    from llm_judge.backends import get_backend

    local = get_backend("embedded", engine="inprocess")
    tokens = local.llm.tokenize(local._formatter(messages=PROMPT).prompt.encode(), add_bos=False, special=True)
    with_adapter = _llama_logits(base, tokens, adapter)
    whole = _llama_logits(merged, tokens)
    assert _cos(whole, with_adapter) > {"f16": 0.999, "q8_0": 0.995}[kind]
    meta = llama_cpp.Llama(model_path=str(merged), vocab_only=True, verbose=False).metadata
    assert meta["general.file_type"] == {"f16": "1", "q8_0": "7"}[kind]


@pytest.mark.model
@needs_extra
def test_finetune_then_study_answers_whether_the_later_checkpoint_is_better(tmp_path, capsys):
    """The one command of the README: fine-tune offline, then judge base and checkpoints."""
    out = tmp_path / "run"
    db = str(tmp_path / "s.db")
    args = ["finetune", "--out", str(out), "--steps", "2", "--save-steps", "1", "--limit", "6", "--then-study",
            "--study-limit", "2", "--max-tokens", "24", "--db", db]
    for override in SMOKE:
        args += ["--set", override]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "step-0001: embedded+lora:" in text and "step-0002: embedded+lora:" in text
    assert "step-0001 vs base: win rate" in text and "step-0002 vs step-0001: win rate" in text and "sign test p=" in text
    assert main(["--engine", "inprocess", "compare", "Say hi.", "--model-a", f"embedded+lora:{out / 'step-0002.gguf'}",
                 "--max-tokens", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["candidates"]["A"]["spec"].startswith("embedded+lora:")
    assert main(["runs", "--db", db]) == 0 and "done" in capsys.readouterr().out


def test_a_checkpoint_spec_names_base_and_adapter(tmp_path):
    from llm_judge.backends import check_model
    from llm_judge.backends.llamacpp import embedded_model_path

    fake = tmp_path / "a.gguf"
    shutil.copy(embedded_model_path(), fake)  # any GGUF file passes the header check
    assert check_model(f"embedded+lora:{fake}").startswith("ok: ") and "+ adapter" in check_model(f"embedded+lora:{fake}")
    assert "model file not found" in check_model(f"embedded+lora:{tmp_path / 'none.gguf'}")
    assert "one GGUF LoRA adapter" in check_model(f"gguf:{fake}+lora:")


# The Unsloth path. Unsloth needs a CUDA GPU (it refuses to import without one), so on CI and on
# this project's machines the trainer is PEFT; what is checked here: the choice, the GGUF base written
# out as the transformers folder Unsloth loads (real), the loop's wiring through Unsloth's two calls
# (a stand-in module, on the CPU), and on a GPU with Unsloth installed the real run.

HAVE_GPU_UNSLOTH = HAVE_EXTRA and importlib.util.find_spec("unsloth") is not None and \
    __import__("torch").cuda.is_available()


@needs_extra
def test_unsloth_asked_for_without_a_gpu_says_so_in_one_line(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["finetune", "--out", str(tmp_path / "ft"), "--steps", "3", "--trainer", "unsloth"]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and "--trainer unsloth: this machine has no CUDA GPU" in lines[0] and "--trainer peft" in lines[0]


@pytest.mark.model
@needs_extra
def test_a_gguf_base_is_written_out_as_the_transformers_folder_unsloth_loads(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_judge.finetune.fast import transformers_folder
    from llm_judge.finetune.train import load_base, resolve_base

    base = resolve_base("embedded")
    folder = Path(transformers_folder(base, tmp_path / "base-hf"))
    tok, gguf_model = load_base(base)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    copy_tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok(tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True), add_special_tokens=False,
              return_tensors="pt")["input_ids"]
    assert copy_tok.chat_template == tok.chat_template and copy_tok(tok.decode(ids[0]))["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, gguf_model(input_ids=ids).logits)
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert transformers_folder(base, tmp_path / "base-hf") == str(folder)  # written once
    assert (folder / "config.json").stat().st_mtime_ns == stamp


@needs_extra
def test_a_run_stopped_after_writing_its_base_for_unsloth_starts_again_in_the_same_folder(tmp_path):
    from llm_judge.finetune.train import FinetuneConfig, _start

    cfg = FinetuneConfig(base="embedded", data="tiny-instructions", out=tmp_path / "run", recipe=RECIPES["seed"],
                         max_steps=3, save_steps=[3])
    (cfg.out / "base-hf").mkdir(parents=True)
    assert _start(cfg) == 0
    (cfg.out / "notes.txt").write_text("mine")
    with pytest.raises(LLMJudgeError, match="holds no fine-tune"):
        _start(cfg)


def _stand_in_unsloth(calls: dict):
    """A module with Unsloth's two calls doing what they do with transformers and PEFT on the CPU."""
    import types

    def from_pretrained(model_name, max_seq_length, dtype, load_in_4bit):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        calls["from_pretrained"] = dict(model_name=model_name, max_seq_length=max_seq_length, load_in_4bit=load_in_4bit)
        return AutoModelForCausalLM.from_pretrained(model_name), AutoTokenizer.from_pretrained(model_name)

    def get_peft_model(model, **kw):
        from peft import LoraConfig
        from peft import get_peft_model as peft_model

        calls["get_peft_model"] = kw
        return peft_model(model, LoraConfig(r=kw["r"], lora_alpha=kw["lora_alpha"], lora_dropout=kw["lora_dropout"],
                                            target_modules=kw["target_modules"], bias=kw["bias"], task_type="CAUSAL_LM"))

    module = types.ModuleType("unsloth")
    module.__spec__ = importlib.machinery.ModuleSpec("unsloth", None)
    module.FastLanguageModel = types.SimpleNamespace(from_pretrained=from_pretrained, get_peft_model=get_peft_model)
    return module


@pytest.mark.model
@needs_extra
def test_the_unsloth_path_loads_with_the_recipe_and_trains_through_the_same_loop(tmp_path, monkeypatch):
    import sys
    import warnings

    from llm_judge.finetune import fast
    from llm_judge.finetune.train import FinetuneConfig, finetune

    calls: dict = {}
    monkeypatch.setitem(sys.modules, "unsloth", _stand_in_unsloth(calls))
    monkeypatch.setattr(fast, "choose_trainer", lambda requested, device, installed: "unsloth")
    monkeypatch.delenv("UNSLOTH_RETURN_LOGITS", raising=False)
    out = tmp_path / "run"
    with warnings.catch_warnings():  # CUDA autocast asked for on the CPU
        warnings.simplefilter("ignore")
        result = finetune(FinetuneConfig(base="embedded", data="tiny-instructions", out=out,
                                         recipe=with_overrides(RECIPES["seed"], SMOKE), max_steps=2, save_steps=[2],
                                         limit=4, trainer="unsloth"), notify=lambda _: None)
    assert os.environ["UNSLOTH_RETURN_LOGITS"] == "1"  # the loop's assistant-only loss needs the logits
    assert calls["from_pretrained"] == {"model_name": str(out / "base-hf"), "max_seq_length": 256, "load_in_4bit": False}
    peft = calls["get_peft_model"]
    assert (peft["r"], peft["lora_alpha"], peft["lora_dropout"], peft["random_state"]) == (16, 16, 0.0, 3407)
    assert peft["target_modules"] == list(RECIPES["seed"].target_modules) and peft["use_gradient_checkpointing"] == "unsloth"
    assert result["trainer"] == "unsloth" and json.loads((out / "finetune.json").read_text())["trainer"] == "unsloth"
    assert Path(result["checkpoints"]["step-0002"]).read_bytes()[:4] == b"GGUF"


@pytest.mark.skipif(not HAVE_GPU_UNSLOTH, reason="needs a CUDA GPU with unsloth installed")
def test_on_a_gpu_with_unsloth_the_fine_tune_uses_it_and_its_adapter_moves_llama_cpp_like_pytorch(tmp_path):
    from llm_judge.finetune.train import FinetuneConfig, finetune

    out = tmp_path / "run"
    result = finetune(FinetuneConfig(base="embedded", data="tiny-instructions", out=out,
                                     recipe=with_overrides(RECIPES["seed"], SMOKE), max_steps=3, save_steps=[3],
                                     limit=8), notify=lambda _: None)
    assert result["trainer"] == "unsloth" and result["device"] == "cuda"
    base, tokens, before, after = _torch_delta(out, SMOKE, "step-0003")
    plain = _llama_logits(base.gguf, tokens)
    adapted = _llama_logits(base.gguf, tokens, out / "step-0003.gguf")
    assert _cos(after - before, adapted - plain) > 0.9
