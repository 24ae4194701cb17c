"""Pairwise verdicts from anywhere: read, analyse, and write them from stored runs.

Format (JSONL, one item per line)::

    {"id": "...", "model_a": "...", "model_b": "...", "verdict": "A"|"B"|"tie",
     "verdict_swapped": "A"|"B"|"tie",   # optional: the verdict when the judge saw B first,
                                         # already in the original labels
     "human": "A"|"B"|"tie",             # optional
     "category": "..."}                  # optional

Win rates combine both verdicts with llm-judge's rule (disagreement = tie).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from . import stats as S
from .errors import LLMJudgeError
from .store import Store
from .study import pair_rows
from .textfiles import iter_jsonl, read_text

VALID = {"A", "B", "tie"}


def read_verdicts(path: str | Path) -> list[dict]:
    path = Path(path)
    items = []
    for n, rec in iter_jsonl(read_text(path, "verdict file"), path.name):
        for key in ("verdict", "verdict_swapped", "human"):
            value = rec.get(key)
            if value is not None and value not in VALID:
                raise LLMJudgeError(f"{path.name} line {n}: {key} {value!r} must be \"A\", \"B\" or \"tie\"")
        if rec.get("verdict") is None:
            raise LLMJudgeError(f"{path.name} line {n}: no \"verdict\"")
        rec.setdefault("model_a", "A")
        rec.setdefault("model_b", "B")
        items.append(rec)
    if not items:
        raise LLMJudgeError(f"{path} holds no verdicts")
    return items


def combined(item: dict) -> str:
    v, s = item["verdict"], item.get("verdict_swapped")
    return v if s is None or s == v else "tie"


def analyze(items: list[dict], n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> dict:
    by_pair = defaultdict(list)
    for it in items:
        by_pair[f"{it['model_a']} vs {it['model_b']}"].append(S.outcome(combined(it)))
    swapped = [(it["verdict"], it.get("verdict_swapped")) for it in items]
    out = {"items": len(items),
           "win_rates": {k: S.pairwise_summary(v, n_boot, seed) for k, v in by_pair.items()},
           "position_consistency": S.position_consistency(swapped)}
    if any(it.get("human") is not None for it in items):
        out["human_agreement"] = S.agreement(items)
    return out


def verdict_records(store: Store, run_id: str) -> list[dict]:
    """A stored run's pairwise verdicts in the analyze format, with the page's human votes as ``human``."""
    run_id = store.run(run_id)["id"]
    cats = {p["prompt_id"]: p["category"] for p in store.prompts(run_id)}
    human = {(v["prompt_id"], v["label_a"], v["label_b"]): v["choice"] for v in store.votes(run_id)}  # latest wins
    out = []
    for (pid, (a, b)), orders in pair_rows(store.items(run_id)).items():
        ab, ba = orders.get("AB"), orders.get("BA")
        if ab is None and ba is None:
            continue
        rec = {"id": pid, "model_a": a, "model_b": b,
               "verdict": (ab or ba)["winner"]}
        if ab and ba:
            rec["verdict_swapped"] = ba["winner"]
        if (pid, a, b) in human:
            rec["human"] = human[(pid, a, b)]
        if cats.get(pid):
            rec["category"] = cats[pid]
        out.append(rec)
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
