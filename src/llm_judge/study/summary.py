"""Reading a run back (the reading side of studies): one typed ``Summary`` that the terminal, the
report, the page and ``--json`` all show, computed once per command.

Verdict rules come from ``verdicts`` and statistics from ``stats``; this module only gathers a
run's items and hands them over. Left out: anything that writes (``study.run``, ``study.export``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field

from .. import stats as S
from .. import verdicts as V
from ..compare import LATER_TURN, judge_warnings
from ..judges import known_figures
from ..judging import jury_name
from ..store import Store
from .run import orient


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

    position_consistency: dict
    first_position_wins: dict
    longer_answer_wins: dict
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
    bradley_terry: dict | None = None
    weighted: Weighted | None = None
    jurors: dict | None = None  # stats.juror_agreement of a jury's members
    style_control: dict | None = None  # stats.bradley_terry_style: ratings with answer style held equal


@dataclass(frozen=True)
class Summary:
    run_id: str
    status: str
    mode: str
    judge: str  # its spec, or jury(a, b, c)
    candidates: dict[str, dict]  # label -> {"spec", "sampling"}
    criteria: list[str]
    scale: list[int]
    prompts: int
    baseline: str | None
    bootstrap: dict
    single: dict[str, CandidateScores]
    pairwise_from_totals: dict[str, S.PairStats]
    pairwise: Pairwise | None
    repeat_spread: dict | None
    warnings: list[str]
    turns: int = 1  # the most turns a prompt has (2: MT-Bench's conversations)
    by_turn: dict = field(default_factory=dict)  # with conversations: turn -> {"single", "pairs"}
    judge_method: str = "plain"
    verdict_format: str = "full"
    judge_cards: list[str] = field(default_factory=list)  # the judge's known figures (judges.known_figures)
    # per prompt category, each candidate's mean single-grading total (or, pairwise only, its win
    # rate against the others, ties half), with its interval: the per-category leaderboard
    categories: dict[str, dict[str, S.Estimate]] = field(default_factory=dict)
    category_measure: str | None = None
    with_reference: int = 0  # prompts judged against a reference answer (reference-guided grading)
    proportions: str = "Wilson score intervals (95%)"

    def to_dict(self) -> dict:
        """The JSON shape of ``llm-judge run/report --json``."""
        return asdict(self)


def summarize(store: Store, run_id: str, n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> Summary:
    """Everything the CLI table, the report, the page and ``--json`` show about a run."""
    n_boot = S.check_resamples(n_boot)
    run = store.run(run_id)
    run_id = run["id"]
    config = json.loads(run["config"])
    labels = [c["label"] for c in store.candidates(run_id)]
    every_repeat = unit_items(store, run_id, repeat=None)
    items = [i for i in every_repeat if i["repeat"] == 0]
    prompts = store.prompts(run_id)
    convos = store.conversations(run_id)
    units = [{"prompt_id": unit_id(p["prompt_id"], t), "category": p["category"], "turn": t,
              "reference": p["reference"] if t == 1 else None}
             for p in prompts for t in range(1, 2 + len(convos.get(p["prompt_id"], {}).get("followups", [])))]
    turns = max((i["turn"] for i in items), default=1)
    baseline = config.get("baseline")
    gens = {(i["prompt_id"], i["labels"][0]): i for i in items if i["kind"] == "generation"}
    singles = {(i["prompt_id"], i["labels"][0]): i for i in items if i["kind"] == "single"}
    criteria = [c[0] for c in config["criteria"]]
    judge = jury_name([config["judge"]] if isinstance(config["judge"], str) else config["judge"])
    measure, by_category = _categories(units, labels, singles, items, baseline, n_boot, seed)
    return Summary(
        turns=turns, by_turn=_by_turn(turns, units, labels, singles, items, gens, baseline, n_boot, seed),
        categories=by_category, category_measure=measure,
        with_reference=sum(1 for p in prompts if p["reference"]),
        run_id=run_id, status=run["status"], mode=config["mode"],
        judge=judge, judge_cards=known_figures(store, judge), judge_method=config.get("judge_method", "plain"),
        verdict_format=config.get("verdict_format", "full"),
        candidates={c["label"]: {"spec": c["spec"], "sampling": json.loads(c["sampling"])}
                    for c in store.candidates(run_id)},
        criteria=criteria, scale=config["scale"], prompts=len(prompts), baseline=baseline,
        bootstrap={"method": "percentile bootstrap over prompts", "resamples": n_boot, "seed": seed, "level": 0.95},
        single={lab: _candidate_scores(lab, units, singles, gens, criteria, n_boot, seed) for lab in labels},
        pairwise_from_totals=_pairs_from_totals(labels, units, singles, baseline) if singles else {},
        pairwise=_pairwise(items, labels, gens, n_boot, seed, baseline),
        repeat_spread=repeat_spread(every_repeat),
        warnings=judge_warnings(config["judge"], [c["spec"] for c in config["candidates"].values()])
        + json.loads(run["manifest"]).get("warnings", []) + _bound_warning(every_repeat))


def _bound_warning(items: list[dict]) -> list[str]:
    """How many of the run's verdicts had their justification cut at the bound."""
    judged = [i for i in items if i["kind"] != "generation" and i["verdict"]]
    return V.bound_warning(sum(V.reached_bound(i["raw"]) for i in judged), len(judged))




