"""Reading a run back (the reading side of studies): one typed ``Summary`` that the terminal, the
report, the page and ``--json`` all show, computed once per command from a ``LoadedRun``.

Verdict rules come from ``verdicts`` and statistics from ``stats``; this module only gathers a
loaded run's items and hands them over (``summarize_run`` is a pure function of the run;
``summarize`` loads it from a store first). Left out: reading the store (``study.loaded``) and
anything that writes (``study.run``, ``study.export``).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import leaderboards as LB
from .. import stats as S
from .. import verdicts as V
from ..compare import judge_warnings
from ..records import LABELS, ORDERS, Grade, Number, Shown, Verdict, Winner
from ..store import RunItem, Store
from .loaded import LoadedRun, PairRow, load_run, pair_rows, prompt_of, split_unit, unit_id
from .run import orient
from .shard import shown_status

__all__ = ["CandidateScores", "Diagnostics", "Pairwise", "Summary", "Weighted", "pair_rows", "prompt_of",
           "repeat_spread", "split_unit", "summarize", "summarize_run", "unit_id"]


@dataclass(frozen=True)
class CandidateScores:
    """One candidate's single-grading figures: means per criterion and of the total."""

    criteria: dict[str, S.Estimate]
    total: S.Estimate
    graded: int
    unscored: int
    generated: int
    mean_tokens: float | None


@dataclass(frozen=True)
class Diagnostics:
    """How the judge behaved over every pairwise item (``stats`` documents each figure)."""

    position_consistency: dict[str, Any]
    first_position_wins: dict[str, Any]
    longer_answer_wins: dict[str, Any]
    unscored_judgments: int
    judgments: int


@dataclass(frozen=True)
class Weighted:
    """Probability-weighted verdicts: per pair the mean calibrated P(each side wins) over items
    (bootstrap interval over prompts), and the judge's measured position bias (mean of P(shown
    first wins) - P(shown second wins); +1 always the first, 0 none)."""

    p_wins: dict[str, dict[str, S.Estimate]]
    position_bias: S.Estimate
    calibrated_items: int


@dataclass(frozen=True)
class Pairwise:
    pairs: dict[str, S.PairStats]
    diagnostics: Diagnostics
    bradley_terry: dict[str, Any] | None = None
    weighted: Weighted | None = None
    jurors: dict[str, Any] | None = None  # stats.juror_agreement of a jury's members
    style_control: dict[str, Any] | None = None  # stats.bradley_terry_style: ratings with answer style held equal


