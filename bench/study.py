"""The seed-10 study on the built-in model, a rerun from cache, and `analyze` at scale.

    .venv/bin/python bench/study.py [--max-tokens 256] [--db /tmp/bench-study.db] [--skip-study] [--timeline]

Prints: wall time and tokens/s of the study (2 candidates, single grading), the rerun from cache,
and the time of `analyze` on 100,000 synthetic verdicts (goal: under 5 s). ``--timeline``: the
study's requests as the local server logged them (slot, start and end in seconds since the server
started, prompt tokens it evaluated, tokens generated), and their totals: where a study's time goes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from pathlib import Path

from llm_judge import engine, make_sampling, parse_criteria
from llm_judge.analyze import analyze, read_verdicts
from llm_judge.compare import Candidate
from llm_judge.prompts import load_prompts
from llm_judge.sampling import JUDGE_DEFAULT
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study

STAMP = r"(\d+)\.(\d+)\.(\d+)\.(\d+) . slot +\w+: id +(\d+) \| task (\d+) \| "  # llama-server's m.ss.mmm.uuu


def requests_from_log(log: str) -> list[dict]:
    """One llama-server's requests, read from its log: slot, task, start and end (seconds since the
    server started), prompt tokens evaluated (``pp``: those not already in the slot) and generated."""
    return sorted((r for r in _tasks(log) if "start" in r and "end" in r), key=lambda r: (r["start"], r["task"]))


def _tasks(log: str) -> list[dict]:
    """Every task the log names, finished or not."""
    tasks: dict[int, dict] = {}
    for m in re.finditer(STAMP + r"(.*)", log):
        minutes, sec, ms, us, slot, task, text = m.groups()
        t = int(minutes) * 60 + int(sec) + int(ms) / 1e3 + int(us) / 1e6
        row = tasks.setdefault(int(task), {"slot": int(slot), "task": int(task)})
        if "processing task" in text:
            row["start"] = t
        elif "stop processing" in text:
            row["end"] = t
        elif (found := re.search(r"(prompt eval|^\s*eval) time = .*?/\s*(\d+) tokens", text)):
            row["pp" if found[1] == "prompt eval" else "generated"] = int(found[2])
    return list(tasks.values())


def finished_logs(wait: float = 5.0) -> list[str]:
    """The local servers' logs once every request they started has its end line: a server writes its
    log from a thread of its own, so a request's last line can come a moment after its answer."""
    deadline = time.monotonic() + wait
    while True:
        logs = engine.server_logs()
        unfinished = [t for log in logs for t in _tasks(log) if "start" in t and "end" not in t]
        if not unfinished or time.monotonic() > deadline:
            return logs
        time.sleep(0.05)


def print_timeline(log: str) -> None:
    rows = requests_from_log(log)
    if not rows:
        print("timeline: no local server request in the log (the in-process engine, or a remote judge)")
        return
    for r in rows:
        print(f"  task {r['task']:4d}  slot {r['slot']:2d}  {r['start']:6.1f} - {r['end']:6.1f} s  "
              f"prompt tokens evaluated {r.get('pp', 0):4d}  generated {r.get('generated', 0):4d}")
    print(f"timeline: {len(rows)} requests from {rows[0]['start']:.1f} s to {max(r['end'] for r in rows):.1f} s; "
          f"prompt tokens evaluated {sum(r.get('pp', 0) for r in rows):,}, "
          f"tokens generated {sum(r.get('generated', 0) for r in rows):,}")


def study(db: Path, max_tokens: int, timeline: bool = False) -> None:
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
    if timeline:
        for log in finished_logs() or [""]:
            print_timeline(log)
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


