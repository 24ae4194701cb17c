"""What every backend shares: the ``Backend`` protocol, ``Completion``, the base ``Options`` each
backend's own extend, and a spec as a public page sees it (``Parsed``, ``PublicPolicy``).

No backend, no registry and no configuration here: this module is what the others import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

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
    cached_tokens: int | None = None  # prompt tokens the server read from its cache, where it says
    finish_reason: str | None = None
    logprobs: Any = None  # the server's per-token log probabilities, where it gives them
    # what the model's next-token distribution was where ``read_at`` pointed: for each offset,
    # {"offset", "start" (of the generated token there), "token", "top": {token text: probability}};
    # None where the backend cannot say (see weighting.py)
    decisions: list[dict[str, Any]] | None = None

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
        schema: dict[str, Any] | None = None,
        on_token: TokenCallback | None = None,
        read_at: ReadAt | None = None,
        grammar: str | None = None,
    ) -> Completion:
        """``read_at(text)`` names the offsets in the output where to report the next-token
        distribution (``Completion.decisions``). ``grammar`` (GBNF) constrains the output where the
        engine takes one (llama.cpp in-process and llama-server); other servers get the prompt's
        instructions only (a judge protocol's verdict-first formats)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts that identify the model (file hash, quantisation, server URL) for the store."""
        ...

    def special_tokens(self) -> frozenset[str]:
        """The texts of the model's own control tokens where known (empty where not)."""
        ...


class Options(BaseModel):
    """The load options every caller may pass to any model (compare, studies and judges pass
    ``n_ctx`` and ``concurrency``, the page ``key_configured_only``). A backend's own ``Options``
    extends this one: it takes one of these by declaring it again (with its own default), and
    ignores the others; any option neither declares is refused (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    n_ctx: int | None = None
    concurrency: int | None = Field(None, ge=1)  # at least one call at a time
    key_configured_only: bool = False

    @classmethod
    def taken(cls) -> list[str]:
        """The options this backend takes: those its own ``Options`` declares (the base's it redeclares)."""
        own = {name for klass in cls.__mro__ if issubclass(klass, Options) and klass is not Options
               for name in klass.__annotations__ if not name.startswith("_") and name != "model_config"}
        return sorted(own & set(cls.model_fields))


class Parsed(NamedTuple):
    """A spec as a public page judges it: its prefix, its base and its add-ons ``(name, value)``."""

    prefix: str
    base: str
    addons: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PublicPolicy:
    """What the operator of a page reachable beyond localhost allows visitors' specs: files inside
    ``allowed_dirs``, the servers of the config file's models (``configured``: their specs), the
    scripted fake and downloads only where allowed. Each backend's ``public_check`` applies it."""

    allowed_dirs: tuple[Path, ...] = ()
    configured: frozenset[str] = field(default_factory=frozenset)
    allow_fake: bool = False
    allow_downloads: bool = False

    def files_refusal(self, files: Iterable[str]) -> str | None:
        """Why one of ``files`` may not be opened (outside every allowed directory), or None."""
        roots = [Path(os.path.realpath(d)) for d in self.allowed_dirs]
        for file in files:
            path = Path(os.path.realpath(Path(file).expanduser()))
            if not any(path == r or r in path.parents for r in roots):
                return ("local model files are restricted on this server: use a file inside "
                        + (", ".join(map(str, roots)) if roots else "an allowed directory (none is allowed)"))
        return None


PublicCheck = Callable[[Parsed, PublicPolicy], "str | None"]