@dataclass(frozen=True)
class Summary:
    run_id: str
    status: str
    mode: str
    judge: str  # its spec, or jury(a, b, c)
    candidates: dict[str, dict[str, Any]]  # label -> {"spec", "sampling"}
    criteria: list[str]
    scale: list[int]
    prompts: int
    baseline: str | None
    bootstrap: dict[str, Any]
    single: dict[str, CandidateScores]
    pairwise_from_totals: dict[str, S.PairStats]
    pairwise: Pairwise | None
    repeat_spread: dict[str, Any] | None
    warnings: list[str]
    turns: int = 1  # the most turns a prompt has (2: MT-Bench's conversations)
    by_turn: dict[int, dict[str, Any]] = field(default_factory=dict)  # with conversations: turn -> {"single", "pairs"}
    judge_method: str = "plain"
    verdict_format: str = "full"
    judge_cards: list[str] = field(default_factory=list)  # the judge's known figures (judges.known_figures)
    # per prompt category, each candidate's mean single-grading total (or, pairwise only, its win
    # rate against the others, ties half), with its interval: the per-category leaderboard
    categories: dict[str, dict[str, S.Estimate]] = field(default_factory=dict)
    category_measure: str | None = None
    with_reference: int = 0  # prompts judged against a reference answer (reference-guided grading)
    proportions: str = "Wilson score intervals (95%)"
    # the leaderboards' own figures, only for runs judged with their protocols (``leaderboard_figures``)
    mt_bench: LB.MTBench | None = None
    arena_hard: LB.ArenaHard | None = None
    alpaca_eval: dict[str, LB.SoftPair] | None = None
    # a model served by several replicas: spec -> URL -> {calls, failures, mean_ms, taken_out}
    replicas: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, int] | None = None  # a run through batches: {"batches", "requests"} sent

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``llm-judge run/report --json`` (a leaderboard's block, the replicas' counts and
        the batches only where there are some)."""
        d = asdict(self)
        return {k: v for k, v in d.items() if not (k in OPTIONAL_FIELDS and (v is None or v == {}))}


LEADERBOARD_FIELDS = ("mt_bench", "arena_hard", "alpaca_eval")
OPTIONAL_FIELDS = (*LEADERBOARD_FIELDS, "replicas", "batches")  # in the JSON only where a run has them (not None or {})


def summarize(store: Store, run_id: str, n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> Summary:
    """Everything the CLI table, the report, the page and ``--json`` show about a stored run (read once)."""
    with collector_paused():
        return summarize_run(load_run(store, run_id), n_boot, seed)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector paused while a run's items are read and summed up: it would walk
    every one of them again and again as they are made (a third of the time of a 40,000-item run);
    the cycles made meanwhile are collected once it is on again. One already off stays off."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def summarize_run(run: LoadedRun, n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> Summary:
    """A loaded run's ``Summary``: a pure function of the run."""
    n_boot = S.check_resamples(n_boot)
    config, labels = run.config, run.labels
    every_repeat = run.units(repeat=None)
    items = [i for i in every_repeat if i.repeat == 0]
    units = [Unit(unit_id(p.prompt_id, t), p.category, t, p.reference if t == 1 else None)
             for p in run.prompts for t in range(1, 1 + len(p.questions))]
    turns = max((i.turn for i in items), default=1)
    gens = {(i.prompt_id, i.labels[0]): i for i in items if i.kind == "generation"}
    singles = {(i.prompt_id, i.labels[0]): _grade(i) for i in items if i.kind == "single"}
    criteria = run.criteria
    measure, by_category = _categories(units, labels, singles, items, run.baseline, n_boot, seed)
    return Summary(
        turns=turns, by_turn=_by_turn(turns, units, labels, singles, items, gens, run.baseline, n_boot, seed),
        categories=by_category, category_measure=measure,
        with_reference=sum(1 for p in run.prompts if p.reference),
        run_id=run.run_id, status=shown_status(run.status, run.manifest), mode=config["mode"],
        judge=run.judge, judge_cards=list(run.judge_cards), judge_method=config.get("judge_method", "plain"),
        verdict_format=config.get("verdict_format", "full"),
        candidates={c.label: {"spec": c.spec, "sampling": dict(c.sampling)} for c in run.candidates},
        criteria=criteria, scale=config["scale"], prompts=len(run.prompts), baseline=run.baseline,
        bootstrap={"method": "percentile bootstrap over prompts", "resamples": n_boot, "seed": seed, "level": 0.95},
        single={lab: _candidate_scores(lab, units, singles, gens, criteria, n_boot, seed) for lab in labels},
        pairwise_from_totals=_pairs_from_totals(labels, units, singles, run.baseline) if singles else {},
        pairwise=_pairwise(items, labels, gens, n_boot, seed, run.baseline),
        repeat_spread=repeat_spread(every_repeat),
        warnings=judge_warnings(config["judge"], [c["spec"] for c in config["candidates"].values()])
        + list(run.manifest.get("warnings", [])) + _bound_warning(every_repeat),
        replicas=replica_counts(run.manifest), batches=run.manifest.get("batches"),
        **leaderboard_figures(run, items, singles, n_boot, seed))


