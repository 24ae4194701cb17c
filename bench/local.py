"""Local-model throughput: the in-process engine against the local server engine, side by side.

A local study's answers (the built-in model, 32 items, 128-token answers, one sampling preset) are
written once per engine by ``run_study(..., generate_only=True)`` (the study's own pool: one worker
per slot), each in a fresh store so nothing is cached. Aggregate generated tokens/s = the answers'
tokens / the wall time. The prompts ask for long articles, so that every answer runs to its 128
tokens as the ceiling's sequences do. The ceiling is llama.cpp's ``llama-batched-bench`` on the same
binary at the same parallelism, with prompts of the study's mean length and 128 generated tokens:
generated tokens over its total time (prompt processing included, as in the study), and its pure
generation speed. For comparison, the server also answers short-paragraph prompts, whose answers
end at different lengths (slots then turn over one by one, and the last wave runs part-empty).
Then the seed's study as users run it (``llm-judge run``: seed-10, 2 candidates, 256-token answers,
judged by the built-in model) on each engine, wall time.

Goals (issue 14): the server engine >= 1.6x in-process, >= 85% of the batched-bench figure;
the seed-10 study under 90 s.

    .venv/bin/python bench/local.py [--items 32] [--max-tokens 128] [--parallel 8] [--skip-seed-study]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from llm_judge import engine, make_sampling, parse_criteria
from llm_judge.backends import forget_backends, get_backend
from llm_judge.backends.llamacpp import embedded_model_path
from llm_judge.compare import Candidate
from llm_judge.prompts import PromptItem
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study

TOPICS = ["the sea", "a mountain village", "bread", "trains", "the moon", "a library", "winter", "bees", "a clock",
          "rivers", "chess", "tea", "a lighthouse", "bicycles", "rain", "volcanoes", "a garden", "owls", "maps",
          "the desert", "music", "glass", "a market", "snow", "kites", "bridges", "coffee", "forests", "whales",
          "candles", "the wind", "stars"]


LONG = "Write a long, detailed article about {}, with an introduction, five sections and a conclusion."
SHORT = "Write a short paragraph about {}."


def study_generation(engine_name: str, items: int, max_tokens: int, db: Path, prompt: str = LONG) -> dict:
    """Aggregate generated tokens/s of a study's answers on one engine."""
    os.environ["LLM_JUDGE_ENGINE"] = engine_name  # the settings every call of this process reads
    forget_backends()
    prompts = [PromptItem(str(i), prompt.format(TOPICS[i % len(TOPICS)])) for i in range(items)]
    config = StudyConfig(prompts=prompts, candidates={"a": Candidate("embedded", make_sampling("p1", max_tokens=max_tokens))},
                         judge="embedded", judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None),
                         mode="single")
    get_backend("embedded", n_ctx=2048)  # load (and start the server) before the clock starts
    store = Store(db)
    start = time.perf_counter()
    run_study(config, store, generate_only=True)
    seconds = time.perf_counter() - start
    rows = store.db.execute("SELECT completion_tokens, prompt_tokens FROM generations").fetchall()
    tokens = sum(r[0] or 0 for r in rows)
    prompt_tokens = sum(r[1] or 0 for r in rows) / max(len(rows), 1)
    forget_backends()
    engine.stop_all()
    return {"engine": engine_name, "answers": len(rows), "tokens": tokens, "seconds": seconds,
            "tokens_per_second": tokens / seconds, "mean_prompt_tokens": prompt_tokens}


def batched_bench(parallel: int, prompt_tokens: int, gen_tokens: int, ubatch: int = 512) -> dict:
    """llama-batched-bench on the built-in model: generated tokens/s overall and in generation alone,
    and its prompt processing rate (tokens/s)."""
    binary = engine.find_binary("llama-batched-bench")
    if binary is None:
        raise SystemExit("llama-batched-bench not found: run scripts/setup.sh")
    ctx = parallel * (prompt_tokens + gen_tokens) + 64
    out = subprocess.run([str(binary), "-m", str(embedded_model_path()), "-c", str(ctx), "-b", "2048", "-ub", str(ubatch),
                          "-npp", str(prompt_tokens), "-ntg", str(gen_tokens), "-npl", str(parallel), "-fa", "off",
                          "-ngl", "0"], capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if re.match(r"\|\s+\d+ \|", line))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s
    b, tg, total_s, s_tg = int(cells[2]), int(cells[1]), float(cells[8]), float(cells[7])
    return {"parallel": b, "generated_per_second_overall": b * tg / total_s, "generation_only": s_tg,
            "prompt_per_second": float(cells[5])}


