"""The ``llm-judge`` command: parses the command line, calls the library, formats what it returns
(``present``). Every rule (a candidate's syntax, the context size, resamples) lives in the library."""

from __future__ import annotations

import json
import os
import sys

import click

from . import __version__
from .criteria import parse_scale
from .errors import LLMJudgeError
from .finetune.fast import TRAINERS
from .sampling import PRESETS, make_sampling

SAMPLING_FIELDS = [  # (option suffix, field, type, help)
    ("temperature", "temperature", float, "sampling temperature (0 = greedy)"),
    ("min-p", "min_p", float, "drop tokens below min_p x the top token's probability"),
    ("top-p", "top_p", float, "nucleus sampling threshold"),
    ("top-k", "top_k", int, "keep the k most likely tokens (0 = off)"),
    ("max-tokens", "max_tokens", int, "most tokens to generate"),
    ("seed", "seed", int, "sampling seed"),
    ("repeat-penalty", "repeat_penalty", float, "penalty for repeated tokens (1 = off)"),
]


def sampling_options(suffixes: tuple[str, ...]):
    """Add --FIELD-a/--FIELD-b (and a shared --FIELD) options for every sampling field."""
    def decorate(fn):
        for opt, field, typ, help_text in reversed(SAMPLING_FIELDS):
            for suffix in reversed(suffixes):
                name = f"--{opt}-{suffix}" if suffix else f"--{opt}"
                dest = f"{field}_{suffix}" if suffix else field
                who = f" for candidate {suffix.upper()}" if suffix else " for every candidate"
                fn = click.option(name, dest, type=typ, default=None, help=help_text + who)(fn)
        return fn
    return decorate


def judge_options(fn):
    """--judge (repeat: a jury), --judge-method and --verdict-format, for compare and run."""
    for option in reversed([
        click.option("--judge", "judges", multiple=True, default=("embedded",), show_default=True,
                     help="model spec of the judge; repeat for a jury (majority of the judges, each in both orders)"),
        click.option("--judge-method", type=click.Choice(["plain", "weighted"]), default="plain", show_default=True,
                     help="weighted: read the judge's probabilities and decide by the calibrated mean of both orders"),
        click.option("--verdict-format", type=click.Choice(["full", "winner"]), default="full", show_default=True,
                     help="winner: pairwise verdicts without reasons or scores (fast)")]):
        fn = option(fn)
    return fn


def collect_sampling(params: dict, preset: str | None, suffix: str):
    values = {}
    for _opt, field, _typ, _help in SAMPLING_FIELDS:
        shared = params.get(field)
        own = params.get(f"{field}_{suffix}")
        values[field] = own if own is not None else shared
    return make_sampling(preset, **values)


def read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    if prompt_file:
        from .textfiles import read_text

        return read_text(prompt_file, "prompt file")
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    return prompt or ""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llm-judge")
@click.option("--config", "config_file", default=None, envvar="LLM_JUDGE_CONFIG",
              help="TOML file naming models (default: ~/.config/llm-judge/config.toml)")
@click.option("--engine", type=click.Choice(["auto", "server", "inprocess"]), default=None, envvar="LLM_JUDGE_ENGINE",
              help="how local models run: llama.cpp's server with parallel slots, in this process one request at "
                   "a time, or auto (the server where it is built)  [default: auto]")
@click.option("--parallel", type=click.IntRange(1, 64), default=None, envvar="LLM_JUDGE_PARALLEL",
              help="requests a local model serves at once on the server engine  [default: 8]")
def cli(config_file, engine, parallel):
    """Compare language models by letting another model judge their answers."""
    from . import engine as engines

    engines.set_defaults(engine=engine, parallel=parallel)
    if config_file:
        import os
        from pathlib import Path

        if not Path(config_file).is_file():
            raise LLMJudgeError(f"config file not found: {config_file}")
        os.environ["LLM_JUDGE_CONFIG"] = config_file  # read where specs are resolved, in this process


@cli.command()
@click.argument("prompt", required=False)
@click.option("--file", "prompt_file", help="read the prompt from this file")
@click.option("--model-a", default="embedded", show_default=True, help="model spec of candidate A")
@click.option("--model-b", default="embedded", show_default=True, help="model spec of candidate B")
@judge_options
@click.option("--criteria", default="Relevance,Coherence,Completeness", show_default=True,
              help="comma-separated names from the catalogue, or name=description")
