"""The calls to a judge: one order of a pairwise judgment, both orders, one answer graded alone;
a judge is one model or a jury of several.

Each call builds the prompt (``verdicts``), asks the judge, and reads the verdict; with
``method="weighted"`` also the judge's probabilities at its decisions (``weighting``). What the
judge wrote always ends as a verdict or as unscored with the reason; a failed request ends as
failed (``completion`` None); only a fatal error (a refused key) is raised.

A ``Jury`` (Verga et al. 2024) asks every member in each order and decides by majority, or by the
members' mean probabilities where all give them; the members' verdicts are kept in ``jurors``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from . import verdicts as V
from . import weighting as W
from .backends import Backend, Completion, get_backend
from .criteria import Criterion, Scale
from .errors import LLMJudgeError
from .sampling import SamplingParams
from .store import cache_key


@dataclass
class Jury:
    """Several judges deciding together, one order at a time."""

    members: list[Backend]

    @property
    def spec(self) -> str:
        return jury_name([m.spec for m in self.members])

    @property
    def warnings(self) -> list[str]:
        return [w for m in self.members for w in m.warnings]

    def describe(self) -> dict:
        return {"jury": [m.describe() for m in self.members]}


Judge = Backend | Jury


@dataclass(frozen=True)
class JudgeSetup:
    """How a judge is asked (the same in a study and in a judge evaluation)."""

    criteria: list[Criterion]
    scale: Scale
    sampling: SamplingParams
    fmt: str = "full"
    method: str = "plain"


def model_identity(judge: Judge) -> dict:
    """What identifies a model (or a jury) for caching: the file hash for local models, the spec otherwise;
    a jury by its members'."""
    if isinstance(judge, Jury):
        return {"jury": [model_identity(m) for m in judge.members]}
    d = judge.describe()
    if "sha256" not in d:
        return {"spec": d["spec"]}
    return {"sha256": d["sha256"], "n_ctx": d.get("n_ctx"), **({"lora": d["lora_sha256"]} if d.get("lora_sha256") else {})}


def judgment_key(kind: str, judge: Judge, setup: JudgeSetup, prompt: str, shown: list[str],
                 reference: str | None = None, repeat: int = 0, history: list | None = None) -> str:
    """The cache key of one judgment: everything that determines it, the texts in the positions
    shown included, and each shown answer's conversation before it. The one definition for
    studies and judge evaluations."""
    return cache_key(kind, judge=model_identity(judge), template=V.TEMPLATE_VERSION,
                     sampling=setup.sampling.model_dump(), criteria=[[c.name, c.rubric] for c in setup.criteria],
                     scale=[setup.scale.low, setup.scale.high],
                     **({"method": setup.method} if setup.method != "plain" else {}),
                     **({"format": setup.fmt} if kind == "pairwise" and setup.fmt != "full" else {}),
                     prompt=prompt, reference=reference, shown=shown, **({"repeat": repeat} if repeat else {}),
                     **({"history": history} if history and any(history) else {}))


def save_judgment(store, key: str, kind: str, judge_name: str, call: JudgeCall, link: tuple | None = None) -> None:
    """Store a judge's call under its cache key: a pairwise verdict as shown (A = the answer shown
    first, ``verdicts.as_labelled``), with its raw output, reason, cost and log probabilities, and
    linked to its run item unless it failed. The one writer for studies and judge evaluations."""
    comp = call.completion
    verdict = V.as_labelled(call.verdict, call.order) if kind == "pairwise" else call.verdict
    store.put_judgment(key, kind, judge_name, V.TEMPLATE_VERSION, call.order, status=call.status, raw=call.raw,
                       verdict=verdict, error=call.error, completion_tokens=comp.completion_tokens if comp else None,
                       seconds=comp.seconds if comp else None, logprobs=comp.logprobs if comp else None,
                       link=None if call.status == "failed" else link)


def jury_name(specs: list[str]) -> str:
    """How a judge (one spec) or a jury (several) is named in runs, cards and reports.

    >>> jury_name(["embedded"]), jury_name(["a", "b", "c"])
    ('embedded', 'jury(a, b, c)')
    """
    return specs[0] if len(specs) == 1 else f"jury({', '.join(specs)})"