def unit_id(prompt_id: str, turn: int) -> str:
    """How a turn of a conversation is named among a run's judged units: its prompt id, and
    ``@t2`` for the second turn. A first turn whose id already ends like a later turn's is named
    with ``@t1``, so that no two units share a name (``split_unit`` reads every one back).

    >>> unit_id("q1", 1), unit_id("q1", 2), unit_id("q1@t2", 1)
    ('q1', 'q1@t2', 'q1@t2@t1')
    """
    return prompt_id if turn == 1 and not LATER_TURN.search(prompt_id) else f"{prompt_id}@t{turn}"


def split_unit(unit: str) -> tuple[str, int]:
    """The (prompt id, turn) a unit id names: the inverse of ``unit_id``.

    >>> split_unit("q1"), split_unit("q1@t2"), split_unit("q1@t2@t1"), split_unit("a@tb")
    (('q1', 1), ('q1', 2), ('q1@t2', 1), ('a@tb', 1))
    """
    m = LATER_TURN.search(unit)
    return (unit[:m.start()], int(m.group(1))) if m else (unit, 1)


def prompt_of(unit: str) -> str:
    return split_unit(unit)[0]


def _as_unit(item: dict) -> dict:
    unit = unit_id(item["prompt_id"], item["turn"])
    return item if unit == item["prompt_id"] else {**item, "prompt_id": unit}


def unit_items(store: Store, run_id: str, kind: str | None = None, repeat: int | None = 0) -> list[dict]:
    """A run's items with each later turn of a conversation as its own unit (``unit_id``): what
    every reader of a run groups by, so that a second turn never stands in for a first."""
    return [_as_unit(i) for i in store.items(run_id, kind, repeat)]


def _by_turn(turns, units, labels, singles, items, gens, baseline, n_boot, seed) -> dict:
    """With conversations: each candidate's mean total, and each pair's figures, turn by turn."""
    if turns < 2:
        return {}
    out = {}
    for t in range(1, turns + 1):
        mine = [u for u in units if u["turn"] == t]
        block: dict = {}
        if singles:
            block["single"] = {lab: S.mean_ci([singles[(u["prompt_id"], lab)]["verdict"]["total"] for u in mine
                                               if (u["prompt_id"], lab) in singles
                                               and singles[(u["prompt_id"], lab)]["verdict"]], n_boot, seed)
                               for lab in labels}
        pw = _pairwise([i for i in items if i["turn"] == t], labels, gens, n_boot, seed, baseline)
        if pw:
            block["pairs"] = pw.pairs
        out[t] = block
    return out


