"""``llm-judge compare`` (two answers to one prompt, judged in both orders) and ``llm-judge run``
(a study: every prompt x candidate, stored and resumable).

Leaves out what a candidate, a study or a verdict is (``compare``, ``study``, ``verdicts``): these
commands read their options, call the library once and show what it returns.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from .. import defaults
from ..errors import LLMJudgeError
from ..sampling import PRESETS
from .options import (
    COMPARE,
    RUN,
    JudgeArgs,
    bootstrap_option,
    collect_sampling,
    current_settings,
    db_option,
    json_option,
    judge_options,
    n_ctx_option,
    open_store,
    sampling_options,
)
from .output import print_summary, progress_bar, stage_printer

if TYPE_CHECKING:
    from ..prompts import PromptItem
    from ..store import Store
    from ..study import StudyConfig
    from ..study.batched import BatchOptions, Waiting


@click.command()
@click.argument("prompt", required=False)
@click.option("--file", "prompt_file", help="read the prompt from this file")
@click.option("--model-a", default=defaults.MODEL, show_default=True, help="model spec of candidate A")
@click.option("--model-b", default=defaults.MODEL, show_default=True, help="model spec of candidate B")
@judge_options(COMPARE)
@click.option("--preset-a", default="p1", show_default=True, type=click.Choice(list(PRESETS)))
@click.option("--preset-b", default="p2", show_default=True, type=click.Choice(list(PRESETS)))
@sampling_options(("", "a", "b"))
@click.option("--mode", type=click.Choice(["pairwise", "single"]), default="pairwise", show_default=True)
@n_ctx_option("context size of local models")
@click.option("--db", default=None, help="the store holding the judge's tuned profile for --protocol auto "
              "(default: $LLM_JUDGE_DB or the user data dir)")
@json_option("print one JSON object instead of tables")
def compare(prompt: str | None, prompt_file: str | None, model_a: str, model_b: str, judge: JudgeArgs, preset_a: str,
            preset_b: str, mode: str, n_ctx: int, db: str | None, as_json: bool, **sampling: Any) -> None:
    """Two candidates answer PROMPT ('-' or a pipe: stdin); a judge rates both, in both orders."""
    from ..compare import compare as run_compare

    judge = judge.resolved(db)
    text = read_prompt(prompt, prompt_file)
    sampling_a = collect_sampling(sampling, preset_a, "a")
    sampling_b = collect_sampling(sampling, preset_b, "b")
    judge_sampling = judge.sampling()
    result = run_compare(text, model_a=model_a, model_b=model_b, judge=list(judge.specs), sampling_a=sampling_a,
                         sampling_b=sampling_b, criteria=judge.criteria, scale=judge.parsed_scale(), mode=mode,
                         judge_sampling=judge_sampling, n_ctx=n_ctx, judge_method=judge.method,
                         verdict_format=judge.verdict_format, on_stage=None if as_json else stage_printer(),
                         settings=current_settings(), **protocol_keyword(judge))
    known = _known_figures(result.judge_spec, db)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "judge_cards": known}, ensure_ascii=False, indent=2))
        return
    from ..present.terminal import print_comparison

    print_comparison(result)
    for line in known:
        click.echo(f"known: {line}")


def protocol_keyword(judge: JudgeArgs) -> dict[str, str]:
    """``protocol=NAME`` for the library where a protocol other than llm-judge's own is chosen (none
    otherwise: the library's default is llm-judge's own)."""
    name = judge.protocol_name()
    return {} if name is None else {"protocol": name}


def read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    """The prompt: from ``--file``, from stdin (``-`` or a pipe), or the argument itself."""
    if prompt_file:
        from ..textfiles import read_text

        return read_text(prompt_file, "prompt file")
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    return prompt or ""


def _known_figures(judge: str, db: str | None = None) -> list[str]:
    """The judge's stored cards, from ``db`` or the default store when there is one (none is created)."""
    from pathlib import Path

    from ..store import default_db_path

    if not (Path(db) if db else default_db_path()).is_file():
        return []
    from ..judges import known_figures

    try:
        return known_figures(open_store(db), judge)
    except LLMJudgeError:
        return []


@click.command()
@click.option("--prompts", "source", default=defaults.PROMPT_SET, show_default=True,
              help="built-in set (seed-10) or a file: .jsonl (also MT-Bench question.jsonl), .csv, or text lines")
@click.option("--candidate", "candidates", multiple=True, help="SPEC[@PRESET][#LABEL], repeat for each candidate")
@judge_options(RUN)
@click.option("--mode", type=click.Choice(["single", "pairwise", "both"]), default="single", show_default=True)
@click.option("--baseline", default=None, help="pairwise against this candidate label only")
@sampling_options(("",))
@click.option("--limit", type=int, default=None, help="only the first N prompts")
@click.option("--sample", type=int, default=None, help="a random sample of N prompts (see --sample-seed)")
@click.option("--sample-seed", type=int, default=0, show_default=True)
@click.option("--references", "references_file", default=None,
              help="reference answers by question id (MT-Bench's reference_answer/gpt-4.jsonl works as it is)")
@n_ctx_option()
@bootstrap_option("bootstrap resamples")
@click.option("--concurrency", type=int, default=None,
              help="requests in flight for remote models (overrides the endpoints' limits)")
@click.option("--repeat", type=int, default=1, show_default=True,
              help="judge each item N times and report the spread")
