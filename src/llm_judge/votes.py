"""Blind human votes on a stored run's answers, and the judge's agreement with them.

The judge's verdict on a pair is its pairwise verdict in both orders when the run has one,
else the comparison of the two single-grading totals. People's votes count once per voter and
pair (a voter's latest); a pair's human label is the majority of its voters, else a tie
(``study.export.human_labels``). Agreement figures are those of ``llm-judge analyze``, computed
on the same records.

``run_vote_pairs``, ``run_judge_verdicts`` and ``run_agreement`` are pure functions of a
``LoadedRun``; ``vote_pairs``, ``judge_verdicts``, ``agreement`` and ``next_item`` load the run
from a store first (the votes cast so far included), and ``cast`` writes one vote. Left out:
deciding a verdict (``verdicts``) and computing a figure (``analyze``, ``stats``).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from . import verdicts as V
from .analyze import analyze
from .errors import LLMJudgeError
from .records import LABELS, Grade
from .store import Store
from .study.export import annotate, categories, human_labels, run_records
from .study.loaded import LoadedRun, load_run, unit_id
from .study.run import run_pairs

PairKey = tuple[str, str, str]  # (prompt id, a, b), the pair oriented as the run orients it


def _answers(run: LoadedRun) -> dict[tuple[str, str], str]:
    # votes are on the first turn's answers (a conversation's later turns are for the judge)
    return {(i.prompt_id, i.labels[0]): i.text for i in run.items
            if i.kind == "generation" and i.repeat == 0 and i.text and i.turn == 1}


def vote_pairs(store: Store, run_id: str) -> list[PairKey]:
    """A stored run's pairs to vote on (``run_vote_pairs``)."""
    return run_vote_pairs(load_run(store, run_id))


def run_vote_pairs(run: LoadedRun, answers: dict[tuple[str, str], str] | None = None) -> list[PairKey]:
    """Every (prompt_id, a, b) the judge compared whose two answers exist, oriented as the run's
    pairs: with a baseline only the pairs against it, else every pair of candidates."""
    pairs = run_pairs(run.labels, run.baseline)
    answers = _answers(run) if answers is None else answers
    return [(p.prompt_id, a, b) for p in run.prompts for a, b in pairs
            if (p.prompt_id, a) in answers and (p.prompt_id, b) in answers]


def next_item(store: Store, run_id: str, rng: random.Random) -> dict[str, Any]:
    """A pair with the fewest voters so far, sides randomised; names are for after the vote."""
    run = load_run(store, run_id)
    answers = _answers(run)
    pairs = run_vote_pairs(run, answers)
    if not pairs:
        raise LLMJudgeError(f"run {run.run_id} has no pair of answers to vote on (it needs two candidates)")
    voted = {(v.prompt_id, v.label_a, v.label_b, v.voter) for v in run.votes}
    counts = Counter(key[:3] for key in voted)  # voters per pair
    fewest = min(counts[p] for p in pairs)
    prompt_id, a, b = rng.choice([p for p in pairs if counts[p] == fewest])
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    prompt = next(p.prompt for p in run.prompts if p.prompt_id == prompt_id)
    return {"run_id": run.run_id, "prompt_id": prompt_id, "prompt": prompt, "label_a": a, "label_b": b,
            "left": left, "right": right, "left_text": answers[(prompt_id, left)],
            "right_text": answers[(prompt_id, right)]}


def cast(store: Store, item: dict[str, Any], side: str, voter: str | None = None) -> str:
    """Record ``voter``'s vote given as 'left', 'right' or 'tie' (it replaces their earlier vote on
    the pair); returns it in the original labels."""
    if side not in ("left", "right", "tie"):
        raise LLMJudgeError(f"a vote is left, right or tie, not {side!r}")
    if side == "tie":
        choice = "tie"
    else:
        chosen = item[side]
        choice = LABELS[0] if chosen == item["label_a"] else LABELS[1]
    store.add_vote(item["run_id"], item["prompt_id"], item["label_a"], item["label_b"], item["left"], choice, voter)
    return choice


def judge_verdicts(store: Store, run_id: str) -> dict[PairKey, dict[str, Any]]:
    """A stored run's verdict record on each pair (``run_judge_verdicts``)."""
    return run_judge_verdicts(load_run(store, run_id))


def run_judge_verdicts(run: LoadedRun) -> dict[PairKey, dict[str, Any]]:
    """(prompt_id, a, b) -> the run's verdict record on that pair (the ``analyze`` format, the
    human label and counts included): its pairwise verdicts where it has them, else the comparison
    of the two single-grading totals."""
    out = {(r["id"], r["model_a"], r["model_b"]): r for r in run_records(run)}
    singles = {(i.prompt_id, i.labels[0]): i.verdict for i in run.items
               if i.kind == "single" and i.repeat == 0 and i.turn == 1 and isinstance(i.verdict, Grade)}
    human, cats = human_labels(run), categories(run)
    for pid, a, b in run_vote_pairs(run):
        va, vb = singles.get((pid, a)), singles.get((pid, b))
        uid = unit_id(pid, 1)  # the record's id, as run_records names a first turn
        if (uid, a, b) not in out and va and vb:
            rec = {"id": uid, "model_a": a, "model_b": b, "verdict": V.single_winner(va.total, vb.total)}
            out[(uid, a, b)] = annotate(rec, human, cats)
    return out


def agreement(store: Store, run_id: str) -> dict[str, Any]:
    """The judge's agreement with a stored run's votes so far (``run_agreement``)."""
    return run_agreement(load_run(store, run_id))


def run_agreement(run: LoadedRun) -> dict[str, Any]:
    """The judge's agreement with the human labels so far (each pair's majority of one vote per
    voter), the same records and figures as ``llm-judge export --format verdicts | llm-judge analyze``.
    ``votes`` counts the votes that count (one per voter and pair)."""
    records = [r for r in run_judge_verdicts(run).values() if "human" in r]
    human = human_labels(run)
    result: dict[str, Any] = {"votes": sum(sum(c.values()) for c in human.values()), "voted_pairs": len(human),
                              "judged_votes": len(records)}
    if records:
        result["analysis"] = analyze(records, n_boot=200)
    return result
