"""``llm-judge analyze``: the figures of a pairwise verdict file from anywhere.

Leaves out reading and computing (``analyze``) and the lines shown (``present.terminal``).
"""

from __future__ import annotations

import click

from .options import bootstrap_option, json_option


@click.command()
@click.argument("path")
@click.option("--instruction-difficulty", "difficulty", metavar="FILE", default=None,
              help="AlpacaEval's instruction_difficulty.csv: adds the full (AlpacaEval 2) length-controlled win "
                   "rate of soft preferences, beside the minimal form")
@bootstrap_option()
@json_option()
def analyze(path: str, difficulty: str | None, bootstrap: int, as_json: bool) -> None:
    """Win rates, position consistency and human agreement of a pairwise verdict file (JSONL);
    AlpacaEval's soft win rates where its items carry preferences."""
    from ..analyze import analyze as run_analyze
    from ..analyze import read_difficulty, read_verdicts

    items = read_verdicts(path)
    result = run_analyze(items, n_boot=bootstrap, difficulty=read_difficulty(difficulty) if difficulty else None)
    if as_json:
        from ..present.format import to_json

        click.echo(to_json(result))
        return
    from ..present.terminal import analysis_lines

    for line in analysis_lines(result):
        click.echo(line)
