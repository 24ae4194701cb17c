"""The web page's costs: time to first page, a cold and a warm comparison against the bare
generation time inside them, and 8 comparisons submitted at once.

    .venv/bin/python bench/ui.py [--max-tokens 64]

Starts `llm-judge ui` on a free port (built-in model) and drives it through gradio_client.
"Bare generation" is the sum of the seconds llama.cpp spent on the two answers and the two
judge calls, as recorded in the result.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from gradio_client import Client

PROMPT = "Explain how to bake a chocolate cake without using eggs."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def args_for(max_tokens: int, prompt: str = PROMPT) -> list:
    return ["embedded", "embedded", "embedded", "p1", "p2", str(max_tokens), *[""] * 8, "0",
            ["Relevance", "Coherence", "Completeness"], "", prompt]


def bare_seconds(result: dict) -> float:
    gen = sum(c["seconds"] for c in result["candidates"].values())
    return gen + sum(o.get("seconds") or 0 for o in result["orders"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "llm-judge")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen([exe, "ui", "--port", str(port), "--db", f"{tmp}/ui.db"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        try:
            while True:
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            first_page = time.perf_counter() - start
            client = Client(url, verbose=False)
            rows = []
            for name in ("cold", "warm"):
                t = time.perf_counter()
                result = client.predict(*args_for(args.max_tokens), api_name="/compare")[5]
                wall = time.perf_counter() - t
                rows.append((name, wall, bare_seconds(result)))
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                jobs = [pool.submit(lambda i: Client(url, verbose=False).predict(
                    *args_for(args.max_tokens, f"{PROMPT} (variant {i})"), api_name="/compare")[5], i) for i in range(8)]
                results = [j.result() for j in jobs]
            eight = time.perf_counter() - t
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"time to first page: {first_page:.1f} s (process start, imports, page served)")
    for name, wall, bare in rows:
        print(f"{name} comparison: {wall:.2f} s wall, {bare:.2f} s bare generation, ratio {wall / bare:.2f}")
    done = sum(1 for r in results if r and r.get("winner", "x") != "x")
    bare8 = sum(bare_seconds(r) for r in results)
    print(f"8 comparisons at once: {done}/8 completed in {eight:.1f} s "
          f"(bare generation {bare8:.1f} s in all; the in-process model runs one call at a time)")


if __name__ == "__main__":
    main()
