"""Terminal output for a comparison (rich). Pure formatting: no decisions are made here."""

from __future__ import annotations

from rich.columns import Columns
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .compare import ComparisonResult


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:g}" if float(x).is_integer() else f"{x:.1f}"


def score_table(result: ComparisonResult) -> Table:
    table = Table(title=f"Scores ({result.scale.low}-{result.scale.high}, "
                        f"{'mean of both orders' if result.mode == 'pairwise' else 'each answer alone'})")
    table.add_column("Criterion")
    for label in ("A", "B"):
        table.add_column(label, justify="right")
    if result.scores:
        for name, pair in result.scores.items():
            table.add_row(name, _fmt(pair["A"]), _fmt(pair["B"]))
        table.add_row(Text("Total", style="bold"), _fmt(result.totals["A"]), _fmt(result.totals["B"]))
    else:
        table.add_row("(unscored)", "-", "-")
    return table


def answers_panels(result: ComparisonResult) -> Columns:
    panels = []
    for label, cand in result.candidates.items():
        comp = result.answers[label]
        s = cand.sampling
        title = f"{label}: {cand.name}  (T={s.temperature:g}, min_p={s.min_p:g})"
        speed = f"{comp.completion_tokens or 0} tokens, {comp.seconds:.1f}s"
        if comp.tokens_per_second:
            speed += f", {comp.tokens_per_second:.0f} tok/s"
        panels.append(Panel(Text(comp.text.strip() or "(empty answer)"), title=title, subtitle=speed))
    return Columns(panels, equal=True, expand=True)


def verdict_lines(result: ComparisonResult) -> Group:
    names = {lab: c.name for lab, c in result.candidates.items()}
    if result.winner is None:
        head = Text("Winner: none (unscored: the judge gave no readable verdict)", style="bold red")
    elif result.winner == "tie":
        head = Text("Winner: tie", style="bold yellow")
    else:
        head = Text(f"Winner: {result.winner} ({names[result.winner]})", style="bold green")
    parts = [head]
    if result.mode == "pairwise":
        per_order = ", ".join(f"{c.order}: {c.verdict['winner'] if c.verdict else 'unscored'}"
                              for c in result.orders)
        agreed = {True: "yes", False: "NO", None: "unknown"}[result.consistent]
        parts.append(Text(f"Both orders agreed: {agreed}  ({per_order}; winners in original labels)"))
    for order, why in result.justifications():
        parts.append(Text(f"Judge ({order}): {why or '(no justification)'}"))
    for warning in result.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def print_comparison(result: ComparisonResult, console: Console | None = None) -> None:
    console = console or Console()
    console.print(answers_panels(result))
    console.print(score_table(result))
    console.print(verdict_lines(result))
