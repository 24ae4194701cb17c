"""``llm-judge judges``: ``eval`` (judges on gold-labelled pairs, in both orders: judge cards),
``list`` (the stored cards), ``sets`` (the bundled gold sets), ``protocols`` (the bundled judge
protocols, or one protocol's templates) and ``tune`` (a judge's protocol chosen on a dev split and
proved on the held-out one, stored as its profile).

Leaves out evaluating, scoring and choosing (``judges``, ``judging``, ``tune``), reading protocols
(``protocols``) and the cards' tables (``present.terminal``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import LLMJudgeError
from .options import EVAL, JudgeArgs, current_settings, db_option, json_option, judge_options, n_ctx_option, open_store
from .output import progress_bar

if TYPE_CHECKING:
    from ..judging import Judge, JudgeSetup
    from ..store import Store
    from ..tune import Scored, Setting, Tuned


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

    teams = [[s] for s in judge.specs] + [[x.strip() for x in j.split(",") if x.strip()] for j in juries]
    judge = judge.resolved(db)
    setup = judge.setup()
    store = open_store(db)
    protocol = judge.protocol_name()
    settings = {"method": judge.method, "format": judge.verdict_format, "criteria": [x.name for x in setup.criteria],
                "selection": {"limit": limit, "sample": sample, "shortest": shortest},
                **({"protocol": protocol} if protocol else {})}
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


@judges.command("protocols")
@click.option("--show", default=None, metavar="NAME|PATH", help="print this protocol's templates (a name or a folder)")
@json_option()
def judges_protocols(show: str | None, as_json: bool) -> None:
    """The bundled judge protocols and families: kind, title, source, what each needs."""
    from ..present.format import to_json
    from ..protocols import bundled, load_protocol

    if show:
        return _show_protocol(load_protocol(show), as_json)
    rows = [_protocol_row(name, load_protocol(name)) for name in bundled()]
    if as_json:
        click.echo(to_json(rows))
        return
    for r in rows:
        needs = ", ".join([*(["a reference"] if r["needs"]["reference"] else []),
                           *(f"{a} call" for a in r["needs"]["auxiliary"])]) or "-"
        family = f"; a family, per item one of {', '.join(r['family'])}" if r.get("family") else ""
        click.echo(f"{r['name']:<36} {r['kind']:<9} {r['title']}\n{'':<36} source {r['source']}; needs {needs}{family}")


def _protocol_row(name: str, p: Any) -> dict[str, Any]:
    return {"name": name, **({"family": sorted(set(p.members.values()))} if p.members else {}), "kind": p.kind,
            "title": p.title,
            "builtin": p.builtin, "source": p.source,
            "needs": {"reference": p.needs_reference, "auxiliary": [a.name for a in p.auxiliary]}}


def _show_protocol(p: Any, as_json: bool) -> None:
    """One protocol's files as they are read (templates, rubrics, the built-in one's description)."""
    from ..present.format import to_json

    folder = Path(p.path)
    folder = folder if folder.is_dir() else folder.parent
    texts = {f.name: f.read_text(encoding="utf-8") for f in sorted(folder.iterdir())
             if f.suffix in (".txt", ".md") and f.is_file()}
    if as_json:
        click.echo(to_json({**_protocol_row(p.name, p), "files": texts}))
        return
    click.echo(f"{p.name}: {p.title}\nsource {p.source}\nfolder {folder} (copy it to write your own: --protocol PATH)")
    for name, text in texts.items():
        click.echo(f"\n--- {name} ---\n{text}")


@judges.command("tune")
@click.option("--judge", "spec", required=True, help="the judge to tune (one model spec)")
@click.option("--set", "gold_set", default="llmbar-natural", show_default=True,
              help="a bundled gold set (llm-judge judges sets) or a file of labelled pairs")
@click.option("--protocol", "protocols", multiple=True, metavar="NAME|PATH",
              help="a protocol to try (repeat; default: every bundled pairwise one the set fits, and llm-judge's own)")
@click.option("--judge-method", "methods", multiple=True, type=click.Choice(["plain", "weighted"]),
              help="a method to try (repeat; default both)")
@click.option("--verdict-format", "formats", multiple=True, type=click.Choice(["full", "winner"]),
              help="a verdict format to try with llm-judge's own protocol (repeat; default both)")
@click.option("--dev-share", type=float, default=0.5, show_default=True, help="the share of pairs the choice is made on")
@click.option("--split-seed", type=int, default=0, show_default=True, help="the seed of the dev / held-out split")
@click.option("--limit", type=int, default=None, help="only the first N pairs of the set")
@click.option("--sample", type=int, default=None, help="a random sample of N pairs (see --sample-seed)")
@click.option("--sample-seed", type=int, default=0, show_default=True)
@click.option("--shortest", is_flag=True, help="take the shortest pairs first (quick checks on slow judges)")
@click.option("--criteria", default=None, help="llm-judge's own protocol's criteria (default: its usual ones)")
@click.option("--judge-max-tokens", type=int, default=None, help="most tokens per verdict (default: llm-judge's)")
@n_ctx_option()
@db_option
@click.option("--quiet", is_flag=True, help="no progress bar")
@json_option()
def judges_tune(spec: str, gold_set: str, protocols: tuple[str, ...], methods: tuple[str, ...], formats: tuple[str, ...],
                dev_share: float, split_seed: int, limit: int | None, sample: int | None, sample_seed: int,
                shortest: bool, criteria: str | None, judge_max_tokens: int | None, n_ctx: int, db: str | None,
                quiet: bool, as_json: bool) -> None:
    """Choose the judge's protocol, method and format on a dev split; prove it on the held-out split."""
    from ..judges import load_gold
    from ..tune import FORMATS, METHODS, fitting_protocols, settings, split, tune

    candidates = settings(protocols or fitting_protocols(), methods or METHODS, formats or FORMATS)
    items = load_gold(gold_set, limit=limit, sample=sample, seed=sample_seed, shortest=shortest)
    split(items, dev_share, split_seed)  # a bad share or an empty part before any model loads
    store = open_store(db)
    progress = progress_bar(quiet or as_json)
    try:
        tuned = tune(spec, gold_set, items, store, _judge_for(spec, criteria, judge_max_tokens, n_ctx), candidates,
                     dev_share=dev_share, seed=split_seed, progress=progress.update if progress else None)
    finally:
        if progress:
            progress.stop()
    profile = tuned.profile()
    profile["id"] = store.add_profile(spec, gold_set, profile)
    _show_tuned(tuned, profile, as_json)


