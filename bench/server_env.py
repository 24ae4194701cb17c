"""The local server's generation rate under settings of its environment that leave its arithmetic alone.

Each variant starts the engine's own ``llama-server`` (the built-in model, the engine's command line: 8
slots, flash attention off) with some variables set in its environment, sends 8 requests of 256 tokens at
once (the seed study's preset p1, seed 7), and prints the aggregate generated tokens/s, the CPU the idle
server then uses (a server that keeps spinning while idle would hold a core the whole time llm-judge keeps
it), and a digest of the 8 texts (the same digest: the same arithmetic). The variants run in turn, round
after round, so a machine whose speed drifts drifts for all of them alike.

    .venv/bin/python bench/server_env.py [--rounds 3] [--threads 2] [VARIANT ...]

VARIANT: the names in ``VARIANTS`` below, every one when none is named (figures: docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from seed_against import texts_digest

from llm_judge import engine
from llm_judge.backends.gguf import embedded_model_path

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "omp-active": {"OMP_WAIT_POLICY": "ACTIVE"},  # OpenMP's threads spin while they wait, never sleep
    "omp-passive": {"OMP_WAIT_POLICY": "PASSIVE"},  # ... sleep at once
    "spin-1m": {"GOMP_SPINCOUNT": "1000000"},  # spin this many times before sleeping (default 300,000)
    "spin-3m": {"GOMP_SPINCOUNT": "3000000"},
    "spin-30m": {"GOMP_SPINCOUNT": "30000000"},
    "spin-300m": {"GOMP_SPINCOUNT": "300000000"},
    "omp-bind": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"},  # each thread kept on one core
    "huge-pages": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},  # the KV cache and buffers in 2 MiB pages
    "load-none": {"LLAMA_ARG_LOAD_MODE": "none"},  # the weights read into memory, not mapped
    "load-none-huge-pages": {"LLAMA_ARG_LOAD_MODE": "none", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
}
TOPICS = ("the sea", "bread", "trains", "the moon", "a library", "winter", "bees", "a clock")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def huge_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return sum(int(line.split()[1]) for line in fh if line.startswith("AnonHugePages"))


def one_variant(name: str, binary: Path, threads: int) -> str:
    saved = dict(os.environ)
    os.environ.update(VARIANTS[name])  # the server inherits this process's environment
    try:
        spec = engine.ServerSpec(model=str(embedded_model_path()), lora=None, n_ctx=2048, parallel=8, threads=threads)
        server = engine.LocalServer(spec, binary)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        def ask(i: int) -> tuple[str, int]:
            body = {"messages": [{"role": "user", "content": f"Write a long, detailed article about {TOPICS[i]}."}],
                    "max_tokens": 256, "temperature": 0.5, "min_p": 0.05, "seed": 7}
            reply = httpx.post(server.url + "/chat/completions", json=body, timeout=600).json()
            return reply["choices"][0]["message"]["content"], reply["usage"]["completion_tokens"]

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        wall = time.perf_counter() - start
        time.sleep(1.0)
        before = cpu_seconds(server.proc.pid)
        time.sleep(3.0)
        idle = (cpu_seconds(server.proc.pid) - before) / 3.0
        huge = huge_kib(server.proc.pid)
    finally:
        server.stop()
    tokens = sum(n for _, n in answers)
    digest = texts_digest([text for text, _ in answers])
    return (f"{name:22s} {tokens / wall:6.1f} tokens/s ({tokens} in {wall:5.2f} s)  idle CPU {idle:4.2f} cores  "
            f"huge pages {huge // 1024:4d} MiB  answers {digest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench/server_env.py: no variant {unknown[0]!r}; choose from: {', '.join(VARIANTS)}")
    binary = engine.find_binary()
    if binary is None:
        raise SystemExit("bench/server_env.py: no llama-server; run: bash scripts/setup.sh")
    for _ in range(args.rounds):
        for name in args.variants or list(VARIANTS):
            print(one_variant(name, binary, args.threads), flush=True)


if __name__ == "__main__":
    main()
