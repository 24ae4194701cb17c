"""Judge protocols as data: the published judging prompts (MT-Bench, Arena-Hard, AlpacaEval, LLMBar,
Prometheus 2) loaded from their folders, filled, and their verdicts read (issue #20).

A protocol is a folder under ``data/protocols/`` (or a user's folder) holding ``protocol.toml`` and
its template files (``data/protocols/README.md`` gives the format; ``docs/protocols-design.md`` the
design). ``load_protocol`` checks everything a run would otherwise trip on late (slots, regular
expressions, labels, scale, files) and says in one line which file and key is wrong. Then:

- ``messages`` fills a template in ONE pass (``re.sub`` over ``{slot}``): a value is never scanned
  again, so an answer holding ``{answer_b}`` stays as written, and every other brace is text. Each
  value first goes through ``verdicts.neutralise`` (chat-template markers) and then through the
  protocol's ``[delimiting].break`` patterns (its own delimiter lines get a space after their first
  character), so an answer cannot close its block and open a forged one. The template text itself is
  byte for byte the source's.
- ``parse`` is the one regex reader driven by ``[verdict]``: every match is read (pairwise: through
  ``labels`` into the frame SHOWN; single: a number inside ``scale``), and under ``select = "unique"``
  matches that disagree leave the judgment unscored as ambiguous, so a verdict quoted from an answer
  beside the judge's own never wins. Anything unreadable raises ``verdicts.VerdictError``.
- ``decision_offsets`` / ``read_probabilities`` give the weighted reading of ``[weighted]`` (the
  label's next-token distribution; Arena-Hard's two-position rule; MT-Bench's two-digit 10).

    >>> p = load_protocol("mt-bench-pair-v2")
    >>> parse(p, "B is clearer.\\n\\n[[B]]").winner
    'B'
    >>> v = pair_values("Q?", "x {answer_b}", "y")
    >>> "x {answer_b}" in messages(p, v, frozenset())[1]["content"]
    True

Left out on purpose: calling a judge, auxiliary calls and continuations (``judging``), cache keys
(``cache``), both orders and combining them (``verdicts``: every protocol's verdicts are decided
there), the built-in ``llm-judge`` protocol's prompt and JSON parser (``verdicts``; ``LLM_JUDGE`` only
names it, no function here takes it), nonce delimiting (``--delimit nonce``, not built yet) and
``system_merge`` for judges without a system role.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn

from . import defaults
from .criteria import Criterion, Scale
from .errors import LLMJudgeError
from .records import WINNERS, Grade, Number, Probabilities, Verdict, Winner
from .verdicts import VerdictError, neutralise
from .weighting import Decision, option_probabilities

Messages = list[dict[str, str]]
Kind = Literal["pairwise", "single"]
Select = Literal["unique", "first", "last"]

SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\}")
SLOTS = frozenset({"question", "answer_a", "answer_b", "answer", "reference", "metrics", "rubric", "question_1",
                   "answer_a_1", "answer_b_1", "answer_1", "reference_1", "conversation"})
AUX_SLOTS = frozenset({"question", "question_1"})
_FLAGS = {"IGNORECASE": re.IGNORECASE, "VERBOSE": re.VERBOSE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL,
          "ASCII": re.ASCII}
_ROLES = ("system", "user", "user_with_reference")
# FastChat's choice per item (gen_judgment.py): (turn 1 or 2, has a reference) -> the protocol
FAMILIES: dict[str, dict[tuple[int, bool], str]] = {
    f"mt-bench-{k}": {(1, False): f"mt-bench-{k}-v{v}", (2, False): f"mt-bench-{k}-v{v}-multi-turn",
                      (1, True): f"mt-bench-{k}-math-v1", (2, True): f"mt-bench-{k}-math-v1-multi-turn"}
    for k, v in (("pair", 2), ("single", 1))}
_FAMILY_OF_KIND = {"pairwise": "mt-bench-pair", "single": "mt-bench-single"}


@dataclass(frozen=True)
class Auxiliary:
    """A text the judge writes first from the question alone (LLMBar's metrics questions, its own
    reference output), filling the slot ``fills`` of the main template."""

    name: str
    fills: str
    system: str
    user: str
    max_tokens: int
    temperature: float


@dataclass(frozen=True)
class VerdictRule:
    """``[verdict]``: how one output is read (see ``parse``)."""

    regex: re.Pattern[str]
    fallback: re.Pattern[str] | None
    others: re.Pattern[str] | None  # ``unique_flags``: the regex as it finds the verdicts an output holds elsewhere
    labels: Mapping[str, Winner]  # pairwise: the match -> the winner in the frame shown
    strong: frozenset[str]
    select: Select
    strip: bool
    upper: bool
    decimals: bool  # single: "7.5" allowed
    continuation: str | None
    attempts: int
    grammar: str | None


@dataclass(frozen=True)
class WeightedRule:
    """``[weighted]``: the options at the verdict's first character and how they map to a winner."""

    labels: tuple[str, ...]
    winner: Mapping[str, Winner]
    two_digit: bool  # MT-Bench single: 1 and 10 share the first digit
    second: Mapping[str, tuple[str, ...]]  # Arena-Hard: after "A", the options of the next character


