"""``llm-judge models``: the built-in model, the spec forms and the config file's models, checked
with ``--check``.

Leaves out resolving and checking a spec (``config``, ``backends``).
"""

from __future__ import annotations

import json
from typing import Any

import click

from .. import defaults
from .options import current_settings, json_option


@click.command()
@click.option("--check", is_flag=True, help="ping every endpoint and check every local file")
@json_option()
def models(check: bool, as_json: bool) -> None:
    """List the built-in model, the spec forms and the models of the config file."""
    from ..backends import check_model
    from ..config import config_path

    settings = current_settings()
    rows = _model_rows()
    if check:
        for row in rows:
            row["check"] = check_model(row["name"], settings)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(_model_line(row, check))
    click.echo("spec forms: embedded, gguf:PATH, hf:OWNER/REPO/FILE.gguf, openai:MODEL@BASE_URL; "
               f"name more in {config_path(settings)}")
    if check and any(not r["check"].startswith("ok") for r in rows):
        click.get_current_context().exit(1)


def _model_rows() -> list[dict[str, Any]]:
    """The built-in model, then each model of the config file with its options."""
    from ..config import config_path, load_config

    rows: list[dict[str, Any]] = [{"name": defaults.MODEL, "spec": defaults.MODEL, "source": "built in",
                                   "description": "SmolLM2-135M-Instruct Q4_1 (for trying the pipeline)"}]
    settings = current_settings()
    rows += [{"name": e.name, "spec": e.spec, "source": str(config_path(settings)), "description": e.description,
              **dict(e.options.items())} for e in load_config(settings=settings).values()]
    return rows


def _model_line(row: dict[str, Any], check: bool) -> str:
    line = f"{row['name']:<16} {row['spec']}"
    if "concurrency" in row:
        line += f"  (concurrency {row['concurrency']})"
    if check:
        line += f"  -> {row['check']}"
    return line
