"""The seed-10 study on the built-in model, a rerun from cache, and `analyze` at scale.

    .venv/bin/python bench/study.py [--max-tokens 256] [--db /tmp/bench-study.db] [--skip-study]

Prints: wall time and tokens/s of the study (2 candidates, single grading), the rerun from cache,
and the time of `analyze` on 100,000 synthetic verdicts (goal: under 5 s).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from llm_judge import make_sampling, parse_criteria
from llm_judge.analyze import analyze, read_verdicts
from llm_judge.compare import Candidate
from llm_judge.prompts import load_prompts
from llm_judge.sampling import JUDGE_DEFAULT
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study


def study(db: Path, max_tokens: int) -> None:
    cfg = StudyConfig(prompts=load_prompts("seed-10"),
                      candidates={f"embedded@{p}": Candidate("embedded", make_sampling(p, max_tokens=max_tokens))
                                  for p in ("p1", "p2")},
                      judge="embedded", judge_sampling=make_sampling(None, **JUDGE_DEFAULT),
                      criteria=parse_criteria(None), mode="single")
    store = Store(db)
    start = time.perf_counter()
    run_id = run_study(cfg, store)
    wall = time.perf_counter() - start
    gen = store.db.execute("SELECT SUM(completion_tokens), SUM(seconds) FROM generations g JOIN run_items i "
                           "ON i.result_key=g.key WHERE i.run_id=?", (run_id,)).fetchone()
    jud = store.db.execute("SELECT SUM(completion_tokens), SUM(seconds) FROM judgments j JOIN run_items i "
                           "ON i.result_key=j.key WHERE i.run_id=?", (run_id,)).fetchone()
    print(f"seed-10 study (2 candidates x 10 prompts, single grading, max_tokens {max_tokens}): "
          f"{wall:.1f} s wall; generation {gen[0]} tokens at {gen[0] / gen[1]:.1f} tokens/s; "
          f"judging {jud[0]} tokens at {jud[0] / jud[1]:.1f} tokens/s (incl. prompt processing)")
    start = time.perf_counter()
    run_study(cfg, store)
    print(f"rerun from cache: {time.perf_counter() - start:.2f} s ({wall / (time.perf_counter() - start):.0f}x faster)")


def analyze_bench(n: int = 100_000) -> None:
    rng = random.Random(0)
    models = ["m1", "m2", "m3", "m4"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "verdicts.jsonl"
        with path.open("w") as fh:
            for i in range(n):
                a, b = rng.sample(models, 2)
                fh.write(json.dumps({"id": str(i), "model_a": a, "model_b": b, "verdict": rng.choice("AB") if
                                     rng.random() > 0.2 else "tie", "verdict_swapped": rng.choice(["A", "B", "tie"]),
                                     "human": rng.choice("AB"), "category": rng.choice(["x", "y", "z"])}) + "\n")
        start = time.perf_counter()
        result = analyze(read_verdicts(path))
        took = time.perf_counter() - start
    print(f"analyze on {n:,} synthetic verdicts: {took:.2f} s (goal < 5 s); "
          f"{len(result['win_rates'])} model pairs, consistency {result['position_consistency']['rate']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--db", default=None)
    ap.add_argument("--skip-study", action="store_true")
    args = ap.parse_args()
    if not args.skip_study:
        with tempfile.TemporaryDirectory() as tmp:
            study(Path(args.db) if args.db else Path(tmp) / "bench.db", args.max_tokens)
    analyze_bench()


if __name__ == "__main__":
    main()
