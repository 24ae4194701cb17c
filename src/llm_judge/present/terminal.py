"""Terminal output (rich): a comparison, a run's summary, the figures of ``analyze``. Pure
formatting over ``present.format`` and ``present.report.tables``: no decisions are made here."""

from __future__ import annotations

from rich.columns import Columns
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .format import CARDS_TITLE, card_header, card_rows, fmt_estimate, fmt_interval, fmt_p, fmt_rate, score_rows, verdict_parts
from .report import bt_title, tables

STYLES = {"winner-none": "bold red", "winner-tie": "bold yellow", "winner": "bold green", "warning": "yellow"}


def score_table(result: dict) -> Table:
    scale = result["scale"]
    how = "mean of both orders" if result["mode"] == "pairwise" else "each answer alone"
    table = Table(title=f"Scores ({scale[0]}-{scale[1]}, {how})")
    table.add_column("Criterion")
    for label in ("A", "B"):
        table.add_column(label, justify="right")
    if result.get("scores"):
        rows = score_rows(result)
        for row in rows[:-1]:
            table.add_row(*row)
        table.add_row(Text("Total", style="bold"), *rows[-1][1:])
    else:
        table.add_row("(unscored)", "-", "-")
    return table


def answers_panels(result: dict) -> Columns:
    panels = []
    for label, cand in result["candidates"].items():
        s = cand["sampling"]
        title = f"{label}: {cand['label']}  (T={s['temperature']:g}, min_p={s['min_p']:g})"
        speed = f"{cand['completion_tokens'] or 0} tokens, {cand['seconds']:.1f}s"
        if cand["tokens_per_second"]:
            speed += f", {cand['tokens_per_second']:.0f} tok/s"
        panels.append(Panel(Text(cand["text"].strip() or "(empty answer)"), title=title, subtitle=speed))
    return Columns(panels, equal=True, expand=True)


def verdict_lines(result: dict) -> Group:
    return Group(*(Text(text, style=STYLES.get(kind, "")) for kind, text in verdict_parts(result)))


def print_comparison(result, console: Console | None = None) -> None:
    """A ``ComparisonResult`` (or its dict): the answers side by side, the scores, the verdict."""
    d = result if isinstance(result, dict) else result.to_dict()
    console = console or Console()
    console.print(answers_panels(d))
    protocol = d["judge"].get("protocol")
    if protocol:
        console.print(Text(f"Judged by {d['judge']['spec']} under protocol {protocol}"))
    if d.get("scores") or not protocol:  # a published pairwise protocol names a winner and gives no scores
        console.print(score_table(d))
    console.print(verdict_lines(d))


def print_summary(summary, console: Console | None = None) -> None:
    """A run's ``Summary`` as the tables of the report, then its notes and warnings."""
    console = console or Console()
    console.print(f"run [bold]{summary.run_id}[/bold] ({summary.status}): {summary.prompts} prompts, "
                  f"judge {summary.judge}, mode {summary.mode}")
    for title, header, rows in tables(summary):
        t = Table(title=title)
        for h in header:
            t.add_column(h)
        for r in rows:
            t.add_row(*r)
        console.print(t)
    if summary.with_reference:
        console.print(f"reference-guided: {summary.with_reference} of {summary.prompts} prompts were judged against a "
                      "reference answer (marked in the report)")
    b = summary.bootstrap
    console.print(f"intervals: means {b['method']}, {b['resamples']} resamples, seed {b['seed']}; "
                  f"proportions {summary.proportions}")
    spread = summary.repeat_spread
    if spread:
        parts = [f"{k}: {v['identical_share']:.0%} of {v['items']} items identical"
                 + (f", mean range of totals {v['mean_range']:.2f}" if "mean_range" in v else "")
                 for k, v in spread.items() if isinstance(v, dict)]
        console.print(f"judged {spread['repeats']} times each (statistics use the first): " + "; ".join(parts))
    for line in summary.judge_cards:
        console.print(f"known: {line}")
    for w in summary.warnings:
        console.print(f"[yellow]warning: {w}[/yellow]")
    console.print(f"report: llm-judge report {summary.run_id} --html report.html")


