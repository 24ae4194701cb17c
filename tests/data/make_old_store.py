"""Write ``store-main-c1e8cdf.db`` and what that commit's code computes from it
(``store-main-c1e8cdf.expected.json``): the old store that ``tests/test_old_store.py`` reads and
reuses with today's code (issue #19: every stored byte and cache key unchanged).

How it was made (once, with main at commit c1e8cdf, before the #19 restructuring)::

    git -C /work/main worktree add /work/before c1e8cdf
    PYTHONPATH=/work/before/src .venv/bin/python tests/data/make_old_store.py

Do not regenerate it with later code: the point of the files is that they were written by the
old one. The scripted models below (``script_fakes``) and the studies (``studies``) are also
what the test runs again; they use only the public API that stays (``StudyConfig``,
``Candidate``, ``PromptItem``, ``make_sampling``, ``parse_criteria``, ``Scale``).

What the store holds: a ``both`` study of three candidates over a plain prompt with a reference,
a two-turn conversation with a second-turn reference and one prompt the judge cannot score in one
order, judged twice (``repeat=2``); a probability-weighted pairwise study; a jury of two over a
prompt with fixed earlier messages; a winner-only study against a baseline; two human votes;
a judge card (``judges eval`` on a tiny gold set); a saved comparison.
Left out: real models (every model is the scripted ``fake:``), the page's runs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.criteria import Scale
from llm_judge.prompts import PromptItem
from llm_judge.study import StudyConfig
from llm_judge.testing import fake

COMMIT = "c1e8cdf"
HERE = Path(__file__).resolve().parent
DB = HERE / f"store-main-{COMMIT}.db"
EXPECTED = HERE / f"store-main-{COMMIT}.expected.json"
QUALITY = {"alpha": 4, "beta": 2, "gamma": 3}  # the scripted candidates' answers say how good they are
UNSCORABLE = "Which is heavier"  # the judge writes no verdict when answer A is gamma's to this question
GOLD = [{"input": f"gold question {i}?", "output_1": f"answer one to {i}" + " more" * i,
         "output_2": f"answer two to {i}", "label": 1 + i % 2} for i in range(4)]
GOLD_FILE = "tiny-gold.json"  # the card's set, as named on the command line (relative to the cwd)


def quality(text: str) -> int:
    m = re.search(r"quality (\d)", text)
    return int(m.group(1)) if m else 1


def candidate(name: str):
    def respond(messages, sampling, schema):
        turn = sum(m["role"] == "user" for m in messages)
        extra = " and some more words" * QUALITY.get(name, 1)
        return f"{name} answer (quality {QUALITY.get(name, 1)}) to turn {turn}: {messages[-1]['content'][:20]}{extra}"
    return respond


def _shown(user: str, label: str) -> str:
    return re.search(rf"<<{label}-\w+>>\n(.*?)\n<</{label}-", user, re.S).group(1)


def judge(bias: int = 0):
    """A judge preferring the higher quality; ``bias`` adds to the score of the answer shown first."""
    def respond(messages, sampling, schema):
        user = messages[-1]["content"]
        props = schema["properties"]
        if "Answer (everything" in user:  # single grading
            q = quality(_shown(user, "A"))
            if q == 3 and UNSCORABLE in user:
                return "I would rather not grade this one."  # unscored
            return json.dumps({"justification": f"quality {q}", "scores": {k: q for k in props["scores"]["properties"]}})
        qa, qb = quality(_shown(user, "A")) + bias, quality(_shown(user, "B"))
        if UNSCORABLE in user and "gamma" in _shown(user, "A"):
            return "Both are fine, I think."  # unscored: no JSON verdict
        win = "A" if qa > qb else "B" if qb > qa else "tie"
        if "scores" not in props:  # the winner-only format
            return json.dumps({"winner": win})
        names = list(props["scores"]["properties"])
        return json.dumps({"justification": f"{win} is better", "winner": win,
                           "scores": {n: {"A": min(qa, 4), "B": qb} for n in names}})
    return respond


def probabilities(messages, text, offset):
    """The weighted judge's belief at each decision it wrote (the token there is one character)."""
    ch = text[offset:offset + 1]
    if ch in ("A", "B", "t"):
        return {"A": 0.6, "B": 0.3, "t": 0.1} if ch == "A" else {"A": 0.25, "B": 0.65, "t": 0.1}
    if ch.isdigit():
        return {ch: 0.7, str(max(1, int(ch) - 1)): 0.2, "4": 0.1}
    return {}