@click.option("--scale", default="1-4", show_default=True, help="rating scale LOW-HIGH")
@click.option("--preset-a", default="p1", show_default=True, type=click.Choice(list(PRESETS)))
@click.option("--preset-b", default="p2", show_default=True, type=click.Choice(list(PRESETS)))
@sampling_options(("", "a", "b"))
@click.option("--judge-max-tokens", type=int, default=512, show_default=True)
@click.option("--mode", type=click.Choice(["pairwise", "single"]), default="pairwise", show_default=True)
@click.option("--n-ctx", type=int, default=2048, show_default=True, help="context size of local models")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of tables")
def compare(prompt, prompt_file, model_a, model_b, judges, judge_method, verdict_format, criteria, scale, preset_a,
            preset_b, judge_max_tokens, mode, n_ctx, as_json, **sampling):
    """Two candidates answer PROMPT ('-' or a pipe: stdin); a judge rates both, in both orders."""
    from .compare import compare as run_compare
    from .sampling import JUDGE_DEFAULT

    text = read_prompt(prompt, prompt_file)
    sampling_a = collect_sampling(sampling, preset_a, "a")
    sampling_b = collect_sampling(sampling, preset_b, "b")
    judge_sampling = make_sampling(None, **dict(JUDGE_DEFAULT, max_tokens=judge_max_tokens))
    progress = None if as_json else _stage_printer()
    result = run_compare(text, model_a=model_a, model_b=model_b, judge=list(judges), sampling_a=sampling_a,
                         sampling_b=sampling_b, criteria=criteria, scale=parse_scale(scale), mode=mode,
                         judge_sampling=judge_sampling, n_ctx=n_ctx, judge_method=judge_method,
                         verdict_format=verdict_format, on_stage=progress)
    known = _known_figures(result.judge_spec)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "judge_cards": known}, ensure_ascii=False, indent=2))
    else:
        from .present.terminal import print_comparison
        print_comparison(result)
        for line in known:
            click.echo(f"known: {line}")


def _known_figures(judge: str) -> list[str]:
    """The judge's stored cards, from the default store when there is one (none is created)."""
    from .store import default_db_path

    if not default_db_path().is_file():
        return []
    from .judges import known_figures

    try:
        return known_figures(_store(None), judge)
    except LLMJudgeError:
        return []


def _stage_printer():
    def show(text: str):
        click.echo(f"... {text}", err=True)
    return show


