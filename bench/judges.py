"""Judge cards on the bundled gold sets: the built-in judge plain, the same weighted and
calibrated, stronger offline judges, and a jury of them.

    .venv/bin/python bench/judges.py --model qwen-0.5b=gguf:PATH --model qwen-1.5b=gguf:PATH

Each judge is evaluated once per set with ``--method weighted`` (its sampled verdicts are kept, so
the plain card comes from the same calls) and ``--verdict-format winner`` (the verdict in a few
tokens: what a 2-core machine can afford for 1.5B models). The jury's cards are computed from its
members' verdicts by the jury rule (``judges.jury_records``): no call is made twice. Every call is
cached in the store, so an interrupted benchmark continues. Prints the cards and writes them as
JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from llm_judge import make_sampling, parse_criteria
from llm_judge.criteria import Scale
from llm_judge.judges import card, evaluate, jury_records, load_gold
from llm_judge.judging import JudgeSetup, load_judge
from llm_judge.present.terminal import print_cards
from llm_judge.sampling import JUDGE_DEFAULT
from llm_judge.store import Store

SETS = {  # set -> pairs taken (the shortest first)
    "llmbar-natural": 50,
    "llmbar-adversarial-gptinst": 10, "llmbar-adversarial-gptout": 10, "llmbar-adversarial-manual": 10,
    "llmbar-adversarial-neighbor": 10,
    "mtbench-human": 20,
}


def plain(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "weighted"} for r in records]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="NAME=SPEC of a judge beside the built-in one")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated bundled sets")
    ap.add_argument("--scale-pairs", type=float, default=1.0, help="multiply each set's number of pairs")
    ap.add_argument("--db", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "llm-judge-bench-judges.db"))
    ap.add_argument("--out", default="bench-judges.json")
    args = ap.parse_args()
    judges = {"built-in (SmolLM2-135M)": "embedded"}
    for item in args.model:
        name, _, spec = item.partition("=")
        judges[name] = spec
    setup = JudgeSetup(parse_criteria(None), Scale(), make_sampling(None, **dict(JUDGE_DEFAULT, max_tokens=16)),
                       "winner", "weighted")
    store = Store(args.db)
    all_cards = []
    for set_name in args.sets.split(","):
        items = load_gold(set_name, limit=max(1, round(SETS.get(set_name, 20) * args.scale_pairs)), shortest=True)
        evaluated = {}
        for name, spec in judges.items():
            start = time.perf_counter()
            evaluated[name] = evaluate(load_judge(spec, setup, n_ctx=4096), name, items, store)
            print(f"{set_name}: {name} evaluated in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        cards = []
        for name, records in evaluated.items():
            cards.append(card(plain(records), name, set_name, {"method": "plain", "format": "winner"}))
            cards.append(card(records, name + " weighted", set_name, {"method": "weighted", "format": "winner"}))
        if len(evaluated) >= 3:
            jury = jury_records(evaluated)
            cards.append(card(plain(jury), f"jury of {len(evaluated)}", set_name, {"method": "plain", "format": "winner"}))
            cards.append(card(jury, f"jury of {len(evaluated)} weighted", set_name,
                              {"method": "weighted", "format": "winner"}))
        print_cards(cards)
        all_cards += cards
    Path(args.out).write_text(json.dumps(all_cards, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
