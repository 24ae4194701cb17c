"""Pairwise verdicts from anywhere: read, analyse, and write them from stored runs.

Format (JSONL, one item per line)::

    {"id": "...", "model_a": "...", "model_b": "...",
     "verdict": "A"|"B"|"tie"|null,          # the judge's verdict when it saw model_a first
     "verdict_swapped": "A"|"B"|"tie"|null,  # optional: when it saw model_b first, already in the
                                             # original labels (null: that order is unscored)
     "human": "A"|"B"|"tie",                 # optional
     "category": "..."}                      # optional

Win rates combine both verdicts with llm-judge's rule (disagreement = tie; see ``judge.combine``);
items where no order was scored are counted as unscored and left out of the rates. Agreement
figures divide by every item: an unscored order counts as not agreeing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from . import judge as J
from . import stats as S
from .errors import LLMJudgeError
from .store import Store
from .study import orient, pair_rows
from .textfiles import iter_jsonl, read_text

VALID = ("A", "B", "tie")
_FLIP = {"A": "B", "B": "A", "tie": "tie", None: None}


def _label(rec: dict, key: str, where: str) -> str | None:
    value = rec.get(key)
    if value is not None and (not isinstance(value, str) or value not in VALID):
        raise LLMJudgeError(f"{where}: {key} {json.dumps(value)[:40]} must be \"A\", \"B\", \"tie\" or null")
    return value


def read_verdicts(path: str | Path) -> list[dict]:
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
        rec.setdefault("model_a", "A")
        rec.setdefault("model_b", "B")
        rec["model_a"], rec["model_b"] = str(rec["model_a"]), str(rec["model_b"])
        if rec["model_a"] == rec["model_b"]:
            raise LLMJudgeError(f"{where}: model_a and model_b are both {rec['model_a']!r}")
        items.append(rec)
    if not items:
        raise LLMJudgeError(f"{path} holds no verdicts")
    return items


def combined(item: dict) -> str | None:
    """The item's verdict from both orders (``judge.combine``'s rule); None when unscored."""
    v, s = item.get("verdict"), item.get("verdict_swapped")
    return J.combine_winners(v, s)


def oriented(items: list[dict]) -> list[dict]:
    """Every item with its pair in one orientation: a pair given as "y vs x" on some lines and
    "x vs y" on others is one pair. The orientation is the first one the file uses."""
    first: dict[frozenset, tuple[str, str]] = {}
    out = []
    for it in items:
        a, b = it["model_a"], it["model_b"]
        pair = first.setdefault(frozenset((a, b)), (a, b))
        if pair == (a, b):
            out.append(it)
        else:  # the same pair written the other way round: exchange the labels of every verdict
            out.append({**it, "model_a": b, "model_b": a, "verdict": _FLIP[it.get("verdict")],
                        "verdict_swapped": _FLIP[it.get("verdict_swapped")], "human": _FLIP[it.get("human")],
                        **({} if "verdict_swapped" in it else {"verdict_swapped": None})})
    return out


def _win_rates(items: list[dict]) -> dict:
    by_pair: dict[tuple[str, str], list] = {}
    for it in items:
        by_pair.setdefault((it["model_a"], it["model_b"]), []).append(S.outcome(combined(it)))
    return {f"{a} vs {b}": S.pairwise_summary(v, (a, b)) for (a, b), v in by_pair.items()}


def analyze(items: list[dict], n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> dict:
    """Win rates of both sides of every pair (overall and per category), position consistency over
    all items, and agreement with human labels where the items carry them."""
    S.check_resamples(n_boot)
    items = oriented(items)
    two_orders = [it for it in items if "verdict_swapped" in it]
    out = {"items": len(items), "unscored": sum(combined(it) is None for it in items),
           "win_rates": _win_rates(items),
           "position_consistency": S.position_consistency([(it.get("verdict"), it.get("verdict_swapped"))
                                                           for it in two_orders])}
    cats = sorted({it["category"] for it in items if it.get("category")})
    if cats:
        out["by_category"] = {c: _win_rates([it for it in items if it.get("category") == c]) for c in cats}
    if any(it.get("human") is not None for it in items):
        out["human_agreement"] = S.agreement(items)
    return out


def verdict_records(store: Store, run_id: str) -> list[dict]:
    """A stored run's pairwise items in the analyze format, every one of them (an unscored order
    is null in its own slot), with the page's human votes (the latest per pair) as ``human``."""
    import json as _json

    run = store.run(run_id)
    run_id = run["id"]
    baseline = _json.loads(run["config"]).get("baseline")
    cats = {p["prompt_id"]: p["category"] for p in store.prompts(run_id)}
    human = latest_votes(store, run_id, baseline)
    out = []
    for (pid, (a, b)), orders in pair_rows(store.items(run_id), baseline).items():
        ab, ba = orders["AB"], orders["BA"]
        rec = {"id": pid, "model_a": a, "model_b": b, "verdict": ab["winner"] if ab else None,
               "verdict_swapped": ba["winner"] if ba else None}
        if (pid, a, b) in human:
            rec["human"] = human[(pid, a, b)]
        if cats.get(pid):
            rec["category"] = cats[pid]
        out.append(rec)
    return out


def latest_votes(store: Store, run_id: str, baseline: str | None = None) -> dict[tuple[str, str, str], str]:
    """(prompt_id, a, b) -> the latest human vote on that pair, in the pair's oriented labels."""
    out = {}
    for v in store.votes(run_id):  # oldest first: a later vote replaces an earlier one
        a, b = orient(v["label_a"], v["label_b"], baseline)
        out[(v["prompt_id"], a, b)] = v["choice"] if (a, b) == (v["label_a"], v["label_b"]) else _FLIP[v["choice"]]
    return out


def export_run(store: Store, run_id: str, path: str | Path, fmt: str) -> int:
    """Write a run as CSV (one row per result), JSONL (items) or verdicts; returns rows written."""
    run_id = store.run(run_id)["id"]
    if fmt == "verdicts":
        rows = verdict_records(store, run_id)
    else:
        prompts = {p["prompt_id"]: p["prompt"] for p in store.prompts(run_id)}
        rows = [{"run_id": run_id, "prompt_id": i["prompt_id"], "prompt": prompts[i["prompt_id"]], "kind": i["kind"],
                 "labels": "|".join(i["labels"]), "order": i["display_order"],
                 "text": i["text"] if i["kind"] == "generation" else None,
                 "status": i["g_status"] if i["kind"] == "generation" else i["j_status"],
                 "winner": (i["verdict"] or {}).get("winner"), "total": (i["verdict"] or {}).get("total"),
                 "verdict": json.dumps(i["verdict"]) if i["verdict"] else None, "raw": i["raw"]}
                for i in store.items(run_id)]
    try:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            if fmt == "csv":
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["run_id"])
                writer.writeheader()
                writer.writerows(rows)
            else:
                for r in rows:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise LLMJudgeError(f"cannot write {path}: {exc.strerror}") from None
    return len(rows)
