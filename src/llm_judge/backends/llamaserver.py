"""A local GGUF model served by llama.cpp's own ``llama-server`` (the default local engine); the
process itself (start, health, restart, counted users) is ``engine``'s. Not a backend on its own (no
``PREFIXES``): ``local`` chooses this engine or ``llamacpp``.

The model's facts (chat template, control tokens, prompt length, hashes) come from the same GGUF
file read in-process with its vocabulary only; generation goes to the server's OpenAI-compatible
API through the ``openai`` backend's client, up to one request per slot at a time. A candidate's
prompt is evaluated afresh for every request (``cache_prompt`` off), as in-process, so a cached prefix
never changes the arithmetic of an answer. A judge's requests (constrained to a verdict) keep their
prompt in the slot (``cache_prompt`` on): a study's verdicts all start with the same instructions
(``verdicts``), which the slot then reads once, not once per verdict; the verdict text is the one a
fresh evaluation gives (``tests/test_engine.py`` compares it with the in-process engine's). The
operator's API key is never sent: the server is llm-judge's own.

The server is held while the model is in the model cache (``close`` lets it go: it stops once no
loaded model uses it, after the calls in flight). A call on a model already dropped from the cache
still works: it holds the server for as long as it runs, starting it again if need be. A model
loaded before ``os.fork`` is the parent's: the child loads its own.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from .. import engine
from ..engine import FLASH_ATTENTION
from ..errors import LLMJudgeError
from ..sampling import SamplingParams
from .base import Completion, Messages, ReadAt, TokenCallback
from .gguf import DEFAULT_N_CTX, LocalModel, check_gguf
from .openai import OpenAIBackend

REQUEST_SECONDS = 900.0  # a long answer of a large model on a busy CPU


def grammar_for(schema: dict) -> dict:
    """The verdict schema as the GBNF grammar the in-process engine builds from it (llama-cpp-python's
    converter), so that both engines constrain a judge alike; the server's own converter lays out
    whitespace differently, and then a greedy judge writes other text."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return {"grammar": json_schema_to_gbnf(json.dumps(schema))}


class LocalClient(OpenAIBackend):
    """The client of llm-judge's own server: no API key goes there (``OPENAI_API_KEY`` is for remote servers)."""

    def _headers(self) -> dict[str, str]:
        return {}


class LlamaServerBackend(LocalModel):
    engine = "server"

    def __init__(self, spec: str, path: Path, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                 lora: Path | None = None, parallel: int, flash_attention: bool = FLASH_ATTENTION):
        from llama_cpp import Llama

        if parallel < 1:
            raise LLMJudgeError(f"parallel {parallel}: a local server needs at least 1 slot")
        try:
            # a vocabulary-only load warns that its context exceeds the training context (unknown without
            # the weights): nothing a user can act on, so it is not shown
            with contextlib.redirect_stderr(io.StringIO()):
                vocab = Llama(model_path=str(check_gguf(path)), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise LLMJudgeError(f"llama.cpp could not load {path}: {exc} (is the file complete?)") from None
        super().__init__(spec, path, vocab, n_ctx=n_ctx, lora=lora, flash_attention=flash_attention)
        self.server_spec = engine.ServerSpec(str(path), str(lora) if lora else None, n_ctx, parallel, n_threads,
                                             flash_attention)
        self.server = engine.acquire(self.server_spec)
        self._pid, self._use, self._calls = os.getpid(), threading.Lock(), 0
        self._held, self._closed = True, False
        self.concurrency = parallel
        self.client = LocalClient(spec, "local", self.server.url, timeout=REQUEST_SECONDS, max_attempts=2,
                                  concurrency=parallel,
                                  extra_body={"cache_prompt": False}, verdict_body={"cache_prompt": True},
                                  explicit_sampling=True, structure=grammar_for,
                                  keep_logprobs=False)
        self.warnings = self.client.warnings

    def close(self) -> None:
        """Out of the model cache: the server goes once no loaded model uses it and no call of this one runs."""
        with self._use:
            self._closed = True
            drop = self._let_go_if_idle()
        if drop:
            engine.release(self.server_spec)

    def _let_go_if_idle(self) -> bool:
        """(Under ``_use``) whether to release the server now: closed, held, and no call running."""
        drop = self._closed and self._held and self._calls == 0
        self._held = self._held and not drop
        return drop

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """One call holding the server: a closed model takes it again for the call's length."""
        if self._pid != os.getpid():
            raise LLMJudgeError(f"{self.spec} was loaded before this process was forked: load it again here "
                                "(get_backend) and the child gets a server of its own")
        with self._use:
            if not self._held:
                self.server = engine.acquire(self.server_spec)
                self.client.base_url, self._held = self.server.url, True
            self._calls += 1
        try:
            yield
        finally:
            with self._use:
                self._calls -= 1
                drop = self._let_go_if_idle()
            if drop:
                engine.release(self.server_spec)

    def _ensure_running(self) -> None:
        """Start the server again if it stopped (killed, out of memory), and point the client at it."""
        if not self.server.running:
            self.server = engine.server_for(self.server_spec)
            self.client.base_url = self.server.url

    def generate(self, messages: Messages, sampling: SamplingParams, *, schema: dict | None = None,
                 on_token: TokenCallback | None = None, read_at: ReadAt | None = None,
                 grammar: str | None = None) -> Completion:
        messages = self.accepted(messages)
        prompt_tokens = self.check_fits(messages, sampling.max_tokens)
        with self._call():
            self._ensure_running()
            result = self.client.generate(messages, sampling, schema=schema, on_token=on_token, read_at=read_at,
                                          grammar=grammar)
        result.prompt_tokens = result.prompt_tokens or prompt_tokens
        return result

    def describe(self) -> dict:
        return {**super().describe(), "engine": "llama-server", "parallel": self.concurrency}
