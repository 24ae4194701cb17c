"""The ``llm-judge`` command: parses input, calls one library function, formats the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .criteria import parse_scale
from .errors import LLMJudgeError
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


def collect_sampling(params: dict, preset: str | None, suffix: str):
    values = {}
    for _opt, field, _typ, _help in SAMPLING_FIELDS:
        shared = params.get(field)
        own = params.get(f"{field}_{suffix}")
        values[field] = own if own is not None else shared
    return make_sampling(preset, **values)


def read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    if prompt_file:
        path = Path(prompt_file)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LLMJudgeError(f"prompt file not found: {path}") from None
        except OSError as exc:
            raise LLMJudgeError(f"cannot read prompt file {path}: {exc.strerror}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LLMJudgeError(f"prompt file {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    return prompt or ""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llm-judge")
def cli():
    """Compare language models by letting another model judge their answers."""


@cli.command()
@click.argument("prompt", required=False)
@click.option("--file", "prompt_file", help="read the prompt from this file")
@click.option("--model-a", default="embedded", show_default=True, help="model spec of candidate A")
@click.option("--model-b", default="embedded", show_default=True, help="model spec of candidate B")
@click.option("--judge", default="embedded", show_default=True, help="model spec of the judge")
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
def compare(prompt, prompt_file, model_a, model_b, judge, criteria, scale, preset_a, preset_b,
            judge_max_tokens, mode, n_ctx, as_json, **sampling):
    """Two candidates answer PROMPT ('-' or a pipe: stdin); a judge rates both, in both orders."""
    from .compare import compare as run_compare
    from .sampling import JUDGE_DEFAULT

    text = read_prompt(prompt, prompt_file)
    sampling_a = collect_sampling(sampling, preset_a, "a")
    sampling_b = collect_sampling(sampling, preset_b, "b")
    judge_sampling = make_sampling(None, **dict(JUDGE_DEFAULT, max_tokens=judge_max_tokens))
    if n_ctx < 256:
        raise LLMJudgeError(f"--n-ctx {n_ctx} is too small: use at least 256 (default 2048)")
    progress = None if as_json else _stage_printer()
    result = run_compare(text, model_a=model_a, model_b=model_b, judge=judge, sampling_a=sampling_a,
                         sampling_b=sampling_b, criteria=criteria, scale=parse_scale(scale), mode=mode,
                         judge_sampling=judge_sampling, n_ctx=n_ctx, on_stage=progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        from .render import print_comparison
        print_comparison(result)


def _stage_printer():
    def show(text: str):
        click.echo(f"... {text}", err=True)
    return show


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    rc = 0
    try:
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


if __name__ == "__main__":
    sys.exit(main())
