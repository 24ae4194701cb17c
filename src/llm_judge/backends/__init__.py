"""One small protocol every model backend implements, and the registry that resolves specs.

A model is named by one string, ``PREFIX:REST`` (or a bare word such as ``embedded``). A backend is
one module declaring ``PREFIXES`` (what it serves), ``OPTIONS`` (the load options it takes),
``from_spec(prefix, rest, **options)`` (a loaded ``Backend``) and ``check(prefix, rest, **options)``
(a health check that loads nothing). The modules of this package are found by looking, and other
packages' through the entry-point group ``llm_judge.backends`` (llm-judge's own scripted ``fake:``
backend in ``llm_judge.testing`` is registered that way, like any plugin). Adding a backend is
adding one module; nothing outside ``backends`` asks which backend it has.

    >>> from llm_judge.backends import parse_spec
    >>> parse_spec("gguf:/models/a.gguf")
    ('gguf', '/models/a.gguf')
    >>> parse_spec("embedded+lora:/runs/step-20.gguf")
    ('embedded', '+lora:/runs/step-20.gguf')
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from ..errors import LLMJudgeError
from ..sampling import SamplingParams

Messages = list[dict[str, str]]
TokenCallback = Callable[[str], None]
ReadAt = Callable[[str], list[int]]
TOP_TOKENS = 40  # tokens reported at each decision


@dataclass
class Completion:
    """What one generation produced, with its cost."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    finish_reason: str | None = None
    logprobs: Any = None  # the server's per-token log probabilities, where it gives them
    # what the model's next-token distribution was where ``read_at`` pointed: for each offset,
    # {"offset", "start" (of the generated token there), "token", "top": {token text: probability}};
    # None where the backend cannot say (see weighting.py)
    decisions: list[dict] | None = None

    @property
    def tokens_per_second(self) -> float | None:
        if not self.completion_tokens or self.seconds <= 0:
            return None
        return self.completion_tokens / self.seconds


class Backend(Protocol):
    """A loaded model. ``generate`` streams through ``on_token`` when it is given."""

    spec: str
    concurrency: int  # calls it serves at once (an in-process model: 1, behind its lock)
    warnings: list[str]  # what it noticed while serving (a refused sampling field, plain-text verdicts)

    def generate(
        self,
        messages: Messages,
        sampling: SamplingParams,
        *,
        schema: dict | None = None,
        on_token: TokenCallback | None = None,
        read_at: ReadAt | None = None,
    ) -> Completion:
        """``read_at(text)`` names the offsets in the output where to report the next-token
        distribution (``Completion.decisions``)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts that identify the model (file hash, quantisation, server URL) for the store."""
        ...

    def special_tokens(self) -> frozenset[str]:
        """The texts of the model's own control tokens where known (empty where not)."""
        ...


MAX_LOADED = 4  # models kept loaded at once; the least recently used goes first
_loaded: OrderedDict[tuple, Backend] = OrderedDict()
_load_lock = threading.Lock()
_registry: dict[str, ModuleType] = {}
ENTRY_POINTS = "llm_judge.backends"


def registry() -> dict[str, ModuleType]:
    """prefix -> backend module: this package's modules, then the entry-point group's."""
    if not _registry:
        modules = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
        modules += [importlib.import_module(ep.value.split(":")[0])
                    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)]
        for module in modules:
            for prefix in getattr(module, "PREFIXES", ()):
                _registry.setdefault(prefix, module)
    return _registry


def _module(prefix: str) -> ModuleType:
    return registry()[prefix]


def _options(module: ModuleType, options: dict) -> dict:
    """The options this backend takes (callers pass the same options to every backend)."""
    return {k: v for k, v in options.items() if k in module.OPTIONS}


def parse_spec(spec: str) -> tuple[str, str]:
    """(prefix, rest) of a spec, after resolving a name from the config file."""
    from ..config import resolve

    spec = resolve((spec or "").strip())[0]
    if not spec:
        raise LLMJudgeError("empty model spec: use embedded, gguf:PATH, hf:REPO/FILE or openai:MODEL@URL")
    prefix, sep, rest = spec.partition(":")
    if "+" in prefix:  # embedded+lora:ADAPTER: the adapter stays with the rest
        prefix, _, extra = prefix.partition("+")
        rest = f"+{extra}{sep}{rest}"
    if prefix not in registry():
        raise LLMJudgeError(
            f"unknown model spec {spec!r}: use embedded, gguf:PATH, hf:REPO/FILE.gguf, "
            "openai:MODEL@BASE_URL or a name from the config file (llm-judge models)"
        )
    return prefix, rest


def get_backend(spec: str, **options: Any) -> Backend:
    """Resolve a spec (or configured name) to a loaded backend, once per (spec, options) per process.

    Options given here win over those of the config file; each backend gets the ones it takes
    (``n_ctx`` for local models, ``concurrency`` for servers, ...).
    """
    from ..config import resolve

    real, configured = resolve(spec.strip())
    prefix, rest = parse_spec(real)
    module = _module(prefix)
    options = _options(module, {**configured, **options})
    from ..engine import defaults_key

    # the process-wide engine choice (--engine/--parallel) is part of what was loaded
    key = (real.strip(), tuple(sorted(options.items())), defaults_key())
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = module.from_spec(prefix, rest, **options)
            while len(_loaded) > MAX_LOADED:
                _loaded.popitem(last=False)  # a call still holding it finishes; then it is freed
        _loaded.move_to_end(key)
        return _loaded[key]


def forget_backends() -> None:
    """Drop every loaded model (tests, and the UI's bounded cache)."""
    with _load_lock:
        _loaded.clear()


def check_model(name: str, **options: Any) -> str:
    """'ok: ...' or a one-line reason the model (a spec or configured name) cannot be used now."""
    from ..config import resolve

    spec, configured = resolve(name)
    try:
        prefix, rest = parse_spec(spec)
        module = _module(prefix)
        return module.check(prefix, rest, **_options(module, {**configured, **options}))
    except LLMJudgeError as exc:
        return str(exc)
