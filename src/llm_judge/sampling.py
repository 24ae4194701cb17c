"""Sampling parameters, their validation and the named presets of the seed's study.

min_p keeps the tokens whose probability is at least ``min_p`` times the probability of the most
likely token (a threshold *relative to the top token*, not a cumulative one like top_p): with
min_p=0.1 and a top token at 0.6, every token below 0.06 is dropped. It lets a high temperature
explore plausible words without reaching the long tail of nonsense.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .defaults import ANSWER_MAX_TOKENS, JUDGE_MAX_TOKENS
from .errors import LLMJudgeError


class SamplingParams(BaseModel):
    """How one model samples. An unknown field or an out-of-range value is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0, le=5.0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 turns top-k off")
    max_tokens: int = Field(ANSWER_MAX_TOKENS, ge=1, le=32768)
    seed: int | None = Field(0, ge=0, le=2**31 - 1)
    repeat_penalty: float = Field(1.0, gt=0.0, le=5.0)


PRESETS: dict[str, dict] = {
    # The two settings of the seed's study.
    "p1": {"temperature": 0.5, "min_p": 0.05},
    "p2": {"temperature": 1.5, "min_p": 0.1},
    # Greedy decoding: the judge's default.
    "greedy": {"temperature": 0.0},
}

JUDGE_DEFAULT = {"temperature": 0.0, "max_tokens": JUDGE_MAX_TOKENS}


def make_sampling(preset: str | None = None, **overrides) -> SamplingParams:
    """Build validated parameters from an optional preset plus explicit overrides.

    >>> make_sampling("p2", max_tokens=64).temperature
    1.5
    """
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise LLMJudgeError(
                f"unknown sampling preset {preset!r}: choose one of {', '.join(PRESETS)}"
            )
        values.update(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SamplingParams(**values)
    except ValidationError as exc:
        raise LLMJudgeError(describe_validation_error(exc, "sampling")) from None


def describe_validation_error(exc: ValidationError, what: str) -> str:
    """One line for the first problem pydantic found, e.g. "bad sampling value temperature=-1: ..."."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or what
    if err["type"] == "extra_forbidden":
        return f"unknown {what} option {field!r}"
    value = err.get("input")
    return f"bad {what} value {field}={value!r}: {err['msg'].lower()}"


@functools.lru_cache(maxsize=1024)
def sampling_dict(sampling: SamplingParams) -> dict[str, Any]:
    """``sampling.model_dump()``, made once per distinct value (a study's keys and rows need it for
    every call): the dict is shared, so read it, never change it."""
    return sampling.model_dump()