def check_arguments(args: list[str]) -> None:
    """Each argument is UTF-8 text: Python hands over bytes that are not as lone surrogates
    (surrogateescape), which no prompt, file name or model spec should carry on."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise LLMJudgeError(f"the command-line argument '{_as_bytes(arg)}' is not UTF-8 text: write it in UTF-8 "
                                "(or put the text in a UTF-8 file)") from None


def _as_bytes(arg: str) -> str:
    """``arg`` as the bytes it came from, the ones that are not UTF-8 escaped (caf\\xe9)."""
    try:
        return os.fsencode(arg).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no byte gives (an argument list from Python, not a shell)
        return ascii(arg)[1:-1]


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    rc = 0
    try:
        check_arguments(sys.argv[1:] if argv is None else argv)
        rc = cli.main(args=argv, prog_name="llm-judge", standalone_mode=False)
    except LLMJudgeError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.UsageError as exc:
        hint = f" (see: llm-judge {exc.ctx.command.name} --help)" if exc.ctx and exc.ctx.command.name != "cli" else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return rc if isinstance(rc, int) else 0


# --- studies ----------------------------------------------------------------------------------

def _store(db):
    from .store import Store

    return Store(db)


db_option = click.option("--db", default=None, help="store path (default: $LLM_JUDGE_DB or the user data dir)")


@cli.command()
@click.option("--prompts", "source", default="seed-10", show_default=True,
              help="built-in set (seed-10) or a file: .jsonl (also MT-Bench question.jsonl), .csv, or text lines")
@click.option("--candidate", "candidates", multiple=True, help="SPEC[@PRESET][#LABEL], repeat for each candidate")
@judge_options
@click.option("--criteria", default="Relevance,Coherence,Completeness", show_default=True)
@click.option("--scale", default="1-4", show_default=True)
@click.option("--mode", type=click.Choice(["single", "pairwise", "both"]), default="single", show_default=True)
@click.option("--baseline", default=None, help="pairwise against this candidate label only")
@sampling_options(("",))
@click.option("--judge-max-tokens", type=int, default=512, show_default=True)
@click.option("--limit", type=int, default=None, help="only the first N prompts")
@click.option("--sample", type=int, default=None, help="a random sample of N prompts (see --sample-seed)")
@click.option("--sample-seed", type=int, default=0, show_default=True)
@click.option("--references", "references_file", default=None,
              help="reference answers by question id (MT-Bench's reference_answer/gpt-4.jsonl works as it is)")
@click.option("--n-ctx", type=int, default=2048, show_default=True)
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="bootstrap resamples")
@click.option("--concurrency", type=int, default=None,
              help="requests in flight for remote models (overrides the endpoints' limits)")
@click.option("--repeat", type=int, default=1, show_default=True,
              help="judge each item N times and report the spread")
@click.option("--generate-only", is_flag=True,
              help="write the answers and stop; the same command without it judges them")
@db_option
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON (with run_id)")
def run(source, candidates, judges, judge_method, verdict_format, criteria, scale, mode, baseline, judge_max_tokens,
        limit, sample, sample_seed, references_file, n_ctx, bootstrap, concurrency, repeat, generate_only, db, quiet,
        as_json, **sampling):
    """Run a study: every prompt x candidate, graded by the judge; stored and resumable."""
    from .compare import Candidate, candidates_by_label
    from .criteria import parse_criteria
    from .prompts import load_prompts, read_references, select, with_references
    from .sampling import JUDGE_DEFAULT
    from .stats import check_resamples
    from .study import StudyConfig, run_study, summarize

    check_resamples(bootstrap)  # before any work, not after the study
    prompts = load_prompts(source)
    if references_file:  # matched against the whole set, then the selection is taken
        prompts = with_references(prompts, read_references(references_file))
    prompts = select(prompts, limit=limit, sample=sample, seed=sample_seed)
    overrides = {k: v for k, v in sampling.items() if v is not None}
    cands = candidates_by_label(Candidate.parse(text, overrides) for text in candidates or ("embedded@p1", "embedded@p2"))
    config = StudyConfig(
        prompts=prompts, candidates=cands,
        judge=judges[0] if len(judges) == 1 else list(judges), judge_method=judge_method, verdict_format=verdict_format,
        judge_sampling=make_sampling(None, **dict(JUDGE_DEFAULT, max_tokens=judge_max_tokens)),
        criteria=parse_criteria(criteria), scale=parse_scale(scale), mode=mode, baseline=baseline, n_ctx=n_ctx,
        source=source, repeat=repeat)
    config.validate()
    store = _store(db)
    progress = None if (quiet or as_json) else _progress_bar()
    try:
        run_id = run_study(config, store, progress and progress.update, concurrency=concurrency,
                           generate_only=generate_only)
    finally:
        if progress:
            progress.stop()
    if generate_only:
        written = len(store.items(run_id, "generation"))
        if as_json:
            click.echo(json.dumps({"run_id": run_id, "answers": written, "status": store.run(run_id)["status"]}))
        else:
            click.echo(f"run {run_id}: {written} answers stored; the same command without --generate-only judges them")
        return
    summary = summarize(store, run_id, n_boot=bootstrap)
    _print_summary(summary, as_json)


class _progress_bar:
    def __init__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[flight]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False)
        self.tasks = {}
        self.bar.start()

    def update(self, stage: str, done: int, total: int, in_flight: int = 0):
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total, rate="", flight="")
        task = self.bar.tasks[self.tasks[stage]]
        rate = f"{task.speed:.2f}/s" if task.speed else ""
        flight = f"{in_flight} in flight" if in_flight else ""
        self.bar.update(self.tasks[stage], completed=done, total=total, rate=rate, flight=flight)

    def stop(self):
        self.bar.stop()


def _print_summary(summary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        return
    from .present.terminal import print_summary

    print_summary(summary)


@cli.command()
@db_option
@click.option("--json", "as_json", is_flag=True)
def runs(db, as_json):
    """List stored runs, newest first."""
    import datetime

    rows = [{"run_id": r["id"], "created": datetime.datetime.fromtimestamp(r["created_at"]).isoformat(" ", "seconds"),
             "status": r["status"], "prompts": r["n_prompts"], "candidates": r["n_candidates"],
             "judge": json.loads(r["config"])["judge"], "mode": json.loads(r["config"])["mode"]}
            for r in _store(db).runs()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no runs stored yet: start one with `llm-judge run`")
    for r in rows:
        click.echo(f"{r['run_id']}  {r['created']}  {r['status']:<10}  {r['prompts']} prompts x "
                   f"{r['candidates']} candidates  judge {r['judge']}  ({r['mode']})")


@cli.command()
@click.argument("run_id")
@click.option("--html", "html_path", default=None, help="write a self-contained HTML report here")
@click.option("--md", "md_path", default=None, help="write a Markdown report here")
@click.option("--bootstrap", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@db_option
def report(run_id, html_path, md_path, bootstrap, as_json, db):
    """Show a stored run's statistics; write HTML and Markdown reports."""
    from .present.report import write_report
    from .stats import check_resamples
    from .study import summarize

    check_resamples(bootstrap)
    store = _store(db)
    summary = summarize(store, run_id, n_boot=bootstrap)
    for path in (html_path, md_path):
        if path:
            write_report(store, summary, path, markdown=path == md_path)
            click.echo(f"wrote {path}", err=True)
    if not (html_path or md_path) or as_json:
        _print_summary(summary, as_json)


