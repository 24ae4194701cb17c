"""``compare``: two candidates answer one prompt, a judge rates both answers, in both orders.

    >>> from llm_judge import compare
    >>> result = compare("Explain how to bake a chocolate cake without using eggs.")  # doctest: +SKIP
    >>> result.winner, result.consistent  # doctest: +SKIP
    ('tie', False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import judge as J
from .backends import Backend, Completion, get_backend, parse_spec
from .criteria import Criterion, Scale, parse_criteria
from .errors import LLMJudgeError
from .sampling import JUDGE_DEFAULT, SamplingParams, make_sampling

BUILTIN_JUDGE_WARNING = (
    "the built-in judge (SmolLM2-135M) is for trying the pipeline, not for findings: on "
    "human-labelled pairs it picks the answer shown first every time; name a stronger --judge"
)


@dataclass(frozen=True)
class Candidate:
    spec: str = "embedded"
    sampling: SamplingParams = field(default_factory=lambda: make_sampling("p1"))
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.spec


@dataclass
class JudgeCall:
    """One call of the judge: what it saw, what it said, what was read from it."""

    order: str  # "AB": A shown first; "BA": B shown first; "A"/"B": single grading of that answer
    raw: str
    verdict: dict | None  # in the original labels; None when unscored
    error: str | None
    completion: Completion | None = None

    def to_dict(self) -> dict:
        out = {"order": self.order, "raw": self.raw, "verdict": self.verdict, "error": self.error}
        if self.completion is not None:
            out["completion_tokens"] = self.completion.completion_tokens
            out["seconds"] = round(self.completion.seconds, 3)
        return out


MAX_PROMPT_CHARS = 200_000  # far beyond any context a judge can take; larger is a mistake


def check_prompt(prompt: str | None) -> str:
    """A prompt worth sending, or an error that says what is wrong with it and where."""
    if prompt is None or not prompt.strip():
        raise LLMJudgeError("empty prompt: give the question to answer as an argument, a file or stdin")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise LLMJudgeError(f"the prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    for n, line in enumerate(prompt.split("\n"), 1):
        bad = next((ch for ch in line if (ord(ch) < 32 and ch not in "\t\r") or ord(ch) == 127), None)
        if bad is not None:
            raise LLMJudgeError(f"the prompt holds control character U+{ord(bad):04X} on line {n}: remove it")
    return prompt


def _call_judge(backend: Backend, messages, schema, sampling, parse) -> tuple[str, Any, str | None, Completion | None]:
    try:
        completion = backend.generate(messages, sampling, schema=schema)
    except LLMJudgeError as exc:
        if exc.fatal:
            raise
        return "", None, f"judge call failed: {exc}", None
    try:
        return completion.text, parse(completion.text), None, completion
    except J.VerdictError as exc:
        return completion.text, None, str(exc), completion


def judge_pairwise_order(backend: Backend, prompt: str, answer_a: str, answer_b: str, order: str,
                         criteria: list[Criterion], scale: Scale, sampling: SamplingParams,
                         reference: str | None = None) -> JudgeCall:
    """One order of a pairwise judgment ("AB": A shown first; "BA": B shown first).

    The verdict is returned in the original labels, whatever the order shown.
    """
    first, second = (answer_a, answer_b) if order == "AB" else (answer_b, answer_a)
    messages = J.pairwise_messages(prompt, first, second, criteria, scale, reference, backend.special_tokens())
    raw, verdict, error, completion = _call_judge(
        backend, messages, J.pairwise_schema(criteria, scale), sampling,
        lambda text: J.parse_verdict(text, criteria, scale, "pairwise"))
    if verdict is not None and order == "BA":
        verdict = verdict.swapped()
    return JudgeCall(order, raw, _asdict(verdict), error, completion)


def judge_pairwise(backend: Backend, prompt: str, answer_a: str, answer_b: str,
                   criteria: list[Criterion], scale: Scale, sampling: SamplingParams,
                   reference: str | None = None) -> tuple[list[JudgeCall], J.Combined]:
    """Ask the judge in both orders and combine (see ``judge.combine`` for the rule)."""
    calls = [judge_pairwise_order(backend, prompt, answer_a, answer_b, order, criteria, scale, sampling, reference)
             for order in ("AB", "BA")]
    return calls, J.combine(*(J.PairVerdict.from_dict(c.verdict) for c in calls))


def judge_single(backend: Backend, prompt: str, answer: str, label: str, criteria: list[Criterion],
                 scale: Scale, sampling: SamplingParams, reference: str | None = None) -> JudgeCall:
    schema = J.single_schema(criteria, scale)
    messages = J.single_messages(prompt, answer, criteria, scale, reference, backend.special_tokens())
    raw, grade, error, completion = _call_judge(
        backend, messages, schema, sampling, lambda t: J.parse_verdict(t, criteria, scale, "single"))
    verdict = None if grade is None else {"scores": grade.scores, "justification": grade.justification,
                                          "total": grade.total}
    return JudgeCall(label, raw, verdict, error, completion)


def _asdict(verdict: J.PairVerdict | None) -> dict | None:
    if verdict is None:
        return None
    return {"scores": verdict.scores, "winner": verdict.winner, "justification": verdict.justification}


@dataclass
class ComparisonResult:
    prompt: str
    mode: str
    candidates: dict[str, Candidate]
    answers: dict[str, Completion]
    judge_spec: str
    judge_sampling: SamplingParams
    criteria: list[Criterion]
    scale: Scale
    orders: list[JudgeCall]
    scores: dict[str, dict[str, float]] | None
    totals: dict[str, float] | None
    winner: str | None
    consistent: bool | None
    position_bias: str | None
    warnings: list[str]

    def justifications(self) -> list[tuple[str, str]]:
        return [(c.order, c.verdict["justification"]) for c in self.orders if c.verdict]

    def to_dict(self) -> dict:
        cands = {}
        for label, cand in self.candidates.items():
            comp = self.answers[label]
            cands[label] = {
                "spec": cand.spec, "label": cand.name, "sampling": cand.sampling.model_dump(),
                "text": comp.text, "prompt_tokens": comp.prompt_tokens,
                "completion_tokens": comp.completion_tokens, "seconds": round(comp.seconds, 3),
                "tokens_per_second": _round(comp.tokens_per_second), "finish_reason": comp.finish_reason,
            }
        return {
            "prompt": self.prompt, "mode": self.mode, "candidates": cands,
            "judge": {"spec": self.judge_spec, "sampling": self.judge_sampling.model_dump(),
                      "template_version": J.TEMPLATE_VERSION},
            "criteria": [{"name": c.name, "rubric": c.rubric} for c in self.criteria],
            "scale": [self.scale.low, self.scale.high],
            "orders": [c.to_dict() for c in self.orders],
            "scores": self.scores, "totals": self.totals, "winner": self.winner,
            "consistent": self.consistent, "position_bias": self.position_bias,
            "warnings": self.warnings,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def compare(prompt: str, *, model_a: str = "embedded", model_b: str = "embedded", judge: str = "embedded",
            sampling_a: SamplingParams | None = None, sampling_b: SamplingParams | None = None,
            criteria: list[str] | str | None = None, scale: Scale | None = None, mode: str = "pairwise",
            judge_sampling: SamplingParams | None = None, n_ctx: int = 2048, reference: str | None = None,
            on_token: Callable[[str, str], None] | None = None,
            on_stage: Callable[[str], None] | None = None) -> ComparisonResult:
    """Generate both answers, judge them and return everything, ready to show or store.

    ``on_token(label, piece)`` receives the answers as they are written; ``on_stage(text)``
    is told what is happening ("answer A", "judge: order AB", ...).
    """
    prompt = check_prompt(prompt)
    if mode not in {"pairwise", "single"}:
        raise LLMJudgeError(f"unknown mode {mode!r}: use pairwise or single")
    crits = parse_criteria(criteria)
    scale = scale or Scale()
    cands = {"A": Candidate(model_a, sampling_a or make_sampling("p1")),
             "B": Candidate(model_b, sampling_b or make_sampling("p2"))}
    judge_sampling = judge_sampling or make_sampling(None, **JUDGE_DEFAULT)
    for spec in (model_a, model_b, judge):
        parse_spec(spec)  # an unknown prefix fails before any model loads
    stage = on_stage or (lambda _text: None)
    backends = {label: get_backend(c.spec, **_load_options(c.spec, n_ctx)) for label, c in cands.items()}
    judge_backend = get_backend(judge, **_load_options(judge, n_ctx))

    messages = [{"role": "user", "content": prompt}]
    answers = {}
    for label, cand in cands.items():
        stage(f"answer {label}")
        sink = (lambda piece, _l=label: on_token(_l, piece)) if on_token else None
        answers[label] = backends[label].generate(messages, cand.sampling, on_token=sink)

    warnings = judge_warnings(judge, [c.spec for c in cands.values()])
    for label, comp in answers.items():
        if comp.finish_reason == "length":
            warnings.append(f"answer {label} was cut at max_tokens={cands[label].sampling.max_tokens}")

    if mode == "pairwise":
        stage("judge: both orders")
        calls, comb = judge_pairwise(judge_backend, prompt, answers["A"].text, answers["B"].text,
                                     crits, scale, judge_sampling, reference)
        scores, totals, winner = comb.scores, comb.totals, comb.winner
        consistent, bias = comb.consistent, comb.position_bias
        if consistent is False:
            where = {"first": "the answer shown first", "second": "the answer shown second"}.get(bias, "")
            warnings.append("the verdict flipped when the answers were swapped"
                            + (f" (the judge chose {where} both times)" if where else "")
                            + ": position, not content, decided it, so it counts as a tie")
    else:
        stage("judge: each answer alone")
        calls = [judge_single(judge_backend, prompt, answers[lab].text, lab, crits, scale,
                              judge_sampling, reference) for lab in ("A", "B")]
        graded = {c.order: c.verdict for c in calls}
        scores = totals = None
        if all(graded.values()):
            scores = {c.name: {lab: float(graded[lab]["scores"][c.name]) for lab in ("A", "B")} for c in crits}
            totals = {lab: float(graded[lab]["total"]) for lab in ("A", "B")}
        winner = J.single_winner(*(totals[lab] for lab in ("A", "B"))) if totals else None
        consistent = bias = None
    for backend in {id(b): b for b in (*backends.values(), judge_backend)}.values():
        warnings += [w for w in getattr(backend, "warnings", []) if w not in warnings]
    for call in calls:
        if call.error:
            warnings.append(f"order {call.order} is unscored: {call.error}")
    return ComparisonResult(prompt, mode, cands, answers, judge, judge_sampling, crits, scale, calls,
                            scores, totals, winner, consistent, bias, warnings)


def judge_warnings(judge_spec: str, candidate_specs: list[str]) -> list[str]:
    """Warnings about the choice of judge itself."""
    out = []
    if judge_spec.strip() in {s.strip() for s in candidate_specs}:
        out.append(f"the judge ({judge_spec}) is also a candidate: models tend to prefer their own "
                   "answers (self-preference bias)")
    if judge_spec.strip() == "embedded":
        out.append(BUILTIN_JUDGE_WARNING)
    return out


def _load_options(spec: str, n_ctx: int) -> dict:
    prefix, _ = parse_spec(spec)
    return {"n_ctx": n_ctx} if prefix in {"embedded", "gguf", "hf"} else {}
