"""Reports of a stored run: a self-contained HTML page (inline SVG charts) and Markdown, and the
tables that the terminal and the page show too, all from one ``study.Summary`` and the run it
summarises (a ``LoadedRun``: the charts and the per-prompt drilldown read it; given a store, the
run is loaded once). Left out: reading the store and computing figures (``study``, ``stats``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LLMJudgeError
from ..leaderboards import ArenaHard, MTBench, SoftPair
from ..records import Grade
from ..stats import PairStats
from ..store import RunItem, Store
from ..study.loaded import LoadedRun, PairRow, as_loaded, pair_rows, unit_id
from ..study.summary import Summary
from .format import fmt_estimate, fmt_interval, fmt_p, fmt_rate, fmt_share, html_table

COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]


TITLE_PX = 14  # a chart title's font size
TITLE_EM = 0.6  # a generous width of a character of bold sans-serif text, in em (it averages about 0.5)


def title_width(title: str) -> int:
    """The pixels a chart's title needs, generously: every chart is at least this wide (plus its
    margins), so its title is never cut off at the edges."""
    return math.ceil(TITLE_EM * TITLE_PX * len(title))


def title_svg(title: str, x: float, anchor: str = "start") -> str:
    """A chart's title, in the size and face ``title_width`` allows for."""
    return (f'<text x="{x}" y="18" text-anchor="{anchor}" font-family="sans-serif" font-size="{TITLE_PX}" '
            f'font-weight="bold">{html.escape(title)}</text>')


Interval = tuple[float | None, float | None]  # an error bar's low and high (None: not estimable)


def bar_chart_svg(title: str, groups: list[str], series: Mapping[str, Sequence[float | None]], y_max: float,
                  errors: Mapping[str, Sequence[Interval | None]] | None = None) -> str:
    """A grouped bar chart as inline SVG: one group per x label, one bar per series."""
    width = max(420, 70 * len(groups) * max(1, len(series)) // 2 + 120, title_width(title) + 20)
    height, left, bottom, top = 300, 50, 60, 40
    plot_w, plot_h = width - left - 20, height - top - bottom
    n = max(1, len(series))
    gw = plot_w / max(1, len(groups))
    bw = gw * 0.8 / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{html.escape(title)}" class="chart">', title_svg(title, width / 2, "middle")]
    for k in range(5):
        tick = y_max * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick:g}</text>')
    for gi, group in enumerate(groups):
        for si, (name, values) in enumerate(series.items()):
            v = values[gi]
            x = left + gi * gw + gw * 0.1 + si * bw
            if v is not None:
                h = plot_h * min(v, y_max) / y_max
                parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                             f'fill="{COLOURS[si % len(COLOURS)]}"><title>{html.escape(name)} {html.escape(group)}: '
                             f'{v:.2f}</title></rect>')
            err = (errors or {}).get(name, [None] * len(groups))[gi]
            if err and err[0] is not None and err[1] is not None:
                lo, hi = (top + plot_h - plot_h * min(e, y_max) / y_max for e in (err[0], err[1]))
                cx = x + bw / 2
                parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" stroke="#222"/>')
        parts.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                     f'font-size="11">{html.escape(group[:14])}</text>')
    for si, name in enumerate(series):
        y = height - 18
        x = left + si * 150
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLOURS[si % len(COLOURS)]}"/>'
                     f'<text x="{x + 16}" y="{y}" font-size="12">{html.escape(name[:20])}</text>')
    parts.append("</svg>")
    return "".join(parts)


# the length-controlled win rate of a run is AlpacaEval's minimal form (no instruction-difficulty term)
LC_COLUMN = "length-controlled win rate (minimal form)"
PAIR_HEADER = ["pair", "candidate", "wins", "ties", "losses", "unscored", "win rate (ties half)",
               "win rate (no ties)", LC_COLUMN, "sign test p"]