def pair_lines(pair: str, v, indent: str = "") -> list[str]:
    """A pair's figures (``stats.PairStats``) as lines of text, each side's own win rate."""
    lines = [f"{indent}{pair}: {v.scored} scored items, {v.unscored} unscored; sign test p={fmt_p(v.sign_test_p)}"]
    first, second = v.sides
    for me, other in ((first, second), (second, first)):
        lines.append(f"{indent}  {me}: {v.wins[me]} wins, {v.ties} ties, {v.wins[other]} losses; "
                     f"win rate {fmt_estimate(v.win_rate[me], 3)}, without ties "
                     f"{fmt_estimate(v.win_rate_without_ties[me], 3)}"
                     + (f", length-controlled (minimal form) {fmt_estimate(v.length_controlled[me], 3)}"
                        if v.length_controlled else ""))
    return lines


def analysis_lines(result: dict) -> list[str]:
    """``llm-judge analyze`` in text: every figure of its ``--json``, intervals Wilson 95%."""
    lines = [f"{result['items']} items, {result['unscored']} unscored in both orders "
             "(win rates leave them out; intervals: Wilson 95%)"]
    for pair, v in result["win_rates"].items():
        lines += pair_lines(pair, v)
    for cat, pairs in (result.get("by_category") or {}).items():
        lines.append(f"category {cat}:")
        for pair, v in pairs.items():
            lines += pair_lines(pair, v, "  ")
    bt = result.get("bradley_terry")
    if bt:
        lines.append(f"leaderboard: {bt_title(bt)}")
        for lab, v in sorted(bt["ratings"].items(), key=lambda kv: -kv[1]["rating"]):
            rank = "rank {}-{}".format(*v["rank_range"]) if v.get("rank_range") else "rank range -"
            lines.append(f"  {v['rank']:>2}. {lab}: {v['rating']:.0f} {fmt_interval(v, 0)}, {rank}")
    pc = result["position_consistency"]
    if pc["items"]:
        lines.append(f"position consistency: {fmt_rate(pc)} ({pc['agreeing']}/{pc['items']} agree; "
                     f"{pc['unscored']} with an unscored order count as not agreeing)")
    lines += soft_preference_lines(result.get("soft_preferences") or {})
    ha = result.get("human_agreement")
    if ha:
        for name in ("with_ties", "without_ties"):
            b = ha[name]
            if not b["items"]:
                continue
            parts = []
            for k in ("verdict", "verdict_swapped"):
                if b[k]["scored"]:
                    kappa = "undefined" if b[k]["kappa"] is None else f"{b[k]['kappa']:.3f}"
                    parts.append(f"{k}: accuracy {fmt_rate(b[k], 'accuracy')}, kappa {kappa} "
                                 f"({b[k]['unscored']} of {b[k]['items']} unscored)")
            both = b["both_orders_correct"]
            parts.append(f"both orders correct {both['rate']:.3f} ({both['correct']}/{both['items']})")
            lines.append(f"human agreement {name.replace('_', ' ')}: " + "; ".join(parts))
        for cat, b in ha.get("by_category", {}).items():
            v = b["verdict"]
            if b["items"]:
                lines.append(f"  category {cat}: accuracy {v['accuracy']:.3f} ({b['items']} items, {v['unscored']} unscored)")
    return lines


def soft_preference_lines(pairs: dict) -> list[str]:
    """``analyze``'s AlpacaEval figures of soft preferences (``leaderboards.soft_lines``)."""
    from ..leaderboards import soft_lines

    return [line for pair in pairs.values() for line in soft_lines(pair)]


def print_cards(cards: list[dict], console: Console | None = None) -> None:
    """Judge cards side by side (AlpacaEval's evaluator leaderboard): one column per card."""
    console = console or Console()
    table = Table(title=CARDS_TITLE)
    for h in card_header(cards):
        table.add_column(h)
    for row in card_rows(cards):
        table.add_row(*row)
    console.print(table)