def load_judge(specs: str | list[str], **options: Any) -> Judge:
    """One judge from a spec, a jury from several (each member loaded once)."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise LLMJudgeError("no judge: name one (a spec), or several for a jury")
    if len(set(specs)) != len(specs):
        raise LLMJudgeError("a jury names the same judge twice: name each member once")
    members = [get_backend(s, **options) for s in specs]
    return members[0] if len(members) == 1 else Jury(members)


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


def _call_judge(backend: Backend, messages, schema, sampling, parse,
                read_at=None) -> tuple[str, Any, str | None, Completion | None]:
    try:
        completion = backend.generate(messages, sampling, schema=schema, read_at=read_at)
    except LLMJudgeError as exc:
        if exc.fatal:
            raise
        return "", None, f"judge call failed: {exc}", None
    try:
        return completion.text, parse(completion.text), None, completion
    except V.VerdictError as exc:
        return completion.text, None, str(exc), completion


def judge_pairwise_order(judge: Judge, prompt: str, answer_a: str, answer_b: str, order: str,
                         criteria: list[Criterion], scale: Scale, sampling: SamplingParams,
                         reference: str | None = None, *, fmt: str = "full", method: str = "plain",
                         history: list | None = None) -> JudgeCall:
    """One order of a pairwise judgment ("AB": A shown first; "BA": B shown first).

    The verdict is returned in the original labels, whatever the order shown; with
    ``method="weighted"`` it carries ``weighted``: the judge's probabilities (``weighting``).
    ``history``: each candidate's conversation before ``prompt`` ([A's messages, B's]), for a
    later turn of a conversation.
    """
    if isinstance(judge, Jury):
        calls = [judge_pairwise_order(m, prompt, answer_a, answer_b, order, criteria, scale, sampling, reference,
                                      fmt=fmt, method=method, history=history) for m in judge.members]
        return _jury_call(order, judge, calls, "pairwise")
    first, second = (answer_a, answer_b) if order == "AB" else (answer_b, answer_a)
    shown_history = None if not history else (history if order == "AB" else history[::-1])
    messages = V.pairwise_messages(prompt, first, second, criteria, scale, reference, judge.special_tokens(), fmt,
                                   shown_history)
    raw, verdict, error, completion = _call_judge(
        judge, messages, V.pairwise_schema(criteria, scale, fmt), sampling,
        lambda text: V.parse_verdict(text, criteria, scale, "pairwise", fmt), _reader(method, criteria, scale, "pairwise"))
    shown = None if verdict is None else verdict.to_dict()
    if shown is not None and method == "weighted" and completion is not None:
        weighted = W.read_weighted(completion.decisions, completion.text,
                                   W.decision_offsets(completion.text, criteria, scale), scale)
        if weighted:
            shown["weighted"] = weighted
    return JudgeCall(order, raw, V.as_labelled(shown, order), error, completion)


def _reader(method: str, criteria, scale, mode):
    """What the backend should report probabilities for: the offsets of the decisions in its output."""
    if method not in W.METHODS:
        raise LLMJudgeError(f"unknown judge method {method!r}: use {' or '.join(W.METHODS)}")
    if method != "weighted":
        return None
    return lambda text: list(W.decision_offsets(text, criteria, scale, mode).values())


def judge_pairwise(judge: Judge, prompt: str, answer_a: str, answer_b: str,
                   criteria: list[Criterion], scale: Scale, sampling: SamplingParams,
                   reference: str | None = None, *, fmt: str = "full",
                   method: str = "plain") -> tuple[list[JudgeCall], V.Combined]:
    """Ask the judge in both orders and combine (see ``verdicts.combine`` for the rule)."""
    calls = [judge_pairwise_order(judge, prompt, answer_a, answer_b, order, criteria, scale, sampling, reference,
                                  fmt=fmt, method=method) for order in ("AB", "BA")]
    return calls, combine_calls(calls)


def combine_calls(calls: list[JudgeCall]) -> V.Combined:
    """The two orders' calls (AB, BA) as one verdict, their probabilities included."""
    return V.combine_verdicts(*(c.verdict for c in calls))


