"""Throughput of a study against a remote endpoint, as a share of the ideal.

A loopback server (llm_judge.testing.server) answers every request after a fixed delay, with
unlimited parallelism. The study generates 2 answers for each of 500 prompts (``generate_only``), then
runs again to make its 1,000 single-grading judgments at 64 requests in flight; that run is timed
against its ideal, 1,000 x delay / 64. Then a smaller run at 1 request in flight gives the sequential per-request
time, to compute the speed-up. Goal: >= 80% of ideal.

    .venv/bin/python bench/concurrency.py [--delay 0.2] [--judgments 1000] [--in-flight 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.prompts import PromptItem
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study


def judging_seconds(base: str, n_prompts: int, in_flight: int, db: Path) -> float:
    spec = f"openai:bench@{base}"
    cfg = StudyConfig(prompts=[PromptItem(str(i), f"Question {i}: explain item {i}.") for i in range(n_prompts)],
                      candidates={"a": Candidate(spec, make_sampling("p1")), "b": Candidate(spec, make_sampling("p2"))},
                      judge=spec, judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None),
                      mode="single")
    store = Store(db)
    run_study(cfg, store, concurrency=in_flight, generate_only=True)  # the answers first: judging is what is timed
    start = time.perf_counter()
    run_study(cfg, store, concurrency=in_flight)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--judgments", type=int, default=1000)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--sequential-sample", type=int, default=20, help="judgments timed at 1 in flight")
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "llm_judge.testing.server", "--port", "0", "--delay", str(args.delay)],
                              stdout=subprocess.PIPE, text=True)
    try:
        base = server.stdout.readline().split()[-1]
        with tempfile.TemporaryDirectory() as tmp:
            took = judging_seconds(base, args.judgments // 2, args.in_flight, Path(tmp) / "c.db")
            seq = judging_seconds(base, args.sequential_sample // 2, 1, Path(tmp) / "s.db") / args.sequential_sample
    finally:
        server.terminate()
    ideal = args.judgments * args.delay / args.in_flight
    print(f"{args.judgments} judgments at {args.in_flight} in flight, server delay {args.delay * 1000:.0f} ms")
    print(f"judging took {took:.2f} s; ideal {ideal:.2f} s; throughput {ideal / took:.1%} of ideal (goal >= 80%)")
    print(f"one at a time: {seq * 1000:.0f} ms per judgment -> {seq * args.judgments:.0f} s for all; "
          f"speed-up {seq * args.judgments / took:.1f}x")


if __name__ == "__main__":
    main()
