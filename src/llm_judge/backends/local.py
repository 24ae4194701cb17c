"""Local GGUF models: ``embedded``, ``gguf:PATH`` and ``hf:REPO/FILE`` (and ``+lora:ADAPTER``), on the
engine asked for: llama.cpp's own server with parallel slots (``llamaserver``), in this process
(``llamacpp``), or the server where it is built and else in-process (``auto``).

The engine, slots and flash attention come from the model's options (``engine``, ``parallel``,
``flash_attention``: a config file's entry, a caller's), else from the caller's ``Settings``. What
the file says is ``gguf``'s; this module only chooses, checks and says what a public page allows.
"""

from __future__ import annotations

from pydantic import Field

from .. import engine as engines
from ..config import Engine, Settings
from .base import Backend, Parsed, PublicPolicy
from .base import Options as BaseOptions
from .gguf import DEFAULT_N_CTX, LORA, hf_cached, resolve_paths
from .llamacpp import LlamaCppBackend
from .llamaserver import LlamaServerBackend

PREFIXES = ("embedded", "gguf", "hf")
ADDONS = ("lora",)  # BASE+lora:ADAPTER.gguf


class Options(BaseOptions):
    """A local model's load options; ``engine``, ``parallel`` and ``flash_attention`` where its
    ``Settings`` should not decide."""

    n_ctx: int | None = None  # tokens per request (per slot on the server); None: DEFAULT_N_CTX
    n_threads: int | None = Field(None, ge=1)
    engine: Engine | None = None
    parallel: int | None = Field(None, ge=1)
    flash_attention: bool | None = None


def from_spec(prefix: str, rest: str, options: Options, settings: Settings) -> Backend:
    """The model on the engine its options, else its settings, ask for."""
    spec = prefix + (f":{rest}" if rest and not rest.startswith(LORA) else rest)
    path, lora = resolve_paths(prefix, rest)
    chosen, notice = engines.choose_engine(options.engine or settings.engine)
    if notice:
        engines.notify(notice)
    n_ctx = options.n_ctx or DEFAULT_N_CTX
    flash = next((f for f in (options.flash_attention, settings.flash_attention) if f is not None),
                 engines.FLASH_ATTENTION)
    if chosen == "server":
        parallel = options.parallel or settings.parallel or engines.DEFAULT_PARALLEL
        return LlamaServerBackend(spec, path, n_ctx=n_ctx, n_threads=options.n_threads, lora=lora, parallel=parallel,
                                  flash_attention=flash)
    return LlamaCppBackend(spec, path, n_ctx=n_ctx, n_threads=options.n_threads, lora=lora, flash_attention=flash)


def check(prefix: str, rest: str, options: Options, settings: Settings) -> str:
    """The model file (and adapter) are there and are GGUF files (nothing is loaded)."""
    path, lora = resolve_paths(prefix, rest)
    return f"ok: {path}" + (f" + adapter {lora}" if lora else "")


def public_check(parsed: Parsed, policy: PublicPolicy) -> str | None:
    """A visitor's local model: its files (a ``gguf:`` base, every ``+lora:`` adapter) inside an
    allowed directory; an ``hf:`` file already downloaded unless downloads are allowed."""
    if parsed.prefix == "hf" and not policy.allow_downloads and not hf_cached(parsed.base):
        return ("downloading models is off on this server: use a model it already has (the operator can "
                "allow downloads with --allow-downloads)")
    files = ([parsed.base] if parsed.prefix == "gguf" else []) + [value for _name, value in parsed.addons]
    return policy.files_refusal(files)

