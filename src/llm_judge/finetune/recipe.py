"""Fine-tuning recipes: the seed's LoRA hyperparameters by name, and overrides (pure, no torch).

``seed`` is the recipe the Space's two models were trained with (Unsloth's suggested defaults: the
warm-up of 5 steps and the random seed 3407 are the Unsloth notebook's, which the seed's Colab
follows). ``seed-overfit`` is the seed's "third model", which overfitted to loss 0 in 15 steps.

    >>> r = with_overrides(RECIPES["seed"], ["learning_rate=1e-3", "target_modules=q_proj,v_proj"])
    >>> r.learning_rate, r.target_modules, r.r
    (0.001, ('q_proj', 'v_proj'), 16)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..defaults import TRAIN_MAX_SEQ_LENGTH
from ..errors import LLMJudgeError

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Recipe:
    r: int = 16
    lora_alpha: float = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR
    batch_size: int = 2  # per device
    grad_accum: int = 4
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 5
    scheduler: str = "linear"
    max_seq_length: int = TRAIN_MAX_SEQ_LENGTH
    optimizer: str = "adamw_8bit"  # where bitsandbytes and a GPU are present; AdamW otherwise
    seed: int = 3407

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    def check(self) -> Recipe:
        positive = ("r", "lora_alpha", "batch_size", "grad_accum", "learning_rate", "max_seq_length")
        for name in positive:
            if getattr(self, name) <= 0:
                raise LLMJudgeError(f"recipe {name} must be positive, not {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            raise LLMJudgeError(f"recipe lora_dropout must be in [0, 1), not {self.lora_dropout}")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise LLMJudgeError("recipe warmup_steps and weight_decay cannot be negative")
        if self.scheduler not in ("linear", "constant", "cosine"):
            raise LLMJudgeError(f"recipe scheduler {self.scheduler!r}: use linear, constant or cosine")
        if self.optimizer not in ("adamw_8bit", "adamw"):
            raise LLMJudgeError(f"recipe optimizer {self.optimizer!r}: use adamw_8bit or adamw")
        if not self.target_modules:
            raise LLMJudgeError("recipe target_modules is empty: name at least one layer, e.g. q_proj")
        return self


RECIPES = {
    "seed": Recipe(),
    "seed-overfit": Recipe(lora_dropout=0.3, batch_size=20, grad_accum=40, learning_rate=2e-2),
}


def with_overrides(recipe: Recipe, pairs: list[str] | tuple[str, ...]) -> Recipe:
    """``recipe`` with ``NAME=VALUE`` overrides, each converted to the field's type."""
    types = {f.name: f.type for f in fields(Recipe)}
    changes: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in types:
            raise LLMJudgeError(f"bad recipe override {pair!r}: write NAME=VALUE with NAME one of {', '.join(types)}")
        kind = types[name]
        try:
            if name == "target_modules":
                changes[name] = tuple(m.strip() for m in value.split(",") if m.strip())
            elif kind == "int":
                changes[name] = int(value)
            elif kind == "float":
                changes[name] = float(value)
            else:
                changes[name] = value.strip()
        except ValueError:
            raise LLMJudgeError(f"bad recipe override {pair!r}: {name} takes a {kind}") from None
    return replace(recipe, **changes).check()


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise LLMJudgeError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
    return RECIPES[name]