@dataclass(frozen=True, eq=False)
class Protocol:
    """One judge protocol, loaded and checked. Two protocols are equal when name and digest are."""

    name: str
    kind: Kind
    title: str
    summary: str
    builtin: bool
    ties: bool
    scale: Scale | None
    criterion: str
    needs_reference: bool
    auxiliary: tuple[Auxiliary, ...]
    max_tokens: int | None
    digest: str
    source: str
    path: str
    turns: int = 1
    templates: Mapping[str, str] = field(default_factory=dict)  # role -> template text
    slots: Mapping[str, str] = field(default_factory=dict)  # our slot -> the source's placeholder
    rule: VerdictRule | None = None
    weighted: WeightedRule | None = None
    delimiters: tuple[re.Pattern[str], ...] = ()
    rubrics: Mapping[str, str] = field(default_factory=dict)  # name -> rubric text; "template" the template
    rubric_first_line: bool = False
    members: Mapping[tuple[int, bool], str] = field(default_factory=dict)  # a family: (turn, reference) -> name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Protocol) and (self.name, self.digest) == (other.name, other.digest)

    def __hash__(self) -> int:
        return hash((self.name, self.digest))


def _data() -> Path:
    return Path(str(resources.files("llm_judge").joinpath("data", "protocols")))


LLM_JUDGE = Protocol(
    name="llm-judge", kind="pairwise", title="llm-judge's own JSON verdict (today's default)",
    summary="Built in code (llm_judge.verdicts): scores per criterion and a winner as one JSON object.",
    builtin=True, ties=True, scale=None, criterion="", needs_reference=False, auxiliary=(), max_tokens=None,
    digest="", source="llm-judge's own, llm_judge.verdicts pairwise-v4/single-v4 (Apache-2.0)",
    path=str(_data() / "llm-judge"), turns=0)


# --- loading --------------------------------------------------------------------------------------


def bundled() -> list[str]:
    """The bundled protocols' and families' names, sorted.

    >>> {"llm-judge", "arena-hard", "mt-bench-pair"} <= set(bundled())
    True
    """
    folders = {p.parent.name for p in _data().glob("*/protocol.toml")}
    return sorted(folders | set(FAMILIES))


def load_protocol(name_or_path: str) -> Protocol:
    """A bundled protocol or family by name, or a user's protocol from its folder or its
    ``protocol.toml``; every check of the design's section 1, an error naming file and key."""
    if name_or_path in ("llm-judge", "", None):
        return LLM_JUDGE
    if name_or_path in FAMILIES:
        return _family(name_or_path)
    if "/" not in name_or_path and (_data() / name_or_path / "protocol.toml").is_file():
        return _bundled(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / "protocol.toml").is_file():
        return _load(path)
    if path.is_file() and path.name == "protocol.toml":
        return _load(path.parent)
    return _unknown(name_or_path, path)


@functools.cache
def _bundled(name: str) -> Protocol:
    """A bundled protocol, read once per process (its files never change; a user's are read each time)."""
    return _load(_data() / name)


