"""The ``llm-judge`` command: parses the command line, calls the library, formats what it returns
(``present``). Every rule (a candidate's syntax, the context size, resamples) lives in the library.

This module holds the group (``--config``, ``--engine``, ``--parallel``, ``--flash-attention``), the
entry point ``main`` (user errors as one line and exit code 2) and the list of commands; each family of commands is a
module of its own (``compare``, ``runs``, ``merge``, ``analyze``, ``judges``, ``finetune``, ``models``,
``page``) and the options they share are declared once in ``options``. It leaves out every rule.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import LLMJudgeError
from .analyze import analyze
from .compare import compare, run
from .finetune import finetune
from .judges import judges
from .merge import merge
from .models import models
from .page import ui
from .runs import export, report, runs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llm-judge")
@click.option("--config", "config_file", default=None, envvar="LLM_JUDGE_CONFIG",
              help="TOML file naming models (default: ~/.config/llm-judge/config.toml)")
@click.option("--engine", type=click.Choice(["auto", "server", "inprocess"]), default=None, envvar="LLM_JUDGE_ENGINE",
              help="how local models run: llama.cpp's server with parallel slots, in this process one request at "
                   "a time, or auto (the server where it is built)  [default: auto]")
@click.option("--parallel", type=click.IntRange(1, 64), default=None, envvar="LLM_JUDGE_PARALLEL",
              help="requests a local model serves at once on the server engine  [default: 8]")
@click.option("--flash-attention/--no-flash-attention", "flash_attention", default=None,  # its variable: Settings
              help="llama.cpp's flash attention for local models, in either engine: faster on CPUs, but their "
                   "answers differ from those made without it (cached apart)  [default: off]")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, engine: str | None, parallel: int | None,
        flash_attention: bool | None) -> None:
    """Compare language models by letting another model judge their answers."""
    from ..config import Settings

    if config_file and not Path(config_file).is_file():
        raise LLMJudgeError(f"config file not found: {config_file}")
    ctx.obj = Settings.from_env(engine=engine, parallel=parallel, config=config_file,  # what every command passes down
                                flash_attention=flash_attention)


for _command in (compare, run, runs, report, export, merge, analyze, finetune, judges, models, ui):
    cli.add_command(_command)


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
    try:
        check_arguments(sys.argv[1:] if argv is None else argv)
        rc = cli.main(args=argv, prog_name="llm-judge", standalone_mode=False)
    except LLMJudgeError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()}{_help_hint(exc)}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    return rc if isinstance(rc, int) else 0


def _help_hint(exc: click.UsageError) -> str:
    """Where to read a subcommand's usage: `` (see: llm-judge run --help)``; none for the group."""
    command = exc.ctx.command.name if exc.ctx else None
    return f" (see: llm-judge {command} --help)" if command and command != "cli" else ""


__all__ = ["check_arguments", "cli", "main"]
