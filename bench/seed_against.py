"""The seed-10 study as users run it: this checkout against an earlier commit, back to back.

    .venv/bin/python bench/seed_against.py COMMIT [--pairs 3] [--max-tokens 256]

The 2-core reference machine's speed drifts by 10-20% within an hour (docs/benchmarks.md), so a
seed-10 time alone says more about the hour than about the code. This runs ``llm-judge run
--max-tokens 256`` (built-in candidates and judge, a fresh store each time) from COMMIT's source (a
temporary git worktree, on this checkout's virtual environment and llama.cpp build) and from this
checkout, alternately, and prints each pair's wall times and their ratio, the judge tokens each run
wrote, which set of answers each gave (a digest of its 20 texts: the same digest, the same
answers), and the machine's prompt processing rate before each pair (``llama-batched-bench``, 4
sequences of 600 tokens, ubatch 256: the reading docs/benchmarks.md gives with each day's figures,
there with an 8,192-token context, here with the sequences' own 2,592).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local import batched_bench

ROOT = Path(__file__).resolve().parents[1]


def seed_run(src: Path, db: Path, max_tokens: int) -> dict:
    """One ``llm-judge run`` from the source tree ``src``: wall seconds, judge tokens, answers' digest."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "llm_judge", "run", "--max-tokens", str(max_tokens), "--db", str(db)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"the seed-10 study failed from {src}: {last}")
    with sqlite3.connect(db) as con:
        texts = sorted(t or "" for (t,) in con.execute("SELECT text FROM generations"))
        judge_tokens = con.execute("SELECT SUM(completion_tokens) FROM judgments").fetchone()[0]
    return {"seconds": seconds, "judge_tokens": judge_tokens, "answers": texts_digest(texts)}


def texts_digest(texts: list[str]) -> str:
    """Which set of texts a run gave: the same digest, the same texts in the same order."""
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:8]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("commit", help="the earlier commit (any name git knows)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "earlier"
        added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.commit],
                               capture_output=True, text=True)
        if added.returncode != 0:
            raise SystemExit(f"git cannot check out {args.commit}: {added.stderr.strip().splitlines()[-1]}")
        try:
            ratios = []
            for n in range(args.pairs):
                speed = batched_bench(4, 600, 32, ubatch=256)["prompt_per_second"]
                then = seed_run(tree / "src", Path(tmp) / f"then{n}.db", args.max_tokens)
                now = seed_run(ROOT / "src", Path(tmp) / f"now{n}.db", args.max_tokens)
                ratios.append(now["seconds"] / then["seconds"])
                print(f"pair {n + 1} (prompt processing {speed:.0f} tokens/s before it): {args.commit} "
                      f"{then['seconds']:.1f} s (judge tokens {then['judge_tokens']}, answers {then['answers']}), "
                      f"this checkout {now['seconds']:.1f} s (judge tokens {now['judge_tokens']}, answers "
                      f"{now['answers']}): {ratios[-1]:.2f}", flush=True)
            print(f"this checkout / {args.commit}: mean {statistics.mean(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f}) over {len(ratios)} pair{'s' if len(ratios) > 1 else ''}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


if __name__ == "__main__":
    main()
