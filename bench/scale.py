"""The orchestrator's own cost: calls per second, CPU per call and peak memory of a study against
a zero-delay server, at 4,000, 40,000 and 400,000 calls; then the summary and `analyze` of the
largest study.

A study of 2 candidates on N/4 prompts (pairwise: 2 answers and both orders of the pair, 4 calls
per prompt; single: 2 answers and 2 grades) at `--concurrency 64`, against a zero-delay loopback
server in another process (`--server test`: llm_judge.testing.server; `--server fast`: the
minimal one below, which answers from a precomputed body, so that the server is not what is
measured). Each size runs in a fresh process of its own, so its peak memory (ru_maxrss) is its
own; CPU is that process's user + system time, the server's excluded.

Goals (#21): peak memory at 400,000 calls <= 500 MB; CPU per call <= 1 ms; calls per second at
400,000 >= 90% of the figure at 4,000; the summary and `analyze` of the 400,000-call study < 30 s.

    .venv/bin/python bench/scale.py [--calls 4000 40000 400000] [--mode pairwise] [--server fast]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# --- a minimal zero-delay OpenAI-compatible server -----------------------------------------------------

def _reply(content: str) -> bytes:
    body = json.dumps({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 12}}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class _Fast(asyncio.Protocol):
    """HTTP/1.1 keep-alive; a request with a response_format gets a verdict, any other an answer."""

    answer = _reply("An answer of a few words to the question.")
    verdict = _reply(json.dumps({"justification": "fine", "scores": {"Relevance": {"A": 3, "B": 2},
                                 "Coherence": {"A": 3, "B": 3}, "Completeness": {"A": 2, "B": 3}}, "winner": "A"}))
    grade = _reply(json.dumps({"justification": "fine", "scores": {"Relevance": 3, "Coherence": 2, "Completeness": 3}}))

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport, self.buf = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].decode("latin-1")
            length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                           if line.lower().startswith("content-length:")), 0)
            if len(self.buf) < end + 4 + length:
                return
            body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
            if b'"response_format"' not in body:
                self.transport.write(self.answer)
            else:
                self.transport.write(self.verdict if b'"winner"' in body else self.grade)


def serve_fast() -> None:
    async def main() -> None:
        srv = await asyncio.get_running_loop().create_server(_Fast, "127.0.0.1", 0, backlog=1024)
        print(f"listening on http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1", flush=True)
        await srv.serve_forever()
    asyncio.run(main())


# --- one study in this process ---------------------------------------------------------------------------

def one_study(base: str, calls: int, mode: str, db: Path, concurrency: int, summary: bool) -> dict:
    from llm_judge import make_sampling, parse_criteria
    from llm_judge.compare import Candidate
    from llm_judge.prompts import PromptItem
    from llm_judge.store import Store
    from llm_judge.study import StudyConfig, run_study

    spec = f"openai:bench@{base}"
    n = calls // 4
    cfg = StudyConfig(prompts=[PromptItem(f"q{i}", f"Question {i}: explain item {i} in a few words.") for i in range(n)],
                      candidates={"a": Candidate(spec, make_sampling("p1")), "b": Candidate(spec, make_sampling("p2"))},
                      judge=spec, judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None),
                      mode=mode)
    store = Store(db)
    cpu0, t0 = _cpu(), time.perf_counter()
    run_id = run_study(cfg, store, concurrency=concurrency)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    made = store.db.execute("SELECT COUNT(*) FROM run_items WHERE run_id=?", (run_id,)).fetchone()[0]
    out = {"calls": calls, "mode": mode, "items": made, "wall_s": round(wall, 2), "calls_per_s": round(calls / wall, 1),
           "cpu_ms_per_call": round(1000 * cpu / calls, 3),
           "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if summary:
        out |= after(store, run_id, db.parent)
    return out


def after(store, run_id: str, folder: Path) -> dict:  # type: ignore[no-untyped-def]
    """The summary of the study, and `analyze` of its verdicts exported."""
    from llm_judge.analyze import analyze, read_verdicts
    from llm_judge.study import summarize
    from llm_judge.study.export import export_run

    t0 = time.perf_counter()
    summary = summarize(store, run_id)
    out = {"summary_s": round(time.perf_counter() - t0, 2)}
    if summary.mode == "single":  # a verdict file holds pairwise verdicts: analyze has none to read
        return out
    path = folder / "verdicts.jsonl"
    export_run(store, run_id, path, "verdicts")
    t0 = time.perf_counter()
    analyze(read_verdicts(path))
    return out | {"analyze_s": round(time.perf_counter() - t0, 2)}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- the driver ----------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, nargs="+", default=[4000, 40000, 400000])
    ap.add_argument("--mode", choices=["pairwise", "single"], nargs="+", default=["pairwise"])
    ap.add_argument("--server", choices=["fast", "test"], default="fast")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--no-summary", action="store_true", help="skip the summary and analyze of the largest study")
    ap.add_argument("--keep", default=None, metavar="DB", help="keep the (last) study's store at this path")
    ap.add_argument("--child", nargs=4, metavar=("BASE", "CALLS", "MODE", "SUMMARY"), help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve_fast()
    if args.child:
        base, calls, mode, summary = args.child
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(args.keep) if args.keep else Path(tmp) / "s.db"
            print(json.dumps(one_study(base, int(calls), mode, db, args.concurrency, summary == "1")))
        return
    cmd = ([sys.executable, __file__, "--serve"] if args.server == "fast"
           else [sys.executable, "-m", "llm_judge.testing.server", "--port", "0"])
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        base = server.stdout.readline().split()[-1]  # type: ignore[union-attr]
        print(f"server: {args.server} ({base}), concurrency {args.concurrency}, {os.cpu_count()} cores")
        rows = []
        for mode in args.mode:
            for calls in args.calls:
                last = calls == max(args.calls) and not args.no_summary
                keep = ["--keep", args.keep] if args.keep and calls == max(args.calls) else []
                child = subprocess.run([sys.executable, __file__, "--concurrency", str(args.concurrency), *keep,
                                        "--child", base, str(calls), mode, "1" if last else "0"],
                                       capture_output=True, text=True)
                if child.returncode != 0:
                    sys.exit(child.stderr[-2000:])
                row = json.loads(child.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
        for mode in args.mode:
            mine = [r for r in rows if r["mode"] == mode]
            if len(mine) > 1:
                print(f"{mode}: rate at {mine[-1]['calls']:,} is {mine[-1]['calls_per_s'] / mine[0]['calls_per_s']:.0%} "
                      f"of the rate at {mine[0]['calls']:,} (goal >= 90%)")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