def synthetic_store(path: Path, n_candidates: int = 20, n_prompts: int = 1000, seed: int = 0) -> str:
    """A finished pairwise study written straight into a store: candidates c00..c19 against the
    baseline c00 on n_prompts prompts in 5 categories, both orders, answers of varied length and
    markdown, verdicts from hidden strengths plus a taste for length (so every statistic has work)."""
    import hashlib

    from llm_judge.store import cache_key

    rng = random.Random(seed)
    labels = [f"c{k:02d}" for k in range(n_candidates)]
    strength = {lab: rng.gauss(0, 0.6) for lab in labels}
    store = Store(path)
    config = {"source": "synthetic", "prompts": [], "candidates": {lab: {"spec": f"fake:{lab}", "sampling": {}}
                                                                   for lab in labels},
              "judge": "fake:judge", "judge_sampling": {}, "criteria": [["Relevance", "r"]], "scale": [1, 4],
              "mode": "pairwise", "baseline": labels[0], "n_ctx": 2048, "template_version": "synthetic"}
    run_id = cache_key("run", **config)[:12]
    db = store.db
    db.execute("BEGIN")
    db.execute("INSERT INTO runs (id, created_at, config, manifest, status) VALUES (?, ?, ?, '{}', 'done')",
               (run_id, time.time(), json.dumps(config)))
    db.executemany("INSERT INTO run_prompts (run_id, prompt_id, position, prompt, reference, category) VALUES (?,?,?,?,?,?)",
                   [(run_id, f"p{i}", i, f"question {i}", None, f"cat{i % 5}") for i in range(n_prompts)])
    sampling = json.dumps(make_sampling("p1").model_dump())
    db.executemany("INSERT INTO run_candidates VALUES (?,?,?,?)", [(run_id, lab, f"fake:{lab}", sampling) for lab in labels])
    gens, items, judgments = [], [], []
    for i in range(n_prompts):
        texts = {}
        for lab in labels:
            lines = rng.randint(1, 12)
            texts[lab] = "\n".join(("- " if rng.random() < 0.4 else "") + ("**key** " if rng.random() < 0.2 else "")
                                   + "word " * rng.randint(3, 25) for _ in range(lines))
            key = hashlib.sha256(f"g{i}{lab}".encode()).hexdigest()
            gens.append((key, f"fake:{lab}", "{}", f"question {i}", "ok", texts[lab], None, 1, len(texts[lab]) // 5,
                         0.1, "stop", 0.0))
            items.append((run_id, f"gen:p{i}:{lab}", f"p{i}", "generation", json.dumps([lab]), "-", key, 0))
        for lab in labels[1:]:
            a, b = labels[0], lab
            logit = strength[a] - strength[b] + 1.5 * (len(texts[a]) - len(texts[b])) / (len(texts[a]) + len(texts[b]))
            for order in ("AB", "BA"):
                u = rng.random()
                p_a = 1 / (1 + pow(2.718281828, -logit))
                winner = "tie" if u < 0.1 else ("A" if rng.random() < p_a else "B")
                shown = winner if order == "AB" else {"A": "B", "B": "A", "tie": "tie"}[winner]
                key = hashlib.sha256(f"j{i}{lab}{order}".encode()).hexdigest()
                judgments.append((key, "pairwise", "fake:judge", "synthetic", order, "scored", "",
                                  json.dumps({"scores": {}, "winner": shown, "justification": ""}), None, 5, 0.1, 0.0, None))
                items.append((run_id, f"pairwise:p{i}:{a}|{b}:{order}", f"p{i}", "pairwise", json.dumps([a, b]), order, key, 0))
    db.executemany("INSERT INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", gens)
    db.executemany("INSERT INTO judgments (key, kind, judge_spec, template_version, display_order, status, raw, verdict, "
                   "error, completion_tokens, seconds, created_at, logprobs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", judgments)
    db.executemany("INSERT INTO run_items (run_id, item, prompt_id, kind, labels, display_order, result_key, repeat) "
                   "VALUES (?,?,?,?,?,?,?,?)", items)
    db.execute("COMMIT")
    store.close()
    return run_id


def leaderboard_bench(n_candidates: int = 20, n_prompts: int = 1000, n_boot: int = 1000) -> None:
    from llm_judge.present.report import render_html
    from llm_judge.study import summarize

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leaderboard.db"
        run_id = synthetic_store(path, n_candidates, n_prompts)
        store = Store(path)
        start = time.perf_counter()
        s = summarize(store, run_id, n_boot=n_boot)
        took = time.perf_counter() - start
        start = time.perf_counter()
        page = render_html(store, s)
        render = time.perf_counter() - start
    pw = s.pairwise
    print(f"summary of a synthetic {n_candidates}-candidate x {n_prompts:,}-prompt study ({len(pw.pairs)} pairs against "
          f"a baseline, both orders: {2 * len(pw.pairs) * n_prompts:,} judgments) with {n_boot} bootstrap resamples "
          f"(Bradley-Terry, length control per pair, style control): {took:.2f} s (goal < 10 s); HTML report "
          f"{render:.2f} s, {len(page) / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--db", default=None)
    ap.add_argument("--skip-study", action="store_true")
    ap.add_argument("--only-leaderboard", action="store_true", help="just the 20 x 1,000 summary")
    ap.add_argument("--timeline", action="store_true", help="the study's requests as the local server logged them")
    args = ap.parse_args()
    leaderboard_bench()
    if args.only_leaderboard:
        return
    if not args.skip_study:
        with tempfile.TemporaryDirectory() as tmp:
            study(Path(args.db) if args.db else Path(tmp) / "bench.db", args.max_tokens, args.timeline)
    analyze_bench()


if __name__ == "__main__":
    main()