def _categories(prompts, labels, singles, items, baseline, n_boot, seed):
    """Each candidate's figure per prompt category (two categories or more)."""
    cat_of = {p["prompt_id"]: p["category"] for p in prompts if p["category"]}
    cats = sorted(set(cat_of.values()))
    if len(cats) < 2:
        return None, {}
    if singles:
        return "mean total score", {
            c: {lab: S.mean_ci([v["verdict"]["total"] for (pid, lb), v in singles.items()
                                if lb == lab and cat_of.get(pid) == c and v["verdict"]], n_boot, seed) for lab in labels}
            for c in cats}
    points: dict = {}
    for (pid, (a, b)), orders in pair_rows(items, baseline).items():
        w = V.combine_verdicts(orders["AB"], orders["BA"]).winner
        if w is not None and pid in cat_of:
            points.setdefault((cat_of[pid], a), []).append(V.POINTS[w])
            points.setdefault((cat_of[pid], b), []).append(1 - V.POINTS[w])
    return "win rate against the others (ties half)", {
        c: {lab: S.mean_ci(points.get((c, lab), []), n_boot, seed) for lab in labels} for c in cats}


def _candidate_scores(lab, prompts, singles, gens, criteria, n_boot, seed) -> CandidateScores:
    graded = [singles[(p["prompt_id"], lab)]["verdict"] for p in prompts if (p["prompt_id"], lab) in singles]
    scored = [g for g in graded if g]
    tokens = [gens[(p["prompt_id"], lab)]["g_tokens"] for p in prompts if (p["prompt_id"], lab) in gens]
    tokens = [t for t in tokens if t is not None]
    return CandidateScores(
        criteria={c: S.mean_ci([g["scores"][c] for g in scored], n_boot, seed) for c in criteria},
        total=S.mean_ci([g["total"] for g in scored], n_boot, seed),
        graded=len(scored), unscored=len(graded) - len(scored),
        generated=sum((p["prompt_id"], lab) in gens for p in prompts),
        mean_tokens=sum(tokens) / len(tokens) if tokens else None)


def _pairs_from_totals(labels, prompts, singles, baseline) -> dict[str, S.PairStats]:
    """Single-grading totals compared per prompt, for every pair of candidates."""
    out = {}
    for a, b in sorted({orient(x, y, baseline) for x, y in itertools.combinations(labels, 2)}):
        outcomes = []
        for p in prompts:
            va, vb = singles.get((p["prompt_id"], a)), singles.get((p["prompt_id"], b))
            if va and vb:
                outcomes.append(S.outcome(V.single_totals({"A": va["verdict"], "B": vb["verdict"]}, []).winner))
        out[f"{a} vs {b}"] = S.pairwise_summary(outcomes, (a, b))
    return out


def pair_rows(items: list[dict], baseline: str | None = None) -> dict:
    """Pairwise items grouped per (prompt, pair), the pair oriented by ``orient``:
    {(prompt_id, (a, b)): {"AB": verdict|None, "BA": verdict|None}}, verdicts in the labels a=A, b=B.

    An item stored the other way round (a run continued with its candidates listed in another
    order by llm-judge 0.1) is the same question: its verdict is relabelled, and its display order
    read from the oriented pair's side (b shown first is BA), so each pair appears once.
    """
    rows: dict = {}
    for i in items:
        if i["kind"] != "pairwise":
            continue
        a, b = i["labels"]
        pair, order, verdict = orient(a, b, baseline), i["display_order"], i["verdict"]
        if pair != (a, b):
            order, verdict = {"AB": "BA", "BA": "AB"}[order], V.swap_labels(verdict)
        rows.setdefault((i["prompt_id"], pair), {}).setdefault(order, verdict)
    for orders in rows.values():
        for order in ("AB", "BA"):
            orders.setdefault(order, None)
    return rows


