"""The LoRA training loop (PEFT on PyTorch, or Unsloth on a GPU: ``fast``): the seed's recipe on a
local GGUF or ``hf:`` base model, checkpoints at chosen steps exported as GGUF adapters, resumable
after an interruption.

The run folder holds everything: ``finetune.json`` (what was asked), ``log.jsonl`` (one line per
optimizer step), ``loss.svg``, ``state/`` (the latest resumable state, replaced whole every
``state_every`` steps), and for each saved step ``step-NNNN/`` (the PEFT adapter) and
``step-NNNN.gguf`` (the adapter llama.cpp loads). Data order and dropout are seeded per step, so a
resumed run takes the same steps as an uninterrupted one.

Running again in the same folder continues from its saved state, to the same or more steps, with
the same base, data and recipe (anything else is refused, the folder untouched); the checkpoints a
run reports are those on disk, whatever ``save_steps`` it was given.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import LLMJudgeError
from .base import Base, atomic_dir, load_base, resolve_base
from .data import encode, read_conversations
from .fast import BASE_FOLDER, TRAINERS
from .gguf_lora import write_adapter
from .plot import loss_svg
from .recipe import Recipe

EXTRA = ("torch", "transformers", "peft", "gguf")
INSTALL = ('pip install "llm-judge[finetune]" (on a machine without a GPU install the CPU build of PyTorch first: '
           'pip install torch --index-url https://download.pytorch.org/whl/cpu)')
Progress = Callable[[int, int, float | None], None]  # (step done, steps, loss)


def require_extra() -> None:
    """One line naming what to install when the optional fine-tuning packages are missing."""
    missing = [m for m in EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise LLMJudgeError(f"fine-tuning needs the finetune extra ({', '.join(missing)} not installed): {INSTALL}")


@dataclass
class FinetuneConfig:
    base: str
    data: str
    out: Path
    recipe: Recipe
    max_steps: int
    save_steps: list[int]
    base_gguf: str | None = None
    merge: str | None = None  # f16 or q8_0: also write each checkpoint merged into a full model
    state_every: int = 10
    threads: int | None = None
    limit: int | None = None  # only the first N conversations
    trainer: str = "auto"  # auto (Unsloth on a CUDA GPU where installed, else PEFT), peft or unsloth
    settings: Settings | None = None  # what the base's spec is resolved under (a name from the config file)

    def check(self) -> FinetuneConfig:
        if self.max_steps < 1:
            raise LLMJudgeError(f"--steps {self.max_steps}: train at least 1 step")
        bad = [s for s in self.save_steps if not 1 <= s <= self.max_steps]
        if bad:
            raise LLMJudgeError(f"--save-steps {bad[0]} is outside 1..{self.max_steps} (the steps of this run)")
        self.save_steps = sorted(set(self.save_steps) | {self.max_steps})
        if self.merge not in (None, "f16", "q8_0"):
            raise LLMJudgeError(f"--merge {self.merge}: use f16 or q8_0")
        if self.trainer not in TRAINERS:
            raise LLMJudgeError(f"--trainer {self.trainer}: use {', '.join(TRAINERS)}")
        self.recipe.check()
        return self

    def identity(self) -> dict:
        """What a run continued in the same folder must share with the one stored there."""
        return {"base": self.base, "data": self.data, "recipe": self.recipe.to_dict(), "limit": self.limit}


def checkpoint_name(step: int) -> str:
    return f"step-{step:04d}"


CHECKPOINT_FILE = re.compile(r"step-(?P<step>\d{4,})\.gguf")  # not step-NNNN-f16.gguf, not a .part


def saved_checkpoints(out: Path, upto: int) -> dict[str, str]:
    """The checkpoints on disk in the run folder ``out`` up to step ``upto``, by step: {name: GGUF
    adapter path}. Only files that are there are listed, whatever a run was asked to save."""
    found = {int(m["step"]): p for p in (out.iterdir() if out.is_dir() else ())
             if (m := CHECKPOINT_FILE.fullmatch(p.name)) and p.is_file()}
    return {checkpoint_name(s): str(found[s]) for s in sorted(found) if s <= upto}


def _seeded_order(n: int, seed: int, epoch: int):
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


def batch_indices(step: int, micro: int, cfg: Recipe, n: int) -> list[int]:
    """The examples of micro-batch ``micro`` of optimizer step ``step`` (0-based): consecutive
    positions in a seeded shuffle of each epoch, so any step can be recomputed after a resume."""
    start = (step * cfg.grad_accum + micro) * cfg.batch_size
    out = []
    for k in range(start, start + cfg.batch_size):
        epoch, pos = divmod(k, n)
        out.append(_seeded_order(n, cfg.seed, epoch)[pos])
    return out


def _collate(examples, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
        mask[i, :len(x)] = 1
    return ids, mask, labels


def _optimizer(model, recipe: Recipe, device: str):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "adamw_8bit":
        if device == "cuda" and importlib.util.find_spec("bitsandbytes"):
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay), None
        notice = "notice: adamw_8bit needs bitsandbytes and a GPU; training with AdamW (same settings, 32-bit states)"
        return torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay), notice
    return torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay), None


def load_model(base: Base, recipe: Recipe, device: str, trainer: str = "peft", work: Path | None = None):
    """(tokenizer, PEFT model) of the base with fresh LoRA matrices of the recipe; with Unsloth where
    ``trainer`` says so (``work``: the run folder, where it writes a GGUF base out for Unsloth)."""
    if trainer == "unsloth":
        from .fast import load_unsloth

        tokenizer, model = load_unsloth(base, recipe, Path(work))
    else:
        tokenizer, model = load_base(base)
        model = _with_lora(model, recipe, device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise LLMJudgeError(f"{base.spec} has no chat template: fine-tune an instruct model")
    return tokenizer, model


def _with_lora(model, recipe: Recipe, device: str):
    import torch
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in recipe.target_modules if m not in present]
    if missing:
        raise LLMJudgeError(f"the base model has no layers named {', '.join(missing)}: set target_modules to some of "
                            f"its linear layers")
    lora = LoraConfig(r=recipe.r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout, bias="none",
                      target_modules=list(recipe.target_modules), task_type="CAUSAL_LM")
    torch.manual_seed(recipe.seed)  # the adapter's initial A matrices
    with warnings.catch_warnings():  # a deprecation inside PEFT's own calls to transformers
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, lora).to(device)


def lora_state(model) -> dict:
    from peft import get_peft_model_state_dict

    with warnings.catch_warnings():  # PEFT looks for a config.json beside a GGUF base, and says so
        warnings.simplefilter("ignore")
        return get_peft_model_state_dict(model)


def _log_rows(out: Path, upto: int | None = None) -> list[dict]:
    path = out / "log.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in rows if upto is None or r["step"] <= upto]


def _as_asked(name: str, value) -> str:
    """A setting of ``finetune.json`` as the command asks for it.

    >>> _as_asked("limit", None), _as_asked("target_modules", ["q_proj", "v_proj"]), _as_asked("r", 16)
    ('no --limit', '--set target_modules=q_proj,v_proj', '--set r=16')
    """
    if name == "base":
        return f"the base {value}"
    if name == "data":
        return f"--data {value}"
    if name == "limit":
        return "no --limit" if value is None else f"--limit {value}"
    return f"--set {name}={','.join(value) if isinstance(value, list) else value}"


def _contradiction(before: dict, cfg: FinetuneConfig) -> tuple[str, str] | None:
    """The first setting ``cfg`` asks for otherwise than the stored run: (stored, asked), as asked."""
    now = cfg.identity()
    asked = {**now.pop("recipe"), **now}  # the recipe's fields first, then base, data and limit
    stored = {**(before.get("recipe") or {}), **{k: before.get(k) for k in now}}
    name = next((k for k in asked if stored.get(k) != asked[k]), None)
    return None if name is None else (_as_asked(name, stored.get(name)), _as_asked(name, asked[name]))


def _start(cfg: FinetuneConfig) -> int:
    """0 for a new run folder; the step to continue from where it holds this same run (interrupted,
    finished, or to be trained further); an error, changing nothing, where it holds another one or
    more steps than ``cfg`` asks for."""
    meta = cfg.out / "finetune.json"
    if not meta.exists():
        # the base written out for Unsloth comes before finetune.json: a run stopped then starts again
        if cfg.out.exists() and any(p.name not in (BASE_FOLDER, BASE_FOLDER + ".part") for p in cfg.out.iterdir()):
            raise LLMJudgeError(f"{cfg.out} is not empty and holds no fine-tune: choose a new --out folder")
        return 0
    differs = _contradiction(json.loads(meta.read_text()), cfg)
    if differs:
        raise LLMJudgeError(f"{cfg.out} holds a fine-tune of other settings: it was trained with {differs[0]}, "
                            f"this run asks {differs[1]}; give {differs[0]} to continue it, or a new --out")
    state = cfg.out / "state" / "trainer.json"
    done = json.loads(state.read_text())["step"] if state.exists() else 0
    if done > cfg.max_steps:
        raise LLMJudgeError(f"{cfg.out} was trained to step {done}; give --steps {done} or more, or a new --out")
    return done


def finetune(cfg: FinetuneConfig, progress: Progress | None = None, notify: Callable[[str], None] = print) -> dict:
    """Train, save and export; returns {"out", "checkpoints": {name: gguf path}, "base", ...}."""
    require_extra()
    cfg.check()
    import torch
    import torch.nn.functional as F

    from .fast import choose_trainer, precision, prepare, unsloth_installed

    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainer = choose_trainer(cfg.trainer, device, unsloth_installed())
    if trainer == "unsloth":
        prepare()  # before transformers and PEFT
    from transformers import get_scheduler

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    base = resolve_base(cfg.base, cfg.base_gguf, cfg.settings)
    conversations = read_conversations(cfg.data)[:cfg.limit]
    start = _start(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    tokenizer, model = load_model(base, cfg.recipe, device, trainer, cfg.out)
    examples = [e for e in (encode(tokenizer, c, cfg.recipe.max_seq_length) for c in conversations) if e]
    if not examples:
        raise LLMJudgeError(f"{cfg.data}: no conversation keeps an assistant token within max_seq_length")
    optimizer, notice = _optimizer(model, cfg.recipe, device)
    if notice:
        notify(notice)
    scheduler = get_scheduler(cfg.recipe.scheduler, optimizer, num_warmup_steps=cfg.recipe.warmup_steps,
                              num_training_steps=cfg.max_steps)
    if start:
        _resume(cfg, model, optimizer, scheduler, start, notify)
    meta = {**cfg.identity(), "base_spec": base.spec, "base_gguf": str(base.gguf), "max_steps": cfg.max_steps,
            "save_steps": cfg.save_steps, "examples": len(examples), "device": device, "trainer": trainer,
            "optimizer": type(optimizer).__name__}
    (cfg.out / "finetune.json").write_text(json.dumps(meta, indent=2))
    rows = _log_rows(cfg.out, start)
    (cfg.out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    checkpoints = _checkpoints_at_start(cfg, model, base, start, notify)
    pad = tokenizer.pad_token_id
    autocast, scaler = precision(model) if trainer == "unsloth" else (contextlib.nullcontext, None)
    for step in range(start, cfg.max_steps):
        t0 = time.perf_counter()
        model.train()
        torch.manual_seed(cfg.recipe.seed + step)  # dropout: the same whether resumed or not
        batches = [[examples[i] for i in batch_indices(step, m, cfg.recipe, len(examples))]
                   for m in range(cfg.recipe.grad_accum)]
        targets = sum(sum(1 for t in y[1:] if t != -100) for b in batches for _, y in b)
        total, tokens = 0.0, 0
        for batch in batches:
            ids, mask, labels = (t.to(device) for t in _collate(batch, pad))
            with autocast():
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                                   ignore_index=-100, reduction="sum") / max(targets, 1)
            (scaler.scale(loss) if scaler else loss).backward()
            total += loss.item()
            tokens += int(mask.sum())
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        lr = scheduler.get_last_lr()[0]
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - t0
        done = step + 1
        row = {"step": done, "loss": round(total, 5), "lr": lr, "seconds": round(seconds, 3), "tokens": tokens,
               "tokens_per_second": round(tokens / seconds, 1)}
        if not math.isfinite(total):
            raise LLMJudgeError(f"the loss became {total} at step {done}: lower the learning rate")
        with (cfg.out / "log.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)
        if done in cfg.save_steps:
            checkpoints[checkpoint_name(done)] = str(save_checkpoint(cfg, model, base, done, notify))
        if done % cfg.state_every == 0 or done == cfg.max_steps:
            _save_state(cfg.out, model, optimizer, scheduler, done)
            (cfg.out / "loss.svg").write_text(loss_svg([(r["step"], r["loss"]) for r in rows]))
        if progress:
            progress(done, cfg.max_steps, total)
    return {"out": str(cfg.out), "base": base.spec, "base_gguf": str(base.gguf), "checkpoints": checkpoints,
            "log": rows, "examples": len(examples), "device": device, "trainer": trainer}


def _resume(cfg: FinetuneConfig, model, optimizer, scheduler, start: int, notify: Callable[[str], None]) -> None:
    """The folder's saved state of step ``start`` loaded into the adapter, the optimizer and the schedule."""
    import torch
    from peft import set_peft_model_state_dict

    saved = torch.load(cfg.out / "state" / "optim.pt", weights_only=False)
    set_peft_model_state_dict(model, torch.load(cfg.out / "state" / "adapter.pt", weights_only=False))
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if start == cfg.max_steps:
        notify(f"{cfg.out} is trained to step {start} already: nothing left to train")
    else:
        notify(f"resuming {cfg.out} at step {start} of {cfg.max_steps}")


