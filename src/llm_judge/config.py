"""Named models from a TOML file, so that a study's command line stays short.

    # ~/.config/llm-judge/config.toml (or $LLM_JUDGE_CONFIG, or --config)
    [models.judge]
    spec = "openai:gpt-4o@https://api.openai.com/v1"
    key_env = "OPENAI_API_KEY"   # the variable holding the key; the key itself never goes here
    concurrency = 16             # requests in flight to this endpoint
    timeout = 120                # seconds per request
    max_attempts = 4

    [models.tuned]
    spec = "gguf:/models/base.gguf+lora:/runs/a/step-0060.gguf"
    parallel = 4                 # a local model: slots on the server engine (engine = "inprocess" to opt out)

A configured name is used wherever a spec is: ``--judge judge``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .backends import check_names
from .errors import LLMJudgeError

OPTION_TYPES = {"key_env": str, "concurrency": int, "timeout": (int, float), "max_attempts": int,
                "schema_mode": str, "engine": str, "parallel": int}
KEYS = {"spec", "description", *OPTION_TYPES}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    spec: str
    options: dict = field(default_factory=dict)
    description: str = ""


def config_path() -> Path:
    env = os.environ.get("LLM_JUDGE_CONFIG")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("llm-judge")) / "config.toml"


def parse_config(text: str, where: str) -> dict[str, ModelEntry]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LLMJudgeError(f"{where} is not valid TOML: {exc}") from None
    unknown_top = set(data) - {"models"}
    if unknown_top:
        raise LLMJudgeError(f"{where}: unknown section {sorted(unknown_top)[0]!r} (only [models.NAME] is read)")
    entries = {}
    for name, table in (data.get("models") or {}).items():
        if not isinstance(table, dict):
            raise LLMJudgeError(f"{where}: models.{name} must be a table with spec = \"...\"")
        check_names(table, KEYS, f"{where}: models.{name}", "key")  # the rule get_backend applies to options
        if not isinstance(table.get("spec"), str) or not table["spec"].strip():
            raise LLMJudgeError(f"{where}: models.{name} needs spec = \"PREFIX:...\"")
        if ":" in name or name == "embedded":
            raise LLMJudgeError(f"{where}: model name {name!r} would shadow a spec; choose a plain name")
        options = {}
        for key, typ in OPTION_TYPES.items():
            if key in table:
                if isinstance(table[key], bool) or not isinstance(table[key], typ):
                    raise LLMJudgeError(f"{where}: models.{name}.{key} has the wrong type ({table[key]!r})")
                options[key] = table[key]
        entries[name] = ModelEntry(name, table["spec"].strip(), options, str(table.get("description", "")))
    return entries


_cache: dict[tuple, dict[str, ModelEntry]] = {}


def load_config(path: Path | None = None) -> dict[str, ModelEntry]:
    """The configured models ({} when there is no file); re-read when the file changes."""
    path = path or config_path()
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


def resolve(spec: str) -> tuple[str, dict]:
    """A configured name -> (its spec, its options); any other spec is returned as it is."""
    entry = load_config().get(spec.strip()) if spec and ":" not in spec else None
    return (entry.spec, dict(entry.options)) if entry else (spec, {})
