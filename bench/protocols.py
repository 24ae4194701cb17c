"""Judge protocols measured: ``judges tune`` for each judge on a gold set, printed as the tables
of docs/judges.md ("Protocols, measured").

For each judge it evaluates every candidate setting (protocol x method) on the dev half of the
pairs, chooses, and evaluates the choice, the runner-up and llm-judge's default (its own protocol,
plain, full verdicts) on the held-out half, exactly as ``llm-judge judges tune`` does (the same
function, the same store: the command run afterwards on the same store makes no call). Every call
is cached in the store, so an interrupted run continues where it stopped.

    M=$(bash ../shared/tools/bench-models.sh)     # the Qwen2.5-Coder GGUFs (benchmarks only)
    .venv/bin/python bench/protocols.py --db bench-protocols.db --out bench-protocols.json \\
        --judge built-in=embedded \\
        --judge qwen-0.5b=gguf:$(echo "$M" | sed -n 1p) \\
        --judge qwen-1.5b=gguf:$(echo "$M" | sed -n 2p)@50

``NAME=SPEC@N`` takes the N shortest pairs of the set for that judge (2 cores: the 1.5B model on
all 100 pairs of LLMBar-Natural under every protocol is hours).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from llm_judge.cli.options import judge_sampling
from llm_judge.config import Settings
from llm_judge.criteria import parse_criteria, parse_scale
from llm_judge.defaults import CRITERIA_TEXT, JUDGE_MAX_TOKENS, SCALE
from llm_judge.judges import load_gold
from llm_judge.judging import load_judge
from llm_judge.store import Store
from llm_judge.tune import Setting, judge_setup, tune

CANDIDATES = [Setting("llm-judge", "weighted", "winner"), Setting("llmbar-vanilla", "weighted"),
              Setting("llmbar-vanilla-rules", "weighted"), Setting("alpaca-eval-weighted", "weighted")]


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", action="append", required=True, help="NAME=SPEC[@N]: a judge (N: shortest N pairs)")
    ap.add_argument("--set", default="llmbar-natural")
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--candidate", action="append", default=None,
                    help="PROTOCOL:METHOD[:FORMAT] (default: llm-judge weighted winner, llmbar-vanilla, "
                         "llmbar-vanilla-rules and alpaca-eval-weighted, weighted)")
    return ap.parse_args()


def _candidates(given: list[str] | None) -> list[Setting]:
    if not given:
        return CANDIDATES
    out = []
    for text in given:
        parts = text.split(":")
        out.append(Setting(parts[0], parts[1], parts[2] if len(parts) > 2 else None))
    return out


def _judge_for(spec: str):
    criteria, scale, sampling = parse_criteria(CRITERIA_TEXT), parse_scale(SCALE), judge_sampling(JUDGE_MAX_TOKENS)

    def judge(setting: Setting):
        setup = judge_setup(criteria, scale, sampling, setting.fmt or "full", setting.method,
                            None if setting.protocol == "llm-judge" else setting.protocol)
        # in-process: on 2 cores one call at a time is as fast as any, and a local server's grammar
        # sampling with top log probabilities over Qwen's 151k-token vocabulary crawls (measured here)
        return load_judge([spec], setup, n_ctx=2048, settings=Settings.from_env(engine="inprocess"))
    return judge


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/judges.md from the benchmark's JSON: per judge, every candidate on dev,
    then the held-out figures of the choice, the runner-up and the default."""
    lines = []
    for name, r in results.items():
        prof = r["profile"]
        lines += [f"**{name}** ({r['pairs']} {'shortest ' if r['shortest'] else ''}pairs of {r['set']}; "
                  f"dev {prof['dev']['items']}, held-out {prof['heldout']['items']}; {r['seconds'] / 60:.0f} min)", "",
                  "| setting | dev accuracy | plain, mean of orders | weighted, calibrated | position consistency "
                  "| s / pair |", "|---|---|---|---|---|---|"]
        for row in r["dev"]:
            w = row["weighted"]["value"] if row["weighted"] else None
            lines.append(f"| {row['setting']} | {_pct(row['accuracy'])} | {_pct(row['plain_mean'])} | {_pct(w)} "
                         f"| {_pct(row['consistency'])} | {row['seconds_per_pair'] or 0:.1f} |")
        lines += ["", "| held-out | accuracy [95% Wilson, over pairs] |", "|---|---|"]
        for label, block in (("chosen: " + _setting(prof), prof), ("runner-up: " + _setting(prof.get("runner_up")),
                                                                     prof.get("runner_up")),
                             ("default: llm-judge plain full", prof.get("default"))):
            if block:
                h = block["heldout"]
                lines.append(f"| {label} | {_pct(h['accuracy'])} [{_pct(h['low'])}, {_pct(h['high'])}] |")
        lines.append("")
    return "\n".join(lines)


def _setting(p: dict[str, Any] | None) -> str:
    return "-" if not p else " ".join(str(x) for x in (p["protocol"], p["method"], p.get("format")) if x)


def main() -> None:
    if sys.argv[1:2] == ["--markdown"]:
        print(markdown(json.loads(Path(sys.argv[2]).read_text())))
        return
    args = _args()
    store = Store(args.db)
    results: dict[str, Any] = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    for entry in args.judge:
        name, spec = entry.split("=", 1)
        limit = None
        if "@" in spec and spec.rsplit("@", 1)[1].isdigit():
            spec, n = spec.rsplit("@", 1)
            limit = int(n)
        items = load_gold(args.set, shortest=limit is not None, limit=limit)
        start = time.time()

        def progress(stage: str, done: int, total: int, in_flight: int, _name: str = name, _start: float = start) -> None:
            if done == total or done % 10 == 0:
                print(f"  {_name} {stage} {done}/{total} ({time.time() - _start:.0f} s)", file=sys.stderr, flush=True)
        tuned = tune(spec, args.set, items, store, _judge_for(spec), _candidates(args.candidate), progress=progress)
        results[name] = {"spec": spec, "set": args.set, "pairs": len(items), "shortest": limit is not None,
                         "seconds": round(time.time() - start, 1), "profile": tuned.profile(),
                         "dev": [_row(s) for s in tuned.dev],
                         "heldout": [_row(s) for s in tuned.heldout.values()]}
        Path(args.out).write_text(json.dumps(results, indent=1))
        print(json.dumps(results[name]["profile"], indent=1), flush=True)


def _row(s: Any) -> dict[str, Any]:
    """One setting's figures on one part, from its card."""
    c = s.card
    return {"setting": s.setting.label, "items": c["items"], "accuracy": s.accuracy,
            "plain_mean": c["accuracy"]["mean"], "weighted": (c.get("weighted") or {}).get("accuracy"),
            "consistency": s.consistency, "first_shown_wins": c["first_shown_wins"]["rate"],
            "unscored": c["unscored"]["value"] if "value" in c["unscored"] else c["unscored"],
            "seconds_per_pair": s.seconds}


if __name__ == "__main__":
    main()