def replica_counts(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each replicated model's counts per replica, as the run's manifest recorded them.

    >>> replica_counts({"models": {"m": {"replicas": {"u1": {"calls": 3}}}, "e": {"spec": "e"}}})
    {'m': {'u1': {'calls': 3}}}
    """
    models = manifest.get("models")
    if not isinstance(models, Mapping):
        return {}
    return {spec: dict(m["replicas"]) for spec, m in models.items()
            if isinstance(m, Mapping) and isinstance(m.get("replicas"), Mapping)}


def protocol_name(config: Mapping[str, Any]) -> str | None:
    """The run's protocol as named (a bundled name, or a user's folder or ``protocol.toml``: its folder's name)."""
    given = config.get("protocol")
    if not isinstance(given, str):
        return None
    path = given.replace("\\", "/").rstrip("/").split("/")
    return path[-2] if path[-1].endswith(".toml") and len(path) > 1 else path[-1]


def leaderboard_figures(run: LoadedRun, items: list[RunItem], singles: Singles, n_boot: int,
                        seed: int) -> dict[str, Any]:
    """The leaderboard block of a run judged with a leaderboard's protocol: MT-Bench's mean
    ratings (single grading), Arena-Hard's score (pairwise, against the run's baseline) or
    AlpacaEval's soft win rates (weighted verdicts); none for other runs."""
    name = protocol_name(run.config) or ""
    if name.startswith("mt-bench-single") and singles:
        rows = [(lab, *split_unit(unit), None if g is None else float(g.total)) for (unit, lab), g in singles.items()]
        return {"mt_bench": LB.mt_bench(rows, n_boot, seed)}
    if name.startswith("arena-hard") and run.baseline:
        return {"arena_hard": LB.arena_hard(_arena_rows(items, run.baseline), run.baseline, n_boot, seed)}
    if name.startswith("alpaca-eval"):
        soft = _alpaca_pairs(items, run.baseline, n_boot, seed)
        return {"alpaca_eval": soft} if soft else {}
    return {}


def _arena_rows(items: list[RunItem], baseline: str) -> list[LB.ArenaRow]:
    """Each baseline pair's two games, labelled in the frame shown: game 1 showed the baseline first."""
    rows: list[LB.ArenaRow] = []
    for row in pair_rows(items, baseline):
        if row.pair[0] != baseline:
            continue
        for game, (order, v) in zip((1, 2), row.orders(), strict=True):
            shown = None if v is None else Shown.from_labels(v, order).verdict
            rows.append((row.unit, row.pair[1], game, LB.verdict_label(shown)))
    return rows


def _alpaca_pairs(items: list[RunItem], baseline: str | None, n_boot: int, seed: int) -> dict[str, LB.SoftPair]:
    """Per pair, AlpacaEval's figures from the items' calibrated P (both orders averaged)."""
    prefs: dict[tuple[str, str], list[float]] = {}
    for row in pair_rows(items, baseline):
        comb = V.combine(*row.by_order)
        if comb.weighted is not None:
            prefs.setdefault(row.pair, []).append(LB.soft_preference(comb.weighted.p))
    return {f"{a} vs {b}": LB.soft_pair(a, b, ps, n_boot=n_boot, seed=seed) for (a, b), ps in sorted(prefs.items())}


@dataclass(frozen=True)
class Unit:
    """One judged unit of a run: a prompt's turn (``unit_id``), its category and reference."""

    prompt_id: str
    category: str | None
    turn: int
    reference: str | None


def _grade(item: RunItem) -> Grade | None:
    return item.verdict if isinstance(item.verdict, Grade) else None


def _bound_warning(items: list[RunItem]) -> list[str]:
    """How many of the run's verdicts had their justification cut at the bound."""
    judged = [i for i in items if i.kind != "generation" and i.verdict]
    return V.bound_warning(sum(V.reached_bound(i.raw or "") for i in judged), len(judged))


Singles = Mapping[tuple[str, str], Grade | None]  # (unit, label) -> its grade, None when unscored
Gens = Mapping[tuple[str, str], RunItem]  # (unit, label) -> its generation


def _by_turn(turns: int, units: list[Unit], labels: list[str], singles: Singles, items: list[RunItem], gens: Gens,
             baseline: str | None, n_boot: int, seed: int) -> dict[int, dict[str, Any]]:
    """With conversations: each candidate's mean total, and each pair's figures, turn by turn."""
    if turns < 2:
        return {}
    out = {}
    for t in range(1, turns + 1):
        mine = [u.prompt_id for u in units if u.turn == t]
        block: dict[str, Any] = {}
        if singles:
            block["single"] = {lab: S.mean_ci(_totals(singles, mine, lab), n_boot, seed) for lab in labels}
        pw = _pairwise([i for i in items if i.turn == t], labels, gens, n_boot, seed, baseline)
        if pw:
            block["pairs"] = pw.pairs
        out[t] = block
    return out


def _totals(singles: Singles, units: list[str], label: str) -> list[Number]:
    """The totals of ``label``'s scored grades on ``units``, in their order."""
    grades = [singles.get((u, label)) for u in units]
    return [g.total for g in grades if g is not None]


def _categories(units: list[Unit], labels: list[str], singles: Singles, items: list[RunItem],
                baseline: str | None, n_boot: int, seed: int) -> tuple[str | None, dict[str, dict[str, S.Estimate]]]:
    """Each candidate's figure per prompt category (two categories or more)."""
    cat_of = {u.prompt_id: u.category for u in units if u.category}
    cats = sorted(set(cat_of.values()))
    if len(cats) < 2:
        return None, {}
    if singles:
        return "mean total score", {
            c: {lab: S.mean_ci([g.total for (pid, lb), g in singles.items() if lb == lab and cat_of.get(pid) == c
                                and g is not None], n_boot, seed) for lab in labels}
            for c in cats}
    points: dict[tuple[str, str], list[float]] = {}
    for row in pair_rows(items, baseline):
        w = V.combine(*row.by_order).winner
        if w is not None and row.unit in cat_of:
            a, b = row.pair
            points.setdefault((cat_of[row.unit], a), []).append(V.POINTS[w])
            points.setdefault((cat_of[row.unit], b), []).append(1 - V.POINTS[w])
    return "win rate against the others (ties half)", {
        c: {lab: S.mean_ci(points.get((c, lab), []), n_boot, seed) for lab in labels} for c in cats}


def _candidate_scores(lab: str, units: list[Unit], singles: Singles, gens: Gens, criteria: list[str],
                      n_boot: int, seed: int) -> CandidateScores:
    graded = [singles[(u.prompt_id, lab)] for u in units if (u.prompt_id, lab) in singles]
    scored = [g for g in graded if g is not None]
    tokens = [t for t in (gens[(u.prompt_id, lab)].tokens for u in units if (u.prompt_id, lab) in gens)
              if t is not None]
    return CandidateScores(
        criteria={c: S.mean_ci([g.scores[c] for g in scored], n_boot, seed) for c in criteria},
        total=S.mean_ci([g.total for g in scored], n_boot, seed),
        graded=len(scored), unscored=len(graded) - len(scored),
        generated=sum((u.prompt_id, lab) in gens for u in units),
        mean_tokens=sum(tokens) / len(tokens) if tokens else None)


def _pairs_from_totals(labels: list[str], units: list[Unit], singles: Singles,
                       baseline: str | None) -> dict[str, S.PairStats]:
    """Single-grading totals compared per prompt, for every pair of candidates."""
    out = {}
    for a, b in sorted({orient(x, y, baseline) for x, y in itertools.combinations(labels, 2)}):
        outcomes = []
        for u in units:
            pid = u.prompt_id
            if (pid, a) in singles and (pid, b) in singles:
                grades = dict(zip(LABELS, (singles[(pid, a)], singles[(pid, b)]), strict=True))
                outcomes.append(S.outcome(V.single_totals(grades, []).winner))
        out[f"{a} vs {b}"] = S.pairwise_summary(outcomes, (a, b))
    return out


@dataclass
class _PairTally:
    """What ``_pairwise`` gathers over a run's pairs before handing it to ``stats``."""

    per_pair: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    by_prompt: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    styled: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    consistency: list[tuple[Winner | None, Winner | None]] = field(default_factory=list)
    first_won: list[bool | None] = field(default_factory=list)
    longer: list[tuple[Winner | None, int, int]] = field(default_factory=list)
    lengths: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    p_first: dict[tuple[str, str], list[Mapping[Winner, float]]] = field(default_factory=dict)
    biases: list[float] = field(default_factory=list)
    jurors: list[list[Winner | None]] = field(default_factory=list)

    def add(self, row: PairRow, gens: Gens) -> None:
        (a, b), pid = row.pair, row.unit
        ab, ba = row.by_order
        comb = V.combine(ab, ba)
        if comb.weighted and comb.weighted.calibrated:
            self.p_first.setdefault((a, b), []).append(comb.weighted.p)
            self.biases.append(comb.weighted.position_bias)
        self.jurors += [[j.winner for j in v.jurors] for v in (ab, ba) if v and v.jurors]
        self.per_pair.setdefault((a, b), []).append(S.outcome(comb.winner))
        text_a, text_b = (gens[(pid, x)].text if (pid, x) in gens else None for x in (a, b))
        if comb.winner is not None:  # the turns of one conversation are resampled together
            self.by_prompt.setdefault(prompt_of(pid), []).append((a, b, V.POINTS[comb.winner]))
            if text_a is not None and text_b is not None:
                self.styled.setdefault(prompt_of(pid), []).append(
                    (a, b, V.POINTS[comb.winner], S.style_features(text_a), S.style_features(text_b)))
        w1, w2 = (None if v is None else v.winner for v in (ab, ba))
        self.consistency.append((w1, w2))
        self.first_won += [V.shown_first_won(w, order) for w, order in zip((w1, w2), ORDERS, strict=True)]
        la, lb = len(text_a or ""), len(text_b or "")
        self.longer.append((comb.winner, la, lb))
        self.lengths.setdefault((a, b), []).append((la, lb))


def _pairwise(items: list[RunItem], labels: list[str], gens: Gens, n_boot: int, seed: int,
              baseline: str | None = None) -> Pairwise | None:
    rows = pair_rows(items, baseline)
    if not rows:
        return None
    t = _PairTally()
    for row in rows:
        t.add(row, gens)
    diagnostics = Diagnostics(
        position_consistency=S.position_consistency(t.consistency),
        first_position_wins=S.first_position_rate(t.first_won), longer_answer_wins=S.longer_answer_rate(t.longer),
        unscored_judgments=sum(w is None for pair in t.consistency for w in pair), judgments=2 * len(t.consistency))
    # the plain ratings always, so that the style-controlled ones stand beside them
    bt = S.bradley_terry_ci(t.by_prompt, n_boot=n_boot, seed=seed) if t.by_prompt else None
    pairs = {f"{a} vs {b}": S.pairwise_summary(v, (a, b), lengths=t.lengths[(a, b)], n_boot=n_boot, seed=seed)
             for (a, b), v in sorted(t.per_pair.items())}
    return Pairwise(pairs, diagnostics, bt, _weighted(t, n_boot, seed),
                    S.juror_agreement(t.jurors) if t.jurors else None,
                    S.bradley_terry_style(t.styled, n_boot=n_boot, seed=seed) if t.styled else None)


def _weighted(t: _PairTally, n_boot: int, seed: int) -> Weighted | None:
    """The calibrated probabilities' figures, where any item had them in both orders."""
    if not t.biases:
        return None
    first, second = LABELS
    return Weighted(
        p_wins={f"{a} vs {b}": {a: S.mean_ci([p[first] for p in ps], n_boot, seed),
                                b: S.mean_ci([p[second] for p in ps], n_boot, seed)}
                for (a, b), ps in sorted(t.p_first.items())},
        position_bias=S.mean_ci(t.biases, n_boot, seed), calibrated_items=len(t.biases))


def repeat_spread(items: list[RunItem]) -> dict[str, Any] | None:
    """How much the judge's verdicts vary when the same item is judged again (``repeat``).

    Statistics use each item's first judgment; this says how far the others strayed from it.
    """
    groups: dict[tuple[str, str, tuple[str, ...], str], list[Verdict | Grade]] = {}
    for i in items:
        if i.kind != "generation" and i.verdict is not None:
            groups.setdefault((i.kind, i.prompt_id, i.labels, i.order), []).append(i.verdict)
    repeated = {k: v for k, v in groups.items() if len(v) > 1}
    if not repeated:
        return None
    singles = [[v.total for v in vs if isinstance(v, Grade)] for k, vs in repeated.items() if k[0] == "single"]
    pairs = [[v.winner for v in vs if isinstance(v, Verdict)] for k, vs in repeated.items() if k[0] == "pairwise"]
    out: dict[str, Any] = {"repeats": max(len(v) for v in repeated.values())}
    if singles:
        out["single"] = {"items": len(singles), "identical_share": sum(len(set(t)) == 1 for t in singles) / len(singles),
                         "mean_range": sum(max(t) - min(t) for t in singles) / len(singles)}
    if pairs:
        out["pairwise"] = {"items": len(pairs), "identical_share": sum(len(set(w)) == 1 for w in pairs) / len(pairs)}
    return out