def _pairwise(items, labels, gens, n_boot, seed, baseline=None) -> Pairwise | None:
    rows = pair_rows(items, baseline)
    if not rows:
        return None
    per_pair, by_prompt, consistency, first_won, longer = {}, {}, [], [], []
    p_first, biases, jurors, lengths, styled = {}, [], [], {}, {}
    for (pid, (a, b)), orders in rows.items():
        ab, ba = orders["AB"], orders["BA"]
        w1, w2 = (ab or {}).get("winner"), (ba or {}).get("winner")
        comb = V.combine_verdicts(ab, ba)
        if comb.weighted and comb.weighted["calibrated"]:
            p_first.setdefault((a, b), []).append(comb.weighted["p"])
            biases.append(comb.weighted["position_bias"])
        jurors += [[j["winner"] for j in v["jurors"]] for v in (ab, ba) if v and v.get("jurors")]
        per_pair.setdefault((a, b), []).append(S.outcome(comb.winner))
        if comb.winner is not None:  # the turns of one conversation are resampled together
            by_prompt.setdefault(prompt_of(pid), []).append((a, b, V.POINTS[comb.winner]))
            texts = [(gens.get((pid, x)) or {}).get("text") for x in (a, b)]
            if None not in texts:
                styled.setdefault(prompt_of(pid), []).append((a, b, V.POINTS[comb.winner], *map(S.style_features, texts)))
        consistency.append((w1, w2))
        first_won += [V.shown_first_won(w1, "AB"), V.shown_first_won(w2, "BA")]
        la, lb = (len((gens.get((pid, x)) or {}).get("text") or "") for x in (a, b))
        longer.append((comb.winner, la, lb))
        lengths.setdefault((a, b), []).append((la, lb))
    diagnostics = Diagnostics(
        position_consistency=S.position_consistency(consistency), first_position_wins=S.first_position_rate(first_won),
        longer_answer_wins=S.longer_answer_rate(longer),
        unscored_judgments=sum(w is None for pair in consistency for w in pair), judgments=2 * len(consistency))
    # the plain ratings always, so that the style-controlled ones stand beside them
    bt = S.bradley_terry_ci(by_prompt, n_boot=n_boot, seed=seed) if by_prompt else None
    weighted = None
    if biases:
        weighted = Weighted(
            p_wins={f"{a} vs {b}": {a: S.mean_ci([p["A"] for p in ps], n_boot, seed),
                                    b: S.mean_ci([p["B"] for p in ps], n_boot, seed)}
                    for (a, b), ps in sorted(p_first.items())},
            position_bias=S.mean_ci(biases, n_boot, seed), calibrated_items=len(biases))
    pairs = {f"{a} vs {b}": S.pairwise_summary(v, (a, b), lengths=lengths[(a, b)], n_boot=n_boot, seed=seed)
             for (a, b), v in sorted(per_pair.items())}
    return Pairwise(pairs, diagnostics, bt, weighted, S.juror_agreement(jurors) if jurors else None,
                    S.bradley_terry_style(styled, n_boot=n_boot, seed=seed) if styled else None)


def repeat_spread(items: list[dict]) -> dict | None:
    """How much the judge's verdicts vary when the same item is judged again (``repeat``).

    Statistics use each item's first judgment; this says how far the others strayed from it.
    """
    groups: dict[tuple, list] = {}
    for i in items:
        if i["kind"] != "generation" and i["verdict"] is not None:
            groups.setdefault((i["kind"], i["prompt_id"], tuple(i["labels"]), i["display_order"]), []).append(i["verdict"])
    repeated = {k: v for k, v in groups.items() if len(v) > 1}
    if not repeated:
        return None
    singles = [[v["total"] for v in vs] for k, vs in repeated.items() if k[0] == "single"]
    pairs = [[v["winner"] for v in vs] for k, vs in repeated.items() if k[0] == "pairwise"]
    out = {"repeats": max(len(v) for v in repeated.values())}
    if singles:
        out["single"] = {"items": len(singles), "identical_share": sum(len(set(t)) == 1 for t in singles) / len(singles),
                         "mean_range": sum(max(t) - min(t) for t in singles) / len(singles)}
    if pairs:
        out["pairwise"] = {"items": len(pairs), "identical_share": sum(len(set(w)) == 1 for w in pairs) / len(pairs)}
    return out