@cli.command()
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "verdicts"]), default="jsonl", show_default=True)
@click.option("--output", "-o", required=True, help="file to write")
@db_option
def export(run_id, fmt, output, db):
    """Export a stored run as CSV, JSONL, or pairwise verdicts (the `analyze` format)."""
    from .study import export_run

    n = export_run(_store(db), run_id, output, fmt)
    click.echo(f"wrote {n} rows to {output}", err=True)


@cli.command()
@click.argument("path")
@click.option("--bootstrap", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def analyze(path, bootstrap, as_json):
    """Win rates, position consistency and human agreement of a pairwise verdict file (JSONL)."""
    from .analyze import analyze as run_analyze
    from .analyze import read_verdicts

    result = run_analyze(read_verdicts(path), n_boot=bootstrap)
    if as_json:
        from .present.format import to_json

        click.echo(to_json(result))
        return
    from .present.terminal import analysis_lines

    for line in analysis_lines(result):
        click.echo(line)


@cli.command()
@click.argument("base", default="embedded")
@click.option("--data", default="tiny-instructions", show_default=True,
              help="chat JSONL (ShareGPT/FineTome or OpenAI messages), hf:DATASET, or the built-in tiny-instructions")
@click.option("--out", "out_dir", required=True, help="run folder: checkpoints, adapters, log, loss curve (resumes here)")
@click.option("--recipe", "recipe_name", default="seed", show_default=True, help="seed or seed-overfit (the seed's third model)")
@click.option("--set", "overrides", multiple=True,
              help="override a recipe value: NAME=VALUE (repeatable), e.g. learning_rate=1e-4")
@click.option("--steps", type=int, default=60, show_default=True, help="optimizer steps")
@click.option("--save-steps", default=None,
              help="steps to keep as checkpoints, comma-separated; the last step always  [default: a third of "
                   "--steps and the last, as the seed's 2,000 vs 6,150]")
@click.option("--merge", type=click.Choice(["f16", "q8_0"]), default=None,
              help="also write each checkpoint merged into a full GGUF")
@click.option("--base-gguf", default=None, help="for an hf:OWNER/REPO transformers base: the GGUF of it that llama.cpp runs")
@click.option("--limit", type=int, default=None, help="train on the first N conversations only")
@click.option("--threads", type=int, default=None, help="CPU threads for training (default: PyTorch's choice)")
@click.option("--trainer", type=click.Choice(TRAINERS), default="auto", show_default=True,
              help="auto: Unsloth on a CUDA GPU where it is installed, else PEFT")
@click.option("--then-study", is_flag=True, help="then compare base and checkpoints with the judge (pairwise, both orders)")
@click.option("--judge", default="embedded", show_default=True, help="judge of --then-study")
@click.option("--prompts", "source", default="seed-10", show_default=True, help="prompts of --then-study")
@click.option("--study-limit", type=int, default=None, help="only the first N prompts in --then-study")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="answer length in --then-study")
@click.option("--verdict-format", type=click.Choice(["full", "winner"]), default="full", show_default=True,
              help="verdicts of --then-study: with reasons and scores, or the winner only (fast)")
