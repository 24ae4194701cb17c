"""Fine-tuning cost on this machine, and the whole loop: train, then judge the checkpoints.

1. Step cost: LoRA (the seed recipe: r 16 on all seven projections) on the built-in model, batch
   2 x 512 tokens, gradient accumulation 1: seconds per optimizer step and training tokens/s
   (mean of ``--timed-steps`` after one warm-up step).
2. The loop: ``llm-judge finetune`` of the built-in model on the built-in tiny-instructions set
   with the seed recipe for ``--steps`` steps, checkpoints at a third and at the end, then the
   seed-10 study of base vs checkpoints (pairwise, both orders) with ``--judge`` (default: the
   stronger offline Qwen2.5-Coder-0.5B of ../shared/tools/bench-models.sh where it is assembled,
   else the built-in model; winner-only verdicts, the fast format); wall time of each part and the study's verdict per checkpoint.

    .venv/bin/python bench/finetune.py [--steps 30] [--timed-steps 3] [--judge SPEC] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from llm_judge.finetune.recipe import RECIPES, with_overrides

QWEN = Path.home() / ".cache/llm-judge/bench-models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def step_cost(timed: int, threads: int | None) -> dict:
    """Seconds per optimizer step at batch 2 x 512 tokens (the conversations are long enough to fill 512)."""
    import torch

    from llm_judge.finetune.train import _collate, _optimizer, load_model, resolve_base

    if threads:
        torch.set_num_threads(threads)
    recipe = with_overrides(RECIPES["seed"], ["grad_accum=1", "max_seq_length=512"])
    tokenizer, model = load_model(resolve_base("embedded"), recipe, "cpu")
    text = " ".join(f"Line {i} of a long answer about rivers, bread and the moon." for i in range(200))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:512]
    batch = _collate([(ids, ids), (ids, ids)], tokenizer.pad_token_id)
    optimizer, _ = _optimizer(model, recipe, "cpu")
    times = []
    for _ in range(timed + 1):
        t0 = time.perf_counter()
        out = model(input_ids=batch[0], attention_mask=batch[1], labels=batch[2])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - t0)
    per_step = sum(times[1:]) / timed
    return {"seconds_per_step": per_step, "tokens_per_second": 2 * 512 / per_step, "threads": torch.get_num_threads()}


def loop(steps: int, judge: str, out: Path, db: Path, fmt: str) -> dict:
    import contextlib
    import io

    from llm_judge.cli import main

    args = ["finetune", "--out", str(out), "--steps", str(steps), "--then-study", "--judge", judge,
            "--verdict-format", fmt, "--db", str(db), "--json"]
    start = time.perf_counter()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(args)
    if rc != 0:
        raise SystemExit("the fine-tune loop failed")
    result = json.loads(buf.getvalue())
    log = result["log"]
    train_seconds = sum(r["seconds"] for r in log)
    return {"wall": time.perf_counter() - start, "train_seconds": train_seconds, "result": result}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--timed-steps", type=int, default=3)
    ap.add_argument("--judge", default=f"gguf:{QWEN}" if QWEN.exists() else "embedded")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--verdict-format", default="winner", help="winner (fast) or full (with reasons and scores)")
    ap.add_argument("--skip-loop", action="store_true")
    args = ap.parse_args()
    cost = step_cost(args.timed_steps, args.threads)
    print(f"LoRA step, built-in model, batch 2 x 512 tokens, {cost['threads']} threads: "
          f"{cost['seconds_per_step']:.2f} s per step, {cost['tokens_per_second']:.0f} training tokens/s")
    print(f"  the seed recipe (gradient accumulation 4) at 512 tokens: ~{4 * cost['seconds_per_step'] / 60:.1f} min "
          f"per step; 100 steps ~{400 * cost['seconds_per_step'] / 60:.0f} min")
    if args.skip_loop:
        return
    tmp = Path(tempfile.mkdtemp(prefix="llm-judge-bench-ft-"))
    try:
        r = loop(args.steps, args.judge, tmp / "run", tmp / "s.db", args.verdict_format)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log = r["result"]["log"]
    print(f"finetune + study (seed recipe, tiny-instructions, {args.steps} steps, judge {args.judge}): "
          f"{r['wall']:.0f} s wall, of which training {r['train_seconds']:.0f} s "
          f"({r['train_seconds'] / len(log):.1f} s per step; loss {log[0]['loss']:.3f} -> {log[-1]['loss']:.3f})")
    from llm_judge.present.format import fmt_estimate, fmt_p

    for row in r["result"]["study"]["progression"]:
        p = fmt_p(row["sign_test_p"])
        print(f"  {row['later']} vs {row['earlier']}: win rate {fmt_estimate(row['win_rate'])} (wins-losses-ties "
              f"{row['wins']}-{row['losses']}-{row['ties']}, {row['unscored']} unscored; sign test p={p})")


if __name__ == "__main__":
    main()