def _judge_for(spec: str, criteria: str | None, max_tokens: int | None, n_ctx: int) -> Callable[[Setting], Judge]:
    """The judge asked by a setting (the model is loaded once per process)."""
    from .. import defaults
    from ..criteria import Scale, parse_criteria
    from ..judging import load_judge
    from ..tune import OWN, judge_setup
    from .options import judge_sampling

    parsed, sampling = parse_criteria(criteria), judge_sampling(max_tokens or defaults.JUDGE_MAX_TOKENS)

    def judge_for(s: Setting) -> Judge:
        setup = judge_setup(parsed, Scale(), sampling, s.fmt or "full", s.method, None if s.protocol == OWN else s.protocol)
        return load_judge(spec, setup, n_ctx=n_ctx, settings=current_settings())
    return judge_for


def _show_tuned(tuned: Tuned, profile: dict[str, Any], as_json: bool) -> None:
    from ..present.format import to_json
    from ..tune import percent, profile_line

    if as_json:
        click.echo(to_json({"profile": profile, "dev": [_scored_row(s) for s in tuned.dev]}))
        return
    click.echo(f"dev: {tuned.chosen.card['items']} pairs of {tuned.gold_set} (split seed {tuned.seed}), best first")
    for s in tuned.dev:
        click.echo("  " + _scored_line(s))
    click.echo(f"chosen: {profile_line(profile)}")
    shown = [_label(profile)]
    for what in ("runner_up", "default"):
        other = profile.get(what)
        if other and _label(other) not in shown:
            shown.append(_label(other))
            held = other["heldout"]
            click.echo(f"{what.replace('_', '-')}: {_label(other)}: held-out {percent(held['accuracy'])} "
                       f"[{percent(held['low'], '')}, {percent(held['high'], '')}] ({held['items']} pairs)")
    click.echo(f"stored as the profile of {tuned.judge} (--protocol auto uses it)")


def _scored_row(s: Scored) -> dict[str, Any]:
    return {**s.setting.to_dict(), "accuracy": s.accuracy, "position_consistency": s.consistency,
            "seconds_per_item": s.seconds}


def _scored_line(s: Scored) -> str:
    from ..tune import percent

    secs = "-" if s.seconds is None else f"{s.seconds:.2f}"
    cons = "-" if s.consistency is None else f"{s.consistency:.2f}"
    return f"{s.setting.label:<40} accuracy {percent(s.accuracy):>4}  consistency {cons}  {secs} s/pair"


def _label(d: dict[str, Any]) -> str:
    return " ".join(str(d[k]) for k in ("protocol", "method", "format") if d.get(k))
