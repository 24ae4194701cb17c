"""The settings a process runs under (``Settings``) and named models from a TOML file, so that a
study's command line stays short.

    # ~/.config/llm-judge/config.toml (or $LLM_JUDGE_CONFIG, or --config)
    [models.judge]
    spec = "openai:gpt-4o@https://api.openai.com/v1"
    key_env = "OPENAI_API_KEY"   # the variable holding the key; the key itself never goes here
    concurrency = 16             # requests in flight to this endpoint
    timeout = 120                # seconds per request
    max_attempts = 4

    [models.fleet]                 # replicas of one model: calls go to the least busy
    spec = "openai:Qwen/Qwen2.5-7B-Instruct"
    base_url = ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"]   # written after the spec's @

    [models.tuned]
    spec = "gguf:/models/base.gguf+lora:/runs/a/step-0060.gguf"
    parallel = 4                 # a local model: slots on the server engine (engine = "inprocess" to opt out)
    flash_attention = true       # a local model: llama.cpp's flash attention, in both engines (faster; other text)

A configured name is used wherever a spec is: ``--judge judge``.

The environment (``LLM_JUDGE_ENGINE``, ``LLM_JUDGE_PARALLEL``, ``LLM_JUDGE_FLASH_ATTENTION``,
``LLM_JUDGE_CONFIG``) is read in one place, :meth:`Settings.from_env` (the CLI's ``--engine``,
``--parallel`` and ``--config`` also take their variables through click, which checks a variable's
value as it checks the option's); nothing here keeps process-wide state but the parsed files, keyed
by path, size and time. This module knows no backend: a table's option keys are checked against
the names and types the backends declare (``known``, given by ``backends``), and each entry's
options against its own backend's ``Options`` where the model is loaded.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from .errors import LLMJudgeError

Engine = Literal["auto", "server", "inprocess"]
ENGINES: tuple[str, ...] = get_args(Engine)
ENV_ENGINE, ENV_PARALLEL, ENV_CONFIG = "LLM_JUDGE_ENGINE", "LLM_JUDGE_PARALLEL", "LLM_JUDGE_CONFIG"
ENV_FLASH_ATTENTION = "LLM_JUDGE_FLASH_ATTENTION"
_BOOLEANS = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),  # the words click takes for a flag
             **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False)}
TABLE_KEYS = ("spec", "description", "base_url")  # a [models.NAME] table's own keys; the rest are load options


@dataclass(frozen=True)
class Settings:
    """What a process runs local models on and where it finds its named models: built once (by
    the CLI from its options, by the page, or from the environment) and passed down; part of
    what a loaded model is (the model cache's key).

    >>> Settings.from_env(engine="inprocess", parallel=2).engine
    'inprocess'
    """

    engine: Engine | None = None  # None: auto (the server where it is built, else in-process)
    parallel: int | None = None  # slots of a local server; None: engine.DEFAULT_PARALLEL
    config: Path | None = None  # the config file; None: the user's (platformdirs)
    # llama.cpp's flash attention for local models, in both engines; None: off (engine.FLASH_ATTENTION)
    flash_attention: bool | None = None

    def __post_init__(self) -> None:
        check_engine(self.engine)
        if self.parallel is not None and (isinstance(self.parallel, bool) or self.parallel < 1):
            raise LLMJudgeError(f"parallel {self.parallel}: a local server needs at least 1 slot")
        if self.flash_attention is not None and not isinstance(self.flash_attention, bool):
            raise LLMJudgeError(f"flash_attention {self.flash_attention!r}: give true or false")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The environment's settings, with the ``overrides`` that are not None (engine,
        parallel, config, flash_attention) taking their place: the one place these variables are read."""
        env = os.environ if environ is None else environ
        read = {"engine": lambda: env.get(ENV_ENGINE) or None, "parallel": lambda: _int_env(env, ENV_PARALLEL),
                "config": lambda: Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None,
                "flash_attention": lambda: _bool_env(env, ENV_FLASH_ATTENTION)}
        given = {k: v for k, v in overrides.items() if v is not None}  # a variable is read only where nothing overrides it
        values: dict[str, Any] = {k: from_variable() for k, from_variable in read.items() if k not in given} | given
        if values["config"] is not None:
            values["config"] = Path(values["config"])
        return cls(**values)

    @property
    def config_file(self) -> Path:
        """The config file these settings read (it need not exist)."""
        if self.config is not None:
            return self.config
        from platformdirs import user_config_dir

        return Path(user_config_dir("llm-judge")) / "config.toml"


def check_engine(engine: str | None) -> Engine | None:
    """``engine`` where it is one of ``ENGINES`` (or None), else the one-line error."""
    if engine is not None and engine not in ENGINES:
        raise LLMJudgeError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    return cast("Engine | None", engine)


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    text = (env.get(name) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise LLMJudgeError(f"{name}={text!r} is not a whole number: set it to the slots a local server has") from None


def _bool_env(env: Mapping[str, str], name: str) -> bool | None:
    text = (env.get(name) or "").strip()
    if not text:
        return None
    if text.lower() not in _BOOLEANS:
        raise LLMJudgeError(f"{name}={text!r} is not on or off: set it to 1 or 0 (or unset it)")
    return _BOOLEANS[text.lower()]


def settings_or_env(settings: Settings | None) -> Settings:
    """The settings a library caller passed, or else the environment's."""
    return settings if settings is not None else Settings.from_env()


@dataclass(frozen=True)
class ModelEntry:
    name: str
    spec: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


# option name -> whether a value is of a type some backend takes for it (given by ``backends``)
KnownOptions = Mapping[str, Callable[[object], bool]]


def check_names(given: Iterable[str], known: Iterable[str], where: str, noun: str = "option") -> None:
    """The one rule for option names (load options, the config file's keys): a name not known is
    an error that names the known ones.

    >>> check_names(["timout"], ["timeout", "key_env"], "model openai:m@http://h/v1")
    Traceback (most recent call last):
    llm_judge.errors.LLMJudgeError: model openai:m@http://h/v1 has unknown option 'timout' (did you mean 'timeout'? \
known: key_env, timeout)
    """
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, 1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise LLMJudgeError(f"{where} has unknown {noun} {unknown[0]!r} ({hint}known: {', '.join(known) or 'none'})")


def _known_options() -> KnownOptions:
    from .backends.registry import option_types  # the names and types the backends declare

    return option_types()


def parse_config(text: str, where: str, known: KnownOptions | None = None) -> dict[str, ModelEntry]:
    """The ``[models.NAME]`` tables of a config file's text; ``known``: the option names and their
    type checks (by default every registered backend's ``Options``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LLMJudgeError(f"{where} is not valid TOML: {exc}") from None
    unknown_top = set(data) - {"models"}
    if unknown_top:
        raise LLMJudgeError(f"{where}: unknown section {sorted(unknown_top)[0]!r} (only [models.NAME] is read)")
    known = _known_options() if known is None else known
    return {name: _entry(name, table, where, known) for name, table in (data.get("models") or {}).items()}


def _entry(name: str, table: object, where: str, known: KnownOptions) -> ModelEntry:
    """One ``[models.NAME]`` table, its keys and their types checked."""
    if not isinstance(table, dict):
        raise LLMJudgeError(f"{where}: models.{name} must be a table with spec = \"...\"")
    check_names(table, [*TABLE_KEYS, *known], f"{where}: models.{name}", "key")  # the rule get_backend applies
    if not isinstance(table.get("spec"), str) or not table["spec"].strip():
        raise LLMJudgeError(f"{where}: models.{name} needs spec = \"PREFIX:...\"")
    if ":" in name or name == "embedded":
        raise LLMJudgeError(f"{where}: model name {name!r} would shadow a spec; choose a plain name")
    options = {k: v for k, v in table.items() if k not in TABLE_KEYS}
    for key, value in options.items():
        if not known[key](value):
            raise LLMJudgeError(f"{where}: models.{name}.{key} has the wrong type ({value!r})")
    spec = with_base_url(table["spec"].strip(), table.get("base_url"), f"{where}: models.{name}")
    return ModelEntry(name, spec, options, str(table.get("description", "")))


def with_base_url(spec: str, base_url: object, where: str) -> str:
    """A table's spec with its ``base_url`` (one URL, or a list: replicas of one model) written
    after an ``@``, as a spec names a server (each URL is checked by the model's backend).

    >>> with_base_url("openai:m", ["http://a/v1", "http://b/v1"], "models.m")
    'openai:m@http://a/v1,http://b/v1'
    """
    if base_url is None:
        return spec
    urls = [base_url] if isinstance(base_url, str) else base_url
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u.strip() for u in urls):
        raise LLMJudgeError(f"{where}.base_url must be a URL or a list of URLs, e.g. [\"http://a:8000/v1\"]")
    if "@" in spec.partition(":")[2]:
        raise LLMJudgeError(f"{where} names its server twice: write the URLs in base_url or after the spec's @, not both")
    return f"{spec}@{','.join(u.strip() for u in urls)}"


_cache: dict[tuple[str, int, int], dict[str, ModelEntry]] = {}


def load_config(path: Path | None = None, settings: Settings | None = None) -> dict[str, ModelEntry]:
    """The configured models ({} when there is no file); re-read when the file changes. ``path``
    by default: the settings' config file (the environment's settings where none are given)."""
    path = path or settings_or_env(settings).config_file
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _cache:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LLMJudgeError(f"cannot read the config file {path}: {exc}") from None
        _cache[key] = parse_config(text, str(path))
    return _cache[key]


def config_path(settings: Settings | None = None) -> Path:
    """The config file the settings (by default the environment's) read."""
    return settings_or_env(settings).config_file


def resolve(spec: str, settings: Settings | None = None) -> tuple[str, dict[str, Any]]:
    """A configured name -> (its spec, its options); any other spec is returned as it is."""
    entry = load_config(settings=settings).get(spec.strip()) if spec and ":" not in spec else None
    return (entry.spec, dict(entry.options)) if entry else (spec, {})
