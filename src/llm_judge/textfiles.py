"""Reading the text files users hand us, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .errors import LLMJudgeError


def read_text(path: str | Path, what: str, hint: str = "") -> str:
    """The file's UTF-8 text (a BOM is dropped), or an error naming the file and the bad line."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LLMJudgeError(f"{what} not found: {path}{hint}") from None
    except OSError as exc:
        raise LLMJudgeError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LLMJudgeError(f"{path} line {line}: not UTF-8 text (bad byte at offset {exc.start})") from None


def iter_jsonl(text: str, name: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line is an error naming it.

    Lines end at ``\\n`` only (JSON Lines): U+2028, U+2029 and U+0085 are valid inside JSON strings.
    """
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise LLMJudgeError(f"{name} line {n}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise LLMJudgeError(f"{name} line {n}: expected a JSON object")
        yield n, rec
