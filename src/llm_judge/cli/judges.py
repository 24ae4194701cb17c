"""``llm-judge judges``: ``eval`` (judges on gold-labelled pairs, in both orders: judge cards),
``list`` (the stored cards) and ``sets`` (the bundled gold sets).

Leaves out evaluating and scoring judges (``judges``, ``judging``) and the cards' tables
(``present.terminal``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import LLMJudgeError
from .options import EVAL, JudgeArgs, current_settings, db_option, json_option, judge_options, n_ctx_option, open_store
from .output import progress_bar

if TYPE_CHECKING:
    from ..judging import JudgeSetup
    from ..store import Store


@click.group()
def judges() -> None:
    """Know your judge: evaluate judges on gold-labelled pairs (judge cards)."""


@judges.command("eval")
@judge_options(EVAL)
@click.option("--jury", "juries", multiple=True, help="SPEC,SPEC,SPEC: a jury to evaluate (repeatable)")
@click.option("--set", "sets", multiple=True, default=("llmbar-natural",), show_default=True,
              help="a bundled gold set (llm-judge judges sets) or a file; repeat for several")
@click.option("--limit", type=int, default=None, help="only the first N pairs of each set")
@click.option("--sample", type=int, default=None, help="a random sample of N pairs (see --sample-seed)")
@click.option("--sample-seed", type=int, default=0, show_default=True)
@click.option("--shortest", is_flag=True, help="take the shortest pairs first (quick checks on slow judges)")
@n_ctx_option()
@click.option("--export", "export_dir", default=None, help="write each card's per-pair verdicts (analyze format) here")
@db_option
@click.option("--quiet", is_flag=True, help="no progress bar")
@json_option()
def judges_eval(judge: JudgeArgs, juries: tuple[str, ...], sets: tuple[str, ...], limit: int | None,
                sample: int | None, sample_seed: int, shortest: bool, n_ctx: int, export_dir: str | None,
                db: str | None, quiet: bool, as_json: bool) -> None:
    """Run judges on gold-labelled pairs in both orders and print their judge cards."""
    from ..judges import card_from_verdict_file, is_verdict_file, load_gold
    from ..judging import JudgeSetup

    teams = [[s] for s in judge.specs] + [[x.strip() for x in j.split(",") if x.strip()] for j in juries]
    setup = JudgeSetup(judge.parsed_criteria(), judge.parsed_scale(), judge.sampling(), judge.verdict_format,
                       judge.method)
    store = open_store(db)
    settings = {"method": judge.method, "format": judge.verdict_format, "criteria": [x.name for x in setup.criteria],
                "selection": {"limit": limit, "sample": sample, "shortest": shortest}}
    cards = []
    for source in sets:
        if is_verdict_file(source):
            cards.append(card_from_verdict_file(source))
            continue
        items = load_gold(source, limit=limit, sample=sample, seed=sample_seed, shortest=shortest)
        if not teams:
            raise LLMJudgeError("name a judge to evaluate: --judge SPEC (or --jury SPEC,SPEC,SPEC)")
        for team in teams:
            c, records = _team_card(team, items, source, setup, store, n_ctx, settings, quiet or as_json)
            cards.append(c)
            if export_dir:
                _export_records(Path(export_dir), c, source, records)
    _show_cards(cards, as_json)


def _team_card(team: list[str], items: list[Any], source: str, setup: JudgeSetup, store: Store, n_ctx: int,
               settings: dict[str, Any], quiet: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluate one judge (or jury) on one gold set: its stored card (``settings`` say how it was asked)
    and its per-pair records."""
    from ..judges import card, evaluate
    from ..judging import jury_name, load_judge

    name = jury_name(team)
    judge = load_judge(team, setup, n_ctx=n_ctx, settings=current_settings())
    progress = progress_bar(quiet)
    try:
        records = evaluate(judge, name, items, store, progress.update if progress else None)
    finally:
        if progress:
            progress.stop()
    c = card(records, name, source, settings)
    c["id"] = store.add_card(c)
    return c, records


def _export_records(out: Path, c: dict[str, Any], source: str, records: list[dict[str, Any]]) -> None:
    """One card's per-pair verdicts as a JSONL file in ``out`` (the ``analyze`` format)."""
    from ..judges import records_jsonl

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{c['id']}-{source.replace('/', '_')}.jsonl"
    path.write_text(records_jsonl(records))


def _show_cards(cards: list[dict[str, Any]], as_json: bool) -> None:
    from ..present.format import to_json
    from ..present.terminal import print_cards

    if as_json:
        click.echo(to_json(cards))
    else:
        print_cards(cards)


@judges.command("list")
@click.option("--judge", default=None, help="only this judge's cards")
@db_option
@json_option()
def judges_list(judge: str | None, db: str | None, as_json: bool) -> None:
    """The stored judge cards, newest first."""
    cards = open_store(db).cards(judge)
    if not cards and not as_json:
        click.echo("no judge cards stored yet: make one with `llm-judge judges eval --judge SPEC`")
    else:
        _show_cards(cards, as_json)


@judges.command("sets")
def judges_sets() -> None:
    """The bundled gold-labelled sets."""
    from ..judges import GOLD_SETS, PUBLISHED_GPT4, load_gold

    for name in GOLD_SETS:
        gpt4 = PUBLISHED_GPT4.get(name)
        click.echo(f"{name:<30} {len(load_gold(name)):>4} pairs" + (f"  (GPT-4, LLMBar: {gpt4:.1%})" if gpt4 else ""))
