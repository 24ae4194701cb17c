"""Overhead of llm-judge's `compare` over bare llama-cpp-python.

Runs the full `compare` on the built-in model (candidates p1 and p2, both judge orders), then the
same four generation calls made directly through llama_cpp.Llama with identical messages,
parameters, seeds and response format, alternating the two, and prints the ratio of medians.
Goal: <= 1.10.

    .venv/bin/python bench/overhead.py [--reps 3] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from llama_cpp import Llama

from llm_judge import compare, make_sampling
from llm_judge import verdicts as J
from llm_judge.backends.llamacpp import DEFAULT_N_CTX, embedded_model_path
from llm_judge.criteria import Scale, parse_criteria
from llm_judge.sampling import JUDGE_DEFAULT

PROMPT = "Explain how to bake a chocolate cake without using eggs."


def direct_calls(llm: Llama, result, crits, scale) -> float:
    """The same four calls compare made, straight through llama-cpp-python."""
    calls = [([{"role": "user", "content": PROMPT}], result.candidates[lab].sampling, None) for lab in "AB"]
    schema = J.pairwise_schema(crits, scale)
    a, b = result.answers["A"].text, result.answers["B"].text
    for first, second in ((a, b), (b, a)):
        calls.append((J.pairwise_messages(PROMPT, first, second, crits, scale), result.judge_sampling, schema))
    start = time.perf_counter()
    for messages, s, sch in calls:
        kwargs = dict(messages=messages, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                      min_p=s.min_p, max_tokens=s.max_tokens, seed=s.seed, repeat_penalty=s.repeat_penalty)
        if sch:
            kwargs["response_format"] = {"type": "json_object", "schema": sch}
        llm.create_chat_completion(**kwargs)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    os.environ["LLM_JUDGE_ENGINE"] = "inprocess"  # compare's overhead over the very library it calls in-process
    crits, scale = parse_criteria(None), Scale()
    sa, sb = make_sampling("p1", max_tokens=args.max_tokens), make_sampling("p2", max_tokens=args.max_tokens)
    compare(PROMPT, sampling_a=sa, sampling_b=sb)  # warm-up: loads the model once
    llm = Llama(model_path=str(embedded_model_path()), n_ctx=DEFAULT_N_CTX, verbose=False)
    ours, direct, tokens = [], [], 0
    for _ in range(args.reps):
        start = time.perf_counter()
        result = compare(PROMPT, sampling_a=sa, sampling_b=sb)
        ours.append(time.perf_counter() - start)
        tokens = sum(c.completion_tokens for c in result.answers.values()) + sum(
            o.completion.completion_tokens for o in result.orders if o.completion)
        direct.append(direct_calls(llm, result, crits, scale))
    m_ours, m_direct = statistics.median(ours), statistics.median(direct)
    print(f"judge max_tokens {JUDGE_DEFAULT['max_tokens']}, candidates max_tokens {args.max_tokens}, "
          f"{args.reps} reps, {tokens} generated tokens per compare")
    print(f"compare (llm-judge):      median {m_ours:.2f} s  {[round(x, 2) for x in ours]}")
    print(f"direct llama-cpp-python:  median {m_direct:.2f} s  {[round(x, 2) for x in direct]}")
    print(f"ratio: {m_ours / m_direct:.3f}  (goal <= 1.10)")


if __name__ == "__main__":
    main()
