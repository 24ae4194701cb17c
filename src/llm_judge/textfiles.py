"""Reading the text files users hand us, with errors that name the file and line: UTF-8 text,
JSON and JSON Lines. No JSON value leaves here nested beyond Python's limit or holding a lone
surrogate (an unpaired ``\\ud800``-``\\udfff`` escape, which no UTF-8 text, store or model takes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def parse_json(text: str, name: str, first_line: int = 1) -> Any:
    """The JSON value of ``text`` (which starts at line ``first_line`` of the file ``name``), or
    an error naming the line: not JSON, nested too deeply, or holding a lone surrogate."""
    try:
        value = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError
        line = first_line + text.count("\n", 0, exc.pos)
        raise LLMJudgeError(f"{name} line {line}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        line, depth = _deepest(text)
        raise LLMJudgeError(f"{name} line {first_line + line - 1}: JSON nested too deeply ({depth:,} levels): "
                            "flatten it to a few hundred levels at most") from None
    surrogate = _lone_surrogate(value)
    if surrogate is not None:
        raise LLMJudgeError(f"{name} line {first_line + _line_of_surrogate(text, surrogate) - 1}: a lone surrogate "
                            f"U+{ord(surrogate):04X} (half of a UTF-16 pair): give the whole pair or remove it")
    return value


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for each non-blank line of JSON Lines text. Lines end at ``\\n`` only:
    U+2028, U+2029 and U+0085 are valid inside JSON strings (``str.splitlines`` would cut there).

    >>> text = '{"a": "x' + chr(0x2028) + 'y"}' + chr(10) * 2 + '{"b": 1}'
    >>> [(n, len(line)) for n, line in jsonl_lines(text)]
    [(1, 12), (3, 8)]
    """
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            yield n, line


def iter_jsonl(text: str, name: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line (``jsonl_lines``); a bad line is an error naming it."""
    for n, line in jsonl_lines(text):
        rec = parse_json(line, name, n)
        if not isinstance(rec, dict):
            raise LLMJudgeError(f"{name} line {n}: expected a JSON object")
        yield n, rec


def _lone_surrogate(value: object) -> str | None:
    """The first lone surrogate in any string (key or value) of a parsed JSON value, else None."""
    stack = [value]
    while stack:  # a loop, not recursion: the value may be nested nearly as deep as Python allows
        item = stack.pop()
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return item[exc.start]
    return None


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # JSON strings (skipped whole) and brackets


def _deepest(text: str) -> tuple[int, int]:
    """(line, depth) of the deepest nesting of brackets in JSON ``text``: where it is too deep."""
    depth, deepest, at = 0, 0, 0
    for m in _TOKENS.finditer(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(m.group(), 0)
        if depth > deepest:
            deepest, at = depth, m.start()
    return text.count("\n", 0, at) + 1, deepest


def _line_of_surrogate(text: str, surrogate: str) -> int:
    """The line of the first escape of ``surrogate`` in JSON ``text`` (1 when not written as one)."""
    m = re.search(rf"\\u{ord(surrogate):04x}", text, re.IGNORECASE)
    return text.count("\n", 0, m.start()) + 1 if m else 1
