"""``llm-judge analyze``: the figures of a pairwise verdict file from anywhere.

Leaves out reading and computing (``analyze``) and the lines shown (``present.terminal``).
"""

from __future__ import annotations

import click

from .options import bootstrap_option, json_option


@click.command()
@click.argument("path")
@bootstrap_option()
@json_option()
def analyze(path: str, bootstrap: int, as_json: bool) -> None:
    """Win rates, position consistency and human agreement of a pairwise verdict file (JSONL)."""
    from ..analyze import analyze as run_analyze
    from ..analyze import read_verdicts

    result = run_analyze(read_verdicts(path), n_boot=bootstrap)
    if as_json:
        from ..present.format import to_json

        click.echo(to_json(result))
        return
    from ..present.terminal import analysis_lines

    for line in analysis_lines(result):
        click.echo(line)