def pair_table_rows(pairs: Mapping[str, PairStats]) -> list[list[str]]:
    """Two rows per pair (``stats.PairStats``), one for each side's own figures."""
    rows = []
    for pair, v in pairs.items():
        first, second = v.sides
        for me, other in ((first, second), (second, first)):
            rows.append([pair, me, str(v.wins[me]), str(v.ties), str(v.wins[other]), str(v.unscored),
                         fmt_estimate(v.win_rate[me]), fmt_estimate(v.win_rate_without_ties[me]),
                         fmt_estimate((v.length_controlled or {}).get(me)), fmt_p(v.sign_test_p)])
    return rows


def bt_title(bt: Mapping[str, Any]) -> str:
    return (f"Bradley-Terry ratings ({bt['method']}, {bt['resamples']} resamples; prior: "
            f"{bt['prior_ties_per_pair']:g} tie per pair of candidates)")


def figure_cells(d: Mapping[str, Any], digits: int, sign: str = "") -> list[str]:
    """A fit's figure (``{rating or value, low, high, reason}``) as its two cells: the figure and
    its interval, or ``-`` and why it cannot be estimated."""
    value = d.get("value", d.get("rating"))
    if value is None:
        return ["-", f"not estimable: {d['reason']}" if d.get("reason") else "-"]
    return [f"{value:{sign}.{digits}f}", fmt_interval(d, digits, sign)]


def style_rows(sc: Mapping[str, Any]) -> list[list[str]]:
    """The style-controlled fit's rows: ratings best first, then the coefficients; one row saying
    why where the games give no such fit."""
    if sc.get("reason"):
        return [["every rating and coefficient", "-", f"not estimable: {sc['reason']}"]]
    rows = [[lab, *figure_cells(v, 0)] for lab, v in sorted(sc["ratings"].items(), key=lambda kv: -kv[1]["rating"])]
    return rows + [[f"style: {f}", *figure_cells(c, 3, "+")] for f, c in sc["coefficients"].items()]


Table = tuple[str, list[str], list[list[str]]]  # (title, header, rows)


def tables(summary: Summary) -> list[Table]:
    """The report's tables as (title, header, rows): shared by HTML, Markdown, the terminal and the page."""
    return [t for part in (_score_tables, _pair_tables, _rating_tables, _turn_tables, _category_tables,
                           _weighted_tables, _jury_tables, _leaderboard_tables, _diagnostics_tables)
            for t in part(summary)]


def _leaderboard_tables(summary: Summary) -> list[Table]:
    """The leaderboards' own figures of a run judged with their protocol (``study.leaderboard_figures``)."""
    out: list[Table] = []
    if summary.mt_bench:
        out.append(_mt_bench_table(summary.mt_bench))
    if summary.arena_hard:
        out.append(_arena_table(summary.arena_hard))
    if summary.alpaca_eval:
        out.append(_alpaca_table(summary.alpaca_eval))
    return out


def _mt_bench_table(mt: MTBench) -> Table:
    turns = list(mt.by_turn)
    rows = [[m, *(fmt_estimate(mt.by_turn[t].get(m)) for t in turns), fmt_estimate(e)] for m, e in mt.overall.items()]
    return ("MT-Bench: mean rating per turn, as FastChat's show_result.py (unreadable ratings left out: "
            f"{mt.dropped}; 95% bootstrap interval over questions)",
            ["model", *(f"turn {t}" for t in turns), "average"], rows)


def _arena_table(ah: ArenaHard) -> Table:
    rows = [[m, fmt_estimate(e, 1), fmt_estimate(ah.ratings[m], 0)] for m, e in ah.scores.items()]
    return (f"Arena-Hard score against {ah.baseline} (win rate %, strong verdicts x{ah.weight}; {ah.games} games "
            f"counted, {ah.unreadable} unreadable judgments left out; 95% bootstrap interval)",
            ["model", "score", "rating (Elo scale, baseline 1000)"], rows)


def _alpaca_table(pairs: Mapping[str, SoftPair]) -> Table:
    rows = [[pair, p.model, fmt_estimate(p.win_rates.win_rate, 3), fmt_estimate(p.win_rates.discrete_win_rate, 3),
             str(p.items)] for pair, p in pairs.items()]
    return ("AlpacaEval win rates of the weighted verdicts (win_rate: mean soft preference; discrete_win_rate: "
            "rounded, draws half)", ["pair", "model", "win_rate", "discrete_win_rate", "items"], rows)


