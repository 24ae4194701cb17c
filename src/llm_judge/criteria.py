"""The criteria catalogue, user-defined criteria and the rating scale."""

from __future__ import annotations

from dataclasses import dataclass

from . import defaults
from .errors import LLMJudgeError


@dataclass(frozen=True)
class Criterion:
    name: str
    rubric: str


CATALOGUE: dict[str, str] = {
    "Relevance": "Does the answer address what the prompt actually asks?",
    "Coherence": "Is the answer logically organised, consistent and easy to follow?",
    "Completeness": "Does the answer cover everything the prompt needs, without gaps?",
    "Clarity": "Is the answer written plainly and unambiguously?",
    "Accuracy": "Are the facts, steps and claims in the answer correct?",
    "User-Friendliness": "Could the person who asked act on the answer easily?",
    "Depth": "Does the answer go beyond the obvious with insight and useful detail?",
    "Creativity": "Is the answer original and inventive where the prompt allows it?",
}

DEFAULT_CRITERIA = defaults.CRITERIA
MAX_CRITERIA = 10  # more makes the judge's prompt and output long and its scores unreliable


@dataclass(frozen=True)
class Scale:
    low: int = 1
    high: int = 4

    def __post_init__(self):
        if self.high <= self.low:
            raise LLMJudgeError(
                f"bad scale {self.low}-{self.high}: the top must be above the bottom, e.g. 1-4"
            )

    @property
    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1))


def parse_scale(text: str) -> Scale:
    """Parse "1-4" or "1-10".

    >>> parse_scale("1-10").high
    10
    """
    try:
        low, high = (int(p) for p in text.split("-"))
    except ValueError:
        raise LLMJudgeError(f"bad scale {text!r}: write it as LOW-HIGH, e.g. 1-4") from None
    return Scale(low, high)


def parse_criteria(items: list[str] | tuple[str, ...] | str | None) -> list[Criterion]:
    """Resolve names from the catalogue (any case) and ``name=description`` custom criteria.

    >>> [c.name for c in parse_criteria("relevance,Tone=Is the tone friendly?")]
    ['Relevance', 'Tone']
    """
    if items is None:
        items = DEFAULT_CRITERIA
    if isinstance(items, str):
        items = [p for p in items.split(",")]
    by_lower = {name.lower(): name for name in CATALOGUE}
    out: list[Criterion] = []
    for raw in items:
        item = raw.strip()
        if "=" in item:
            name, _, desc = item.partition("=")
            name, desc = name.strip(), desc.strip()
            if not name or not desc:
                raise LLMJudgeError(
                    f"bad custom criterion {raw!r}: write it as name=description"
                )
            crit = Criterion(name, desc)
        elif item.lower() in by_lower:
            name = by_lower[item.lower()]
            crit = Criterion(name, CATALOGUE[name])
        elif not item:
            raise LLMJudgeError("empty criterion name: list criteria as A,B,C")
        else:
            raise LLMJudgeError(
                f"unknown criterion {item!r}: choose from {', '.join(CATALOGUE)} "
                "or define one as name=description"
            )
        if any(c.name.lower() == crit.name.lower() for c in out):
            raise LLMJudgeError(f"criterion {crit.name!r} is listed twice")
        out.append(crit)
    if not out:
        raise LLMJudgeError("no criteria given: name at least one, e.g. Relevance")
    if len(out) > MAX_CRITERIA:
        raise LLMJudgeError(f"too many criteria ({len(out)}): judge on at most {MAX_CRITERIA} at once")
    return out
