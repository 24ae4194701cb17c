"""Sharded studies (issue #21, part 3): ``run --shard K/N`` makes a deterministic slice of a
study's prompts by a hash of the prompt id, writes the study's own run, and the run's manifest
says which shards a store holds done; a run is ``partial`` until every shard is there."""

from __future__ import annotations

import hashlib
import json
import random
import re

import pytest

from llm_judge import LLMJudgeError, make_sampling, parse_criteria
from llm_judge.cli import main
from llm_judge.compare import Candidate
from llm_judge.prompts import PromptItem, load_prompts
from llm_judge.store import Store
from llm_judge.study import StudyConfig, load_run, run_study, summarize
from llm_judge.study.shard import Shard, shard_of
from llm_judge.testing import fake

from .conftest import prefers

# twelve prompts, every fourth a conversation of two turns
PROMPTS = [PromptItem(f"q{i:02d}", f"Question {i}: how does item {i} work?",
                      followups=(f"And why does item {i} fail?",) if i % 4 == 0 else ()) for i in range(1, 13)]


def answering(name: str):
    """A scripted candidate whose answers differ from prompt to prompt (strength, length), so that
    the figures of a run depend on every one of its prompts."""
    def respond(messages, sampling, schema):
        n = int(re.search(r"item (\d+)", messages[-1]["content"]).group(1))
        turn = sum(m["role"] == "user" for m in messages)
        strong = n % 3 != 0 if name == "good" else n % 5 == 0
        return f"{'GOOD' if strong else 'meh'} answer {n}.{turn} from {name} " + "x" * (n * 7 % 11)
    return respond


def script() -> None:
    for name in ("good", "bad"):
        fake.named(name).responder = answering(name)
    fake.named("judge").responder = prefers("GOOD")


def study(mode: str = "both", prompts: list[PromptItem] | None = None) -> StudyConfig:
    cands = {"good": Candidate("fake:good", make_sampling("p1")), "bad": Candidate("fake:bad", make_sampling("p2"))}
    return StudyConfig(prompts=list(prompts or PROMPTS), candidates=cands, judge="fake:judge",
                       judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None), mode=mode)


def run_shards(tmp_path, count: int = 3, config: StudyConfig | None = None) -> list[Store]:
    """The study run as ``count`` shards, each into its own store (s1.db, s2.db, ...)."""
    script()
    stores = []
    for k in range(1, count + 1):
        store = Store(tmp_path / f"s{k}.db")
        run_study(config or study(), store, shard=Shard(k, count))
        stores.append(store)
    return stores


def item_names(store: Store, run_id: str) -> set[str]:
    return {i.item for i in store.items(run_id, repeat=None)}


# --- the slice ----------------------------------------------------------------------------------

def test_a_prompt_belongs_to_the_shard_its_ids_sha256_names_on_every_machine():
    # pinned: the slice may never change between versions, platforms or processes (no hash())
    assert [shard_of(f"q{i}", 4) for i in range(1, 13)] == [3, 4, 4, 4, 2, 2, 4, 2, 1, 3, 3, 1]
    for pid in ("q1", "seed-07", "été", "x" * 300):  # the rule, from hashlib's digest
        assert shard_of(pid, 7) == 1 + int(hashlib.sha256(pid.encode()).hexdigest()[:16], 16) % 7


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_the_shards_split_the_prompts_whatever_their_order(count):
    ids = [f"prompt-{i}" for i in range(300)]
    prompts = [PromptItem(pid, "hello") for pid in ids]
    slices = [{p.id for p in Shard(k, count).select(prompts)} for k in range(1, count + 1)]
    assert sorted(pid for s in slices for pid in s) == sorted(ids)  # each prompt in exactly one shard
    assert all(len(s) > 300 / count / 2 for s in slices)  # and none of them empty or lopsided
    shuffled = random.Random(4).sample(prompts, len(prompts))
    assert [{p.id for p in Shard(k, count).select(shuffled)} for k in range(1, count + 1)] == slices


def test_shard_parses_k_of_n():
    assert Shard.parse("2/3") == Shard(2, 3) and Shard.parse(" 1 / 1 ") == Shard(1, 1) and str(Shard(5, 8)) == "5/8"


@pytest.mark.parametrize("text, says", [("3", "not K/N"), ("a/b", "not K/N"), ("1/2/3", "not K/N"), ("-1/3", "not K/N"),
                                        ("0/3", "numbered from 1"), ("4/3", "K is 1 to 3"), ("1/0", "1 to 100000")])
def test_a_bad_shard_is_one_line(text, says):
    with pytest.raises(LLMJudgeError, match=says) as err:
        Shard.parse(text)
    assert "\n" not in str(err.value)