def _score_tables(summary: Summary) -> list[Table]:
    crits = summary.criteria
    if not any(v.graded or v.unscored for v in summary.single.values()):
        return []
    rows = [[lab, summary.candidates[lab]["spec"], *(fmt_estimate(v.criteria[c]) for c in crits),
             fmt_estimate(v.total), str(v.graded), str(v.unscored)] for lab, v in summary.single.items()]
    return [("Scores per candidate (mean, 95% bootstrap interval)", ["candidate", "spec", *crits, "total",
                                                                     "graded", "unscored"], rows)]


def _pair_tables(summary: Summary) -> list[Table]:
    pairwise = summary.pairwise
    return [(title + "; Wilson 95% intervals", PAIR_HEADER, pair_table_rows(block))
            for title, block in (("Pairwise outcome (from single-grading totals)", summary.pairwise_from_totals),
                                 ("Pairwise verdicts (both orders combined)", pairwise.pairs if pairwise else {}))
            if block]


def _rating_tables(summary: Summary) -> list[Table]:
    pairwise, out = summary.pairwise, []
    if pairwise and pairwise.bradley_terry:
        bt = pairwise.bradley_terry
        rows = [[str(v.get("rank", "")), lab, *figure_cells(v, 0),
                 "{}-{}".format(*v["rank_range"]) if v.get("rank_range") else "-"]
                for lab, v in sorted(bt["ratings"].items(), key=lambda kv: -kv[1]["rating"])]
        out.append((bt_title(bt), ["rank", "candidate", "rating", "95% interval", "rank range (95%)"], rows))
    if pairwise and pairwise.style_control:  # beside the plain ratings: what style control changed
        sc = pairwise.style_control
        out.append((f"Bradley-Terry ratings with style control (length, headers, bold, list items held equal; "
                    f"{sc['method']}, {sc['resamples']} resamples; style rows: the fitted coefficients)",
                    ["candidate or style feature", "rating or coefficient", "95% interval"], style_rows(sc)))
    return out


def _turn_tables(summary: Summary) -> list[Table]:
    if not summary.by_turn:
        return []
    turns, out = sorted(summary.by_turn), []
    if any("single" in b for b in summary.by_turn.values()):
        rows = [[lab, *(fmt_estimate(summary.by_turn[t]["single"][lab]) for t in turns),
                 fmt_estimate(summary.single[lab].total)] for lab in summary.candidates]
        out.append(("Per turn: mean total score (95% bootstrap interval)",
                    ["candidate", *(f"turn {t}" for t in turns), "both turns"], rows))
    if any("pairs" in b for b in summary.by_turn.values()):
        rows = []
        for pair, v in (summary.pairwise.pairs if summary.pairwise else {}).items():
            for side in v.sides:
                rows.append([pair, side, *(fmt_estimate(summary.by_turn[t].get("pairs", {})[pair].win_rate[side])
                                           if pair in summary.by_turn[t].get("pairs", {}) else "-" for t in turns),
                             fmt_estimate(v.win_rate[side])])
        out.append(("Per turn: win rate (ties half; Wilson 95% intervals)",
                    ["pair", "candidate", *(f"turn {t}" for t in turns), "both turns"], rows))
    return out


def _category_tables(summary: Summary) -> list[Table]:
    if not summary.categories:
        return []
    cats = list(summary.categories)
    rows = [[lab, *(fmt_estimate(summary.categories[c][lab]) for c in cats)] for lab in summary.candidates]
    return [(f"Per category: {summary.category_measure} (95% bootstrap interval)", ["candidate", *cats], rows)]


def _weighted_tables(summary: Summary) -> list[Table]:
    w = summary.pairwise.weighted if summary.pairwise else None
    if not w:
        return []
    rows = [[pair, side, fmt_estimate(e)] for pair, sides in w.p_wins.items() for side, e in sides.items()]
    rows.append(["the judge's position bias (P(shown first wins) - P(shown second wins))", "",
                 fmt_estimate(w.position_bias)])
    return [(f"Weighted verdicts: mean P(win), calibrated over both orders ({w.calibrated_items} items; "
             "95% bootstrap interval)", ["pair", "candidate", "mean P(win)"], rows)]


