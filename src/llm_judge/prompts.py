"""Prompt sets: the built-in ``seed-10`` and files in JSONL, MT-Bench, CSV or plain text.

    >>> len(load_prompts("seed-10"))
    10
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

from .errors import LLMJudgeError
from .textfiles import iter_jsonl, read_text

MAX_PROMPT_CHARS = 200_000  # far beyond any context a judge can take; larger is a mistake


def check_prompt(prompt: str | None) -> str:
    """A prompt worth sending, or an error that says what is wrong with it and where."""
    if prompt is None or not prompt.strip():
        raise LLMJudgeError("empty prompt: give the question to answer as an argument, a file or stdin")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise LLMJudgeError(f"the prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    for n, line in enumerate(prompt.split("\n"), 1):
        bad = next((ch for ch in line if (ord(ch) < 32 and ch not in "\t\r") or ord(ch) == 127), None)
        if bad is not None:
            raise LLMJudgeError(f"the prompt holds control character U+{ord(bad):04X} on line {n}: remove it")
    return prompt


@dataclass(frozen=True)
class PromptItem:
    id: str
    prompt: str
    reference: str | None = None
    category: str | None = None


SEED_10 = [  # the seed study's ten instruction prompts
    "Describe step-by-step how to set up a tent in a windy environment.",
    "Explain how to bake a chocolate cake without using eggs.",
    "Provide instructions for troubleshooting a laptop that won't turn on.",
    "Teach a beginner how to solve a Rubik's Cube in simple steps.",
    "Give detailed instructions for building a birdhouse using basic tools.",
    "Design a beginner-friendly 15-minute workout routine that requires no equipment.",
    "Explain how to properly season and cook a medium-rare steak.",
    "Write a step-by-step guide for setting up a local Git repository and pushing code to GitHub.",
    "Provide instructions for administering first aid to someone with a sprained ankle.",
    "Outline a simple plan for a beginner to learn Spanish in 30 days.",
]
BUILTIN = {"seed-10": [PromptItem(f"seed-{i:02d}", p, category="instructions") for i, p in enumerate(SEED_10, 1)]}


def _text(path: Path) -> str:
    return read_text(path, "prompt set", f" (built in: {', '.join(BUILTIN)})")


def _item(rec: dict, where: str, default_id: str) -> PromptItem:
    if "turns" in rec:  # MT-Bench question.jsonl: the first turn
        turns = rec.get("turns") or []
        prompt = turns[0] if turns else None
        ref = rec.get("reference")
        ref = ref[0] if isinstance(ref, list) and ref else ref
        pid = rec.get("question_id", rec.get("id", default_id))
    else:
        prompt, ref, pid = rec.get("prompt"), rec.get("reference"), rec.get("id", default_id)
    if not isinstance(prompt, str) or not prompt.strip():
        raise LLMJudgeError(f"{where}: no \"prompt\" text (expected {{\"id\", \"prompt\", \"reference\"?, \"category\"?}})")
    cat = rec.get("category")
    return PromptItem(str(pid), prompt, str(ref) if ref not in (None, "") else None, str(cat) if cat else None)


def parse_jsonl(text: str, name: str) -> list[PromptItem]:
    return [_item(rec, f"{name} line {n}", str(n)) for n, rec in iter_jsonl(text, name)]


def parse_csv(text: str, name: str) -> list[PromptItem]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise LLMJudgeError(f"{name}: a CSV prompt set needs a header with a 'prompt' column (and optionally id, "
                                "reference, category)")
        return [_item({k: v for k, v in row.items() if k}, f"{name} line {reader.line_num}", str(n - 1))
                for n, row in enumerate(reader, 2)]
    except csv.Error as exc:
        raise LLMJudgeError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from None


def read_references(path: str | Path) -> dict[str, str]:
    """Reference answers by question id, from JSONL: MT-Bench's ``reference_answer/gpt-4.jsonl``
    (``{"question_id", "choices": [{"turns": [first, ...]}]}``, the first turn's answer) or
    ``{"id", "reference"}`` lines."""
    path = Path(path).expanduser()
    out = {}
    for n, rec in iter_jsonl(read_text(path, "reference file"), path.name):
        where = f"{path.name} line {n}"
        qid = rec.get("question_id", rec.get("id"))
        if qid is None or isinstance(qid, bool) or not isinstance(qid, str | int):
            raise LLMJudgeError(f"{where}: no \"question_id\" (or \"id\") to match the prompt set's ids")
        if "choices" in rec:
            try:
                ref = rec["choices"][0]["turns"][0]
            except (TypeError, KeyError, IndexError):
                ref = None
        else:
            ref = rec.get("reference")
        if not isinstance(ref, str) or not ref.strip():
            raise LLMJudgeError(f"{where}: no reference text (MT-Bench's choices[0].turns[0], or \"reference\")")
        out[str(qid)] = ref
    if not out:
        raise LLMJudgeError(f"{path} holds no reference answers")
    return out


def with_references(items: list[PromptItem], references: dict[str, str]) -> list[PromptItem]:
    """The prompts with the references of their ids merged in (a file's reference replaces a
    set's own); an id the set lacks is an error, since it names the wrong set."""
    ids = {it.id for it in items}
    unknown = sorted(set(references) - ids)
    if unknown and len(unknown) == len(references):
        raise LLMJudgeError(f"no reference matches a prompt id (e.g. {unknown[0]!r}): is it the right prompt set?")
    return [PromptItem(it.id, it.prompt, references.get(it.id, it.reference), it.category) for it in items]


def parse_lines(text: str, name: str) -> list[PromptItem]:
    return [PromptItem(str(n), line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def load_prompts(source: str, *, limit: int | None = None, sample: int | None = None,
                 seed: int = 0) -> list[PromptItem]:
    """A built-in set name or a file (.jsonl/.json, .csv, anything else: one prompt per line)."""
    if source in BUILTIN:
        items = list(BUILTIN[source])
    else:
        path = Path(source).expanduser()
        text = _text(path)
        suffix = path.suffix.lower()
        parse = parse_jsonl if suffix in {".jsonl", ".json", ".ndjson"} else parse_csv if suffix == ".csv" else parse_lines
        items = parse(text, path.name)
    if not items:
        raise LLMJudgeError(f"prompt set {source!r} holds no prompts")
    seen = set()
    for item in items:
        if item.id in seen:
            raise LLMJudgeError(f"prompt set {source!r}: id {item.id!r} appears twice; ids must be unique")
        try:
            check_prompt(item.prompt)
        except LLMJudgeError as exc:
            raise LLMJudgeError(f"prompt set {source!r}, prompt {item.id!r}: {exc}") from None
        seen.add(item.id)
    return select(items, limit=limit, sample=sample, seed=seed)


def select(items: list, *, limit: int | None = None, sample: int | None = None, seed: int = 0,
           what: str = "prompts") -> list:
    """A random sample of ``sample`` items (seeded), then the first ``limit``; the one rule for
    prompt sets and gold sets.

    >>> select(list(range(10)), limit=3), select(list(range(10)), sample=2, seed=1)
    ([0, 1, 2], [2, 1])
    """
    if sample is not None:
        if sample < 1:
            raise LLMJudgeError(f"a sample of {sample} {what}: take at least 1")
        items = random.Random(seed).sample(items, min(sample, len(items)))
    if limit is not None:
        if limit < 1:
            raise LLMJudgeError(f"a limit of {limit} {what}: take at least 1")
        items = items[:limit]
    return items
