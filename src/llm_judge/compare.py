"""``compare``: two candidates answer one prompt, a judge rates both answers, in both orders.

Also the one definition of a candidate (``SPEC[@PRESET][#LABEL]``) that the CLI, the page and
studies share, and the checks every entry point applies to candidates and context size.
The calls run through ``runner`` (both answers at once, then both orders or both grades, as far
as the endpoints' limits allow); nothing is cached or stored here (the CLI and the page store
the result).

    >>> from llm_judge import compare
    >>> result = compare("Explain how to bake a chocolate cake without using eggs.")  # doctest: +SKIP
    >>> result.winner, result.consistent  # doctest: +SKIP
    ('tie', False)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import verdicts as V
from .backends import Backend, Completion, get_backend, parse_spec
from .cache import MemoAuxiliary, template_version
from .config import Settings
from .criteria import Criterion, Scale, parse_criteria
from .defaults import N_CTX
from .errors import LLMJudgeError
from .judging import AuxTexts, Judge, JudgeCall, JudgeSetup, check_fits, check_protocol, jury_name, load_judge
from .prompts import check_prompt
from .records import LABELS, ORDERS, Calibrated, Label, Verdict
from .runner import Generate, GradeOne, JudgeOrder, Runner
from .sampling import JUDGE_DEFAULT, PRESETS, SamplingParams, make_sampling

BUILTIN_JUDGE_WARNING = (
    "the built-in judge (SmolLM2-135M) is for trying the pipeline, not for findings: on "
    "human-labelled pairs it picks the answer shown first every time; name a stronger judge"
)
MIN_N_CTX = 256  # below this no judge prompt fits


@dataclass(frozen=True)
class Candidate:
    spec: str = "embedded"
    sampling: SamplingParams = field(default_factory=lambda: make_sampling("p1"))
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.spec

    @classmethod
    def parse(cls, text: str, sampling_overrides: Mapping[str, Any] | None = None) -> Candidate:
        """``SPEC[@PRESET][#LABEL]``; the preset is what follows the last @ when it names one.

        >>> c = Candidate.parse("embedded@p2#hot"); (c.spec, c.sampling.temperature, c.label)
        ('embedded', 1.5, 'hot')
        >>> Candidate.parse("openai:m@http://h/v1").spec, Candidate.parse("embedded@p2").name
        ('openai:m@http://h/v1', 'embedded@p2')
        """
        body, _, label = text.partition("#")
        spec, preset = body, None
        head, sep, tail = body.rpartition("@")
        if sep and tail in PRESETS:
            spec, preset = head, tail
        sampling = make_sampling(preset or "p1", **(sampling_overrides or {}))
        return cls(spec.strip(), sampling, label.strip() or body.strip())


# What a name ends with when it names a later turn of a conversation (``x@t2``): a study names its
# units and their answers so (``study.summary.unit_id``), so no candidate label may end so.
LATER_TURN = re.compile(r"@t([0-9]+)\Z")


def candidates_by_label(candidates: Iterable[Candidate]) -> dict[str, Candidate]:
    """Candidates keyed by their labels; two with one label, or a label that ends like a later turn's
    name (``x@t2``: a study names an answer's turn that way), is an error that says how to fix it."""
    out: dict[str, Candidate] = {}
    for c in candidates:
        if LATER_TURN.search(c.name):
            raise LLMJudgeError(f"candidate label {c.name!r} ends like a conversation's turn (@tN): add #LABEL to name it")
        if c.name in out:
            raise LLMJudgeError(f"two candidates are labelled {c.name!r}: add #LABEL to tell them apart")
        out[c.name] = c
    return out


def check_n_ctx(n_ctx: int) -> int:
    """The context size of local models, or the error (the rule of every entry point)."""
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < MIN_N_CTX:
        raise LLMJudgeError(f"a context of {n_ctx} tokens is too small: use at least {MIN_N_CTX} (default {N_CTX})")
    return n_ctx


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
    scores: dict[str, dict[Label, float]] | None
    totals: dict[Label, float] | None
    winner: str | None
    consistent: bool | None
    position_bias: str | None
    warnings: list[str]
    method: str = "plain"
    weighted: Calibrated | None = None  # the calibrated probabilities (verdicts.combine_weighted)
    jurors: list[dict[str, Any]] | None = None  # per juror: its verdict in each order and combined
    protocol: str | None = None  # the published protocol the judge was asked with (None: llm-judge's own)
    template_version: str = V.TEMPLATE_VERSION  # the prompt's version, or the protocol's name@digest
    replicas: dict[str, Any] | None = None  # a model served by replicas: each one's counts, by model spec

    def justifications(self) -> list[tuple[str, str]]:
        return [(c.order, c.verdict.justification) for c in self.orders if c.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "mode": self.mode,
            "candidates": {label: _candidate_dict(cand, self.answers[label]) for label, cand in self.candidates.items()},
            "judge": {"spec": self.judge_spec, "sampling": self.judge_sampling.model_dump(),
                      "template_version": self.template_version,
                      **({"protocol": self.protocol} if self.protocol is not None else {})},
            "criteria": [{"name": c.name, "rubric": c.rubric} for c in self.criteria],
            "scale": [self.scale.low, self.scale.high],
            "orders": [c.to_dict() for c in self.orders],
            "scores": self.scores, "totals": self.totals, "winner": self.winner,
            "consistent": self.consistent, "position_bias": self.position_bias,
            "method": self.method, "weighted": None if self.weighted is None else V.calibrated_dict(self.weighted),
            "jurors": self.jurors, "warnings": self.warnings,
            **({"replicas": self.replicas} if self.replicas else {}),
        }


def _candidate_dict(cand: Candidate, comp: Completion) -> dict[str, Any]:
    return {"spec": cand.spec, "label": cand.name, "sampling": cand.sampling.model_dump(),
            "text": comp.text, "prompt_tokens": comp.prompt_tokens,
            "completion_tokens": comp.completion_tokens, "seconds": round(comp.seconds, 3),
            "tokens_per_second": _round(comp.tokens_per_second), "finish_reason": comp.finish_reason}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


Stage = Callable[[str], None]
TokenSink = Callable[[str, str], None]
# compare's keywords before candidates and setup grouped them: still taken (the CLI and the page pass them)
_LOOSE = {"model_a", "model_b", "sampling_a", "sampling_b", "criteria", "scale", "judge_sampling", "judge_method",
          "verdict_format"}


def compare(prompt: str, *, candidates: Mapping[Label, Candidate] | None = None, judge: str | list[str] = "embedded",
            setup: JudgeSetup | None = None, mode: str = "pairwise", n_ctx: int = N_CTX, reference: str | None = None,
            on_token: TokenSink | None = None, on_stage: Stage | None = None,
            load_options: Mapping[str, Any] | None = None, concurrency: int | None = None,
            settings: Settings | None = None, protocol: str | None = None, **loose: Any) -> ComparisonResult:
    """Generate both answers, judge them and return everything, ready to show or store.

    ``candidates``: A's and B's (default: the built-in model at presets p1 and p2); ``judge``: one
    spec, or several for a jury; ``setup``: how it is asked (criteria, scale, sampling, verdict
    format, method; ``JudgeSetup``). ``method="weighted"``: read the judge's probabilities and
    decide by the calibrated mean of both orders (the sampled verdicts are kept);
    ``fmt="winner"``: the judge names the winner without reasons or scores. The loose keywords
    of before (``model_a``, ``sampling_b``, ``criteria``, ``judge_method``, ...) are still taken.
    ``on_token(label, piece)`` receives the answers as they are written; ``on_stage(text)`` is
    told what is happening. ``concurrency``: the most calls at once (default 1: the answers one
    after the other, then the orders, as a model batching two answers need not write the same
    ones). ``load_options``: more load options for every model; ``settings``: the engine and
    config file the models load under (by default the environment's). ``protocol``: a published
    judging protocol by name or path (``llm-judge judges protocols``), in place of the setup's.
    """
    prompt = check_prompt(prompt)
    cands, setup = _grouped(candidates, setup, loose)
    if protocol is not None:
        from .protocols import load_protocol

        setup = replace(setup, protocol=load_protocol(protocol))
    judges = [judge] if isinstance(judge, str) else list(judge)
    _check(mode, n_ctx, setup, [*(c.spec for c in cands.values()), *judges], settings)
    check_fits(setup, [(1, bool(reference))])
    stage = on_stage or _quiet
    backends = {label: get_backend(c.spec, settings, n_ctx=n_ctx, **(load_options or {})) for label, c in cands.items()}
    the_judge = load_judge(judges, setup, n_ctx=n_ctx, settings=settings, **(load_options or {}))
    limits = _limits(backends.values(), the_judge)
    with Runner[str](concurrency or 1, limits) as runner:
        answers = _answers(runner, prompt, cands, backends, stage, on_token)
        calls = _judged(runner, the_judge, prompt, answers, mode, reference, stage, MemoAuxiliary())
    noticed = [w for b in backends.values() for w in b.warnings] + the_judge.warnings
    result = _result(prompt, mode, cands, answers, the_judge, judges, calls, noticed)
    judged = the_judge.describe()
    result.replicas = replica_counts([*(b.describe() for b in backends.values()), *judged.get("jury", [judged])])
    return result


def replica_counts(descriptions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The counts of each model served by replicas (a backend's ``describe()`` ``replicas``), by its spec."""
    return {d["spec"]: d["replicas"] for d in descriptions if "replicas" in d}


def _grouped(candidates: Mapping[Label, Candidate] | None, setup: JudgeSetup | None,
             loose: Mapping[str, Any]) -> tuple[dict[str, Candidate], JudgeSetup]:
    """The candidates and the judge's setup, from the grouped arguments or from the loose keywords."""
    unknown = sorted(set(loose) - _LOOSE)
    if unknown:
        raise TypeError(f"compare() got an unexpected keyword argument {unknown[0]!r}")
    if candidates is None:
        candidates = {"A": Candidate(loose.get("model_a", "embedded"), loose.get("sampling_a") or make_sampling("p1")),
                      "B": Candidate(loose.get("model_b", "embedded"), loose.get("sampling_b") or make_sampling("p2"))}
    if setup is None:
        setup = JudgeSetup(parse_criteria(loose.get("criteria")), loose.get("scale") or Scale(),
                           loose.get("judge_sampling") or make_sampling(None, **JUDGE_DEFAULT),
                           loose.get("verdict_format", "full"), loose.get("judge_method", "plain"))
    return {label: cand for label, cand in candidates.items()}, setup


def _check(mode: str, n_ctx: int, setup: JudgeSetup, specs: list[str], settings: Settings | None) -> None:
    if mode not in {"pairwise", "single"}:
        raise LLMJudgeError(f"unknown mode {mode!r}: use pairwise or single")
    check_n_ctx(n_ctx)
    check_judging(setup.method, setup.fmt, mode)
    check_protocol(setup, mode)
    for spec in specs:
        parse_spec(spec, settings)  # an unknown prefix fails before any model loads


def _quiet(_text: str) -> None:
    """No one to tell."""


def _limits(backends: Iterable[Backend], judge: Judge) -> dict[str, int]:
    """The calls each endpoint takes at once (a candidate's model, the judge as a whole)."""
    return {b.spec: b.concurrency for b in backends} | {judge.name: judge.concurrency}


def _answers(runner: Runner[str], prompt: str, cands: Mapping[str, Candidate], backends: Mapping[str, Backend],
             stage: Stage, on_token: TokenSink | None) -> dict[str, Completion]:
    """Both answers: one after the other with one worker (the default: a model batching two answers
    at once need not write the same ones), else at once where their endpoints allow. A failed one is
    raised once the calls under way have ended, so that nothing is left running."""
    messages = [{"role": "user", "content": prompt}]
    batches = [[label] for label in cands] if runner.workers == 1 else [list(cands)]
    answers: dict[str, Completion] = {}
    for labels in batches:
        stage(("answer " if len(labels) == 1 else "answers ") + " and ".join(labels))
        for label in labels:
            sink = (lambda piece, _l=label: on_token(_l, piece)) if on_token else None
            runner.submit(Generate(backends[label], messages, cands[label].sampling, f"answer {label}", on_token=sink),
                          label)
        ended = list(runner.finished())
        answers.update({f.waiters[0]: f.value() for f in ended})
    return answers


def _judged(runner: Runner[str], judge: Judge, prompt: str, answers: Mapping[str, Completion], mode: str,
            reference: str | None, stage: Stage, auxiliary: AuxTexts) -> list[JudgeCall]:
    """Both orders of the pair (AB, BA), or both answers graded alone (A, B), as calls."""
    texts = (answers["A"].text, answers["B"].text)
    if mode == "pairwise":
        stage("judge: both orders")
        for order in ORDERS:
            runner.submit(JudgeOrder(judge, prompt, texts, order, order, reference=reference, auxiliary=auxiliary),
                          order)
    else:
        stage("judge: each answer alone")
        for label, text in zip(LABELS, texts):
            runner.submit(GradeOne(judge, prompt, text, label, label, reference=reference, auxiliary=auxiliary),
                          label)
    ended = list(runner.finished())
    # a call serves every slot that shows the same texts (two identical answers): each reads it in its own labels
    done = {slot: f.value().as_slot(slot) for f in ended for slot in f.waiters}
    return [done[slot] for slot in (ORDERS if mode == "pairwise" else LABELS)]


def _result(prompt: str, mode: str, cands: dict[str, Candidate], answers: dict[str, Completion], judge: Judge,
            judges: list[str], calls: list[JudgeCall], noticed: list[str]) -> ComparisonResult:
    """The comparison from its calls; ``noticed``: what the models noticed while serving."""
    setup = judge.setup
    if mode == "pairwise":
        verdict = V.combine(calls[0].pair, calls[1].pair)
    else:
        verdict = V.single_totals({lab: c.grade for lab, c in zip(LABELS, calls)}, setup.criteria)
    warnings = _answer_warnings(cands, answers, judges, verdict if mode == "pairwise" else None)
    for w in noticed:  # once each (one model may serve twice)
        if w not in warnings:
            warnings.append(w)
    warnings += _judging_warnings(calls, verdict, setup.method, mode)
    return ComparisonResult(prompt, mode, cands, answers, jury_name(judges), setup.sampling, setup.criteria,
                            setup.scale, calls, verdict.scores, verdict.totals, verdict.winner, verdict.consistent,
                            verdict.position_bias, warnings, setup.method, verdict.weighted,
                            jurors_outcome(calls) if len(judges) > 1 and mode == "pairwise" else None,
                            None if setup.own is None else setup.own.name, template_version(judge))


def _answer_warnings(cands: Mapping[str, Candidate], answers: Mapping[str, Completion], judges: list[str],
                     pairwise: V.Combined | None) -> list[str]:
    """About the choice of judge, the answers cut short, and a pairwise verdict that flipped."""
    warnings = judge_warnings(judges, [c.spec for c in cands.values()])
    for label, comp in answers.items():
        if comp.finish_reason == "length":
            warnings.append(f"answer {label} was cut at max_tokens={cands[label].sampling.max_tokens}")
    if pairwise is not None and pairwise.consistent is False:
        warnings.append(_flip_warning(pairwise.position_bias))
    return warnings


def _judging_warnings(calls: list[JudgeCall], verdict: V.Combined, method: str, mode: str) -> list[str]:
    """About the judge's calls: unscored ones, reasons cut at their bound, probabilities missing."""
    warnings = [f"order {call.order} is unscored: {call.error}" for call in calls if call.error]
    warnings += V.bound_warning(sum(V.reached_bound(c.raw) for c in calls if c.verdict), len(calls))
    if method == "weighted" and mode == "pairwise" and verdict.weighted is None:
        warnings.append("the judge gave no probabilities: the verdict is the sampled one")
    return warnings


def _flip_warning(position_bias: str | None) -> str:
    where = {"first": "the answer shown first", "second": "the answer shown second"}.get(position_bias or "", "")
    return ("the verdict flipped when the answers were swapped"
            + (f" (the judge chose {where} both times)" if where else "")
            + ": position, not content, decided it, so it counts as a tie")


def check_judging(method: str, verdict_format: str, mode: str = "pairwise") -> None:
    """The judge method and verdict format, or the error (the rule of every entry point)."""
    from .verdicts import FORMATS
    from .weighting import METHODS

    if method not in METHODS:
        raise LLMJudgeError(f"unknown judge method {method!r}: use {' or '.join(METHODS)}")
    if verdict_format not in FORMATS:
        raise LLMJudgeError(f"unknown verdict format {verdict_format!r}: use {' or '.join(FORMATS)}")
    if verdict_format == "winner" and mode != "pairwise":
        raise LLMJudgeError("the winner-only verdict format is for pairwise judging: single grading needs scores")


def jurors_outcome(calls: list[JudgeCall]) -> list[dict[str, Any]]:
    """Each juror's verdict in each order (AB, BA) and both combined by the usual rule; none when
    no order has a verdict (every juror failed both times: the orders' errors say how)."""
    verdicts = [c.pair for c in calls]
    scored = next((v for v in verdicts if v is not None), None)
    out: list[dict[str, Any]] = []
    for k, juror in enumerate(scored.jurors if scored else ()):
        per = [v.jurors[k] if v is not None and k < len(v.jurors) else None for v in verdicts]
        winners = [None if j is None else j.winner for j in per]
        alone = [None if j is None or j.winner is None else Verdict(j.winner, probabilities=j.probabilities)
                 for j in per]
        out.append({"judge": juror.judge, **dict(zip(ORDERS, winners)), "winner": V.combine(*alone).winner})
    return out


def judge_warnings(judges: str | list[str], candidate_specs: list[str]) -> list[str]:
    """Warnings about the choice of judge itself (one spec, or a jury's)."""
    out = []
    for spec in [judges] if isinstance(judges, str) else judges:
        if spec.strip() in {s.strip() for s in candidate_specs}:
            out.append(f"the judge ({spec}) is also a candidate: models tend to prefer their own "
                       "answers (self-preference bias)")
        if spec.strip() == "embedded":
            out.append(BUILTIN_JUDGE_WARNING)
    return out
