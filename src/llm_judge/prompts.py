"""Prompt sets: the built-in ``seed-10`` and files in JSONL, MT-Bench, CSV or plain text.

    >>> len(load_prompts("seed-10"))
    10
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, replace
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
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: half of a UTF-16 pair, not text
        n = prompt.count("\n", 0, exc.start) + 1
        raise LLMJudgeError(f"the prompt holds a lone surrogate U+{ord(prompt[exc.start]):04X} on line {n}: "
                            "remove it") from None
    return prompt


def check_item(item: PromptItem) -> None:
    """Every text the candidates are sent passes ``check_prompt``: each user turn and each fixed
    earlier message, or an error naming which."""
    texts = [(f"message {k} ({role})", text) for k, (role, text) in enumerate(item.context, 1)]
    texts += [("" if turn == 1 else f"turn {turn}", item.question(turn)) for turn in range(1, item.turns + 1)]
    for where, text in texts:
        try:
            check_prompt(text)
        except LLMJudgeError as exc:
            raise LLMJudgeError(f"prompt {item.id!r}{', ' + where if where else ''}: {exc}") from None


@dataclass(frozen=True)
class PromptItem:
    """A prompt; a conversation when it has later turns (MT-Bench's second turn: each candidate
    answers it after its own first answer) or fixed earlier messages (``context``)."""

    id: str
    prompt: str  # the first user turn the candidates answer
    reference: str | None = None
    category: str | None = None
    followups: tuple[str, ...] = ()  # later user turns
    followup_references: tuple[str | None, ...] = ()
    context: tuple[tuple[str, str], ...] = ()  # (role, text) messages before ``prompt``, the same for all

    @property
    def turns(self) -> int:
        return 1 + len(self.followups)

    def question(self, turn: int) -> str:
        """The user's message at ``turn`` (1: ``prompt``)."""
        return self.prompt if turn == 1 else self.followups[turn - 2]

    def reference_at(self, turn: int) -> str | None:
        if turn == 1:
            return self.reference
        refs = self.followup_references
        return refs[turn - 2] if turn - 2 < len(refs) else None

    def messages(self, answers: list[str], turn: int) -> list[dict[str, str]]:
        """What a candidate is sent at ``turn``: the earlier messages, its own earlier answers."""
        out = [{"role": role, "content": text} for role, text in self.context]
        for k in range(1, turn):
            out += [{"role": "user", "content": self.question(k)}, {"role": "assistant", "content": answers[k - 1]}]
        return out + [{"role": "user", "content": self.question(turn)}]

    def conversation(self) -> dict:
        return {"followups": list(self.followups), "followup_references": list(self.followup_references),
                "context": [list(m) for m in self.context]}


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


def _texts(value, where: str, what: str) -> list:
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise LLMJudgeError(f"{where}: {what} must be a list of texts")
    return value


def _item(rec: dict, where: str, default_id: str) -> PromptItem:
    followups, followup_refs, context = (), (), ()
    if "turns" in rec:  # MT-Bench question.jsonl: every turn
        turns = _texts(rec.get("turns"), where, "\"turns\"") or [None]
        prompt, followups = turns[0], tuple(turns[1:])
        ref = rec.get("reference")
        refs = ref if isinstance(ref, list) else [ref]
        ref, followup_refs = (refs[0] if refs else None), tuple(str(r) if r else None for r in refs[1:])
        pid = rec.get("question_id", rec.get("id", default_id))
    elif "messages" in rec:  # OpenAI form: the candidates answer the last user message, after the others
        msgs = rec["messages"]
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
                for m in msgs) or msgs[-1]["role"] != "user":
            raise LLMJudgeError(f"{where}: \"messages\" must be a list of {{role, content}} ending with a user message")
        prompt, context = msgs[-1]["content"], tuple((m["role"], m["content"]) for m in msgs[:-1])
        ref, pid = rec.get("reference"), rec.get("id", default_id)
    else:
        prompt, ref, pid = rec.get("prompt"), rec.get("reference"), rec.get("id", default_id)
    if not isinstance(prompt, str) or not prompt.strip():
        raise LLMJudgeError(f"{where}: no \"prompt\" text (expected {{\"id\", \"prompt\", \"reference\"?, \"category\"?}}, "
                            "MT-Bench's \"turns\" or \"messages\")")
    cat = rec.get("category")
    return PromptItem(str(pid), prompt, str(ref) if ref not in (None, "") else None, str(cat) if cat else None,
                      followups, followup_refs, context)


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


def read_references(path: str | Path) -> dict[str, list[str]]:
    """Reference answers by question id, one per turn, from JSONL: MT-Bench's
    ``reference_answer/gpt-4.jsonl`` (``{"question_id", "choices": [{"turns": [first, second]}]}``)
    or ``{"id", "reference"}`` lines (a text, or a list of texts per turn)."""
    path = Path(path).expanduser()
    out: dict[str, list[str]] = {}
    lines: dict[str, int] = {}  # id -> the line that gave its references
    for n, rec in iter_jsonl(read_text(path, "reference file"), path.name):
        where = f"{path.name} line {n}"
        qid = rec.get("question_id", rec.get("id"))
        if qid is None or isinstance(qid, bool) or not isinstance(qid, str | int):
            raise LLMJudgeError(f"{where}: no \"question_id\" (or \"id\") to match the prompt set's ids")
        if "choices" in rec:
            try:
                refs = rec["choices"][0]["turns"]
            except (TypeError, KeyError, IndexError):
                refs = None
        else:
            refs = rec.get("reference")
            refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            raise LLMJudgeError(f"{where}: no reference text (MT-Bench's choices[0].turns, or \"reference\")")
        if str(qid) in lines:
            raise LLMJudgeError(f"{where}: id {str(qid)!r} already has references on line {lines[str(qid)]}; "
                                "give each question's references once")
        out[str(qid)], lines[str(qid)] = refs, n
    if not out:
        raise LLMJudgeError(f"{path} holds no reference answers")
    return out


def with_references(items: list[PromptItem], references: dict[str, list[str]]) -> list[PromptItem]:
    """The prompts with the references of their ids merged in (a file's reference replaces a
    set's own); an id the set lacks is an error, since it names the wrong set."""
    ids = {it.id for it in items}
    unknown = sorted(set(references) - ids)
    if unknown and len(unknown) == len(references):
        raise LLMJudgeError(f"no reference matches a prompt id (e.g. {unknown[0]!r}): is it the right prompt set?")
    out = []
    for it in items:
        refs = references.get(it.id)
        if refs is None:
            out.append(it)
        else:
            later = tuple(refs[1:it.turns]) + it.followup_references[len(refs) - 1:]
            out.append(replace(it, reference=refs[0], followup_references=later))
    return out


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
            check_item(item)
        except LLMJudgeError as exc:
            raise LLMJudgeError(f"prompt set {source!r}, {exc}") from None
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
