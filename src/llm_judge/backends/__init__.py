"""One small protocol every model backend implements, and the registry that resolves specs.

A model is named by one string, ``PREFIX:REST`` (or a bare word such as ``embedded``). Each
backend module registers the prefixes it serves; adding a backend means adding one module.

    >>> from llm_judge.backends import parse_spec
    >>> parse_spec("gguf:/models/a.gguf")
    ('gguf', '/models/a.gguf')
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import LLMJudgeError
from ..sampling import SamplingParams

Messages = list[dict[str, str]]
TokenCallback = Callable[[str], None]


@dataclass
class Completion:
    """What one generation produced, with its cost."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    finish_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    logprobs: Any = None  # the server's per-token log probabilities, where it gives them

    @property
    def tokens_per_second(self) -> float | None:
        if not self.completion_tokens or self.seconds <= 0:
            return None
        return self.completion_tokens / self.seconds


class Backend(Protocol):
    """A loaded model. ``generate`` streams through ``on_token`` when it is given."""

    spec: str

    def generate(
        self,
        messages: Messages,
        sampling: SamplingParams,
        *,
        schema: dict | None = None,
        on_token: TokenCallback | None = None,
    ) -> Completion: ...

    def describe(self) -> dict[str, Any]:
        """Facts that identify the model (file hash, quantisation, server URL) for the store."""
        ...

    def special_tokens(self) -> frozenset[str]:
        """The texts of the model's own control tokens where known (empty where not)."""
        ...


# prefix -> (module, factory name); modules are imported only when their prefix is used.
_REGISTRY: dict[str, tuple[str, str]] = {
    "embedded": ("llm_judge.backends.llamacpp", "from_spec"),
    "gguf": ("llm_judge.backends.llamacpp", "from_spec"),
    "hf": ("llm_judge.backends.llamacpp", "from_spec"),
    "openai": ("llm_judge.backends.openai", "from_spec"),
    "fake": ("llm_judge.backends.fake", "from_spec"),
}

MAX_LOADED = 4  # models kept loaded at once; the least recently used goes first
_loaded: OrderedDict[tuple, Backend] = OrderedDict()
_load_lock = threading.Lock()


def register(prefix: str, module: str, factory: str = "from_spec") -> None:
    """Make ``prefix:...`` specs resolve through ``module.factory(prefix, rest, **options)``."""
    _REGISTRY[prefix] = (module, factory)


def parse_spec(spec: str) -> tuple[str, str]:
    """(prefix, rest) of a spec, after resolving a name from the config file."""
    from ..config import resolve

    spec = resolve((spec or "").strip())[0]
    if not spec:
        raise LLMJudgeError("empty model spec: use embedded, gguf:PATH, hf:REPO/FILE or openai:MODEL@URL")
    prefix, sep, rest = spec.partition(":")
    if prefix not in _REGISTRY:
        raise LLMJudgeError(
            f"unknown model spec {spec!r}: use embedded, gguf:PATH, hf:REPO/FILE.gguf, "
            "openai:MODEL@BASE_URL or a name from the config file (llm-judge models)"
        )
    return prefix, rest


def get_backend(spec: str, **options: Any) -> Backend:
    """Resolve a spec (or configured name) to a loaded backend, once per (spec, options) per process.

    Options given here win over those of the config file.
    """
    from ..config import resolve

    real, configured = resolve(spec.strip())
    options = {**configured, **options}
    prefix, rest = parse_spec(real)
    key = (real.strip(), tuple(sorted(options.items())))
    with _load_lock:
        if key not in _loaded:
            module_name, factory = _REGISTRY[prefix]
            module = importlib.import_module(module_name)
            _loaded[key] = getattr(module, factory)(prefix, rest, **options)
            while len(_loaded) > MAX_LOADED:
                _loaded.popitem(last=False)  # a call still holding it finishes; then it is freed
        _loaded.move_to_end(key)
        return _loaded[key]


def forget_backends() -> None:
    """Drop every loaded model (tests, and the UI's bounded cache)."""
    with _load_lock:
        _loaded.clear()
