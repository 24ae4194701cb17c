"""One small protocol every model backend implements, and the registry that resolves specs.

A model is named by one string, ``PREFIX:REST`` (or a bare word such as ``embedded``). A backend is
one module declaring ``PREFIXES`` (what it serves), ``OPTIONS`` (the load options it takes: any
other is refused, except the ``COMMON`` ones every caller passes),
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

An add-on (``+NAME:VALUE``, after the prefix or after the rest's base) is taken only where the
backend module declares it in ``ADDONS`` (the llama.cpp ones: ``("lora",)``); any other is refused
here, for every caller.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import pkgutil
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
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
# Options callers pass to every backend alike (compare, studies and judges: n_ctx, concurrency; the
# page: key_configured_only): a backend that does not take one ignores it. Any other option a
# backend does not declare in OPTIONS is an error.
COMMON = frozenset({"n_ctx", "concurrency", "key_configured_only"})


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


def check_names(given: Iterable[str], known: Iterable[str], where: str, noun: str = "option") -> None:
    """The one rule for option names (load options here, the config file's keys there): a name not
    known is an error that names the known ones.

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


def _options(module: ModuleType, options: dict, spec: str) -> dict:
    """The options this backend takes; one in ``COMMON`` that it does not take is dropped, any
    other it does not take is an error."""
    check_names(set(options) - COMMON, module.OPTIONS, f"model {spec}")
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
    check_addons(prefix, rest)
    return prefix, rest


ADDON = re.compile(r"\+([A-Za-z]\w*):")


def spec_addons(rest: str) -> tuple[str, list[tuple[str, str]]]:
    """A spec's rest as its base and its add-ons ``+NAME:VALUE`` (each value runs to the next one).

    >>> spec_addons("/m/base.gguf+lora:/runs/a.gguf")
    ('/m/base.gguf', [('lora', '/runs/a.gguf')])
    >>> spec_addons("+x:m@http://h/v1"), spec_addons("m@http://h/v1")
    (('', [('x', 'm@http://h/v1')]), ('m@http://h/v1', []))
    """
    found = list(ADDON.finditer(rest))
    ends = [m.start() for m in found[1:]] + [len(rest)]
    base = rest[:found[0].start()] if found else rest
    return base, [(m.group(1), rest[m.end():end]) for m, end in zip(found, ends)]


def check_addons(prefix: str, rest: str) -> None:
    """Refuse every add-on the backend of ``prefix`` does not declare in its ``ADDONS``."""
    declared = tuple(getattr(_module(prefix), "ADDONS", ()))
    for name, _value in spec_addons(rest)[1]:
        if name not in declared:
            takes = ", ".join(f"+{a}:" for a in declared) or "no add-on"
            raise LLMJudgeError(f"{prefix} models take {takes}, not +{name}: remove it from the spec")


def get_backend(spec: str, **options: Any) -> Backend:
    """Resolve a spec (or configured name) to a loaded backend, once per (spec, options) per process.

    Options given here win over those of the config file; each backend gets the ones it takes
    (``n_ctx`` for local models, ``concurrency`` for servers, ...). One it does not take is an
    error naming those it does, unless it is one of ``COMMON``, which every caller may pass.
    """
    from ..config import resolve

    real, configured = resolve(spec.strip())
    prefix, rest = parse_spec(real)
    module = _module(prefix)
    options = _options(module, {**configured, **options}, spec.strip())
    from ..engine import defaults_key

    # the process-wide engine choice (--engine/--parallel) is part of what was loaded
    key = (real.strip(), tuple(sorted(options.items())), defaults_key())
    with _load_lock:
        if key not in _loaded:
            while len(_loaded) >= MAX_LOADED:  # room first: its server stops before another starts
                _close(_loaded.popitem(last=False)[1])
            _loaded[key] = module.from_spec(prefix, rest, **options)
        _loaded.move_to_end(key)
        return _loaded[key]


def _close(backend: Backend) -> None:
    """A model leaves the cache: one with a ``close`` (a local server) lets its resources go; a call
    still holding it finishes first (see the backend's ``close``)."""
    close = getattr(backend, "close", None)
    if close is not None:
        close()


def forget_backends() -> None:
    """Drop every loaded model, stopping the servers no other loaded model uses (tests, the UI's cache)."""
    with _load_lock:
        dropped = list(_loaded.values())
        _loaded.clear()
        for backend in dropped:
            _close(backend)


_before_fork: list[Backend] = []  # a forked child's inherited models: never used, closed or freed there


def _forget_after_fork() -> None:
    """In a child made by ``os.fork`` the loaded models are the parent's (its servers, its
    connections) and the lock may be held for good: the child loads its own."""
    global _load_lock
    _before_fork.extend(_loaded.values())
    _loaded.clear()
    _load_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def check_model(name: str, **options: Any) -> str:
    """'ok: ...' or a one-line reason the model (a spec or configured name) cannot be used now."""
    from ..config import resolve

    spec, configured = resolve(name)
    try:
        prefix, rest = parse_spec(spec)
        module = _module(prefix)
        return module.check(prefix, rest, **_options(module, {**configured, **options}, name))
    except LLMJudgeError as exc:
        return str(exc)