@db_option
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def finetune(base, data, out_dir, recipe_name, overrides, steps, save_steps, merge, base_gguf, limit, threads, trainer,
             then_study, judge, source, study_limit, max_tokens, verdict_format, db, as_json):
    """Fine-tune BASE with LoRA (the seed's recipe), export GGUF adapters, and optionally judge the checkpoints."""
    from pathlib import Path

    from .finetune import get_recipe, with_overrides
    from .finetune.train import FinetuneConfig, require_extra
    from .finetune.train import finetune as train

    require_extra()
    try:
        saves = [int(x) for x in save_steps.split(",") if x.strip()] if save_steps else [max(1, steps // 3)]
    except ValueError:
        raise LLMJudgeError(f"--save-steps {save_steps!r}: write step numbers separated by commas, e.g. 20,60") from None
    cfg = FinetuneConfig(base=base, data=data, out=Path(out_dir), recipe=with_overrides(get_recipe(recipe_name), overrides),
                         max_steps=steps, save_steps=saves, base_gguf=base_gguf, merge=merge, threads=threads,
                         limit=limit, trainer=trainer).check()
    study = None
    if then_study:  # checked before hours of training, not after
        from .finetune.study import checkpoint_config

        checkpoint_config(base, {"checkpoint": "adapter.gguf"}, judge, prompts=source, limit=study_limit,
                          max_tokens=max_tokens, verdict_format=verdict_format)
    bar = None if as_json else _progress_bar()
    say = (lambda text: None) if as_json else click.echo
    try:
        result = train(cfg, progress=bar and (lambda done, total, loss: bar.update(f"loss {loss:.3f}", done, total)),
                       notify=say)
    finally:
        if bar:
            bar.stop()
    if not as_json:
        click.echo(f"checkpoints in {cfg.out} (log.jsonl, loss.svg); as candidates:")
        for name, path in result["checkpoints"].items():
            click.echo(f"  {name}: {result['base']}+lora:{path}")
    if then_study:
        study = _checkpoint_study(result, judge, source, study_limit, max_tokens, verdict_format, db, as_json)
    if as_json:
        click.echo(json.dumps({**result, "study": study}, indent=2))


def _checkpoint_study(result: dict, judge: str, source: str, limit, max_tokens: int, verdict_format: str, db,
                      as_json: bool) -> dict:
    from .finetune.study import BASE_LABEL, checkpoint_config, progression
    from .present.format import fmt_estimate, fmt_p
    from .study import run_study, summarize

    config = checkpoint_config(result["base"], result["checkpoints"], judge, prompts=source, limit=limit,
                               max_tokens=max_tokens, verdict_format=verdict_format)
    store = _store(db)
    bar = None if as_json else _progress_bar()
    try:
        run_id = run_study(config, store, bar and bar.update)
    finally:
        if bar:
            bar.stop()
    steps = progression(summarize(store, run_id), [BASE_LABEL, *result["checkpoints"]])
    if not as_json:
        click.echo(f"study {run_id} (llm-judge report {run_id} for everything); judge {judge}, both orders:")
        for row in steps:
            click.echo(f"  {row['later']} vs {row['earlier']}: win rate {fmt_estimate(row['win_rate'])} "
                       f"({row['wins']} wins, {row['losses']} losses, {row['ties']} ties, {row['unscored']} unscored; "
                       f"sign test p={fmt_p(row['sign_test_p'])})")
    return {"run_id": run_id, "progression": [{**r, "win_rate": r["win_rate"].to_dict()} for r in steps]}


@cli.group()
def judges():
    """Know your judge: evaluate judges on gold-labelled pairs (judge cards)."""


@judges.command("eval")
@click.option("--judge", "judge_specs", multiple=True, help="a judge to evaluate (repeat: several side by side)")
@click.option("--jury", "juries", multiple=True, help="SPEC,SPEC,SPEC: a jury to evaluate (repeatable)")
@click.option("--set", "sets", multiple=True, default=("llmbar-natural",), show_default=True,
              help="a bundled gold set (llm-judge judges sets) or a file; repeat for several")
@click.option("--judge-method", "judge_method", type=click.Choice(["plain", "weighted"]), default="plain", show_default=True,
              help="weighted: read the judge's probabilities and calibrate over both orders")
@click.option("--verdict-format", type=click.Choice(["full", "winner"]), default="full", show_default=True,
              help="winner: the judge names the winner without reasons or scores (fast)")
@click.option("--criteria", default="Relevance,Coherence,Completeness", show_default=True)
@click.option("--scale", default="1-4", show_default=True)
@click.option("--judge-max-tokens", type=int, default=512, show_default=True)
@click.option("--limit", type=int, default=None, help="only the first N pairs of each set")
@click.option("--sample", type=int, default=None, help="a random sample of N pairs (see --sample-seed)")
@click.option("--sample-seed", type=int, default=0, show_default=True)
@click.option("--shortest", is_flag=True, help="take the shortest pairs first (quick checks on slow judges)")
@click.option("--n-ctx", type=int, default=2048, show_default=True)
@click.option("--export", "export_dir", default=None, help="write each card's per-pair verdicts (analyze format) here")
@db_option
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True)
def judges_eval(judge_specs, juries, sets, judge_method, verdict_format, criteria, scale, judge_max_tokens, limit,
                sample, sample_seed, shortest, n_ctx, export_dir, db, quiet, as_json):
    """Run judges on gold-labelled pairs in both orders and print their judge cards."""
    from .criteria import parse_criteria
    from .judges import card, card_from_verdict_file, evaluate, is_verdict_file, load_gold, records_jsonl
    from .judging import JudgeSetup, jury_name, load_judge
    from .present.format import to_json
    from .sampling import JUDGE_DEFAULT

    teams = [[s] for s in judge_specs] + [[x.strip() for x in j.split(",") if x.strip()] for j in juries]
    setup = JudgeSetup(parse_criteria(criteria), parse_scale(scale),
                       make_sampling(None, **dict(JUDGE_DEFAULT, max_tokens=judge_max_tokens)), verdict_format,
                       judge_method)
    store = _store(db)
    cards = []
    for source in sets:
        if is_verdict_file(source):
            cards.append(card_from_verdict_file(source))
            continue
        items = load_gold(source, limit=limit, sample=sample, seed=sample_seed, shortest=shortest)
        if not teams:
            raise LLMJudgeError("name a judge to evaluate: --judge SPEC (or --jury SPEC,SPEC,SPEC)")
        for team in teams:
            name = jury_name(team)
            judge = load_judge(team, setup, n_ctx=n_ctx)
            progress = None if (quiet or as_json) else _progress_bar()
            try:
                records = evaluate(judge, name, items, store, progress and progress.update)
            finally:
                if progress:
                    progress.stop()
            c = card(records, name, source, {"method": judge_method, "format": verdict_format,
                                             "criteria": [x.name for x in setup.criteria],
                                             "selection": {"limit": limit, "sample": sample, "shortest": shortest}})
            c["id"] = store.add_card(c)
            cards.append(c)
            if export_dir:
                from pathlib import Path

                out = Path(export_dir)
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"{c['id']}-{source.replace('/', '_')}.jsonl"
                path.write_text(records_jsonl(records))
    if as_json:
        click.echo(to_json(cards))
        return
    from .present.terminal import print_cards

    print_cards(cards)


@judges.command("list")
@click.option("--judge", default=None, help="only this judge's cards")
@db_option
@click.option("--json", "as_json", is_flag=True)
def judges_list(judge, db, as_json):
    """The stored judge cards, newest first."""
    from .present.format import to_json
    from .present.terminal import print_cards

    cards = _store(db).cards(judge)
    if as_json:
        click.echo(to_json(cards))
    elif not cards:
        click.echo("no judge cards stored yet: make one with `llm-judge judges eval --judge SPEC`")
    else:
        print_cards(cards)


@judges.command("sets")
def judges_sets():
    """The bundled gold-labelled sets."""
    from .judges import GOLD_SETS, PUBLISHED_GPT4, load_gold

    for name in GOLD_SETS:
        gpt4 = PUBLISHED_GPT4.get(name)
        click.echo(f"{name:<30} {len(load_gold(name)):>4} pairs" + (f"  (GPT-4, LLMBar: {gpt4:.1%})" if gpt4 else ""))


@cli.command()
@click.option("--check", is_flag=True, help="ping every endpoint and check every local file")
@click.option("--json", "as_json", is_flag=True)
def models(check, as_json):
    """List the built-in model, the spec forms and the models of the config file."""
    from .backends import check_model
    from .config import config_path, load_config

    rows = [{"name": "embedded", "spec": "embedded", "source": "built in",
             "description": "SmolLM2-135M-Instruct Q4_1 (for trying the pipeline)"}]
    rows += [{"name": e.name, "spec": e.spec, "source": str(config_path()), "description": e.description,
              **{k: v for k, v in e.options.items()}} for e in load_config().values()]
    if check:
        for row in rows:
            row["check"] = check_model(row["name"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        line = f"{row['name']:<16} {row['spec']}"
        if "concurrency" in row:
            line += f"  (concurrency {row['concurrency']})"
        if check:
            line += f"  -> {row['check']}"
        click.echo(line)
    click.echo("spec forms: embedded, gguf:PATH, hf:OWNER/REPO/FILE.gguf, openai:MODEL@BASE_URL; "
               f"name more in {config_path()}")
    if check and any(not r["check"].startswith("ok") for r in rows):
        click.get_current_context().exit(1)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--auth", default=None, envvar="LLM_JUDGE_UI_AUTH", help="USER:PASSWORD login (or $LLM_JUDGE_UI_AUTH)")
@click.option("--allow-dir", "allow_dirs", multiple=True,
              help="directory whose GGUF files visitors may load when listening beyond localhost (repeatable)")
@click.option("--allow-fake", is_flag=True, help="beyond localhost, let visitors use the scripted fake: models")
@click.option("--allow-downloads", is_flag=True, help="beyond localhost, let visitors download hf: models")
@click.option("--show-all-runs", is_flag=True,
              help="beyond localhost, list every stored run (the command line's too), not only the page's own")
@click.option("--max-upload-bytes", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="largest prompt file a visitor may upload for a study")
@click.option("--max-prompts", type=click.IntRange(1), default=100, show_default=True,
              help="most prompts in a study started from the page")
@click.option("--max-candidates", type=click.IntRange(1), default=4, show_default=True,
              help="most candidates in a study started from the page")
@click.option("--max-criteria", type=int, default=3, show_default=True)
@click.option("--n-ctx", type=int, default=2048, show_default=True)
@click.option("--concurrency", type=int, default=8, show_default=True,
              help="requests handled at once (a local model on the server engine serves 8 at once by default)")
@db_option
def ui(host, port, auth, allow_dirs, allow_fake, allow_downloads, show_all_runs, max_upload_bytes, max_prompts,
       max_candidates, max_criteria, n_ctx, concurrency, db):
    """Open the web page: compare, run studies, vote (http://127.0.0.1:7860)."""
    from pathlib import Path

    try:
        from .present.page import StudyLimits
        from .ui import launch
    except ImportError as exc:
        raise LLMJudgeError(f"the web page needs gradio ({exc.name} is missing): pip install 'llm-judge[ui]'") from None
    login = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise LLMJudgeError("--auth takes USER:PASSWORD")
        login = (user, password)
    if max_criteria < 1:
        raise LLMJudgeError("--max-criteria must be at least 1")
    click.echo(f"llm-judge page on http://{host}:{port} (Ctrl-C stops it)", err=True)
    launch(host=host, port=port, auth=login, allowed_dirs=[Path(d) for d in allow_dirs], max_criteria=max_criteria,
           db=db, n_ctx=n_ctx, concurrency=concurrency, allow_fake=allow_fake, allow_downloads=allow_downloads,
           show_all_runs=show_all_runs, limits=StudyLimits(max_upload_bytes, max_prompts, max_candidates))


# last: every command is defined by now (``python -m llm_judge.cli run`` as well as ``python -m llm_judge``)
if __name__ == "__main__":
    sys.exit(main())
