"""Exporting a stored run: CSV (one row per result), JSONL (items) or pairwise verdicts in the
``analyze`` format, every pairwise item included, with the page's human votes (the latest per pair).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..analyze import FLIP
from ..errors import LLMJudgeError
from ..store import Store
from .run import orient
from .summary import pair_rows, prompt_of, unit_items


def verdict_records(store: Store, run_id: str) -> list[dict]:
    """A stored run's pairwise items in the analyze format, every one of them (an unscored order
    is null in its own slot), with the page's human votes (the latest per pair) as ``human``."""
    run = store.run(run_id)
    run_id = run["id"]
    baseline = json.loads(run["config"]).get("baseline")
    cats = {p["prompt_id"]: p["category"] for p in store.prompts(run_id)}
    human = latest_votes(store, run_id, baseline)
    items = unit_items(store, run_id)
    texts = {(i["prompt_id"], i["labels"][0]): i["text"] for i in items if i["kind"] == "generation"}
    out = []
    for (pid, (a, b)), orders in pair_rows(items, baseline).items():
        ab, ba = orders["AB"], orders["BA"]
        rec = {"id": pid, "model_a": a, "model_b": b, "verdict": ab["winner"] if ab else None,
               "verdict_swapped": ba["winner"] if ba else None}
        if texts.get((pid, a)) is not None and texts.get((pid, b)) is not None:
            rec["lengths"] = [len(texts[(pid, a)]), len(texts[(pid, b)])]
        out.append(annotate(rec, human, cats))
    return out


def annotate(record: dict, human: dict, categories: dict) -> dict:
    """A verdict record with its pair's latest human vote and its prompt's category, where known."""
    key = (record["id"], record["model_a"], record["model_b"])
    if key in human:
        record["human"] = human[key]
    if categories.get(prompt_of(record["id"])):
        record["category"] = categories[prompt_of(record["id"])]
    return record


def latest_votes(store: Store, run_id: str, baseline: str | None = None) -> dict[tuple[str, str, str], str]:
    """(prompt_id, a, b) -> the latest human vote on that pair, in the pair's oriented labels."""
    out = {}
    for v in store.votes(run_id):  # oldest first: a later vote replaces an earlier one
        a, b = orient(v["label_a"], v["label_b"], baseline)
        out[(v["prompt_id"], a, b)] = v["choice"] if (a, b) == (v["label_a"], v["label_b"]) else FLIP[v["choice"]]
    return out


def export_run(store: Store, run_id: str, path: str | Path, fmt: str) -> int:
    """Write a run as CSV (one row per result), JSONL (items) or verdicts; returns rows written."""
    run_id = store.run(run_id)["id"]
    if fmt == "verdicts":
        rows = verdict_records(store, run_id)
    else:
        prompts = {p["prompt_id"]: p["prompt"] for p in store.prompts(run_id)}
        rows = [{"run_id": run_id, "prompt_id": i["prompt_id"], "prompt": prompts[i["prompt_id"]], "kind": i["kind"],
                 "labels": "|".join(i["labels"]), "order": i["display_order"], "turn": i["turn"],
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