def script_fakes() -> None:
    """Script every fake model the studies and the card use (deterministic: by content only)."""
    for name in ("alpha", "beta", "gamma"):
        fake.named(name).responder = candidate(name)
    fake.named("judge").responder = judge()
    fake.named("biased").responder = judge(bias=1)
    fake.named("weighted").responder = judge()
    fake.named("weighted").probabilities = probabilities
    fake.named("card").responder = lambda m, s, sch: json.dumps(
        {"winner": "A" if len(_shown(m[-1]["content"], "A")) >= len(_shown(m[-1]["content"], "B")) else "B"})


def cands(*names: str, preset: str = "p1") -> dict[str, Candidate]:
    return {n: Candidate(f"fake:{n}", make_sampling(preset, seed=7) if n == "gamma" else make_sampling(preset))
            for n in names}


def studies() -> dict[str, StudyConfig]:
    """The recorded studies by name; running one again must make no call."""
    sampling = make_sampling(None, temperature=0, max_tokens=256)
    plain = PromptItem("plain", "Name three primary colours.", reference="Red, yellow and blue.", category="facts")
    convo = PromptItem("convo", "Suggest a name for a cat.", category="creative",
                       followups=("Now one for a dog.",), followup_references=("Rex.",))
    heavy = PromptItem("heavy", f"{UNSCORABLE}, a kilo of feathers or a kilo of iron?", category="facts")
    chat = PromptItem("chat", "And a colour?", context=(("system", "You are terse."), ("user", "Name a fruit."),
                                                        ("assistant", "Apple.")))
    return {
        "both": StudyConfig(prompts=[plain, convo, heavy], candidates=cands("alpha", "beta", "gamma"),
                            judge="fake:judge", judge_sampling=sampling, criteria=parse_criteria(None), mode="both",
                            repeat=2, source="make_old_store:both"),
        "weighted": StudyConfig(prompts=[plain, heavy], candidates=cands("alpha", "gamma"), judge="fake:weighted",
                                judge_sampling=sampling, criteria=parse_criteria("relevance,Tone=Is the tone friendly?"),
                                mode="pairwise", judge_method="weighted", source="make_old_store:weighted"),
        "jury": StudyConfig(prompts=[plain, chat], candidates=cands("alpha", "beta", preset="p2"),
                            judge=["fake:judge", "fake:biased"], judge_sampling=sampling,
                            criteria=parse_criteria(None), scale=Scale(1, 5), mode="both", n_ctx=4096,
                            source="make_old_store:jury"),
        "winner": StudyConfig(prompts=[plain, convo, heavy], candidates=cands("alpha", "beta", "gamma"),
                              judge="fake:biased", judge_sampling=sampling, criteria=parse_criteria(None),
                              mode="pairwise", baseline="beta", verdict_format="winner",
                              source="make_old_store:winner"),
    }


