"""Exporting a stored run: CSV (one row per result), JSONL (items) or pairwise verdicts in the
``analyze`` format, every pairwise item included, with the page's human votes: one per voter and
pair (a voter's latest), the majority as ``human`` and the counts as ``human_votes``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..analyze import FLIP
from ..errors import LLMJudgeError
from ..judging import majority
from ..store import Store
from .run import orient
from .summary import pair_rows, split_unit, unit_items


def verdict_records(store: Store, run_id: str) -> list[dict]:
    """A stored run's pairwise items in the analyze format, every one of them (an unscored order
    is null in its own slot), with the page's human label (``human_labels``) where people voted."""
    run = store.run(run_id)
    run_id = run["id"]
    baseline = json.loads(run["config"]).get("baseline")
    cats = {p["prompt_id"]: p["category"] for p in store.prompts(run_id)}
    human = human_labels(store, run_id, baseline)
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


def annotate(record: dict, human: dict[tuple[str, str, str], dict[str, int]], categories: dict) -> dict:
    """A verdict record with its pair's human label and vote counts, and its prompt's category, where known."""
    pid, turn = split_unit(record["id"])  # votes are on a prompt's first turn
    key = (pid, record["model_a"], record["model_b"])
    if turn == 1 and key in human:
        record["human"] = human_label(human[key])
        record["human_votes"] = human[key]
    if categories.get(pid):
        record["category"] = categories[pid]
    return record


def human_labels(store: Store, run_id: str, baseline: str | None = None) -> dict[tuple[str, str, str], dict[str, int]]:
    """(prompt_id, a, b) -> how many voters chose A, B and tie, in the pair's oriented labels: one
    vote per voter and pair, a voter's latest (votes without a voter count as one unknown voter's)."""
    latest = {}
    for v in store.votes(run_id):  # oldest first: a voter's later vote replaces their earlier one
        a, b = orient(v["label_a"], v["label_b"], baseline)
        choice = v["choice"] if (a, b) == (v["label_a"], v["label_b"]) else FLIP[v["choice"]]
        latest[(v["prompt_id"], a, b, v["voter"])] = choice
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for (pid, a, b, _voter), choice in latest.items():
        pair = counts.setdefault((pid, a, b), {"A": 0, "B": 0, "tie": 0})
        pair[choice] += 1
    return counts


def human_label(counts: dict[str, int]) -> str:
    """The people's label of a pair: the choice of more than half its voters, else a tie (the
    jury's rule, ``judging.majority``).

    >>> human_label({"A": 2, "B": 1, "tie": 0}), human_label({"A": 1, "B": 1, "tie": 0})
    ('A', 'tie')
    """
    return majority([choice for choice, n in counts.items() for _ in range(n)]) or "tie"


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
