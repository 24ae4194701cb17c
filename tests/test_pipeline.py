"""A study's calls as one stream: judging starts as soon as the answers a judgment compares are
there, not after the last answer of the study; the answers can also be written now and judged by a
later run of the same study."""

import threading

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.prompts import PromptItem
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, summarize
from llm_judge.testing import fake

from .conftest import prefers


def config(n=2, mode="pairwise"):
    prompts = [PromptItem(f"q{i}", f"question {i}") for i in range(n)]
    return StudyConfig(prompts=prompts, candidates={"good": Candidate("fake:good", make_sampling("p1")),
                                                    "bad": Candidate("fake:bad", make_sampling("p2"))},
                       judge="fake:judge", judge_sampling=make_sampling(None, temperature=0),
                       criteria=parse_criteria(None), mode=mode)


def test_judging_starts_while_the_last_answers_are_still_being_written(tmp_path):
    judged = threading.Event()
    waited = []

    def bad(messages, sampling, schema):
        if messages[-1]["content"] == "question 1":  # a long answer: the first question's judge need not wait
            waited.append(judged.wait(timeout=20))
        return "meh"

    judge = prefers("GOOD")

    def judging(messages, sampling, schema):
        judged.set()
        return judge(messages, sampling, schema)

    fake.named("good").responder = lambda *_: "GOOD"
    fake.named("bad").responder = bad
    fake.named("judge").responder = judging
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(), store)
    assert waited == [True]  # q0 was judged while q1's answer was still being written (stage by stage: False)
    s = summarize(store, run_id, n_boot=50)
    assert s.pairwise.pairs["bad vs good"].wins["good"] == 2 and store.run(run_id)["status"] == "done"


def test_answers_now_judgments_later(tmp_path):
    fake.named("good").responder = lambda *_: "GOOD"
    fake.named("bad").responder = lambda *_: "meh"
    fake.named("judge").responder = prefers("GOOD")
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(), store, generate_only=True)
    assert not fake.named("judge").calls and store.run(run_id)["status"] == "incomplete"
    assert len(fake.named("good").calls) == 2
    assert run_study(config(), store) == run_id  # the same study: answers found, judgments made
    assert len(fake.named("good").calls) == 2 and len(fake.named("judge").calls) == 4
    assert store.run(run_id)["status"] == "done"
    assert summarize(store, run_id, n_boot=50).pairwise.pairs["bad vs good"].wins["good"] == 2


def test_a_failed_answer_fails_only_the_judgments_that_need_it(tmp_path):
    def bad(messages, sampling, schema):
        if messages[-1]["content"] == "question 0":
            from llm_judge.errors import LLMJudgeError
            raise LLMJudgeError("the server went away")
        return "meh"

    fake.named("good").responder = lambda *_: "GOOD"
    fake.named("bad").responder = bad
    fake.named("judge").responder = prefers("GOOD")
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(n=3), store)
    assert len(fake.named("judge").calls) == 4  # q1 and q2 in both orders; q0 waits for a rerun
    assert store.run(run_id)["status"] == "incomplete"
    fake.named("bad").responder = lambda *_: "meh"
    run_study(config(n=3), store)
    assert len(fake.named("judge").calls) == 6 and store.run(run_id)["status"] == "done"


def test_the_command_writes_answers_now_and_judges_them_on_the_next_run(tmp_path, capsys):
    import json

    from llm_judge.cli import main

    fake.named("good").responder = lambda *_: "GOOD"
    fake.named("bad").responder = lambda *_: "meh"
    fake.named("judge").responder = prefers("GOOD")
    prompts = tmp_path / "q.txt"
    prompts.write_text("question 0\nquestion 1\n")
    args = ["run", "--prompts", str(prompts), "--candidate", "fake:good#good", "--candidate", "fake:bad#bad",
            "--judge", "fake:judge", "--mode", "pairwise", "--db", str(tmp_path / "s.db"), "--quiet"]
    assert main(args + ["--generate-only"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith("4 answers stored; the same command without --generate-only judges them")
    assert not fake.named("judge").calls
    assert main(args + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(fake.named("good").calls) == 2 and len(fake.named("judge").calls) == 4
    assert summary["run_id"] in line
