"""``compare``: two candidates answer one prompt, a judge rates both answers, in both orders.

Also the one definition of a candidate (``SPEC[@PRESET][#LABEL]``) that the CLI, the page and
studies share, and the checks every entry point applies to candidates and context size.

    >>> from llm_judge import compare
    >>> result = compare("Explain how to bake a chocolate cake without using eggs.")  # doctest: +SKIP
    >>> result.winner, result.consistent  # doctest: +SKIP
    ('tie', False)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import verdicts as V
from .backends import Completion, get_backend, parse_spec
from .config import Settings
from .criteria import Criterion, Scale, parse_criteria
from .defaults import N_CTX
from .errors import LLMJudgeError
from .judging import JudgeCall, judge_pairwise, judge_single, jury_name, load_judge
from .prompts import check_prompt
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
    def parse(cls, text: str, sampling_overrides: dict | None = None) -> Candidate:
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
    scores: dict[str, dict[str, float]] | None
    totals: dict[str, float] | None
    winner: str | None
    consistent: bool | None
    position_bias: str | None
    warnings: list[str]
    method: str = "plain"
    weighted: dict | None = None  # the calibrated probabilities (verdicts.combine_weighted)
    jurors: list[dict] | None = None  # per juror: its verdict in each order and combined

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
                      "template_version": V.TEMPLATE_VERSION},
            "criteria": [{"name": c.name, "rubric": c.rubric} for c in self.criteria],
            "scale": [self.scale.low, self.scale.high],
            "orders": [c.to_dict() for c in self.orders],
            "scores": self.scores, "totals": self.totals, "winner": self.winner,
            "consistent": self.consistent, "position_bias": self.position_bias,
            "method": self.method, "weighted": self.weighted, "jurors": self.jurors,
            "warnings": self.warnings,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def compare(prompt: str, *, model_a: str = "embedded", model_b: str = "embedded", judge: str | list[str] = "embedded",
            sampling_a: SamplingParams | None = None, sampling_b: SamplingParams | None = None,
            criteria: list[str] | str | None = None, scale: Scale | None = None, mode: str = "pairwise",
            judge_sampling: SamplingParams | None = None, n_ctx: int = N_CTX, reference: str | None = None,
            judge_method: str = "plain", verdict_format: str = "full",
            on_token: Callable[[str, str], None] | None = None,
            on_stage: Callable[[str], None] | None = None, load_options: dict | None = None,
            settings: Settings | None = None) -> ComparisonResult:
    """Generate both answers, judge them and return everything, ready to show or store.

    ``judge``: one spec, or several for a jury. ``judge_method="weighted"``: read the judge's
    probabilities and decide by the calibrated mean of both orders (the sampled verdicts are
    kept). ``verdict_format="winner"``: the judge names the winner without reasons or scores.
    ``on_token(label, piece)`` receives the answers as they are written; ``on_stage(text)``
    is told what is happening ("answer A", "answer B", "judge: both orders", ...).
    ``load_options``: more load options for every model (the page's ``key_configured_only``);
    ``settings``: the engine and config file the models load under (by default the environment's).
    """
    prompt = check_prompt(prompt)
    if mode not in {"pairwise", "single"}:
        raise LLMJudgeError(f"unknown mode {mode!r}: use pairwise or single")
    check_n_ctx(n_ctx)
    crits = parse_criteria(criteria)
    scale = scale or Scale()
    cands = {"A": Candidate(model_a, sampling_a or make_sampling("p1")),
             "B": Candidate(model_b, sampling_b or make_sampling("p2"))}
    judge_sampling = judge_sampling or make_sampling(None, **JUDGE_DEFAULT)
    judges = [judge] if isinstance(judge, str) else list(judge)
    check_judging(judge_method, verdict_format, mode)
    for spec in (model_a, model_b, *judges):
        parse_spec(spec, settings)  # an unknown prefix fails before any model loads
    stage = on_stage or (lambda _text: None)
    backends = {label: get_backend(c.spec, settings, n_ctx=n_ctx, **(load_options or {})) for label, c in cands.items()}
    judge_backend = load_judge(judges, n_ctx=n_ctx, settings=settings, **(load_options or {}))

    messages = [{"role": "user", "content": prompt}]
    answers = {}
    for label, cand in cands.items():
        stage(f"answer {label}")
        sink = (lambda piece, _l=label: on_token(_l, piece)) if on_token else None
        answers[label] = backends[label].generate(messages, cand.sampling, on_token=sink)

    warnings = judge_warnings(judges, [c.spec for c in cands.values()])
    for label, comp in answers.items():
        if comp.finish_reason == "length":
            warnings.append(f"answer {label} was cut at max_tokens={cands[label].sampling.max_tokens}")

    if mode == "pairwise":
        stage("judge: both orders")
        calls, verdict = judge_pairwise(judge_backend, prompt, answers["A"].text, answers["B"].text,
                                        crits, scale, judge_sampling, reference, fmt=verdict_format, method=judge_method)
        if verdict.consistent is False:
            where = {"first": "the answer shown first", "second": "the answer shown second"}.get(verdict.position_bias, "")
            warnings.append("the verdict flipped when the answers were swapped"
                            + (f" (the judge chose {where} both times)" if where else "")
                            + ": position, not content, decided it, so it counts as a tie")
    else:
        stage("judge: each answer alone")
        calls = [judge_single(judge_backend, prompt, answers[lab].text, lab, crits, scale,
                              judge_sampling, reference, method=judge_method) for lab in ("A", "B")]
        verdict = V.single_totals({c.order: c.verdict for c in calls}, crits)
    for backend in {id(b): b for b in (*backends.values(), judge_backend)}.values():
        warnings += [w for w in backend.warnings if w not in warnings]
    for call in calls:
        if call.error:
            warnings.append(f"order {call.order} is unscored: {call.error}")
    warnings += V.bound_warning(sum(V.reached_bound(c.raw) for c in calls if c.verdict), len(calls))
    if judge_method == "weighted" and mode == "pairwise" and verdict.weighted is None:
        warnings.append("the judge gave no probabilities: the verdict is the sampled one")
    return ComparisonResult(prompt, mode, cands, answers, jury_name(judges), judge_sampling, crits, scale, calls,
                            verdict.scores, verdict.totals, verdict.winner, verdict.consistent,
                            verdict.position_bias, warnings, judge_method, verdict.weighted,
                            jurors_outcome(calls) if len(judges) > 1 and mode == "pairwise" else None)


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


def jurors_outcome(calls: list[JudgeCall]) -> list[dict]:
    """Each juror's verdict in each order (AB, BA) and both combined by the usual rule; none when
    no order has a verdict (every juror failed both times: the orders' errors say how)."""
    scored = next((c.verdict for c in calls if c.verdict), None)
    out: list[dict] = []
    for k, juror in enumerate(scored["jurors"] if scored else []):
        per = [(c.verdict or {}).get("jurors", [{}] * (k + 1))[k] for c in calls]
        verdicts = [{"winner": p["winner"], "scores": {}, "justification": "",
                     **({"weighted": p["weighted"]} if p.get("weighted") else {})} if p.get("winner") else None
                    for p in per]
        out.append({"judge": juror["judge"], "AB": per[0].get("winner"), "BA": per[1].get("winner"),
                    "winner": V.combine_verdicts(*verdicts).winner})
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