def judge_single(judge: Judge, prompt: str, answer: str, label: str, criteria: list[Criterion],
                 scale: Scale, sampling: SamplingParams, reference: str | None = None, *,
                 method: str = "plain", history: list | None = None) -> JudgeCall:
    """One answer graded alone; the verdict holds its scores, total and reasons (and, weighted,
    the expected scores). ``history``: the conversation before ``prompt``."""
    if isinstance(judge, Jury):
        calls = [judge_single(m, prompt, answer, label, criteria, scale, sampling, reference, method=method,
                              history=history) for m in judge.members]
        return _jury_call(label, judge, calls, "single")
    messages = V.single_messages(prompt, answer, criteria, scale, reference, judge.special_tokens(), history)
    raw, grade, error, completion = _call_judge(
        judge, messages, V.single_schema(criteria, scale), sampling,
        lambda t: V.parse_verdict(t, criteria, scale, "single"), _reader(method, criteria, scale, "single"))
    verdict = None if grade is None else {"scores": grade.scores, "justification": grade.justification,
                                          "total": grade.total}
    if verdict is not None and method == "weighted" and completion is not None:
        weighted = W.read_weighted(completion.decisions, completion.text,
                                   W.decision_offsets(completion.text, criteria, scale, "single"), scale, "single")
        if weighted:
            verdict["weighted"] = weighted
    return JudgeCall(label, raw, verdict, error, completion)


def majority(winners: list[str | None]) -> str | None:
    """The jury's winner: the one more than half the members who gave a verdict name; no
    majority is a tie; no member's verdict, none.

    >>> majority(["A", "A", "B"]), majority(["A", "B", "tie"]), majority(["A", None, None]), majority([None])
    ('A', 'tie', 'A', None)
    """
    scored = [w for w in winners if w is not None]
    if not scored:
        return None
    winner, count = Counter(scored).most_common(1)[0]
    return winner if count * 2 > len(scored) else "tie"


def _mean_dicts(dicts: list[dict]) -> dict:
    """The mean of nested dicts of numbers with the same keys."""
    first = dicts[0]
    return {k: (_mean_dicts([d[k] for d in dicts]) if isinstance(v, dict) else sum(d[k] for d in dicts) / len(dicts))
            for k, v in first.items()}


def jury_verdict(members: list[tuple[str, dict | None, str | None]], mode: str = "pairwise") -> dict | None:
    """The jury's verdict in one order from its members' (spec, verdict or None, error): the
    majority winner (single mode: the mean scores), the mean probabilities where every scored
    member gives them, and each member's verdict in ``jurors``. None when no member scored."""
    jurors = [{"judge": spec, "winner": (v or {}).get("winner"), "error": err,
               **({"total": v["total"]} if v and "total" in v else {}),
               **({"weighted": v["weighted"]} if v and v.get("weighted") else {})}
              for spec, v, err in members]
    scored = [v for _, v, _ in members if v]
    if not scored:
        return None
    verdict = {"scores": _mean_dicts([v["scores"] for v in scored]) if scored[0]["scores"] else {},
               "justification": "; ".join(f"{j['judge']}: {j.get('winner') or j.get('total') or 'unscored'}"
                                          for j in jurors), "jurors": jurors}
    if mode == "pairwise":
        verdict["winner"] = majority([j["winner"] for j in jurors])
    else:
        verdict["total"] = sum(verdict["scores"].values())
    weighted = [v["weighted"] for v in scored if v.get("weighted")]
    if weighted and len(weighted) == len(scored):
        verdict["weighted"] = _mean_dicts(weighted)
    return verdict


def _jury_call(order: str, jury: Jury, calls: list[JudgeCall], mode: str) -> JudgeCall:
    """The members' calls in one order as the jury's call (verdicts in the original labels)."""
    raw = json.dumps({m.spec: c.raw for m, c in zip(jury.members, calls)}, ensure_ascii=False)
    done = [c.completion for c in calls if c.completion is not None]
    completion = None if not done else Completion(
        text=raw, prompt_tokens=sum(c.prompt_tokens or 0 for c in done),
        completion_tokens=sum(c.completion_tokens or 0 for c in done), seconds=sum(c.seconds for c in done))
    verdict = jury_verdict([(m.spec, c.verdict, c.error) for m, c in zip(jury.members, calls)], mode)
    if verdict is None:
        errors = "; ".join(f"{m.spec}: {c.error}" for m, c in zip(jury.members, calls))
        return JudgeCall(order, raw, None, f"no juror gave a readable verdict ({errors})", completion)
    return JudgeCall(order, raw, verdict, None, completion)
