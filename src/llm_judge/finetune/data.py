"""Training conversations: reading them (ShareGPT/FineTome or OpenAI messages form, a JSONL file or
an ``hf:`` dataset) and encoding them so that only the assistant's turns are learned (as Unsloth's
``train_on_responses_only``). Reading is pure; encoding needs only a tokenizer.

    >>> normalise({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}, "x:1")
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}]
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from ..errors import LLMJudgeError
from ..textfiles import iter_jsonl, read_text

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
         "model": "assistant", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}
BUILTIN = {"tiny-instructions": "tiny-instructions.jsonl"}
Messages = list[dict[str, str]]


def normalise(record, where: str) -> Messages:
    """One record as chat messages, or an error that names the line and the expected forms."""
    turns = record.get("conversations") if isinstance(record, dict) else None
    key_role, key_text = ("from", "value")
    if turns is None and isinstance(record, dict):
        turns, key_role, key_text = record.get("messages"), "role", "content"
    if not isinstance(turns, list) or not turns:
        raise LLMJudgeError(f"{where}: expected {{\"conversations\": [{{\"from\", \"value\"}}, ...]}} (ShareGPT) "
                            "or {\"messages\": [{\"role\", \"content\"}, ...]} (OpenAI)")
    out = []
    for turn in turns:
        role = ROLES.get(str(turn.get(key_role, "")).lower()) if isinstance(turn, dict) else None
        text = turn.get(key_text) if isinstance(turn, dict) else None
        if role is None or not isinstance(text, str):
            raise LLMJudgeError(f"{where}: a turn needs {key_role!r} (human/gpt or user/assistant/system) "
                                f"and a text {key_text!r}")
        out.append({"role": role, "content": text})
    if not any(m["role"] == "assistant" for m in out):
        raise LLMJudgeError(f"{where}: the conversation has no assistant turn to learn from")
    return out


def read_conversations(source: str) -> list[Messages]:
    """Conversations from a JSONL file, a built-in set (``tiny-instructions``) or ``hf:DATASET``."""
    if source in BUILTIN:
        text = files("llm_judge").joinpath("data/finetune", BUILTIN[source]).read_text(encoding="utf-8")
        return _parse_jsonl(text, source)
    if source.startswith("hf:"):
        return _from_hub(source[3:])
    text = read_text(source, "training data", " (a JSONL file, tiny-instructions, or hf:DATASET)")
    return _parse_jsonl(text, str(Path(source).expanduser()))


def _parse_jsonl(text: str, name: str) -> list[Messages]:
    out = [normalise(record, f"{name}:{n}") for n, record in iter_jsonl(text, name)]
    if not out:
        raise LLMJudgeError(f"{name}: no conversations")
    return out


def _from_hub(name: str) -> list[Messages]:
    try:
        from datasets import load_dataset

        data = load_dataset(name, split="train")
    except Exception as exc:  # offline, unknown name, no access
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise LLMJudgeError(f"cannot load the dataset hf:{name} ({reason}): download it where there is a network, "
                            "or export it to a JSONL file") from None
    return [normalise(dict(r), f"hf:{name}[{i}]") for i, r in enumerate(data)]


Render = Callable[[Messages, bool], str]  # (messages, add_generation_prompt) -> text


def assistant_spans(render: Render, messages: Messages) -> tuple[str, list[tuple[int, int]]]:
    """The conversation's text and the character spans of the assistant's turns in it (each turn
    with its end-of-turn marker, which the model must learn to write).

    >>> def render(ms, gen):
    ...     return "".join(f"<{m['role']}>{m['content']}</>" for m in ms) + ("<assistant>" if gen else "")
    >>> assistant_spans(render, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    ('<user>Hi</><assistant>Yo</>', [(22, 27)])
    """
    full = render(messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(messages[:i], True))
        end = len(render(messages[:i + 1], False))
        if full[:end] != render(messages[:i + 1], False) or start > end:
            raise LLMJudgeError("the chat template does not lay a conversation out turn by turn; "
                                "cannot tell the assistant's tokens apart")
        spans.append((start, end))
    return full, spans


def encode(tokenizer, messages: Messages, max_len: int) -> tuple[list[int], list[int]] | None:
    """(input ids, labels) with every token outside the assistant's turns masked (-100), cut at
    ``max_len``; None where nothing of an assistant turn is left to learn."""
    def render(ms: Messages, gen: bool) -> str:
        if not ms:
            return ""
        return tokenizer.apply_chat_template(ms, tokenize=False, add_generation_prompt=gen)

    text, spans = assistant_spans(render, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = [], []
    for tok, (a, _b) in zip(enc["input_ids"], enc["offset_mapping"]):
        ids.append(tok)
        labels.append(tok if any(s <= a < e for s, e in spans) else -100)
    ids, labels = ids[:max_len], labels[:max_len]
    return (ids, labels) if any(x != -100 for x in labels) else None
