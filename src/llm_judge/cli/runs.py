"""``llm-judge runs`` (the stored runs), ``report`` (a run's statistics, HTML and Markdown) and
``export`` (a run as CSV, JSONL or verdict files).

Leaves out reading and computing (``store``, ``study.summary``, ``study.export``,
``present.report``): these commands name the run and the files and print what comes back.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import click

from .options import bootstrap_option, db_option, json_option, open_store
from .output import print_summary


@click.command()
@db_option
@json_option()
def runs(db: str | None, as_json: bool) -> None:
    """List stored runs, newest first."""
    rows = [_run_row(r) for r in open_store(db).runs()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no runs stored yet: start one with `llm-judge run`")
    for r in rows:
        click.echo(f"{r['run_id']}  {r['created']}  {r['status']:<10}  {r['prompts']} prompts x "
                   f"{r['candidates']} candidates  judge {r['judge']}  ({r['mode']}){_shards_text(r)}")


def _shards_text(r: dict[str, Any]) -> str:
    """``  shards 1,3 of 3 done`` for a sharded run (nothing for another)."""
    shards = r.get("shards")
    return f"  shards {','.join(map(str, shards['done'])) or 'none'} of {shards['of']} done" if shards else ""


def _run_row(r: Any) -> dict[str, Any]:
    """One stored run as ``runs`` lists it."""
    from ..study.shard import read_shards, shown_status

    config, manifest = json.loads(r["config"]), json.loads(r["manifest"])
    shards = read_shards(manifest)  # a sharded run: which of its shards this store holds done
    return {"run_id": r["id"], "created": datetime.datetime.fromtimestamp(r["created_at"]).isoformat(" ", "seconds"),
            "status": shown_status(r["status"], manifest), "prompts": r["n_prompts"], "candidates": r["n_candidates"],
            "judge": config["judge"], "mode": config["mode"], **({"shards": shards.to_json()} if shards else {})}


@click.command()
@click.argument("run_id")
@click.option("--html", "html_path", default=None, help="write a self-contained HTML report here")
@click.option("--md", "md_path", default=None, help="write a Markdown report here")
@bootstrap_option()
@json_option()
@db_option
def report(run_id: str, html_path: str | None, md_path: str | None, bootstrap: int, as_json: bool,
           db: str | None) -> None:
    """Show a stored run's statistics; write HTML and Markdown reports."""
    from ..present.report import write_report
    from ..stats import check_resamples
    from ..study.loaded import load_run
    from ..study.summary import summarize_run

    check_resamples(bootstrap)
    run = load_run(open_store(db), run_id)  # read once: the summary and every report come from it
    summary = summarize_run(run, n_boot=bootstrap)
    for path in (html_path, md_path):
        if path:
            write_report(run, summary, path, markdown=path == md_path)
            click.echo(f"wrote {path}", err=True)
    if not (html_path or md_path) or as_json:
        print_summary(summary, as_json)


@click.command()
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "verdicts"]), default="jsonl", show_default=True)
@click.option("--output", "-o", required=True, help="file to write")
@db_option
def export(run_id: str, fmt: str, output: str, db: str | None) -> None:
    """Export a stored run as CSV, JSONL, or pairwise verdicts (the `analyze` format)."""
    from ..study import export_run

    n = export_run(open_store(db), run_id, output, fmt)
    click.echo(f"wrote {n} rows to {output}", err=True)