def key_examples(config: StudyConfig) -> list[dict]:
    """A few judgment keys of a study (each one the study stored) with what they were computed from."""
    from llm_judge.judging import JudgeSetup, load_judge

    setup = JudgeSetup(config.criteria, config.scale, config.judge_sampling, config.verdict_format, config.judge_method)
    try:  # the typed core (#19): the judge holds its setup, and the cache keys live in llm_judge.cache
        from llm_judge.cache import judgment_key as new_key

        judge_ = load_judge(config.judges, setup, n_ctx=config.n_ctx)

        def judgment_key(kind, _judge, _setup, prompt, shown, reference, repeat):
            return new_key(kind, _judge, prompt, shown, reference, repeat)
    except ImportError:  # the code at COMMIT, which wrote the store
        from llm_judge.judging import judgment_key

        judge_ = load_judge(config.judges, n_ctx=config.n_ctx)
    p = config.prompts[0]
    a, b = [candidate(n)([{"role": "user", "content": p.prompt}], None, None) for n in sorted(config.candidates)[:2]]
    jobs = [("single", [a], 0)] if config.mode != "pairwise" else []
    jobs += [("pairwise", [a, b], 0), ("pairwise", [b, a], config.repeat - 1)] if config.mode != "single" else []
    out = []
    for kind, shown, repeat in jobs:  # each one a judgment the study made
        out.append({"kind": kind, "prompt": p.prompt, "shown": shown, "reference": p.reference, "repeat": repeat,
                    "key": judgment_key(kind, judge_, setup, p.prompt, shown, p.reference, repeat)})
    return out


def computed(store, run_ids: dict[str, str], tmp: Path) -> dict:
    """What the code computes from the store: per run its summary, exports, report and votes."""
    from llm_judge.present.report import render_markdown
    from llm_judge.study import export_run, summarize
    from llm_judge.votes import agreement

    runs = {}
    for name, run_id in run_ids.items():
        exports = {}
        for fmt in ("csv", "jsonl", "verdicts"):
            path = tmp / f"{name}.{fmt}"
            export_run(store, run_id, path, fmt)
            exports[fmt] = path.read_text(encoding="utf-8")
        summary = summarize(store, run_id)
        runs[name] = {"run_id": run_id, "summary": json.loads(json.dumps(summary.to_dict())),
                      "exports": exports, "markdown": render_markdown(store, summary),
                      "agreement": json.loads(json.dumps(agreement(store, run_id), default=vars))}
    return runs


def main() -> None:
    import llm_judge
    from llm_judge import compare
    from llm_judge.cli import main as cli
    from llm_judge.store import Store
    from llm_judge.study import run_study
    from llm_judge.votes import cast, next_item

    print("llm_judge from", llm_judge.__file__, file=sys.stderr)
    for path in (DB, EXPECTED, Path(f"{DB}-wal"), Path(f"{DB}-shm")):
        path.unlink(missing_ok=True)
    script_fakes()
    store = Store(DB)
    configs = studies()
    run_ids = {name: run_study(config, store) for name, config in configs.items()}
    import random

    rng = random.Random(3)
    for voter, side in (("ann", "left"), ("bob", "tie")):
        cast(store, next_item(store, run_ids["both"], rng), side, voter)
    tmp = HERE / "_make_old_store"
    tmp.mkdir(exist_ok=True)
    (tmp / GOLD_FILE).write_text(json.dumps(GOLD))
    here = os.getcwd()
    os.chdir(tmp)
    try:
        assert cli(["judges", "eval", "--judge", "fake:card", "--set", GOLD_FILE, "--verdict-format", "winner",
                    "--db", str(DB), "--quiet", "--json"]) == 0
    finally:
        os.chdir(here)
    result = compare("Say hello.", model_a="fake:alpha", model_b="fake:beta", judge="fake:judge",
                     reference="Hello.")
    store.save_comparison(result.to_dict())
    expected = {"commit": COMMIT, "configs": {n: c.to_dict() for n, c in configs.items()},
                "run_ids": run_ids, "keys": {n: key_examples(c) for n, c in configs.items()},
                "runs": computed(store, run_ids, tmp), "cards": store.cards(), "comparisons": store.comparisons()}
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.execute("VACUUM")
    store.close()
    EXPECTED.write_text(json.dumps(expected, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {DB} ({DB.stat().st_size} bytes) and {EXPECTED}", file=sys.stderr)


if __name__ == "__main__":
    main()
