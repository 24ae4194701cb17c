"""In-process GGUF models through llama-cpp-python (``--engine inprocess``): one model loaded in
this process, one call at a time behind a lock, the next-token distributions read from its logits.

Not a backend on its own (no ``PREFIXES``): ``local`` chooses this engine or ``llamaserver``. What
the GGUF file says (chat template, prompt length, hashes) is ``gguf``'s.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import Any

from ..engine import FLASH_ATTENTION
from ..errors import LLMJudgeError
from ..sampling import SamplingParams
from .base import TOP_TOKENS, Completion, Messages, ReadAt, TokenCallback
from .gguf import DEFAULT_N_CTX, LocalModel, check_gguf, embedded_model_path, template_messages

__all__ = ["LlamaCppBackend", "embedded_model_path", "template_messages"]  # the last two: their old import path

class LlamaCppBackend(LocalModel):
    """One GGUF model loaded in this process (``--engine inprocess``); calls are serialised by a lock."""

    concurrency = 1  # one call at a time, behind the lock
    engine = "inprocess"

    def __init__(self, spec: str, path: Path, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                 lora: Path | None = None, flash_attention: bool = FLASH_ATTENTION):
        from llama_cpp import Llama

        self.lock = threading.Lock()
        try:
            llm = Llama(model_path=str(check_gguf(path)), n_ctx=n_ctx, n_threads=n_threads, verbose=False,
                        lora_path=str(lora) if lora else None, flash_attn=flash_attention)
        except (ValueError, RuntimeError) as exc:
            raise LLMJudgeError(f"llama.cpp could not load {path}{' with ' + str(lora) if lora else ''}: {exc} "
                                "(is the file complete, and the adapter made for this model?)") from None
        super().__init__(spec, path, llm, n_ctx=n_ctx, lora=lora, flash_attention=flash_attention)

    def generate(self, messages: Messages, sampling: SamplingParams, *, schema: dict | None = None,
                 on_token: TokenCallback | None = None, read_at: ReadAt | None = None,
                 grammar: str | None = None) -> Completion:
        messages = self.accepted(messages)
        kwargs = dict(
            messages=messages, temperature=sampling.temperature, top_p=sampling.top_p,
            top_k=sampling.top_k, min_p=sampling.min_p, max_tokens=sampling.max_tokens,
            seed=sampling.seed, repeat_penalty=sampling.repeat_penalty,
        )
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        elif grammar is not None:
            kwargs["grammar"] = _grammar(grammar)
        with self.lock:
            prompt_tokens = self.check_fits(messages, sampling.max_tokens)
            # Evaluate the whole prompt afresh: reusing a cached prefix changes the arithmetic
            # slightly, and then the same seed no longer gives the same text.
            self.llm.reset()
            start = time.perf_counter()
            if on_token is None:
                out = self.llm.create_chat_completion(**kwargs)
                seconds = time.perf_counter() - start
                choice, usage = out["choices"][0], out.get("usage", {})
                text = choice["message"]["content"] or ""
                n_prompt = usage.get("prompt_tokens", prompt_tokens)
                decisions = self._read_decisions(n_prompt, text, read_at(text)) if read_at else None
                return Completion(text=text, prompt_tokens=n_prompt, completion_tokens=usage.get("completion_tokens"),
                                  seconds=seconds, finish_reason=choice.get("finish_reason"), decisions=decisions)
            pieces, finish = [], None
            for chunk in self.llm.create_chat_completion(stream=True, **kwargs):
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content")
                if piece:
                    pieces.append(piece)
                    on_token(piece)
                finish = choice.get("finish_reason") or finish
            seconds = time.perf_counter() - start
            text = "".join(pieces)
            tokens = len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
            return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=tokens,
                              seconds=seconds, finish_reason=finish)

    def _read_decisions(self, n_prompt: int, text: str, offsets: list[int]) -> list[dict] | None:
        """The next-token distribution at each offset of the output just generated, from the
        model's own generated tokens (still in the context): the tokens up to each decision are
        evaluated again (incrementally, reusing the prompt's cache) and the logits read there."""
        import llama_cpp
        import numpy as np

        ids = [int(t) for t in self.llm._input_ids]
        generated = ids[n_prompt:]
        if not offsets or not generated or n_prompt < 1:
            return None
        ends, total = [], 0
        for tok in generated:
            total += len(self.llm.detokenize([tok]))
            ends.append(total)
        raw = text.encode("utf-8")
        out, evaluated = [], None
        for offset in sorted(set(offsets)):
            byte = len(text[:offset].encode("utf-8"))
            i = next((k for k, end in enumerate(ends) if end > byte), None)
            if i is None:
                continue
            start_byte = ends[i - 1] if i else 0
            if evaluated is None:  # drop the cache from the first decision on, evaluate up to it
                self.llm.n_tokens = n_prompt + i - 1
                self.llm.eval(ids[n_prompt + i - 1:n_prompt + i])
            else:
                self.llm.eval(ids[evaluated:n_prompt + i])
            evaluated = n_prompt + i
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1),
                                           shape=(self.llm.n_vocab(),)).astype(np.float64)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            top = np.argpartition(-probs, TOP_TOKENS)[:TOP_TOKENS]
            out.append({"offset": offset, "start": len(raw[:start_byte].decode("utf-8", "ignore")),
                        "token": self.llm.detokenize([generated[i]]).decode("utf-8", "replace"),
                        "top": {self.llm.detokenize([int(t)]).decode("utf-8", "replace"): float(probs[t]) for t in top}})
        return out or None


@functools.lru_cache(maxsize=32)
def _grammar(text: str) -> Any:
    """A GBNF grammar compiled once per text (llama-cpp-python parses it on every call otherwise)."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)