def test_run_with_a_bad_shard_says_so_in_one_line_before_any_call(tmp_path, capsys):
    rc = main(["run", "--prompts", "seed-10", "--limit", "2", "--candidate", "fake:good", "--candidate", "fake:bad",
               "--judge", "fake:judge", "--shard", "4/3", "--db", str(tmp_path / "s.db"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "K is 1 to 3" in err
    assert not fake.named("good").calls and not fake.named("judge").calls


# --- a shard's run ------------------------------------------------------------------------------

def test_a_shard_makes_every_turn_and_judgment_of_its_prompts_and_nothing_of_the_others(tmp_path):
    script()
    whole = Store(tmp_path / "whole.db")
    run_id = run_study(study(), whole)
    for store in run_shards(tmp_path):
        held = {p.id for p in Shard(int(store.path.stem[1:]), 3).select(PROMPTS)}
        by_prompt = {i.item for i in whole.items(run_id, repeat=None) if i.prompt_id in held}
        assert item_names(store, run_id) == by_prompt  # the same items, second turns included
        assert {i.prompt_id for i in store.items(run_id, repeat=None)} == held
    assert any(p.turns == 2 for p in PROMPTS)


def test_every_shard_writes_the_studys_run_and_its_manifest_says_which_shards_are_done(tmp_path):
    stores = run_shards(tmp_path)
    run_id = study().run_id()
    assert "shard" not in json.dumps(study().to_dict())  # the shard is not the study's configuration
    for k, store in enumerate(stores, 1):
        run = load_run(store, run_id)  # the study's run id, in every shard's store
        assert run.manifest["shards"] == {"of": 3, "done": [k]} and run.status == "done"
        assert summarize(store, run_id).status == "partial"


def test_runs_lists_a_run_partial_until_every_shard_is_done_in_its_store(tmp_path, capsys):
    script()
    store, db = Store(tmp_path / "one.db"), str(tmp_path / "one.db")
    run_id = ""
    for k in (3, 1):
        run_id = run_study(study(), store, shard=Shard(k, 3))
    assert main(["runs", "--db", db, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["status"], row["shards"]) == ("partial", {"of": 3, "done": [1, 3]})
    assert main(["runs", "--db", db]) == 0
    assert "partial" in capsys.readouterr().out
    run_study(study(), store, shard=Shard(2, 3))
    assert summarize(store, run_id).status == "done"
    assert load_run(store, run_id).manifest["shards"] == {"of": 3, "done": [1, 2, 3]}


def test_a_run_made_whole_keeps_its_manifest_without_shards(tmp_path):
    script()
    store = Store(tmp_path / "s.db")
    run_id = run_study(study(), store)
    assert "shards" not in load_run(store, run_id).manifest
    run_study(study(), store, shard=Shard(1, 3))  # a shard of a run finished whole adds nothing
    assert "shards" not in load_run(store, run_id).manifest and summarize(store, run_id).status == "done"


def test_a_shard_run_whole_afterwards_completes_the_run(tmp_path):
    script()
    store = Store(tmp_path / "s.db")
    run_id = run_study(study(), store, shard=Shard(2, 3))
    run_study(study(), store)
    assert load_run(store, run_id).manifest["shards"] == {"of": 3, "done": [1, 2, 3]}
    assert summarize(store, run_id).status == "done"


def test_a_store_holding_a_run_as_three_shards_refuses_a_fourth_split(tmp_path):
    script()
    store = Store(tmp_path / "s.db")
    run_study(study(), store, shard=Shard(1, 3))
    with pytest.raises(LLMJudgeError, match="as 3 shards, not 4") as err:
        run_study(study(), store, shard=Shard(1, 4))
    assert "\n" not in str(err.value)
    assert load_run(store, study().run_id()).status == "done"  # refused before it started


def test_a_shard_with_failed_calls_is_not_done(tmp_path):
    script()

    def down(m, s, sch):
        raise LLMJudgeError("server down")
    fake.named("bad").responder = down
    store = Store(tmp_path / "s.db")
    run_id = run_study(study(), store, shard=Shard(1, 3))
    assert load_run(store, run_id).manifest["shards"] == {"of": 3, "done": []}
    assert summarize(store, run_id).status == "incomplete"
    script()
    run_study(study(), store, shard=Shard(1, 3))  # the same shard again: its failures retried, now done
    assert load_run(store, run_id).manifest["shards"] == {"of": 3, "done": [1]}


def test_run_shard_on_the_command_line_writes_its_slice_and_says_partial(tmp_path, capsys):
    script()
    db, prompts = str(tmp_path / "s.db"), tmp_path / "prompts.txt"
    prompts.write_text("\n".join(p.prompt for p in PROMPTS), encoding="utf-8")
    args = ["run", "--prompts", str(prompts), "--candidate", "fake:good", "--candidate", "fake:bad", "--judge",
            "fake:judge", "--mode", "pairwise", "--db", db, "--quiet", "--json"]
    assert main([*args, "--shard", "1/2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "partial"
    held = {p.id for p in Shard(1, 2).select(load_prompts(str(prompts)))}
    assert {i.prompt_id for i in Store(db).items(summary["run_id"])} == held and 0 < len(held) < len(PROMPTS)
    assert main([*args, "--shard", "2/2"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "done"
