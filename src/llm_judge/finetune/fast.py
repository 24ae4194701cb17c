"""The Unsloth path: on a CUDA GPU where the ``unsloth`` package is installed, the base model is loaded
and given its LoRA matrices by Unsloth's ``FastLanguageModel`` (the tool the seed's models were
trained with: its own kernels, gradient checkpointing that saves memory); everywhere else by
transformers and PEFT. The training loop, the checkpoints and the exports are the same for both (an
Unsloth model is a PEFT model), and so is the loss: Unsloth is asked for the logits, and the loop
computes its assistant-only loss from them as on the PEFT path.

Unsloth loads transformers folders, not GGUF files: a GGUF base (the built-in model, ``gguf:``) is
first written out once as a transformers folder in the run folder (``BASE_FOLDER``, dequantised).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import LLMJudgeError

TRAINERS = ("auto", "peft", "unsloth")
BASE_FOLDER = "base-hf"  # in the run folder: a GGUF base as the transformers folder Unsloth loads
INSTALL = "pip install unsloth (on a machine with a CUDA GPU)"


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def choose_trainer(requested: str, device: str, installed: bool) -> str:
    """The trainer a run uses (``requested`` is one of ``TRAINERS``, checked with the run's settings):
    ``auto`` is Unsloth on a CUDA GPU where it is installed, else PEFT.

    >>> choose_trainer("auto", "cuda", True), choose_trainer("auto", "cpu", True), choose_trainer("auto", "cuda", False)
    ('unsloth', 'peft', 'peft')
    >>> choose_trainer("peft", "cuda", True)
    'peft'
    """
    usable = device == "cuda" and installed
    if requested == "unsloth" and not usable:
        why = "this machine has no CUDA GPU" if device != "cuda" else "the unsloth package is not installed"
        raise LLMJudgeError(f"--trainer unsloth: {why}; {INSTALL}, or train with --trainer peft")
    return "unsloth" if requested != "peft" and usable else "peft"


def prepare() -> None:
    """Import Unsloth before transformers and PEFT are imported (it patches them), asking it for logits."""
    os.environ["UNSLOTH_RETURN_LOGITS"] = "1"
    import unsloth  # noqa: F401


def transformers_folder(base, folder: Path) -> str:
    """Where a transformers loader finds the base: its own repo or folder, or for a GGUF base a folder
    written here once from the dequantised weights."""
    from .base import atomic_dir, load_base

    if "gguf_file" not in base.load:
        return base.load["pretrained_model_name_or_path"]
    if not (folder / "config.json").exists():
        from transformers import AutoModelForCausalLM

        tokenizer, model = load_base(base)
        # a model loaded from a GGUF refuses save_pretrained: the same weights in a model built from its config
        fresh = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
        fresh.load_state_dict(model.state_dict())
        fresh.generation_config = model.generation_config

        def write(tmp: Path) -> None:
            fresh.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))

        atomic_dir(folder, write)
    return str(folder)


def load_unsloth(base, recipe, work: Path):
    """(tokenizer, model) from Unsloth: the base at the GPU's precision, LoRA matrices of the recipe
    (``work``: the run folder, where a GGUF base is written out as ``BASE_FOLDER``)."""
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=transformers_folder(base, work / BASE_FOLDER), max_seq_length=recipe.max_seq_length, dtype=None,
        load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(
        model, r=recipe.r, target_modules=list(recipe.target_modules), lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout, bias="none", use_gradient_checkpointing="unsloth",
        random_state=recipe.seed, use_rslora=False, loftq_config=None)
    return tokenizer, model


def precision(model):
    """(autocast context, gradient scaler or None) for Unsloth's model, which computes in the GPU's half
    precision: bfloat16, or float16 with a scaler."""
    import torch

    dtype = next((p.dtype for p in model.parameters() if p.dtype in (torch.bfloat16, torch.float16)), torch.bfloat16)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler
