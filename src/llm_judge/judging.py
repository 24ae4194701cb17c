"""The calls to a judge: one order of a pairwise judgment, both orders, one answer graded alone.

Each call builds the prompt (``verdicts``), asks the judge backend, and reads the verdict. What
the judge wrote always ends as a verdict or as unscored with the reason; a failed request ends as
failed (``completion`` None); only a fatal error (a refused key) is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import verdicts as V
from .backends import Backend, Completion
from .criteria import Criterion, Scale
from .errors import LLMJudgeError
from .sampling import SamplingParams


@dataclass
class JudgeCall:
    """One call of the judge: what it saw, what it said, what was read from it."""

    order: str  # "AB": A shown first; "BA": B shown first; "A"/"B": single grading of that answer
    raw: str
    verdict: dict | None  # in the original labels; None when unscored
    error: str | None
    completion: Completion | None = None

    @property
    def status(self) -> str:
        """scored, unscored (the judge answered, nothing readable) or failed (no answer)."""
        return "scored" if self.verdict else ("failed" if self.completion is None else "unscored")

    def to_dict(self) -> dict:
        out = {"order": self.order, "raw": self.raw, "verdict": self.verdict, "error": self.error}
        if self.completion is not None:
            out["completion_tokens"] = self.completion.completion_tokens
            out["seconds"] = round(self.completion.seconds, 3)
        return out


def _call_judge(backend: Backend, messages, schema, sampling, parse) -> tuple[str, Any, str | None, Completion | None]:
    try:
        completion = backend.generate(messages, sampling, schema=schema)
    except LLMJudgeError as exc:
        if exc.fatal:
            raise
        return "", None, f"judge call failed: {exc}", None
    try:
        return completion.text, parse(completion.text), None, completion
    except V.VerdictError as exc:
        return completion.text, None, str(exc), completion


def judge_pairwise_order(backend: Backend, prompt: str, answer_a: str, answer_b: str, order: str,
                         criteria: list[Criterion], scale: Scale, sampling: SamplingParams,
                         reference: str | None = None) -> JudgeCall:
    """One order of a pairwise judgment ("AB": A shown first; "BA": B shown first).

    The verdict is returned in the original labels, whatever the order shown.
    """
    first, second = (answer_a, answer_b) if order == "AB" else (answer_b, answer_a)
    messages = V.pairwise_messages(prompt, first, second, criteria, scale, reference, backend.special_tokens())
    raw, verdict, error, completion = _call_judge(
        backend, messages, V.pairwise_schema(criteria, scale), sampling,
        lambda text: V.parse_verdict(text, criteria, scale, "pairwise"))
    shown = None if verdict is None else verdict.to_dict()
    return JudgeCall(order, raw, V.as_labelled(shown, order), error, completion)


def judge_pairwise(backend: Backend, prompt: str, answer_a: str, answer_b: str,
                   criteria: list[Criterion], scale: Scale, sampling: SamplingParams,
                   reference: str | None = None) -> tuple[list[JudgeCall], V.Combined]:
    """Ask the judge in both orders and combine (see ``verdicts.combine`` for the rule)."""
    calls = [judge_pairwise_order(backend, prompt, answer_a, answer_b, order, criteria, scale, sampling, reference)
             for order in ("AB", "BA")]
    return calls, V.combine(*(V.PairVerdict.from_dict(c.verdict) for c in calls))


def judge_single(backend: Backend, prompt: str, answer: str, label: str, criteria: list[Criterion],
                 scale: Scale, sampling: SamplingParams, reference: str | None = None) -> JudgeCall:
    """One answer graded alone; the verdict holds its scores, total and reasons."""
    messages = V.single_messages(prompt, answer, criteria, scale, reference, backend.special_tokens())
    raw, grade, error, completion = _call_judge(
        backend, messages, V.single_schema(criteria, scale), sampling,
        lambda t: V.parse_verdict(t, criteria, scale, "single"))
    verdict = None if grade is None else {"scores": grade.scores, "justification": grade.justification,
                                          "total": grade.total}
    return JudgeCall(label, raw, verdict, error, completion)