def _jury_tables(summary: Summary) -> list[Table]:
    j = summary.pairwise.jurors if summary.pairwise else None
    if not j:
        return []
    kappa = "undefined" if j["fleiss_kappa"] is None else f"{j['fleiss_kappa']:.3f}"
    return [("Jury: agreement between its members", ["measure", "value"],
             [["judgments", str(j["judgments"])], ["unanimous", fmt_share(j["unanimous"])],
              ["agreement of each pair of members", fmt_share(j["pairwise"])], ["Fleiss' kappa", kappa]])]


def _diagnostics_tables(summary: Summary) -> list[Table]:
    if not summary.pairwise:
        return []
    d = summary.pairwise.diagnostics
    pc, fp, la = d.position_consistency, d.first_position_wins, d.longer_answer_wins
    rows = [["position consistency (both orders agree; an unscored order counts as not agreeing)", fmt_rate(pc),
             f"{pc['agreeing']}/{pc['items']} ({pc['unscored']} with an unscored order)"],
            ["share of decisive verdicts won by the answer shown first", fmt_rate(fp),
             f"{fp['decisive']} decisive of {fp['verdicts']}"],
            ["share of decisive verdicts won by the longer answer", fmt_rate(la),
             f"{la['decisive']} decisive with answers of unequal length"],
            ["unscored judgments", str(d.unscored_judgments), f"of {d.judgments}"]]
    return [("Judge diagnostics", ["measure", "value", "items"], rows)]


MAX_PROMPT_CHART = 40  # more prompts than this: no per-prompt chart (the tables and exports hold them)
MAX_DRILLDOWN = 100  # prompts shown one by one in a report


