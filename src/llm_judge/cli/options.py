"""The options several commands share, declared once: the judge options (one decorator for
``compare``, ``run``, ``judges eval`` and ``judges tune``), sampling, ``--n-ctx``, ``--db``,
``--json``; and turning their values into the library's objects (sampling parameters, the judge's
setup with its protocol, the store). ``--protocol auto`` reads the judge's tuned profile
(``tune``) and says where it came from; options given on the command line stay as given.

Leaves out every command (``compare``, ``runs``, ... declare their own options and call the
library) and every rule: criteria, scales and sampling are checked by ``criteria`` and ``sampling``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from .. import defaults
from ..errors import LLMJudgeError
from ..sampling import SamplingParams, make_sampling

if TYPE_CHECKING:
    from ..config import Settings
    from ..criteria import Criterion, Scale
    from ..judging import JudgeSetup
    from ..store import Store

Command = Callable[..., Any]
Decorator = Callable[[Command], Command]

SAMPLING_FIELDS: list[tuple[str, str, type, str]] = [  # (option suffix, field, type, help)
    ("temperature", "temperature", float, "sampling temperature (0 = greedy)"),
    ("min-p", "min_p", float, "drop tokens below min_p x the top token's probability"),
    ("top-p", "top_p", float, "nucleus sampling threshold"),
    ("top-k", "top_k", int, "keep the k most likely tokens (0 = off)"),
    ("max-tokens", "max_tokens", int, "most tokens to generate"),
    ("seed", "seed", int, "sampling seed"),
    ("repeat-penalty", "repeat_penalty", float, "penalty for repeated tokens (1 = off)"),
]

METHOD_HELP = "weighted: read the judge's probabilities and decide by the calibrated mean of both orders"
FORMAT_HELP = "winner: pairwise verdicts without reasons or scores (fast)"
PROTOCOL_HELP = ("how the judge is asked and read: a protocol name (llm-judge judges protocols), a folder of "
                 "your own, or auto (the judge's tuned profile, from llm-judge judges tune); default llm-judge's own")
AUTO = "auto"


def apply(options: list[Decorator], fn: Command) -> Command:
    """``fn`` with ``options`` applied so that ``--help`` lists them in the order given."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def sampling_options(suffixes: tuple[str, ...]) -> Decorator:
    """Add --FIELD-a/--FIELD-b (and a shared --FIELD) options for every sampling field."""
    def decorate(fn: Command) -> Command:
        return apply([_sampling_option(opt, field, typ, text, suffix)
                      for opt, field, typ, text in SAMPLING_FIELDS for suffix in suffixes], fn)
    return decorate


def _sampling_option(opt: str, field: str, typ: type, help_text: str, suffix: str) -> Decorator:
    name = f"--{opt}-{suffix}" if suffix else f"--{opt}"
    dest = f"{field}_{suffix}" if suffix else field
    who = f" for candidate {suffix.upper()}" if suffix else " for every candidate"
    return click.option(name, dest, type=typ, default=None, help=help_text + who)


def collect_sampling(params: dict[str, Any], preset: str | None, suffix: str) -> SamplingParams:
    """One candidate's sampling: its own --FIELD-SUFFIX, else the shared --FIELD, over ``preset``."""
    values = {}
    for _opt, field, _typ, _help in SAMPLING_FIELDS:
        own = params.get(f"{field}_{suffix}")
        values[field] = own if own is not None else params.get(field)
    return make_sampling(preset, **values)


def judge_sampling(max_tokens: int) -> SamplingParams:
    """The judge's sampling: greedy, at most ``max_tokens`` per verdict."""
    from ..sampling import JUDGE_DEFAULT

    return make_sampling(None, **dict(JUDGE_DEFAULT, max_tokens=max_tokens))


# --- the judge options -------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeWording:
    """Where one command's judge options differ from the others': the judge's defaults and texts."""

    judge_default: tuple[str, ...] = (defaults.MODEL,)
    judge_help: str = "model spec of the judge; repeat for a jury (majority of the judges, each in both orders)"
    method_help: str = METHOD_HELP
    format_help: str = FORMAT_HELP
    criteria_help: str | None = None
    scale_help: str | None = None


COMPARE = JudgeWording(criteria_help="comma-separated names from the catalogue, or name=description",
                       scale_help="rating scale LOW-HIGH")
RUN = JudgeWording()
EVAL = JudgeWording(judge_default=(), judge_help="a judge to evaluate (repeat: several side by side)",
                    method_help="weighted: read the judge's probabilities and calibrate over both orders",
                    format_help="winner: the judge names the winner without reasons or scores (fast)")


