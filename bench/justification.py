"""How long judges' justifications run when nothing bounds them, on the seed-10 study.

The verdict schema bounds a justification (``verdicts.JUSTIFICATION_CHARS``, stated in the prompt and
enforced by the local engines' grammar); this lifts the bound and grades the seed-10 study's answers
(the built-in model under p1 and p2, 256 tokens) with each judge given, then prints the lengths of
the justifications: the bound should sit above what a capable judge writes, and below where a small
judge that repeats itself runs to its token limit.

    .venv/bin/python bench/justification.py --judge embedded --judge gguf:/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from llm_judge import make_sampling, parse_criteria
from llm_judge import verdicts as V
from llm_judge.compare import Candidate
from llm_judge.prompts import load_prompts
from llm_judge.sampling import JUDGE_DEFAULT
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study


def lengths(judge: str, db: Path, limit: int | None) -> tuple[list[int], int]:
    """The characters of each readable verdict's justification, and how many verdicts were unreadable."""
    config = StudyConfig(prompts=load_prompts("seed-10", limit=limit),
                         candidates={"A": Candidate("embedded", make_sampling("p1", max_tokens=256)),
                                     "B": Candidate("embedded", make_sampling("p2", max_tokens=256))},
                         judge=judge, judge_sampling=make_sampling(None, **JUDGE_DEFAULT),
                         criteria=parse_criteria(None), mode="single")
    store = Store(db)
    run_id = run_study(config, store)
    items = store.items(run_id, kind="single")
    return [len(i.verdict.justification) for i in items if i.verdict is not None], sum(i.verdict is None for i in items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", action="append", default=[])
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    args = ap.parse_args()
    bound = V.JUSTIFICATION_CHARS
    # lifted: no maxLength in the grammar (a huge one would make the grammar itself huge), and a
    # prompt that names no real bound
    V.JUSTIFICATION_CHARS = 100_000
    V._justification_schema = lambda: {"type": "string"}
    with tempfile.TemporaryDirectory() as tmp:
        for judge in args.judge or ["embedded"]:
            got, unread = lengths(judge, Path(tmp) / "j.db", args.limit)
            got.sort()
            if not got:
                print(f"{judge}: no readable verdict ({unread} unreadable)")
                continue
            p90 = got[min(len(got) - 1, int(0.9 * len(got)))]
            print(f"{judge}: {len(got)} verdicts, justification characters median {statistics.median(got):.0f}, "
                  f"p90 {p90}, max {got[-1]}; over the {bound}-character bound: {sum(n > bound for n in got)}; "
                  f"unreadable (ran to the token limit or no verdict): {unread}")


if __name__ == "__main__":
    main()