def heatmap_svg(title: str, labels: list[str], rate: dict[tuple[str, str], float]) -> str:
    """A win-rate matrix: row's win rate against column (ties half); blank where not compared."""
    cell, left, top = 34, 120, 130
    size = max(left + cell * len(labels) + 20, title_width(title) + 20)
    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{top + cell * len(labels) + 20}" '
             f'role="img" aria-label="{e(title)}" class="chart heatmap">',
             title_svg(title, 10)]
    for k, lab in enumerate(labels):
        y = top + k * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" text-anchor="end" font-size="11">{e(lab[:16])}</text>')
        x = left + k * cell + cell / 2
        parts.append(f'<text transform="translate({x:.0f},{top - 6}) rotate(-60)" font-size="11">{e(lab[:16])}</text>')
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            v = rate.get((a, b))
            if v is None:
                continue
            red, blue = int(255 * (1 - v)), int(255 * v)
            colour = f"rgb({200 + red // 5},{120 + min(red, blue) // 2},{200 + blue // 5})"
            parts.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="{colour}"><title>{e(a)} vs {e(b)}: {v:.2f}</title></rect>'
                         f'<text x="{left + j * cell + cell / 2:.0f}" y="{top + i * cell + cell / 2 + 4:.0f}" '
                         f'text-anchor="middle" font-size="10">{v:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def radar_svg(title: str, axes: list[str], series: dict[str, list[float | None]], max_value: float) -> str:
    """MT-Bench's per-category chart: one axis per category, one polygon per candidate."""
    r, cx, cy = 150, 260, 200
    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(720, title_width(title) + 20)}" height="420" '
             f'role="img" aria-label="{e(title)}" class="chart radar">', title_svg(title, 10)]
    angle = [2 * math.pi * k / len(axes) - math.pi / 2 for k in range(len(axes))]
    for ring in (0.25, 0.5, 0.75, 1.0):
        pts = " ".join(f"{cx + r * ring * math.cos(t):.1f},{cy + r * ring * math.sin(t):.1f}" for t in angle)
        parts.append(f'<polygon points="{pts}" fill="none" stroke="#ddd"/>')
    for name, t in zip(axes, angle):
        parts.append(f'<text x="{cx + (r + 14) * math.cos(t):.0f}" y="{cy + (r + 14) * math.sin(t):.0f}" '
                     f'text-anchor="middle" font-size="11">{e(name[:18])}</text>')
    for k, (lab, values) in enumerate(series.items()):
        pts = " ".join(f"{cx + r * min(v or 0, max_value) / max_value * math.cos(t):.1f},"
                       f"{cy + r * min(v or 0, max_value) / max_value * math.sin(t):.1f}" for v, t in zip(values, angle))
        colour = COLOURS[k % len(COLOURS)]
        parts.append(f'<polygon points="{pts}" fill="{colour}" fill-opacity="0.12" stroke="{colour}">'
                     f'<title>{e(lab)}</title></polygon>')
        parts.append(f'<rect x="570" y="{40 + 16 * k}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="585" y="{49 + 16 * k}" font-size="11">{e(lab[:20])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def charts(source: LoadedRun | Store, summary: Summary) -> list[str]:
    """The report's charts (inline SVG) of a run and its ``Summary``."""
    run = as_loaded(source, summary.run_id)
    return _score_charts(run, summary) + _pair_charts(summary) + _category_charts(summary)


def _score_charts(run: LoadedRun, summary: Summary) -> list[str]:
    """Each candidate's total per prompt (first turns) and its mean total with its interval."""
    prompts = [p.prompt_id for p in run.prompts]
    singles = {(i.prompt_id, i.labels[0]): i.verdict for i in run.items if i.kind == "single" and i.repeat == 0
               and i.turn == 1}  # first turns, by the prompt ids charted
    labels, max_total = list(summary.candidates), len(summary.criteria) * summary.scale[1]
    if not singles or len(prompts) > MAX_PROMPT_CHART or len(labels) > len(COLOURS):
        return []
    series = {lab: [_total(singles.get((pid, lab))) for pid in prompts] for lab in labels}
    totals = {lab: [summary.single[lab].total.value] for lab in labels}
    errs = {lab: [(summary.single[lab].total.low, summary.single[lab].total.high)] for lab in labels}
    return [bar_chart_svg("Total score per prompt", prompts, series, max_total),
            bar_chart_svg("Mean total score (95% interval)", ["all prompts"], totals, max_total, errs)]


def _pair_charts(summary: Summary) -> list[str]:
    """Each side's win rate per pair, and with more than two candidates the win-rate matrix."""
    pairs = summary.pairwise.pairs if summary.pairwise else {}
    out = []
    if pairs and len(pairs) <= 12:
        sides = ("first of the pair", "second of the pair")
        series = {side: [v.win_rate[v.sides[k]].value for v in pairs.values()] for k, side in enumerate(sides)}
        errs = {side: [(v.win_rate[v.sides[k]].low, v.win_rate[v.sides[k]].high) for v in pairs.values()]
                for k, side in enumerate(sides)}
        out.append(bar_chart_svg("Pairwise win rate of each side (ties half, Wilson 95% interval)", list(pairs),
                                 series, 1.0, errs))
    if len(summary.candidates) > 2 and pairs:
        rate = {}
        for v in pairs.values():
            a, b = v.sides
            rate[(a, b)], rate[(b, a)] = v.win_rate[a].value, v.win_rate[b].value
        ratings = ((summary.pairwise.bradley_terry if summary.pairwise else None) or {}).get("ratings", {})
        order = sorted(summary.candidates, key=lambda lab: -ratings.get(lab, {"rating": 0})["rating"])
        out.append(heatmap_svg("Win rate of the row against the column (ties half)", order,
                               {k: v for k, v in rate.items() if v is not None}))
    return out


def _category_charts(summary: Summary) -> list[str]:
    """MT-Bench's radar of each candidate's figure per category (three categories or more)."""
    if not summary.categories or len(summary.categories) < 3:
        return []
    cats = list(summary.categories)
    top = len(summary.criteria) * summary.scale[1] if summary.category_measure == "mean total score" else 1.0
    return [radar_svg(f"Per category: {summary.category_measure}", cats,
                      {lab: [summary.categories[c][lab].value for c in cats] for lab in summary.candidates}, top)]


def _total(grade: object) -> float | None:
    return grade.total if isinstance(grade, Grade) else None


@dataclass(frozen=True)
class DrillTurn:
    """One turn of a prompt in the drilldown: the question, each candidate's answer and grade
    (its run item: the grade, or unscored with the judge's output), each pair's verdicts."""

    turn: int
    question: str
    answers: dict[str, str | None]
    single: dict[str, RunItem]
    pairwise: dict[str, PairRow]
    auxiliary: dict[str, str] = field(default_factory=dict)  # what the judge wrote first, by name (judge)


@dataclass(frozen=True)
class DrillPrompt:
    id: str
    prompt: str
    reference: str | None
    context: list[list[str]]
    turns: list[DrillTurn]


def drilldown(run: LoadedRun, limit: int = MAX_DRILLDOWN) -> list[DrillPrompt]:
    """The first ``limit`` prompts one by one, turn by turn: each turn's question, the answers and
    the judge's verdicts."""
    units = run.units()
    gens = run.answers()
    singles = {(i.prompt_id, i.labels[0]): i for i in units if i.kind == "single"}
    pairs = pair_rows(units, run.baseline)
    auxiliary = run.auxiliary()
    out = []
    for p in run.prompts[:limit]:
        turns = []
        for t, question in enumerate(p.questions, 1):
            uid = unit_id(p.prompt_id, t)
            turns.append(DrillTurn(t, question, {lab: text for (q, lab), text in gens.items() if q == uid},
                                   {lab: i for (q, lab), i in singles.items() if q == uid},
                                   {f"{r.pair[0]} vs {r.pair[1]}": r for r in pairs if r.unit == uid},
                                   auxiliary.get(uid, {})))
        out.append(DrillPrompt(p.prompt_id, p.prompt, p.reference, list(p.conversation.get("context", [])), turns))
    return out


def _grade_html(item: RunItem) -> str:
    """A grade's line in the drilldown (an unscored one says so)."""
    e = html.escape
    g = item.verdict if isinstance(item.verdict, Grade) else None
    scores = "unscored" if g is None else str(dict(g.scores))
    total = "-" if g is None else g.total
    return f"<p>Grade: {e(scores)} total {total} &mdash; {e('' if g is None else g.justification)}</p>"


def _pair_html(pair: str, row: PairRow) -> list[str]:
    e = html.escape
    return [f"<p>{e(pair)} ({order}): winner {e(v.winner) if v else 'unscored'}"
            f"{' &mdash; ' + e(v.justification) if v else ''}</p>" for order, v in row.orders()]


def drilldown_html(items: list[DrillPrompt]) -> str:
    """The drilldown as HTML: one collapsible block per prompt, its turns in order."""
    e = html.escape
    parts = []
    for d in items:
        ref = " (judged against a reference)" if d.reference else ""
        parts.append(f"<details><summary>{e(d.id)}{ref}: {e(d.prompt[:100])}</summary>")
        for role, text in d.context:
            parts.append(f"<p><i>{e(role)}:</i></p><pre>{e(text)}</pre>")
        if d.reference:
            parts.append(f"<h4>Reference answer</h4><pre>{e(d.reference)}</pre>")
        for turn in d.turns:
            if len(d.turns) > 1:
                parts.append(f"<h3>Turn {turn.turn}</h3>")
            parts.append(f"<p><b>User:</b></p><pre>{e(turn.question)}</pre>")
            for name, text in turn.auxiliary.items():
                parts.append(f"<h4>The judge's {e(name)}, written first</h4><pre>{e(text)}</pre>")
            for lab, answer in turn.answers.items():
                parts.append(f"<h4>{e(lab)}</h4><pre>{e(answer or '')}</pre>")
                if lab in turn.single:
                    parts.append(_grade_html(turn.single[lab]))
            for pair, row in turn.pairwise.items():
                parts += _pair_html(pair, row)
        parts.append("</details>")
    return "".join(parts)


def render_html(source: LoadedRun | Store, summary: Summary) -> str:
    """The HTML page of a run from its ``Summary`` (computed once by the caller) and the run
    (a store's is loaded once here)."""
    run = as_loaded(source, summary.run_id)
    run_id = summary.run_id
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>llm-judge run {e(run_id)}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             ".warn{background:#fff4d6;padding:.5em;border-left:4px solid #e0a000}pre{white-space:pre-wrap;"
             "background:#f6f6f6;padding:.5em}</style></head><body>",
             f"<h1>llm-judge run {e(run_id)}</h1>",
             f"<p>Judge: <code>{e(summary.judge)}</code>{_protocol_note(run, e)}; mode {e(summary.mode)}; "
             f"{summary.prompts} prompts; "
             f"criteria {e(', '.join(summary.criteria))} ({summary.scale[0]}-{summary.scale[1]}); "
             f"status {e(summary.status)}. Intervals: means {e(summary.bootstrap['method'])}, "
             f"{summary.bootstrap['resamples']} resamples, seed {summary.bootstrap['seed']}; proportions "
             f"{e(summary.proportions)}."
             + (f" Reference-guided: {summary.with_reference} of {summary.prompts} prompts were judged against a "
                "reference answer." if summary.with_reference else "") + "</p>"]
    parts += [f"<p class='warn'>warning: {e(w)}</p>" for w in summary.warnings]
    parts.append("<h2>Candidates</h2><ul>" + "".join(
        f"<li><b>{e(lab)}</b>: <code>{e(c['spec'])}</code> temperature {c['sampling']['temperature']}, "
        f"min_p {c['sampling']['min_p']}</li>" for lab, c in summary.candidates.items()) + "</ul>")
    parts += charts(run, summary)
    parts += [html_table(title, header, rows) for title, header, rows in tables(summary)]
    parts.append(f"<h2>Per prompt</h2>{_first_prompts_note(summary)}")
    parts.append(drilldown_html(drilldown(run)))
    parts.append("</body></html>")
    return "".join(parts)


