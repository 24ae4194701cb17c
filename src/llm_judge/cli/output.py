"""What several commands show while they work or when they are done: the progress bar of a study
or a training run, the stage lines of a comparison, a run's summary.

Leaves out the tables themselves (``present.terminal``) and every figure (``study.summary``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..study.summary import Summary


class ProgressBar:
    """One rich progress line per stage (generation, judging, ...), with its rate and calls in flight."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[flight]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False)
        self.tasks: dict[str, TaskID] = {}
        self.bar.start()

    def update(self, stage: str, done: int, total: int, in_flight: int = 0) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total, rate="", flight="")
        task = self.bar.tasks[self.tasks[stage]]
        rate = f"{task.speed:.2f}/s" if task.speed else ""
        flight = f"{in_flight} in flight" if in_flight else ""
        self.bar.update(self.tasks[stage], completed=done, total=total, rate=rate, flight=flight)

    def stop(self) -> None:
        self.bar.stop()


def progress_bar(hidden: bool) -> ProgressBar | None:
    """A started bar, or None where the output must stay quiet (``--quiet``, ``--json``)."""
    return None if hidden else ProgressBar()


def stage_printer() -> Callable[[str], None]:
    """Report a comparison's stages on stderr: ``... judging``."""
    def show(text: str) -> None:
        click.echo(f"... {text}", err=True)
    return show


def print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        return
    from ..present.terminal import print_summary as show

    show(summary)
