"""Exporting a stored run: CSV (one row per result), JSONL (items) or pairwise verdicts in the
``analyze`` format, every pairwise item included, with the page's human votes: one per voter and
pair (a voter's latest), the majority as ``human`` and the counts as ``human_votes``.

The records and rows are pure functions of a ``LoadedRun`` (``run_records``, ``export_rows``);
``verdict_records`` and ``export_run`` load the run from a store first. Left out: reading the
store (``study.loaded``), any figure computed from the records (``analyze``, ``stats``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import LLMJudgeError
from ..judging import majority
from ..records import Grade, Verdict, Winner, swap_winner
from ..store import RunItem, Store, labelled_json
from .loaded import LoadedRun, load_run, pair_rows, split_unit
from .run import orient

HumanCounts = dict[tuple[str, str, str], dict[Winner, int]]  # (prompt id, a, b) -> voters for A, B and tie


def verdict_records(store: Store, run_id: str) -> list[dict[str, Any]]:
    """A stored run's pairwise items in the analyze format (``run_records``)."""
    return run_records(load_run(store, run_id))


def run_records(run: LoadedRun) -> list[dict[str, Any]]:
    """A run's pairwise items in the analyze format, every one of them (an unscored order is null
    in its own slot), with the page's human label (``human_labels``) where people voted."""
    human, cats = human_labels(run), categories(run)
    texts = run.answers()
    out = []
    for row in pair_rows(run.units(), run.baseline):
        (a, b), pid = row.pair, row.unit
        ab, ba = row.by_order
        rec: dict[str, Any] = {"id": pid, "model_a": a, "model_b": b, "verdict": ab.winner if ab else None,
                               "verdict_swapped": ba.winner if ba else None}
        text_a, text_b = texts.get((pid, a)), texts.get((pid, b))
        if text_a is not None and text_b is not None:
            rec["lengths"] = [len(text_a), len(text_b)]
        out.append(annotate(rec, human, cats))
    return out


def categories(run: LoadedRun) -> dict[str, str | None]:
    """prompt id -> its category (None where it has none)."""
    return {p.prompt_id: p.category for p in run.prompts}


def annotate(record: dict[str, Any], human: HumanCounts, categories: Mapping[str, str | None]) -> dict[str, Any]:
    """A verdict record with its pair's human label and vote counts, and its prompt's category, where known."""
    pid, turn = split_unit(record["id"])  # votes are on a prompt's first turn
    key = (pid, record["model_a"], record["model_b"])
    if turn == 1 and key in human:
        record["human"] = human_label(human[key])
        record["human_votes"] = human[key]
    if categories.get(pid):
        record["category"] = categories[pid]
    return record


def human_labels(run: LoadedRun) -> HumanCounts:
    """(prompt_id, a, b) -> how many voters chose A, B and tie, in the pair's oriented labels: one
    vote per voter and pair, a voter's latest (votes without a voter count as one unknown voter's)."""
    latest: dict[tuple[str, str, str, str | None], Winner] = {}
    for v in run.votes:  # oldest first: a voter's later vote replaces their earlier one
        a, b = orient(v.label_a, v.label_b, run.baseline)
        choice = v.choice if (a, b) == (v.label_a, v.label_b) else swap_winner(v.choice)
        latest[(v.prompt_id, a, b, v.voter)] = choice
    counts: HumanCounts = {}
    for (pid, a, b, _voter), choice in latest.items():
        pair = counts.setdefault((pid, a, b), {"A": 0, "B": 0, "tie": 0})
        pair[choice] += 1
    return counts


def human_label(counts: Mapping[Winner, int]) -> Winner:
    """The people's label of a pair: the choice of more than half its voters, else a tie (the
    jury's rule, ``judging.majority``).

    >>> human_label({"A": 2, "B": 1, "tie": 0}), human_label({"A": 1, "B": 1, "tie": 0})
    ('A', 'tie')
    """
    return majority([choice for choice, n in counts.items() for _ in range(n)]) or "tie"


def export_rows(run: LoadedRun, fmt: str) -> list[dict[str, Any]]:
    """A run's rows in ``fmt``: verdict records, or one row per result (CSV and JSONL)."""
    if fmt == "verdicts":
        return run_records(run)
    prompts = {p.prompt_id: p.prompt for p in run.prompts}
    return [_result_row(run.run_id, prompts[i.prompt_id], i) for i in run.items if i.repeat == 0]


def _result_row(run_id: str, prompt: str, i: RunItem) -> dict[str, Any]:
    """One result as a CSV or JSONL row: the verdict in the item's labels, as JSON text."""
    generation = i.kind == "generation"
    v = i.verdict
    return {"run_id": run_id, "prompt_id": i.prompt_id, "prompt": prompt, "kind": i.kind,
            "labels": "|".join(i.labels), "order": i.order, "turn": i.turn, "text": i.text if generation else None,
            "status": i.status, "winner": v.winner if isinstance(v, Verdict) else None,
            "total": v.total if isinstance(v, Grade) else None,
            "verdict": json.dumps(labelled_json(v, i.order)) if v else None, "raw": i.raw}


def export_run(store: Store, run_id: str, path: str | Path, fmt: str) -> int:
    """Write a stored run as CSV (one row per result), JSONL (items) or verdicts; returns rows written."""
    return write_rows(export_rows(load_run(store, run_id), fmt), path, fmt)


def write_rows(rows: list[dict[str, Any]], path: str | Path, fmt: str) -> int:
    """Write export rows to ``path`` (CSV with a header, else one JSON object a line); returns rows written."""
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
