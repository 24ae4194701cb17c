"""Blind human votes on a stored run's answers, and the judge's agreement with them.

The judge's verdict on a pair is its pairwise verdict in both orders when the run has one,
else the comparison of the two single-grading totals. People's votes count once per voter and
pair (a voter's latest); a pair's human label is the majority of its voters, else a tie
(``study.export.human_labels``). Agreement figures are those of ``llm-judge analyze``, computed
on the same records.
"""

from __future__ import annotations

import json
import random
from collections import Counter

from . import verdicts as V
from .analyze import analyze
from .errors import LLMJudgeError
from .store import Store
from .study import verdict_records
from .study.export import annotate, human_labels
from .study.run import run_pairs
from .study.summary import unit_id


def _answers(store: Store, run_id: str) -> dict[tuple[str, str], str]:
    # votes are on the first turn's answers (a conversation's later turns are for the judge)
    return {(i["prompt_id"], i["labels"][0]): i["text"] for i in store.items(run_id, "generation")
            if i["text"] and i["turn"] == 1}


def _baseline(store: Store, run_id: str) -> str | None:
    return json.loads(store.run(run_id)["config"]).get("baseline")


def vote_pairs(store: Store, run_id: str, answers: dict | None = None) -> list[tuple[str, str, str]]:
    """Every (prompt_id, a, b) the judge compared whose two answers exist, oriented as the run's
    pairs: with a baseline only the pairs against it, else every pair of candidates."""
    pairs = run_pairs([c["label"] for c in store.candidates(run_id)], _baseline(store, run_id))
    answers = _answers(store, run_id) if answers is None else answers
    return [(p["prompt_id"], a, b) for p in store.prompts(run_id) for a, b in pairs
            if (p["prompt_id"], a) in answers and (p["prompt_id"], b) in answers]


def next_item(store: Store, run_id: str, rng: random.Random) -> dict:
    """A pair with the fewest voters so far, sides randomised; names are for after the vote."""
    run_id = store.run(run_id)["id"]
    answers = _answers(store, run_id)
    pairs = vote_pairs(store, run_id, answers)
    if not pairs:
        raise LLMJudgeError(f"run {run_id} has no pair of answers to vote on (it needs two candidates)")
    voted = {(v["prompt_id"], v["label_a"], v["label_b"], v["voter"]) for v in store.votes(run_id)}
    counts = Counter(key[:3] for key in voted)  # voters per pair
    fewest = min(counts[p] for p in pairs)
    prompt_id, a, b = rng.choice([p for p in pairs if counts[p] == fewest])
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    prompt = next(p["prompt"] for p in store.prompts(run_id) if p["prompt_id"] == prompt_id)
    return {"run_id": run_id, "prompt_id": prompt_id, "prompt": prompt, "label_a": a, "label_b": b,
            "left": left, "right": right, "left_text": answers[(prompt_id, left)],
            "right_text": answers[(prompt_id, right)]}


def cast(store: Store, item: dict, side: str, voter: str | None = None) -> str:
    """Record ``voter``'s vote given as 'left', 'right' or 'tie' (it replaces their earlier vote on
    the pair); returns it in the original labels."""
    if side not in ("left", "right", "tie"):
        raise LLMJudgeError(f"a vote is left, right or tie, not {side!r}")
    if side == "tie":
        choice = "tie"
    else:
        chosen = item[side]
        choice = "A" if chosen == item["label_a"] else "B"
    store.add_vote(item["run_id"], item["prompt_id"], item["label_a"], item["label_b"], item["left"], choice, voter)
    return choice


def judge_verdicts(store: Store, run_id: str) -> dict[tuple[str, str, str], dict]:
    """(prompt_id, a, b) -> the run's verdict record on that pair (the ``analyze`` format, the
    human label and counts included): its pairwise verdicts where it has them, else the comparison of the two
    single-grading totals."""
    out = {(r["id"], r["model_a"], r["model_b"]): r for r in verdict_records(store, run_id)}
    singles = {(i["prompt_id"], i["labels"][0]): i["verdict"] for i in store.items(run_id, "single") if i["turn"] == 1}
    human = human_labels(store, run_id, _baseline(store, run_id))
    cats = {p["prompt_id"]: p["category"] for p in store.prompts(run_id)}
    for pid, a, b in vote_pairs(store, run_id):
        va, vb = singles.get((pid, a)), singles.get((pid, b))
        uid = unit_id(pid, 1)  # the record's id, as verdict_records names a first turn
        if (uid, a, b) not in out and va and vb:
            rec = {"id": uid, "model_a": a, "model_b": b, "verdict": V.single_winner(va["total"], vb["total"])}
            out[(uid, a, b)] = annotate(rec, human, cats)
    return out


def agreement(store: Store, run_id: str) -> dict:
    """The judge's agreement with the human labels so far (each pair's majority of one vote per
    voter), the same records and figures as ``llm-judge export --format verdicts | llm-judge analyze``.
    ``votes`` counts the votes that count (one per voter and pair)."""
    run_id = store.run(run_id)["id"]
    records = [r for r in judge_verdicts(store, run_id).values() if "human" in r]
    human = human_labels(store, run_id, _baseline(store, run_id))
    result = {"votes": sum(sum(c.values()) for c in human.values()), "voted_pairs": len(human),
              "judged_votes": len(records)}
    if records:
        result["analysis"] = analyze(records, n_boot=200)
    return result