@dataclass(frozen=True)
class JudgeArgs:
    """The judge options as given; parsed when the command asks, so its errors come in its order."""

    specs: tuple[str, ...]
    method: str
    verdict_format: str
    criteria: str
    scale: str
    max_tokens: int
    protocol: str | None = None  # None: llm-judge's own; AUTO: the judge's tuned profile (``resolved``)
    given: frozenset[str] = frozenset()  # the fields given on the command line (a profile leaves them)

    def sampling(self) -> SamplingParams:
        return judge_sampling(self.max_tokens)

    def parsed_criteria(self) -> list[Criterion]:
        from ..criteria import parse_criteria

        return parse_criteria(self.criteria)

    def parsed_scale(self) -> Scale:
        from ..criteria import parse_scale

        return parse_scale(self.scale)

    def protocol_name(self) -> str | None:
        """The protocol to pass to the library: None for llm-judge's own (whatever it was called)."""
        from ..tune import OWN

        if self.protocol in (None, OWN):
            return None
        if self.protocol == AUTO:
            raise RuntimeError("--protocol auto is read from the store first (JudgeArgs.resolved)")
        from ..protocols import load_protocol

        return None if load_protocol(self.protocol).builtin else self.protocol

    def setup(self) -> JudgeSetup:
        """How the judge is asked: criteria, scale, sampling, format, method and protocol."""
        from ..tune import judge_setup

        return judge_setup(self.parsed_criteria(), self.parsed_scale(), self.sampling(), self.verdict_format,
                           self.method, self.protocol_name())

    def resolved(self, db: str | None) -> JudgeArgs:
        """These options with ``--protocol auto`` replaced by the judge's tuned profile (told on stderr)."""
        return self._with_profile(db) if self.protocol == AUTO else self

    def _with_profile(self, db: str | None) -> JudgeArgs:
        from dataclasses import replace

        from ..tune import profile_choice

        if len(self.specs) != 1:
            raise LLMJudgeError("--protocol auto reads one judge's tuned profile: name one --judge, "
                                "or a protocol for the jury")
        profile = stored_profile(db, self.specs[0])
        choice = profile_choice(self.specs[0], profile)
        click.echo(choice.note if profile is not None else f"note: {choice.note}", err=True)
        if profile is None:
            return replace(self, protocol=None)
        return replace(self, protocol=choice.protocol,
                       method=self.method if "method" in self.given else choice.method,
                       verdict_format=self.verdict_format if "verdict_format" in self.given else choice.fmt)


JUDGE_FIELDS = {"judges": "specs", "judge_method": "method", "verdict_format": "verdict_format",
                "criteria": "criteria", "scale": "scale", "judge_max_tokens": "max_tokens", "protocol": "protocol"}


def judge_options(wording: JudgeWording = RUN) -> Decorator:
    """--judge (repeat: a jury), --judge-method, --verdict-format, --criteria, --scale and
    --judge-max-tokens; the command receives them as one ``judge: JudgeArgs``."""
    def decorate(fn: Command) -> Command:
        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            args = JudgeArgs(**{field: kwargs.pop(name) for name, field in JUDGE_FIELDS.items()},
                             given=_given(JUDGE_FIELDS))
            return fn(judge=args, **kwargs)
        return apply(_judge_declarations(wording), command)
    return decorate


def _given(fields: dict[str, str]) -> frozenset[str]:
    """The fields whose options were given on the command line (or by the environment)."""
    ctx = click.get_current_context()
    explicit = {click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT}
    return frozenset(field for name, field in fields.items() if ctx.get_parameter_source(name) in explicit)


def _judge_declarations(wording: JudgeWording) -> list[Decorator]:
    return [
        click.option("--judge", "judges", multiple=True, default=wording.judge_default, help=wording.judge_help,
                     show_default=bool(wording.judge_default)),
        judge_method_option(wording.method_help),
        verdict_format_option(wording.format_help),
        click.option("--criteria", default=defaults.CRITERIA_TEXT, show_default=True, help=wording.criteria_help),
        click.option("--scale", default=defaults.SCALE, show_default=True, help=wording.scale_help),
        click.option("--judge-max-tokens", type=int, default=defaults.JUDGE_MAX_TOKENS, show_default=True),
        click.option("--protocol", default=None, metavar="NAME|PATH|auto", help=PROTOCOL_HELP)]


def judge_method_option(help_text: str = METHOD_HELP) -> Decorator:
    return click.option("--judge-method", type=click.Choice(["plain", "weighted"]), default="plain",
                        show_default=True, help=help_text)


def verdict_format_option(help_text: str = FORMAT_HELP) -> Decorator:
    return click.option("--verdict-format", type=click.Choice(["full", "winner"]), default="full",
                        show_default=True, help=help_text)


# --- local models, the store, output -----------------------------------------------------------

def n_ctx_option(help_text: str | None = None) -> Decorator:
    return click.option("--n-ctx", type=int, default=defaults.N_CTX, show_default=True, help=help_text)


def bootstrap_option(help_text: str | None = None) -> Decorator:
    return click.option("--bootstrap", type=int, default=defaults.BOOTSTRAP, show_default=True, help=help_text)


db_option: Decorator = click.option("--db", default=None,
                                    help="store path (default: $LLM_JUDGE_DB or the user data dir)")


def json_option(help_text: str | None = None) -> Decorator:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def current_settings() -> Settings:
    """The command's one ``Settings`` (built by the group from --config, --engine, --parallel)."""
    from ..config import Settings

    found = click.get_current_context().find_root().obj
    return found if isinstance(found, Settings) else Settings.from_env()


def stored_profile(db: str | None, judge: str) -> dict[str, Any] | None:
    """The judge's latest tuned profile in ``db`` (or the default store); no store is created to find none."""
    from pathlib import Path

    from ..store import default_db_path

    if not (Path(db).expanduser() if db else default_db_path()).is_file():
        return None
    return open_store(db).profile(judge)


def open_store(db: str | None) -> Store:
    """The store at ``db`` (default: $LLM_JUDGE_DB or the user data dir)."""
    from ..store import Store

    return Store(db)