def seed_study(engine_name: str, db: Path) -> float:
    import contextlib
    import io

    from llm_judge.cli import main

    forget_backends()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["--engine", engine_name, "run", "--max-tokens", "256", "--db", str(db), "--quiet", "--json"])
    took = time.perf_counter() - start
    forget_backends()
    engine.stop_all()
    if rc != 0:
        raise SystemExit(f"the seed-10 study failed on {engine_name}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--parallel", type=int, default=engine.DEFAULT_PARALLEL)
    ap.add_argument("--rounds", type=int, default=3, help="in-process, server and ceiling back to back, this many times")
    ap.add_argument("--skip-seed-study", action="store_true")
    args = ap.parse_args()
    os.environ["LLM_JUDGE_PARALLEL"] = str(args.parallel)
    print(f"local study, built-in model, {args.items} items, {args.max_tokens}-token answers, {args.parallel} slots; "
          f"{args.rounds} rounds. This machine's speed drifts by 10-20% from minute to minute, so each server run is "
          "set against the mean of the ceiling measured just before and just after it, and the ratios are the "
          "rounds' medians")
    speedups, shares, shares_tg, ragged = [], [], [], []
    prompt_tokens = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            inproc = study_generation("inprocess", args.items, args.max_tokens, Path(tmp) / f"i{n}.db")
            if prompt_tokens is None:  # the study's mean prompt (the same prompts every round)
                prompt_tokens = round(inproc["mean_prompt_tokens"])
            before = batched_bench(args.parallel, prompt_tokens, args.max_tokens)
            server = study_generation("server", args.items, args.max_tokens, Path(tmp) / f"s{n}.db")
            between = batched_bench(args.parallel, prompt_tokens, args.max_tokens)
            short = study_generation("server", args.items, args.max_tokens, Path(tmp) / f"r{n}.db", SHORT)
            short["engine"] = "server, short-paragraph prompts"
            after = batched_bench(args.parallel, prompt_tokens, args.max_tokens)
            ceiling = {k: (before[k] + between[k]) / 2 for k in ("generated_per_second_overall", "generation_only")}
            ceiling_short = (between["generated_per_second_overall"] + after["generated_per_second_overall"]) / 2
            ragged.append(short["tokens_per_second"] / ceiling_short)
            speedups.append(server["tokens_per_second"] / inproc["tokens_per_second"])
            shares.append(server["tokens_per_second"] / ceiling["generated_per_second_overall"])
            shares_tg.append(server["tokens_per_second"] / ceiling["generation_only"])
            print(f"round {n + 1} (mean prompt {prompt_tokens} tokens)")
            for r in (inproc, server, short):
                print(f"  {r['engine']:<10} {r['answers']} answers, {r['tokens']} tokens in {r['seconds']:.1f} s: "
                      f"{r['tokens_per_second']:.1f} generated tokens/s")
            print(f"  llama-batched-bench, {args.parallel} sequences, before / between / after the server runs: "
                  + " / ".join(f"{c['generated_per_second_overall']:.1f}" for c in (before, between, after))
                  + " generated tokens/s overall (prompts included); generation only "
                  + " / ".join(f"{c['generation_only']:.1f}" for c in (before, between, after)), flush=True)
        print(f"server / in-process: {statistics.median(speedups):.2f}x (goal >= 1.6x; rounds "
              + ", ".join(f"{x:.2f}" for x in speedups) + ")")
        print(f"server / batched-bench overall: {statistics.median(shares):.0%} (goal >= 85%; rounds "
              + ", ".join(f"{x:.0%}" for x in shares) + f"); of generation only: {statistics.median(shares_tg):.0%}")
        print(f"server on short-paragraph prompts (answers of mixed lengths) / batched-bench overall: "
              f"{statistics.median(ragged):.0%} (rounds " + ", ".join(f"{x:.0%}" for x in ragged) + ")", flush=True)
        if not args.skip_seed_study:
            for name in ("inprocess", "server"):
                took = seed_study(name, Path(tmp) / f"seed-{name}.db")
                print(f"seed-10 study (2 candidates, 256 tokens, judged) on {name}: {took:.1f} s (goal < 90 s)", flush=True)


if __name__ == "__main__":
    main()