@click.option("--generate-only", is_flag=True,
              help="write the answers and stop; the same command without it judges them")
@click.option("--shard", default=None, metavar="K/N",
              help="run shard K of N only (a slice by prompt id, the same on every machine); "
                   "`llm-judge merge` joins the shards' stores")
@click.option("--batch", is_flag=True,
              help="send the OpenAI-compatible models' calls through their server's Batch API (half the price on "
                   "hosted APIs); the same command again picks up the run's batches")
@click.option("--batch-files", default=None, metavar="DIR",
              help="write the calls as request files in DIR for an offline engine (vLLM's run_batch) and read "
                   "its output files back on the next run of the same command")
@click.option("--batch-poll", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="seconds between two looks at a batch under way")
@db_option
@click.option("--quiet", is_flag=True, help="no progress bar")
@json_option("print the summary as JSON (with run_id)")
def run(source: str, candidates: tuple[str, ...], judge: JudgeArgs, mode: str, baseline: str | None,
        limit: int | None, sample: int | None, sample_seed: int, references_file: str | None, n_ctx: int,
        bootstrap: int, concurrency: int | None, repeat: int, generate_only: bool, shard: str | None, batch: bool,
        batch_files: str | None, batch_poll: float, db: str | None, quiet: bool, as_json: bool,
        **sampling: Any) -> None:
    """Run a study: every prompt x candidate, graded by the judge; stored and resumable."""
    from ..stats import check_resamples
    from ..study import run_study, summarize
    from ..study.batched import Incomplete
    from ..study.shard import Shard

    check_resamples(bootstrap)  # before any work, not after the study
    slice_ = None if shard is None else Shard.parse(shard)
    batching = _batch_options(batch, batch_files, batch_poll)
    judge = judge.resolved(db)
    prompts = _prompts(source, references_file, limit, sample, sample_seed)
    config = _study_config(prompts, candidates, judge, sampling, source=source, mode=mode, baseline=baseline,
                           n_ctx=n_ctx, repeat=repeat)
    store = open_store(db)
    progress = progress_bar(quiet or as_json)
    waiting = None
    try:
        run_id = run_study(config, store, progress.update if progress else None, concurrency=concurrency,
                           generate_only=generate_only, settings=current_settings(), shard=slice_, batch=batching)
    except Incomplete as stopped:  # request files written: their answers are not there yet
        waiting = stopped.waiting
    finally:
        if progress:
            progress.stop()
    if waiting is not None:
        _report_waiting(config.run_id(), waiting, as_json)
        return
    if generate_only:
        _report_answers(store, run_id, as_json)
        return
    print_summary(summarize(store, run_id, n_boot=bootstrap), as_json)


def _batch_options(batch: bool, folder: str | None, poll: float) -> BatchOptions | None:
    """How the run's calls go in batches (None: live), or one line for a contradiction."""
    from pathlib import Path

    from ..study.batched import BatchOptions

    if batch and folder:
        raise LLMJudgeError("--batch sends batches to the server and --batch-files writes them to a folder: give one")
    if poll <= 0:
        raise LLMJudgeError(f"--batch-poll {poll}: give a number of seconds above 0")
    if not (batch or folder):
        return None
    return BatchOptions(folder=Path(folder) if folder else None, poll=poll)


def _report_waiting(run_id: str, waiting: Waiting, as_json: bool) -> None:
    """A run stopped for its request files to be answered."""
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "status": "incomplete", "waiting_for": waiting.files}))
    else:
        click.echo(waiting.message(run_id))


def _prompts(source: str, references_file: str | None, limit: int | None, sample: int | None,
             seed: int) -> list[PromptItem]:
    """The prompts of a study: the set, its references (matched against the whole set), the selection."""
    from ..prompts import load_prompts, read_references, select, with_references

    prompts = load_prompts(source)
    if references_file:
        prompts = with_references(prompts, read_references(references_file))
    return select(prompts, limit=limit, sample=sample, seed=seed)


def _study_config(prompts: list[PromptItem], candidates: tuple[str, ...], judge: JudgeArgs,
                  sampling: dict[str, Any], **fields: Any) -> StudyConfig:
    """The checked study: the candidates (``embedded@p1`` and ``embedded@p2`` when none) and the judge."""
    from ..compare import Candidate, candidates_by_label
    from ..study import StudyConfig

    overrides = {k: v for k, v in sampling.items() if v is not None}
    texts = candidates or (f"{defaults.MODEL}@p1", f"{defaults.MODEL}@p2")
    cands = candidates_by_label(Candidate.parse(text, overrides) for text in texts)
    config = StudyConfig(
        prompts=prompts, candidates=cands, judge=judge.specs[0] if len(judge.specs) == 1 else list(judge.specs),
        judge_method=judge.method, verdict_format=judge.verdict_format, judge_sampling=judge.sampling(),
        criteria=judge.parsed_criteria(), scale=judge.parsed_scale(), **protocol_keyword(judge), **fields)
    config.validate(current_settings())
    return config


def _report_answers(store: Store, run_id: str, as_json: bool) -> None:
    """What ``run --generate-only`` wrote."""
    written = len(store.items(run_id, "generation"))
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "answers": written, "status": store.run(run_id)["status"]}))
    else:
        click.echo(f"run {run_id}: {written} answers stored; the same command without --generate-only judges them")
