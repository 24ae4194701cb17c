"""``llm-judge merge STORE... --into STORE``: the stores of a study's shards (or any stores) joined
into one; exit status 1 where a row conflicted (the target's kept), with the summary line.

Leaves out every rule of merging (``merge``): this command names the stores and prints what comes back.
"""

from __future__ import annotations

import json

import click

from .options import json_option


@click.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--into", "target", required=True, help="the store to merge into (created where it does not exist; "
              "it may be one of STORES)")
@json_option("print what was merged, and every conflict, as JSON")
def merge(stores: tuple[str, ...], target: str, as_json: bool) -> int:
    """Merge the runs and results of STORES into one store (a study's shards into one run)."""
    from ..merge import merge_stores

    result = merge_stores(list(stores), target)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        for skipped in result.skipped:
            click.echo(f"skipped {skipped}: it is the target", err=True)
        for c in result.conflicts:
            click.echo(f"conflict: {c.table} {c.key} in {c.source} {c.detail}; kept the target's", err=True)
        click.echo(result.line())
    return 1 if result.conflicts else 0
