"""Verdict files, from anywhere: read and analyse them (``study.export`` writes them from a run).

Format (JSONL, one item per line)::

    {"id": "...", "model_a": "...", "model_b": "...",
     "verdict": "A"|"B"|"tie"|null,          # the judge's verdict when it saw model_a first
     "verdict_swapped": "A"|"B"|"tie"|null,  # optional: when it saw model_b first, already in the
                                             # original labels (null: that order is unscored)
     "human": "A"|"B"|"tie",                 # optional
     "category": "...",                      # optional
     "lengths": [chars of A, chars of B]}     # optional: gives the length-controlled win rate

Win rates combine both verdicts with llm-judge's rule (disagreement = tie; ``verdicts.combine``);
items where no order was scored are counted as unscored and left out of the rates. Agreement
figures divide by every item: an unscored order counts as not agreeing. A file of one order per
line may give an id's other order on a line with the models exchanged: the two lines are one item.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        if "verdict" not in rec:
            raise LLMJudgeError(f"{where}: no \"verdict\" (write null for an unscored one)")
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
    if "verdict_swapped" in it:
        out["verdict"], out["verdict_swapped"] = _swap(it["verdict_swapped"]), _swap(it["verdict"])
    else:
        out["verdict"] = _swap(it["verdict"])
    return out


def _join_orders(kept: Record, other: Record, other_flipped: bool) -> None:
    """One single-order item joined by the same id's other order (both in the pair's labels)."""
    shown_first, shown_second = (kept, other) if other_flipped else (other, kept)
    kept["verdict"], kept["verdict_swapped"] = shown_first["verdict"], shown_second["verdict"]
    for key in ("human", "category", "lengths"):
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


def analyze(items: list[Record], n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> dict[str, Any]:
    """Win rates of both sides of every pair (overall and per category), position consistency over
    all items, and agreement with human labels where the items carry them."""
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
    return out
