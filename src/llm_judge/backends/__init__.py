"""One small protocol every model backend implements, and resolving specs to loaded models.

A model is named by one string, ``PREFIX:REST`` (or a bare word such as ``embedded``). A backend is
one module declaring

- ``PREFIXES``: what it serves;
- ``Options``: a pydantic model of the load options it takes, extending :class:`base.Options`;
- ``from_spec(prefix, rest, options, settings)``: a loaded ``Backend`` (``options``: its validated
  ``Options``; ``settings``: the :class:`~llm_judge.config.Settings` the caller runs under);
- ``check(prefix, rest, options, settings)``: a health check that loads nothing (``'ok: ...'`` or why not);
- ``ADDONS`` (optional): the add-ons ``+NAME:VALUE`` its specs take; any other is refused here;
- ``public_check(parsed, policy)`` (optional): why a public page refuses a visitor's spec, or None;
  a backend without it is off on a public page.

**The rule for options.** The base ``Options`` holds the ones every caller may pass to any model
(``n_ctx``, ``concurrency``, ``key_configured_only``). A backend takes one of those by declaring it
again in its own ``Options`` (with its own default) and ignores the others; any option that neither
its ``Options`` nor the base declares is an error in one line naming it, the model and the options
the backend takes (with a "did you mean" where one is close), and so is a value of the wrong type.
The config file's ``[models.NAME]`` tables are checked against the options some backend declares
when the file is read, and each entry against its own backend's ``Options`` where it is loaded.

The modules of this package are found by looking (``registry``), other packages' through the
entry-point group ``llm_judge.backends`` (llm-judge's own scripted ``fake:`` backend in
``llm_judge.testing`` is registered that way, like any plugin). Adding a backend is adding one
module; nothing outside ``backends`` asks which backend it has. Not every module here is a
backend: ``base`` (the protocol), ``registry``, ``gguf`` (what a local GGUF file says), ``replicas``
(the servers of one model, for ``openai``) and the two local engines ``llamacpp`` and ``llamaserver``
declare no ``PREFIXES``; ``local`` serves them.

    >>> from llm_judge.backends import parse_spec
    >>> parse_spec("gguf:/models/a.gguf")
    ('gguf', '/models/a.gguf')
    >>> parse_spec("embedded+lora:/runs/step-20.gguf")
    ('embedded', '+lora:/runs/step-20.gguf')

A loaded model is kept per (spec, the options its backend takes, settings): no process-wide default
decides what a call gets.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from types import ModuleType
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..config import Settings, check_names, resolve, settings_or_env
from ..errors import LLMJudgeError
from .base import TOP_TOKENS, Backend, Completion, Messages, Options, Parsed, PublicPolicy, ReadAt, TokenCallback
from .registry import ENTRY_POINTS, options_of, registry

__all__ = ["ENTRY_POINTS", "TOP_TOKENS", "Backend", "Completion", "Messages", "Options", "Parsed", "PublicPolicy",
           "ReadAt", "Settings", "TokenCallback", "check_addons", "check_model", "check_names", "forget_backends",
           "get_backend", "load_options", "parse_spec", "registry", "spec_addons"]

MAX_LOADED = 4  # models kept loaded at once; the least recently used goes first
_loaded: OrderedDict[tuple[Any, ...], Backend] = OrderedDict()
_load_lock = threading.Lock()


def _module(prefix: str) -> ModuleType:
    return registry()[prefix]


def load_options(module: ModuleType, given: dict[str, Any], where: str) -> Options:
    """The backend's ``Options`` of ``given``: an option it does not know, or a value of the wrong
    type, is one line naming it, ``where`` (the model) and the options the backend takes."""
    model = options_of(module)
    check_names(set(given) - set(Options.model_fields), model.taken(), where)
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise LLMJudgeError(_wrong_type(exc.errors()[0], where, model.taken())) from None


def _wrong_type(error: ErrorDetails, where: str, taken: list[str]) -> str:
    name = ".".join(map(str, error["loc"])) or "?"
    what = "out of range" if error["type"].startswith(("greater_than", "less_than")) else "of the wrong type"
    return (f"{where} has option {name}={error['input']!r} {what} ({error['msg'].lower()}; "
            f"it takes: {', '.join(taken) or 'none'})")


def parse_spec(spec: str, settings: Settings | None = None) -> tuple[str, str]:
    """(prefix, rest) of a spec, after resolving a name from the config file."""
    spec = resolve((spec or "").strip(), settings)[0]
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


def _prepared(spec: str, settings: Settings, given: dict[str, Any]) -> tuple[str, str, str, ModuleType, Options]:
    """(spec, prefix, rest, backend module, its options): options given win over the config file's."""
    real, configured = resolve(spec.strip(), settings)
    prefix, rest = parse_spec(real, settings)
    module = _module(prefix)
    return real.strip(), prefix, rest, module, load_options(module, {**configured, **given}, f"model {spec.strip()}")


def get_backend(spec: str, settings: Settings | None = None, **options: Any) -> Backend:
    """Resolve a spec (or configured name) to a loaded backend, once per (spec, the options its
    backend takes, settings) per process; ``settings`` by default: the environment's."""
    settings = settings_or_env(settings)
    real, prefix, rest, module, opts = _prepared(spec, settings, options)
    key = (real, tuple(sorted(opts.model_dump(include=set(opts.taken())).items())), settings)
    with _load_lock:
        if key not in _loaded:
            while len(_loaded) >= MAX_LOADED:  # room first: its server stops before another starts
                _close(_loaded.popitem(last=False)[1])
            _loaded[key] = module.from_spec(prefix, rest, opts, settings)
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


def check_model(name: str, settings: Settings | None = None, **options: Any) -> str:
    """'ok: ...' or a one-line reason the model (a spec or configured name) cannot be used now."""
    settings = settings_or_env(settings)
    try:
        _real, prefix, rest, module, opts = _prepared(name, settings, options)
        return str(module.check(prefix, rest, opts, settings))
    except LLMJudgeError as exc:
        return str(exc)


def public_refusal(spec: str, policy: PublicPolicy, settings: Settings | None = None) -> str | None:
    """Why a public page refuses ``spec`` (already resolved), decided by its backend's
    ``public_check`` on the parsed spec; a backend without one is off."""
    prefix, rest = parse_spec(spec, settings)  # an add-on its backend does not declare is refused here
    check = getattr(_module(prefix), "public_check", None)
    if check is None:
        return f"{prefix}: models are off on this server: use a model name the operator configured"
    base, addons = spec_addons(rest)
    reason: str | None = check(Parsed(prefix, base, tuple(addons)), policy)
    return reason