def _unknown(name: str, path: Path) -> NoReturn:
    if path.exists():
        raise LLMJudgeError(f"protocol {name!r}: no protocol.toml there; give a folder holding protocol.toml "
                            "(see data/protocols/README.md) or a bundled name")
    close = difflib.get_close_matches(name, bundled(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise LLMJudgeError(f"unknown protocol {name!r}{hint}: the bundled ones are {', '.join(bundled())}; "
                        "or give the folder of your own (holding protocol.toml)")


class _Doc:
    """One protocol.toml being read: its keys, and errors naming the file and the key."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.file = folder, folder / "protocol.toml"
        try:
            self.data: dict[str, Any] = tomllib.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LLMJudgeError(f"protocol {self.file}: not readable TOML ({exc}); fix the file") from None

    def fail(self, key: str, problem: str) -> NoReturn:
        raise LLMJudgeError(f"protocol {self.file}: {key}: {problem}")

    def table(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.fail(f"[{key}]", "must be a table")
        return value

    def get(self, table: str, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        where = self.table(table) if table else self.data
        value = where.get(key, default)
        if value is not None and not isinstance(value, kind) or isinstance(value, bool) and bool not in _kinds(kind):
            self.fail(f"{table + '.' if table else ''}{key}", f"{value!r} is not a {_type_names(kind)}")
        return value

    def read(self, key: str, name: object) -> str:
        """A template file of the folder, exactly as written (no strip, no newline added)."""
        if not isinstance(name, str) or not name:
            self.fail(key, "must name a file of the protocol's folder")
        path = (self.folder / name).resolve()
        if path.parent != self.folder.resolve() or not path.is_file():
            self.fail(key, f"no file {name!r} in {self.folder}; put it beside protocol.toml")
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.fail(key, f"{name} is not readable UTF-8 ({exc})")

    def pattern(self, key: str, source: object, flags: int) -> re.Pattern[str]:
        if not isinstance(source, str):
            self.fail(key, "must be a regular expression (a string)")
        try:
            compiled = re.compile(source, flags)
        except re.error as exc:
            self.fail(key, f"not a valid regular expression ({exc}); fix the pattern")
        return compiled


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _kinds(kind))


def _flags(doc: _Doc, table: str, key: str = "flags") -> int:
    names = doc.get(table, key, list, [])
    unknown = [n for n in names if n not in _FLAGS]
    if unknown:
        doc.fail(f"{table}.{key}", f"unknown flag {unknown[0]!r}: use {', '.join(_FLAGS)}")
    out = 0
    for n in names:
        out |= _FLAGS[n]
    return out


def _load(folder: Path) -> Protocol:
    doc = _Doc(folder)
    if doc.get("", "builtin", bool, False) or doc.get("verdict", "parser", str, "regex") != "regex":
        if folder.resolve() == (_data() / "llm-judge").resolve():
            return LLM_JUDGE
        doc.fail("verdict.parser", "only \"regex\" is read from a folder (the JSON parser is llm-judge's built-in)")
    kind = doc.get("", "kind", str)
    if kind not in ("pairwise", "single"):
        doc.fail("kind", f"{kind!r}: write kind = \"pairwise\" or \"single\"")
    templates, slots = _templates(doc)
    rule = _rule(doc, kind)
    return Protocol(
        name=doc.get("", "name", str, folder.name), kind=kind, title=doc.get("", "title", str, folder.name),
        summary=doc.get("", "summary", str, ""), builtin=False, ties=_ties(doc, rule), scale=_scale(doc, kind),
        criterion=doc.get("verdict", "criterion", str, "score"), needs_reference=_needs_reference(doc),
        auxiliary=_auxiliary(doc, slots), max_tokens=_positive(doc, "max_tokens"), digest=_digest(doc),
        source=_source(doc), path=str(folder), turns=_turns(doc), templates=templates, slots=slots, rule=rule,
        weighted=_weighted(doc, kind), delimiters=_delimiters(doc), rubrics=_rubrics(doc),
        rubric_first_line=doc.get("rubric", "first_line", bool, False))


def _templates(doc: _Doc) -> tuple[dict[str, str], dict[str, str]]:
    """The message templates, checked: every {slot} known and declared, every declared slot used."""
    files = doc.table("templates")
    texts = {role: doc.read(f"templates.{role}", files[role]) for role in _ROLES if role in files}
    if "user" not in texts:
        doc.fail("templates.user", "missing: name the user message's template file")
    slots = doc.get("", "slots", dict, {})
    used = {m.group(1): role for role, text in texts.items() for m in SLOT.finditer(text)}
    for slot, role in used.items():
        if slot not in SLOTS:
            doc.fail(f"templates.{role}", f"{{{slot}}} is no slot: use {', '.join(sorted(SLOTS))}")
        if slot not in slots:
            doc.fail("slots", f"{{{slot}}} of {files[role]} is not declared: add {slot} = '<the source's placeholder>'")
    for slot in slots:
        if slot not in used:
            doc.fail(f"slots.{slot}", "declared but no template uses it: remove it or use it")
    return texts, {k: str(v) for k, v in slots.items()}


def _rule(doc: _Doc, kind: str) -> VerdictRule:
    flags = _flags(doc, "verdict")
    regex = doc.pattern("verdict.regex", doc.table("verdict").get("regex"), flags)
    if regex.groups < 1:
        doc.fail("verdict.regex", "has no group: group 1 must capture the verdict")
    fallback = doc.table("verdict").get("fallback_regex")
    extra = _flags(doc, "verdict", "unique_flags")
    labels = doc.get("verdict", "labels", dict, {})
    if kind == "pairwise" and not labels:
        doc.fail("verdict.labels", "missing: map each verdict the regex reads to A, B or tie")
    for label, winner in labels.items():
        if winner not in WINNERS:
            doc.fail(f"verdict.labels.{label}", f"{winner!r} is not A, B or tie")
    select = doc.get("verdict", "select", str, "unique")
    if select not in ("unique", "first", "last"):
        doc.fail("verdict.select", f"{select!r}: write unique, first or last")
    return VerdictRule(
        regex, None if fallback is None else doc.pattern("verdict.fallback_regex", fallback, flags),
        re.compile(regex.pattern, flags | extra) if extra else None, labels,
        frozenset(doc.get("verdict", "strong", list, [])), select, doc.get("verdict", "strip", bool, False),
        doc.get("verdict", "upper", bool, False), str(doc.get("verdict", "value", str, "integer")).startswith("number"),
        doc.get("verdict", "continuation", str), doc.get("verdict", "attempts", int, 1),
        doc.get("verdict", "grammar", str))


def _ties(doc: _Doc, rule: VerdictRule) -> bool:
    ties = doc.get("", "ties", bool, False)
    if not ties and "tie" in rule.labels.values():
        doc.fail("ties", "false, but verdict.labels names a tie: set ties = true or drop the tie label")
    return bool(ties)


def _scale(doc: _Doc, kind: str) -> Scale | None:
    if kind == "pairwise":
        return None
    scale = doc.get("", "scale", dict)
    if not scale or not isinstance(scale.get("low"), int) or not isinstance(scale.get("high"), int):
        doc.fail("scale", "a single protocol needs scale = { low = 1, high = 10 } (integers)")
    try:
        return Scale(scale["low"], scale["high"])
    except LLMJudgeError as exc:
        doc.fail("scale", str(exc))


def _turns(doc: _Doc) -> int:
    turns = doc.get("", "turns", int, 1)
    if turns not in (1, 2):
        doc.fail("turns", f"{turns!r}: write 1, or 2 for a second turn's template")
    return int(turns)


def _positive(doc: _Doc, key: str) -> int | None:
    value = doc.get("", key, int)
    if value is not None and value < 1:
        doc.fail(key, f"{value} is not a positive number of tokens")
    return None if value is None else int(value)


def _needs_reference(doc: _Doc) -> bool:
    return doc.table("needs").get("reference") is True


def _auxiliary(doc: _Doc, slots: Mapping[str, str]) -> tuple[Auxiliary, ...]:
    items = doc.data.get("auxiliary", [])
    if not isinstance(items, list):
        doc.fail("[[auxiliary]]", "must be an array of tables")
    return tuple(_one_auxiliary(doc, i, item, slots) for i, item in enumerate(items))


def _one_auxiliary(doc: _Doc, i: int, item: Any, slots: Mapping[str, str]) -> Auxiliary:
    key = f"auxiliary[{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        doc.fail(key, "needs a name, fills, system, user, max_tokens")
    fills = item.get("fills")
    if fills not in slots:
        doc.fail(f"{key}.fills", f"{fills!r} is no slot of the main template")
    texts = {role: doc.read(f"{key}.{role}", item.get(role)) for role in ("system", "user")}
    for role, text in texts.items():
        bad = [m.group(1) for m in SLOT.finditer(text) if m.group(1) not in AUX_SLOTS]
        if bad:
            doc.fail(f"{key}.{role}", f"{{{bad[0]}}}: an auxiliary template takes {{question}} only")
    tokens, temperature = item.get("max_tokens", 256), item.get("temperature", 0.0)
    if not isinstance(tokens, int) or tokens < 1 or not isinstance(temperature, int | float):
        doc.fail(key, "max_tokens must be a positive integer and temperature a number")
    return Auxiliary(item["name"], str(fills), texts["system"], texts["user"], tokens, float(temperature))


def _weighted(doc: _Doc, kind: str) -> WeightedRule | None:
    table = doc.table("weighted")
    if not table:
        return None
    labels = table.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        doc.fail("weighted.labels", "must list the options' texts, e.g. ['A', 'B']")
    winner = table.get("winner", {label: label for label in labels} if kind == "pairwise" else {})
    for label, w in winner.items():
        if w not in WINNERS:
            doc.fail(f"weighted.winner.{label}", f"{w!r} is not A, B or tie")
    second = table.get("second", {})
    return WeightedRule(tuple(labels), winner, "two_digit" in table,
                        {k.removeprefix("after_"): tuple(v) for k, v in second.items()})


def _delimiters(doc: _Doc) -> tuple[re.Pattern[str], ...]:
    patterns = doc.get("delimiting", "break", list, [])
    flags = _flags(doc, "delimiting")
    return tuple(doc.pattern(f"delimiting.break[{i}]", p, flags) for i, p in enumerate(patterns))


def _rubrics(doc: _Doc) -> dict[str, str]:
    table = doc.table("rubric")
    names = {k: v for k, v in table.items() if isinstance(v, str) and v.endswith(".txt")}
    return {k: doc.read(f"rubric.{k}", v) for k, v in names.items()}


def _files(doc: _Doc) -> list[str]:
    """Every file the protocol reads besides protocol.toml."""
    main = [v for k, v in doc.table("templates").items() if k in _ROLES]
    aux = [item.get(r) for item in doc.data.get("auxiliary", []) for r in ("system", "user")]
    rubric = [v for v in doc.table("rubric").values() if isinstance(v, str) and v.endswith(".txt")]
    return sorted({str(n) for n in main + aux + rubric if isinstance(n, str)})


def _digest(doc: _Doc) -> str:
    """SHA-256 over protocol.toml and every file it reads, by name in sorted order: each name, a NUL,
    the file's own SHA-256, a newline."""
    h = hashlib.sha256()
    for name in sorted(["protocol.toml", *_files(doc)]):
        h.update(f"{name}\0{hashlib.sha256((doc.folder / name).read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def _source(doc: _Doc) -> str:
    s = doc.table("source")
    if not s.get("repository"):
        return f"a user's protocol at {doc.folder}"
    where = " ".join(str(x) for x in (s.get("path"), s.get("entry")) if x)
    commit = str(s.get("commit", ""))[:12]
    return f"{s['repository']}{'@' + commit if commit else ''} {where} ({s.get('licence', 'licence not stated')})"


def _family(name: str) -> Protocol:
    """A family: the protocol FastChat would pick per item (``resolve``); its rules those of the
    first-turn member without a reference, its digest over its members' digests."""
    members = FAMILIES[name]
    base = load_protocol(members[(1, False)])
    digest = hashlib.sha256("".join(load_protocol(m).digest for m in sorted(members.values())).encode()).hexdigest()
    return replace(base, name=name, title=f"MT-Bench {base.kind}: FastChat's choice per item",
                   summary=("The MT-Bench template for each item: " + ", ".join(sorted(members.values()))
                            + " (a reference answer picks the math template, the second turn the multi-turn one)."),
                   needs_reference=False, digest=digest, turns=0, members=members)


def resolve(p: Protocol, *, turn: int, reference: bool) -> Protocol:
    """The protocol that judges one item: a family's member for its turn and reference; any other
    protocol itself, once it fits (its turns, its reference), else one ``LLMJudgeError`` line.

    >>> resolve(load_protocol("mt-bench-pair"), turn=2, reference=True).name
    'mt-bench-pair-math-v1-multi-turn'
    """
    if p.builtin:
        return p
    if turn > 2:
        raise LLMJudgeError(f"protocol {p.name} shows at most two turns; this item is at turn {turn}: use llm-judge")
    if p.members:
        return load_protocol(p.members[(turn, reference)])
    family = _FAMILY_OF_KIND[p.kind]
    if p.turns != turn:
        which = "a first turn only" if p.turns == 1 else "a second turn only"
        raise LLMJudgeError(f"protocol {p.name} judges {which}, this item is at turn {turn}: use {family} "
                            "(it picks the template per item) or llm-judge")
    if p.needs_reference and not reference:
        raise LLMJudgeError(f"protocol {p.name} needs a reference answer: give the prompt set references or use "
                            f"{family} (it picks the template per item)")
    return p


# --- values and messages --------------------------------------------------------------------------


def _first(messages: Sequence[Mapping[str, str]], role: str) -> str | None:
    return next((m.get("content", "") for m in messages if m.get("role") == role), None)


def _render(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n\n".join(f"{m.get('role', '').capitalize()}: {m.get('content', '')}" for m in messages)


def _common(question: str, reference: str | None, reference_1: str | None, auxiliary: Mapping[str, str] | None,
            rubric: str | None) -> dict[str, str]:
    values = {"question": question}
    values.update({k: v for k, v in (("reference", reference), ("reference_1", reference_1), ("rubric", rubric)) if v})
    values.update(auxiliary or {})
    return values


def pair_values(question: str, first: str, second: str, *, reference: str | None = None,
                history: Sequence[Sequence[Mapping[str, str]]] | None = None,
                auxiliary: Mapping[str, str] | None = None, rubric: str | None = None,
                reference_1: str | None = None) -> dict[str, str]:
    """The slot values of a pair shown as ``first`` (A) and ``second`` (B). ``history``: each shown
    answer's earlier messages, in the positions shown; its first turn fills ``question_1``,
    ``answer_a_1`` and ``answer_b_1`` (its user message must be the same in both). ``auxiliary``:
    {slot: text}. ``reference_1``: the reference's first turn (MT-Bench math, second turn)."""
    values = _common(question, reference, reference_1, auxiliary, rubric)
    values.update(answer_a=first, answer_b=second)
    if history and any(history):
        a, b = history[0], history[-1]
        if _first(a, "user") != _first(b, "user"):
            raise LLMJudgeError("the two answers continue different conversations: a protocol's template shows one "
                                "first question; use llm-judge for this prompt set")
        earlier = {"question_1": _first(a, "user"), "answer_a_1": _first(a, "assistant"),
                   "answer_b_1": _first(b, "assistant"), "conversation": _render(a) if a == b else None}
        values.update({k: v for k, v in earlier.items() if v is not None})
    return values


def single_values(question: str, answer: str, *, reference: str | None = None,
                  history: Sequence[Mapping[str, str]] | None = None, auxiliary: Mapping[str, str] | None = None,
                  rubric: str | None = None, reference_1: str | None = None) -> dict[str, str]:
    """The slot values of one answer graded alone (``history``: its earlier messages)."""
    values = _common(question, reference, reference_1, auxiliary, rubric)
    values["answer"] = answer
    if history:
        earlier = {"question_1": _first(history, "user"), "answer_1": _first(history, "assistant"),
                   "conversation": _render(history)}
        values.update({k: v for k, v in earlier.items() if v is not None})
    return values


_GENERIC_SCORES = (
    "The response does not meet the criterion at all.",
    "The response meets the criterion in small part only.",
    "The response meets the criterion partly, with clear gaps.",
    "The response meets the criterion well, with minor gaps.",
    "The response meets the criterion fully.",
)


def rubric_text(p: Protocol, criteria: Sequence[Criterion]) -> str | None:
    """The rubric a protocol shows (Prometheus 2): the bundled helpfulness rubric for llm-judge's
    default criteria, else one built from the first criterion with the rubric template (generic
    score lines); relative grading shows its first line only. None for protocols without rubrics."""
    if not p.rubrics:
        return None
    if [c.name for c in criteria] == list(defaults.CRITERIA) or not criteria:
        text = p.rubrics.get("helpfulness") or next(v for k, v in p.rubrics.items() if k != "template")
    else:
        c = criteria[0]
        scores = {f"score{i}_description": s for i, s in enumerate(_GENERIC_SCORES, 1)}
        text = SLOT.sub(lambda m: {"criteria": c.rubric, **scores}.get(m.group(1), m.group(0)),
                        p.rubrics.get("template", "[{criteria}]"))
    return text.split("\n", 1)[0] if p.rubric_first_line else text


def break_delimiters(p: Protocol, text: str) -> str:
    """``text`` with every match of the protocol's delimiter patterns broken by a space after its
    first character, repeated until none is left (a broken run of quotes can join its neighbour).

    >>> break_delimiters(load_protocol("alpaca-eval-weighted"), 'a ' + '"' * 3 + ' b')
    'a " "" b'
    """
    for _ in range(64):
        before = text
        for pattern in p.delimiters:
            text = pattern.sub(lambda m: m.group(0)[:1] + " " + m.group(0)[1:] if m.group(0) else "", text)
        if text == before:
            return text
    raise LLMJudgeError(f"protocol {p.name}: a value keeps forming its delimiters; shorten it")


def inert(p: Protocol, value: str, special: frozenset[str]) -> str:
    """One value as the judge sees it: chat markers neutralised, the template's delimiters broken."""
    return break_delimiters(p, neutralise(value, special))


def fill(p: Protocol, template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{slot}`` replaced by its value in ONE pass (a value is never scanned
    again); a slot without a value is an ``LLMJudgeError``."""

    def value(m: re.Match[str]) -> str:
        slot = m.group(1)
        if slot not in values:
            raise LLMJudgeError(f"protocol {p.name} shows {{{slot}}} but this item has no {slot}: "
                                f"{_MISSING.get(slot, 'give it, or choose a protocol that does without it')}")
        return values[slot]

    return SLOT.sub(value, template)


_MISSING = {"reference": "give the prompt set references, or use a protocol without one",
            "rubric": "give a rubric (Prometheus 2: rubric_text)",
            "metrics": "the judge's auxiliary metrics text must be written first"}


def _concrete(p: Protocol) -> Protocol:
    if p.builtin or p.rule is None:
        raise ValueError(f"protocol {p.name} is built in: llm_judge.verdicts builds its prompt and reads its verdict")
    if p.members:
        raise LLMJudgeError(f"protocol {p.name} is a family: resolve it per item first (protocols.resolve)")
    return p


def messages(p: Protocol, values: Mapping[str, str], special: frozenset[str]) -> Messages:
    """The judge's system and user messages: every value made inert (``inert``), the templates
    filled in one pass; the reference template where the item has a reference and the protocol one."""
    p = _concrete(p)
    role = "user_with_reference" if "reference" in values and "user_with_reference" in p.templates else "user"
    clean = {k: inert(p, v, special) for k, v in values.items()}
    return [{"role": "system", "content": fill(p, p.templates.get("system", ""), clean)},
            {"role": "user", "content": fill(p, p.templates[role], clean)}]


def auxiliary_messages(p: Protocol, aux: Auxiliary, question: str, special: frozenset[str]) -> Messages:
    """The messages of one auxiliary call: its templates filled with the question alone."""
    clean = {"question": inert(_concrete(p), question, special)}
    return [{"role": "system", "content": fill(p, aux.system, clean)},
            {"role": "user", "content": fill(p, aux.user, clean)}]


def grammar(p: Protocol) -> str | None:
    """GBNF for the verdict-first protocols (LLMBar, AlpacaEval); None for the others."""
    return None if p.rule is None else p.rule.grammar


# --- reading the verdict --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Read:
    """The verdict a rule read: its match, the text it is in, that text's offset in the output."""

    match: re.Match[str]
    key: str | Number  # the label (pairwise) or the number (single)
    body: str
    shift: int


def _matches(rule: VerdictRule, text: str) -> tuple[list[re.Match[str]], str, int]:
    body = text.strip() if rule.strip else text
    shift = len(text) - len(text.lstrip()) if rule.strip else 0
    found = list(rule.regex.finditer(body))
    if not found and rule.fallback is not None:
        found = list(rule.fallback.finditer(body))
    return found, body, shift


def _key(p: Protocol, rule: VerdictRule, raw: str) -> str | Number:
    text = raw.upper() if rule.upper else raw
    if p.kind == "pairwise":
        if text not in rule.labels:
            raise VerdictError(f"{text!r} is not a label ({', '.join(rule.labels)})")
        return text
    if not text.isascii() or not re.fullmatch(r"[0-9]+(\.[0-9]*)?" if rule.decimals else r"[0-9]+", text):
        raise VerdictError(f"no verdict: {text!r} is not a number")
    value: Number = float(text) if "." in text else int(text)
    assert p.scale is not None
    if not p.scale.low <= value <= p.scale.high:
        raise VerdictError(f"{value} outside scale {p.scale.low}-{p.scale.high}")
    return value


def _shown(p: Protocol, keys: list[str | Number]) -> str:
    rule = _concrete(p).rule
    assert rule is not None
    winners = [rule.labels[str(k)] for k in keys] if p.kind == "pairwise" else []
    shown = winners if winners and len(set(winners)) == len(winners) else [str(k) for k in keys]
    return "[" + ", ".join(shown) + "]"


def _select(p: Protocol, text: str) -> _Read:
    rule = _concrete(p).rule
    assert rule is not None
    found, body, shift = _matches(rule, text if isinstance(text, str) else "")
    if not found:
        raise VerdictError(f"no verdict: the judge's output holds no {p.name} verdict")
    keys = [_key(p, rule, m.group(1)) for m in found]
    elsewhere = [_key(p, rule, m.group(1)) for m in rule.others.finditer(body)] if rule.others else []
    distinct = list(dict.fromkeys(keys + elsewhere))
    if rule.select == "unique" and len(distinct) > 1:
        raise VerdictError(f"ambiguous {_shown(p, distinct)}: the judge's output holds verdicts that disagree")
    i = len(found) - 1 if rule.select == "last" else 0
    return _Read(found[i], keys[i], body, shift)


def parse(p: Protocol, text: str) -> Verdict | Grade:
    """The verdict of one output (pairwise: a ``Verdict`` in the frame shown, no scores; single: a
    ``Grade`` with the protocol's one criterion), else ``VerdictError`` with the reason: never another
    exception.

    >>> v = parse(load_protocol("arena-hard"), "My own answer: ...\\n\\nB is better: [[B>>A]]")
    >>> v.winner, v.strong, v.scores, v.justification
    ('B', True, {}, 'My own answer: ...\\n\\nB is better:')
    >>> parse(load_protocol("mt-bench-single-v1"), "Rating: [[7.5]]").total
    7.5
    """
    rule = _concrete(p).rule
    assert rule is not None
    try:
        read = _select(p, text)
        why = read.body[:read.match.start()].strip()
        if p.kind == "pairwise":
            return Verdict(rule.labels[str(read.key)], {}, why, strong=read.key in rule.strong)
        value = read.key
        assert not isinstance(value, str)  # a single protocol's key is its number
        return Grade({p.criterion: value}, value, why)
    except VerdictError:
        raise
    except Exception as exc:  # a shape no rule foresaw: unscored with the reason, never a crash
        raise VerdictError(f"unreadable verdict ({type(exc).__name__}: {exc})") from None


def continuation(p: Protocol, text: str) -> str | None:
    """Arena-Hard's second attempt: the user message to send after ``text`` when it holds no label
    at all and the protocol allows another attempt; else None."""
    rule = _concrete(p).rule
    assert rule is not None
    if rule.continuation is None or rule.attempts < 2:
        return None
    found, _body, _shift = _matches(rule, text if isinstance(text, str) else "")
    return None if found else rule.continuation


# --- weighted verdicts ----------------------------------------------------------------------------


def decision_offsets(p: Protocol, text: str) -> list[int]:
    """Where the weighted decision is in the output: the verdict's first character (the label after
    ``[[``, after ``Output (``, after ``[RESULT]``, AlpacaEval's token), and the next one where the
    rule needs it (Arena-Hard after an A; MT-Bench's 1 or 10). Empty when there is no verdict.

    >>> decision_offsets(load_protocol("mt-bench-pair-v2"), "x [[A]]")
    [4]
    """
    if p.weighted is None:
        return []
    try:
        read = _select(p, text)
    except VerdictError:
        return []
    at = read.shift + read.match.start(1)
    return [at, at + 1] if _needs_second(p.weighted, read.key) else [at]


def _needs_second(w: WeightedRule, key: str | Number) -> bool:
    """Arena-Hard: after an A, whose mass "=" splits into a tie; MT-Bench: after a 1, which may be 10."""
    return "=" in w.second.get(str(key)[:1], ()) or w.two_digit and key in (1, 10)


def _next_char(decision: Decision, text: str, options: Sequence[str]) -> dict[str, float] | None:
    """Like ``weighting.option_probabilities`` for one character that may be a symbol (">", "=", "]"):
    each token's mass goes to the option its text starts with, after the token's characters before
    the decision; renormalised over the options."""
    lead = text[decision["start"]:decision["offset"]].lstrip()
    mass = dict.fromkeys(options, 0.0)
    for token, prob in decision["top"].items():
        rest = token.lstrip()
        if rest.startswith(lead):
            option = next((o for o in options if rest[len(lead):].startswith(o)), None)
            if option is not None:
                mass[option] += prob
    total = sum(mass.values())
    return None if total <= 1e-9 else {o: v / total for o, v in mass.items()}


def read_probabilities(p: Protocol, decisions: Sequence[Mapping[str, Any]] | None, text: str) -> Probabilities | None:
    """The judge's probabilities at its decision (``decisions`` as ``backends.Completion.decisions``):
    pairwise, the winner's in the frame shown (A, B, tie); single, the expected score of the
    protocol's criterion. None where the backend gave none or no option was in its top tokens.

    >>> p = load_protocol("llmbar-vanilla")
    >>> read_probabilities(p, [{"offset": 8, "start": 8, "top": {"a": 0.2, "b": 0.8}}], "Output (b)")
    Probabilities(winner={'A': 0.2, 'B': 0.8, 'tie': 0.0}, scores=None)
    """
    offsets = decision_offsets(p, text)
    by_offset = {d["offset"]: d for d in decisions or ()}
    if not offsets or offsets[0] not in by_offset or p.weighted is None:
        return None
    w = p.weighted
    probs = option_probabilities(by_offset[offsets[0]], text, list(w.labels))
    if probs is None:
        return None
    if len(offsets) > 1:
        second = by_offset.get(offsets[1])
        options = w.second.get(text[offsets[0]], ()) if w.second else ("0", "]")
        nxt = None if second is None else _next_char(second, text, options)
        if nxt is None:
            return None  # the position that splits the first one's mass was not reported
        if not w.second and second is not None and second["start"] <= offsets[0]:
            return _expected(p, probs)  # "10" was one token: the first position already told it from 1
        return _split(p, w, probs, nxt)
    return _winner_probs(w, probs) if p.kind == "pairwise" else _expected(p, probs)


def _winner_probs(w: WeightedRule, probs: Mapping[str, float]) -> Probabilities:
    out: dict[Winner, float] = dict.fromkeys(WINNERS, 0.0)
    for label, prob in probs.items():
        out[w.winner[label]] += prob
    return Probabilities(winner={k: round(v, 6) for k, v in out.items()})


def _expected(p: Protocol, probs: Mapping[str, float]) -> Probabilities:
    return Probabilities(scores={p.criterion: round(sum(float(k) * v for k, v in probs.items()), 4)})


def _split(p: Protocol, w: WeightedRule, probs: dict[str, float], nxt: Mapping[str, float]) -> Probabilities:
    """The two-position rules. Arena-Hard: A's mass split by P("=" after A) into a tie and A's win.
    MT-Bench single: the first digit 1's mass split by P("0" after it) into 10 and 1."""
    if p.kind == "pairwise":
        tie = probs["A"] * nxt.get("=", 0.0)
        return Probabilities(winner={"A": round(probs["A"] - tie, 6), "B": round(probs["B"], 6), "tie": round(tie, 6)})
    ten = probs["1"] * nxt["0"]
    return _expected(p, {**probs, "1": probs["1"] - ten, "10": probs.get("10", 0.0) + ten})

