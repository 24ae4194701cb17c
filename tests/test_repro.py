"""Reproducibility: the manifest of a run, identical generations for the same seed in-process,
and --repeat's spread."""

import json
import random

import pytest

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.prompts import load_prompts
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, summarize
from llm_judge.testing import fake

from .conftest import prefers, verdict_json


def config(cands, judge="fake:judge", **kw):
    return StudyConfig(prompts=load_prompts("seed-10", limit=2), candidates=cands, judge=judge,
                       judge_sampling=make_sampling("greedy"), criteria=parse_criteria(None), **kw)


@pytest.mark.model
def test_same_command_same_seed_same_generations_and_a_full_manifest(tmp_path):
    fake.named("judge").responder = prefers("zzz")
    cands = {"hot": Candidate("embedded", make_sampling("p2", max_tokens=24, seed=11)),
             "cool": Candidate("embedded", make_sampling("p1", max_tokens=24, seed=11))}
    texts = []
    for name in ("one.db", "two.db"):  # separate stores: nothing is reused from a cache
        store = Store(tmp_path / name)
        run_id = run_study(config(cands), store)
        texts.append({(i.prompt_id, i.labels[0]): i.text for i in store.items(run_id, "generation")})
        manifest = json.loads(store.run(run_id)["manifest"])
    assert texts[0] == texts[1] and len(texts[0]) == 4
    model = manifest["models"]["embedded"]
    assert len(model["sha256"]) == 64 and model["file_type"] is not None  # file hash and quantisation
    assert manifest["llm_judge"] and manifest["llama_cpp_python"] and manifest["template_version"]
    assert manifest["candidates"]["hot"]["sampling"]["seed"] == 11
    assert manifest["judge_sampling"]["temperature"] == 0 and "both orders" in manifest["orders"]


def test_repeat_judges_each_item_n_times_and_reports_the_spread(tmp_path):
    fake.named("a").responder = lambda m, s, sch: "GOOD answer"
    fake.named("b").responder = lambda m, s, sch: "meh"
    rng = random.Random(3)

    def wobbly_judge(messages, sampling, schema):  # a judge that is not deterministic
        names = list(schema["properties"]["scores"]["properties"])
        if "winner" in schema["properties"]:
            return verdict_json([rng.randint(3, 4)] * 3, [2] * 3, rng.choice("AB"), names)
        return json.dumps({"justification": "j", "scores": {n: rng.randint(2, 4) for n in names}})

    fake.named("judge").responder = wobbly_judge
    cands = {"a": Candidate("fake:a", make_sampling("p1")), "b": Candidate("fake:b", make_sampling("p2"))}
    store = Store(tmp_path / "r.db")
    run_id = run_study(config(cands, mode="both", repeat=3), store)
    s = summarize(store, run_id).to_dict()
    spread = s["repeat_spread"]
    assert spread["repeats"] == 3
    assert spread["single"]["items"] == 4 and spread["pairwise"]["items"] == 4
    assert 0 <= spread["single"]["identical_share"] < 1 and spread["single"]["mean_range"] > 0
    assert len(store.items(run_id, repeat=None)) == 4 + 3 * (4 + 4)
    assert s["single"]["a"]["graded"] == 2  # the statistics use each item's first judgment
    calls = len(fake.named("judge").calls)
    run_study(config(cands, mode="both", repeat=3), store)  # every repeat is cached
    assert len(fake.named("judge").calls) == calls
    assert summarize(store, run_study(config(cands, mode="both"), store)).to_dict()["repeat_spread"] is None