def render_markdown(source: LoadedRun | Store, summary: Summary) -> str:
    """The Markdown report of a run from its ``Summary`` and the run (a store's is loaded once here)."""
    run = as_loaded(source, summary.run_id)
    run_id = summary.run_id
    lines = [f"# llm-judge run {run_id}", "",
             f"Judge `{summary.judge}`{_protocol_note(run, str)}, mode {summary.mode}, {summary.prompts} prompts, criteria "
             f"{', '.join(summary.criteria)}. Intervals: means {summary.bootstrap['method']}, "
             f"{summary.bootstrap['resamples']} resamples, seed {summary.bootstrap['seed']}; proportions "
             f"{summary.proportions}.", ""]
    lines += [f"> warning: {w}" for w in summary.warnings] + [""]
    for title, header, rows in tables(summary):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows] + [""]
    lines += ["## Per prompt", "", _first_prompts_note(summary), ""]
    for d in drilldown(run):
        lines += [f"### {d.id}", ""]
        for turn in d.turns:
            lines += [(f"Turn {turn.turn}: " if len(d.turns) > 1 else "") + turn.question, ""]
            lines += [f"- the judge's {name}, written first: {text}" for name, text in turn.auxiliary.items()]
            lines += [_grade_line(lab, item) for lab, item in turn.single.items()]
            lines.append("")
    return "\n".join(lines)


