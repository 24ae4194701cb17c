"""Conversations: MT-Bench's two turns (each candidate answers the second after its own first
answer; the judge rates it seeing each conversation), OpenAI ``messages`` with fixed earlier
turns, figures per turn and overall."""

import json

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.present.report import render_html
from llm_judge.prompts import load_prompts
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, summarize
from llm_judge.testing import fake

from .conftest import prefers, shared_file


def config(prompts, mode="both"):
    return StudyConfig(prompts=prompts, candidates={"good": Candidate("fake:good", make_sampling("p1")),
                                                    "bad": Candidate("fake:bad", make_sampling("p2"))},
                       judge="fake:judge", judge_sampling=make_sampling(None, temperature=0),
                       criteria=parse_criteria(None), mode=mode)


def scripted_mt_bench(tmp_path, mode: str, n: int = 2):
    """The first n MT-Bench questions answered by a good and a bad scripted candidate, judged by a
    judge that prefers the good; returns (prompts, store, run id)."""
    prompts = load_prompts(str(shared_file("data", "mt-bench", "question.jsonl")), limit=n)
    fake.named("good").responder = answering("good", "GOOD")
    fake.named("bad").responder = answering("bad", "meh")
    fake.named("judge").responder = prefers("GOOD")
    store = Store(tmp_path / "s.db")
    return prompts, store, run_study(config(prompts, mode), store)


def answering(name: str, word: str):
    def respond(messages, sampling, schema):
        turn = sum(m["role"] == "user" for m in messages)
        return f"{word} answer from {name} to turn {turn}"
    return respond


def test_mt_bench_runs_both_turns_each_candidate_in_its_own_conversation(tmp_path):
    prompts, store, run_id = scripted_mt_bench(tmp_path, "both", n=3)
    assert all(p.turns == 2 for p in prompts)
    # turn 2: the candidate's own first answer is in its context, then the follow-up question
    second = [c.messages for c in fake.named("good").calls if len(c.messages) == 3]
    assert len(second) == 3
    for msgs in second:
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
        assert msgs[1]["content"] == "GOOD answer from good to turn 1"
    assert sorted(msgs[2]["content"] for msgs in second) == sorted(p.followups[0] for p in prompts)
    # the judge rates turn 2 seeing each conversation
    turn2 = [c.messages[-1]["content"] for c in fake.named("judge").calls if "Conversation before Answer A" in
             c.messages[-1]["content"]]
    assert turn2 and all("to turn 1" in u and "to turn 2" in u for u in turn2)
    s = summarize(store, run_id, n_boot=100)
    assert s.turns == 2 and set(s.by_turn) == {1, 2}
    for t in (1, 2):
        assert s.by_turn[t]["single"]["good"].value == 12 and s.by_turn[t]["single"]["good"].n == 3
        assert s.by_turn[t]["pairs"]["bad vs good"].wins["good"] == 3
    assert s.single["good"].total.n == 6 and s.pairwise.pairs["bad vs good"].wins["good"] == 6  # both turns pooled
    page = render_html(store, s)
    assert "Turn 2" in page and "Per turn: mean total score" in page and "Per turn: win rate" in page
    calls = len(fake.named("judge").calls)
    assert run_study(config(prompts), store) == run_id and len(fake.named("judge").calls) == calls  # all cached


def test_openai_messages_give_every_candidate_the_same_earlier_turns(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"id": "c1", "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."}, {"role": "user", "content": "And a colour?"}]}) + "\n")
    prompts = load_prompts(str(path))
    assert prompts[0].prompt == "And a colour?" and len(prompts[0].context) == 3 and prompts[0].turns == 1
    fake.named("good").responder = answering("good", "GOOD")
    fake.named("bad").responder = answering("bad", "meh")
    fake.named("judge").responder = prefers("GOOD")
    store = Store(tmp_path / "s.db")
    s = summarize(store, run_study(config(prompts, "pairwise"), store), n_boot=50)
    assert [m["role"] for m in fake.named("good").calls[0].messages] == ["system", "user", "assistant", "user"]
    user = fake.named("judge").calls[0].messages[-1]["content"]
    assert "The conversation so far" in user and "Apple." in user and "Conversation before Answer A" not in user
    assert s.pairwise.pairs["bad vs good"].wins["good"] == 1 and s.turns == 1


def test_the_page_shows_a_runs_conversations_turn_by_turn(tmp_path):
    from llm_judge.ui import App

    _prompts, store, run_id = scripted_mt_bench(tmp_path, "single")
    _head, tables_html, _charts, _files = App(store).open_run(run_id)
    assert "Prompts, turn by turn" in tables_html and "Turn 2" in tables_html
    assert "GOOD answer from good to turn 2" in tables_html


def test_exports_and_votes_keep_the_turns_apart(tmp_path):
    from llm_judge.study import export_run, verdict_records
    from llm_judge.votes import vote_pairs

    prompts, store, run_id = scripted_mt_bench(tmp_path, "pairwise")
    recs = verdict_records(store, run_id)
    assert sorted(r["id"] for r in recs) == sorted([p.id for p in prompts] + [f"{p.id}@t2" for p in prompts])
    assert all(r["category"] == "writing" for r in recs)
    export_run(store, run_id, tmp_path / "r.jsonl", "jsonl")
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert {r["turn"] for r in rows} == {1, 2}
    assert len(vote_pairs(store, run_id)) == 2  # votes are on the first turn's answers
