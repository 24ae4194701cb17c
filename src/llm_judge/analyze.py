"""Verdict files, from anywhere: read and analyse them (``study.export`` writes them from a run).

Format (JSONL, one item per line)::

    {"id": "...", "model_a": "...", "model_b": "...",
     "verdict": "A"|"B"|"tie"|null,          # the judge's verdict when it saw model_a first
     "verdict_swapped": "A"|"B"|"tie"|null,  # optional: when it saw model_b first, already in the
                                             # original labels (null: that order is unscored)
     "human": "A"|"B"|"tie",                 # optional
     "category": "...",                      # optional
     "lengths": [chars of A, chars of B],     # optional: gives the length-controlled win rate
     "preference": 1.0-2.0|null,              # optional: AlpacaEval's soft verdict (1: model_a better,
                                             # 2: model_b, 1.5 a draw; 0 is read as a draw, as AlpacaEval does)
     "p_b": 0.0-1.0|null}                     # optional: P(model_b is better), the same as preference 1 + p_b

Win rates combine both verdicts with llm-judge's rule (disagreement = tie; ``verdicts.combine``);
items where no order was scored are counted as unscored and left out of the rates. Agreement
figures divide by every item: an unscored order counts as not agreeing. A file of one order per
line may give an id's other order on a line with the models exchanged: the two lines are one item.

A line with a ``preference`` (or ``p_b``) may leave out ``verdict``: its verdict is then the
preference rounded as AlpacaEval's ``discrete_win_rate`` rounds it. The soft figures of such a
file (AlpacaEval's ``win_rate``, ``discrete_win_rate`` and the length-controlled win rate fitted on
the soft labels, in its minimal form, and in its full form given the per-instruction difficulty
file, ``read_difficulty``) are ``soft_preferences`` in the result (``leaderboards``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import leaderboards as L
from . import stats as S
from . import verdicts as V
from .errors import LLMJudgeError
from .records import WINNERS, Winner, swap_winner
from .textfiles import iter_jsonl, read_text

VALID = WINNERS
Record = dict[str, Any]  # one line of a verdict file (the format above)


def _swap(winner: Winner | None) -> Winner | None:
    """A verdict of a line with A and B exchanged (``records.swap_winner``; null stays null)."""
    return None if winner is None else swap_winner(winner)


def _label(rec: Record, key: str, where: str) -> Winner | None:
    value: Winner | None = rec.get(key)
    if value is not None and (not isinstance(value, str) or value not in VALID):
        raise LLMJudgeError(f"{where}: {key} {json.dumps(value)[:40]} must be \"A\", \"B\", \"tie\" or null")
    return value


def read_verdicts(path: str | Path) -> list[Record]:
    path = Path(path)
    items = []
    for n, rec in iter_jsonl(read_text(path, "verdict file"), path.name):
        where = f"{path.name} line {n}"
        for key in ("verdict", "verdict_swapped", "human"):
            _label(rec, key, where)
        _preference(rec, where)
        if "verdict" not in rec:
            if "preference" not in rec:
                raise LLMJudgeError(f"{where}: no \"verdict\" (write null for an unscored one)")
            rec["verdict"] = None if rec["preference"] is None else L.discrete_winner(rec["preference"])
        for key in ("model_a", "model_b", "category"):
            value = rec.get(key)
            if value is not None and not isinstance(value, str):
                raise LLMJudgeError(f"{where}: {key} {json.dumps(value)[:40]} must be a string")
        ln = rec.get("lengths")
        if ln is not None and not (isinstance(ln, list) and len(ln) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in ln)):
            raise LLMJudgeError(f"{where}: lengths {json.dumps(ln)[:40]} must be two whole numbers (characters of A and B)")
        rec.setdefault("model_a", "A")
        rec.setdefault("model_b", "B")
        rec["model_a"], rec["model_b"] = str(rec["model_a"]), str(rec["model_b"])
        if rec["model_a"] == rec["model_b"]:
            raise LLMJudgeError(f"{where}: model_a and model_b are both {rec['model_a']!r}")
        items.append(rec)
    if not items:
        raise LLMJudgeError(f"{path} holds no verdicts")
    return items


def _number(rec: Record, key: str, low: float, high: float, where: str) -> float | None:
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise LLMJudgeError(f"{where}: {key} {json.dumps(value)[:40]} must be a number from {low:g} to {high:g} or null")
    return float(value)


def _preference(rec: Record, where: str) -> None:
    """A line's soft verdict as ``preference`` (AlpacaEval's 1-2 scale), from ``preference`` or
    ``p_b``; both given must agree."""
    if "preference" not in rec and "p_b" not in rec:
        return
    given = rec.get("preference")
    pref = 1.5 if given == 0 and not isinstance(given, bool) else _number(rec, "preference", 1, 2, where)
    p_b = _number(rec, "p_b", 0, 1, where)
    if pref is not None and p_b is not None and abs(pref - L.preference_of(p_b)) > 1e-9:
        raise LLMJudgeError(f"{where}: preference {pref:g} and p_b {p_b:g} disagree (preference is 1 + p_b): give one")
    rec["preference"] = pref if pref is not None else None if p_b is None else L.preference_of(p_b)


def read_difficulty(path: str | Path) -> dict[str, float]:
    """AlpacaEval's ``instruction_difficulty.csv``: a header line, then ``index,difficulty`` per
    instruction (its position in the AlpacaEval set, which a verdict file's ``id`` names)."""
    path = Path(path)
    lines = [ln for ln in read_text(path, "instruction difficulty file").splitlines() if ln.strip()]
    out: dict[str, float] = {}
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split(",")
        try:
            out[parts[0].strip()] = float(parts[1])
        except (IndexError, ValueError):
            raise LLMJudgeError(f"{path.name} line {n}: {line[:40]!r} is not \"index,difficulty\" (AlpacaEval's "
                                "instruction_difficulty.csv)") from None
    if not out:
        raise LLMJudgeError(f"{path} holds no instruction difficulties (AlpacaEval's instruction_difficulty.csv)")
    return out


def combined(item: Record) -> Winner | None:
    """The item's verdict from both orders (``judge.combine``'s rule); None when unscored."""
    v, s = item.get("verdict"), item.get("verdict_swapped")
    return V.combine_winners(v, s)


def oriented(items: list[Record]) -> list[Record]:
    """Every item with its pair in one orientation: a pair given as "y vs x" on some lines and
    "x vs y" on others is one pair. The orientation is the first one the file uses.

    A line written the other way round showed the pair's second model first, so its two orders
    are exchanged as well as its labels. Two single-order lines of one id, one written each way
    round, are that item judged in both orders: they become one item with both verdicts.
    """
    first: dict[frozenset[str], tuple[str, str]] = {}
    out: list[Record] = []
    waiting: dict[tuple[str, tuple[str, str]], dict[bool, list[Record]]] = {}  # (id, pair) -> single-order items by "flipped"
    for it in items:
        a, b = it["model_a"], it["model_b"]
        pair = first.setdefault(frozenset((a, b)), (a, b))
        flipped = pair != (a, b)
        rec = _flipped(it) if flipped else dict(it)
        if "verdict_swapped" in it or it.get("id") is None:
            out.append(rec)
            continue
        other = waiting.setdefault((str(it["id"]), pair), {False: [], True: []})
        if other[not flipped]:
            _join_orders(other[not flipped].pop(0), rec, flipped)
        else:
            other[flipped].append(rec)
            out.append(rec)
    return out


def _flipped(it: Record) -> dict[str, Any]:
    """A line given as "y vs x" in the labels of "x vs y": the order that showed y first is this
    pair's swapped order; a single-order line keeps its one verdict in ``verdict``."""
    out = {**it, "model_a": it["model_b"], "model_b": it["model_a"], "human": _swap(it.get("human"))}
    if it.get("lengths"):
        out["lengths"] = it["lengths"][::-1]
    if it.get("preference") is not None:
        out["preference"] = 3 - it["preference"]
    if "verdict_swapped" in it:
        out["verdict"], out["verdict_swapped"] = _swap(it["verdict_swapped"]), _swap(it["verdict"])
    else:
        out["verdict"] = _swap(it["verdict"])
    return out


def _join_orders(kept: Record, other: Record, other_flipped: bool) -> None:
    """One single-order item joined by the same id's other order (both in the pair's labels)."""
    shown_first, shown_second = (kept, other) if other_flipped else (other, kept)
    kept["verdict"], kept["verdict_swapped"] = shown_first["verdict"], shown_second["verdict"]
    if kept.get("preference") is not None and other.get("preference") is not None:  # both orders: their mean
        kept["preference"] = (kept["preference"] + other["preference"]) / 2
    for key in ("human", "category", "lengths", "preference"):
        if kept.get(key) is None and other.get(key) is not None:
            kept[key] = other[key]


def _win_rates(items: list[Record], n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> dict[str, Any]:
    by_pair: dict[tuple[str, str], list[Record]] = {}
    for it in items:
        by_pair.setdefault((it["model_a"], it["model_b"]), []).append(it)
    return {f"{a} vs {b}": S.pairwise_summary(
        [S.outcome(combined(it)) for it in rows], (a, b), n_boot=n_boot, seed=seed,
        lengths=[tuple(it["lengths"]) if it.get("lengths") else None for it in rows]
        if all(it.get("lengths") for it in rows) else None) for (a, b), rows in by_pair.items()}


def _soft(items: list[Record], difficulty: dict[str, float] | None, n_boot: int, seed: int) -> dict[str, L.SoftPair]:
    """Each pair's AlpacaEval figures over its items with a preference (the second model's)."""
    by_pair: dict[tuple[str, str], list[Record]] = {}
    for it in items:
        if it.get("preference") is not None:
            by_pair.setdefault((it["model_a"], it["model_b"]), []).append(it)
    out = {}
    for (a, b), rows in by_pair.items():
        lengths = [tuple(it["lengths"]) for it in rows] if all(it.get("lengths") for it in rows) else None
        out[f"{a} vs {b}"] = L.soft_pair(a, b, [it["preference"] for it in rows], lengths,  # type: ignore[arg-type]
                                         _difficulties(rows, difficulty) if lengths else None, n_boot, seed)
    return out


def _difficulties(rows: list[Record], difficulty: dict[str, float] | None) -> list[float] | None:
    """Each item's instruction difficulty by its id, or the one-line error naming one not there."""
    if difficulty is None:
        return None
    missing = [str(it.get("id")) for it in rows if str(it.get("id")) not in difficulty]
    if missing:
        raise LLMJudgeError(f"the instruction difficulty file has no line for id {missing[0]!r} ({len(missing)} "
                            "items missing): give AlpacaEval's file for the instructions these items judge")
    return [difficulty[str(it["id"])] for it in rows]


def analyze(items: list[Record], n_boot: int = S.DEFAULT_BOOT, seed: int = 0,
            difficulty: dict[str, float] | None = None) -> dict[str, Any]:
    """Win rates of both sides of every pair (overall and per category), position consistency over
    all items, and agreement with human labels where the items carry them; with soft preferences
    their AlpacaEval figures (``difficulty``: ``read_difficulty``'s, for the full LC form)."""
    S.check_resamples(n_boot)
    items = oriented(items)
    two_orders = [it for it in items if "verdict_swapped" in it]
    out = {"items": len(items), "unscored": sum(combined(it) is None for it in items),
           "win_rates": _win_rates(items, n_boot, seed),
           "position_consistency": S.position_consistency([(it.get("verdict"), it.get("verdict_swapped"))
                                                           for it in two_orders])}
    models = {m for it in items for m in (it["model_a"], it["model_b"])}
    if len(models) > 2:  # a leaderboard: ratings with intervals and rank ranges, resampling items
        games: dict[str, list[tuple[str, str, float]]] = {}
        for k, it in enumerate(items):
            w = combined(it)
            if w is not None:
                games.setdefault(str(it.get("id", k)), []).append((it["model_a"], it["model_b"], V.POINTS[w]))
        if games:
            out["bradley_terry"] = S.bradley_terry_ci(games, n_boot=n_boot, seed=seed)
    cats = sorted({it["category"] for it in items if it.get("category")})
    if cats:
        out["by_category"] = {c: _win_rates([it for it in items if it.get("category") == c], n_boot, seed) for c in cats}
    if any(it.get("human") is not None for it in items):
        out["human_agreement"] = S.agreement(items)
    if any(it.get("preference") is not None for it in items):
        out["soft_preferences"] = _soft(items, difficulty, n_boot, seed)
    elif difficulty is not None:
        raise LLMJudgeError("an instruction difficulty file was given but no item has a preference or p_b: it "
                            "serves AlpacaEval's soft preferences only")
    return out