def _protocol_note(run: LoadedRun, escape: Callable[[str], str]) -> str:
    """Which published protocol the judge was asked with (nothing for llm-judge's own)."""
    protocol = run.config.get("protocol")
    return f" under protocol {escape(str(protocol))}" if protocol else ""


def _grade_line(label: str, item: RunItem) -> str:
    g = item.verdict if isinstance(item.verdict, Grade) else None
    return f"- {label}: total {'unscored' if g is None else g.total} — {'' if g is None else g.justification}"


def _first_prompts_note(summary: Summary) -> str:
    if summary.prompts <= MAX_DRILLDOWN:
        return ""
    return f"The first {MAX_DRILLDOWN} of {summary.prompts} prompts; every item is in the CSV and JSONL exports."


def write_report(source: LoadedRun | Store, summary: Summary, path: str | Path, markdown: bool | None = None) -> Path:
    """Write the report of a run (HTML, or Markdown for a .md path) to ``path``."""
    path = Path(path)
    if markdown is None:
        markdown = path.suffix.lower() in {".md", ".markdown"}
    run = as_loaded(source, summary.run_id)
    text = render_markdown(run, summary) if markdown else render_html(run, summary)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LLMJudgeError(f"cannot write the report to {path}: {exc.strerror}") from None
    return path