def _checkpoints_at_start(cfg: FinetuneConfig, model, base: Base, start: int, notify: Callable[[str], None]) -> dict:
    """The checkpoints on disk up to step ``start``; the one of ``start`` itself, where asked for and
    missing, written from the resumed state; a notice for each asked-for step passed without one."""
    found = saved_checkpoints(cfg.out, start)
    for step in (s for s in cfg.save_steps if s <= start and checkpoint_name(s) not in found):
        if step == start:
            found[checkpoint_name(step)] = str(save_checkpoint(cfg, model, base, step, notify))
        else:
            notify(f"notice: no checkpoint of step {step}: {cfg.out} was trained past it without one "
                   "(a new --out trains it again)")
    return found


def _save_state(out: Path, model, optimizer, scheduler, step: int) -> None:
    import torch

    def write(tmp: Path) -> None:
        torch.save(lora_state(model), tmp / "adapter.pt")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optim.pt")
        (tmp / "trainer.json").write_text(json.dumps({"step": step}))

    atomic_dir(out / "state", write)


def save_checkpoint(cfg: FinetuneConfig, model, base: Base, step: int, notify: Callable[[str], None]) -> Path:
    """The PEFT adapter of ``step`` in ``step-NNNN/``, as a GGUF adapter, and merged where asked."""
    name = checkpoint_name(step)
    with warnings.catch_warnings():  # PEFT looks for a config.json beside a GGUF base, and says so
        warnings.simplefilter("ignore")
        atomic_dir(cfg.out / name, lambda tmp: model.save_pretrained(str(tmp)))
    gguf = write_adapter(lora_state(model), cfg.recipe.lora_alpha, base.gguf, cfg.out / f"{name}.gguf")
    if cfg.merge:
        from .merge import merge

        merged = merge(base.gguf, gguf, cfg.out / f"{name}-{cfg.merge}.gguf", cfg.merge)
        notify(f"merged {name} into {merged}")
    return gguf

