"""compare() on the one runner: the answers one after the other by default (as before), at once
when asked, and nothing left running when one fails."""

from __future__ import annotations

import threading

import pytest

from llm_judge import compare
from llm_judge.errors import LLMJudgeError
from llm_judge.testing import fake


def test_a_comparison_whose_one_answer_fails_returns_only_when_the_other_has_ended():
    a_failed, b_ended = threading.Event(), threading.Event()

    def fail(*_):
        a_failed.set()
        raise LLMJudgeError("model A is down")

    def slow(*_):
        a_failed.wait(10)  # B is still answering when A fails ...
        threading.Event().wait(0.3)
        b_ended.set()  # ... and ends a moment later
        return "B's answer"

    fake.named("down").responder = fail
    fake.named("slow").responder = slow
    with pytest.raises(LLMJudgeError, match="model A is down"):
        compare("q", model_a="fake:down", model_b="fake:slow", judge="fake:judge", concurrency=2)
    assert b_ended.is_set(), "compare returned while B's call was still running"


def test_both_answers_are_asked_at_once_when_the_caller_allows_two_calls():
    both = threading.Barrier(2, timeout=10)  # each answer waits for the other to have started

    def meet(*_):
        both.wait()
        return "an answer"

    fake.named("left").responder = meet
    fake.named("right").responder = meet
    fake.named("judge").responder = lambda *_: '{"winner": "tie"}'
    result = compare("q", model_a="fake:left", model_b="fake:right", judge="fake:judge", verdict_format="winner",
                     concurrency=2)
    assert result.winner == "tie"


def test_by_default_the_answers_come_one_after_the_other_and_each_is_announced():
    events = []

    def answer(label):
        def respond(*_):
            events.append(f"{label} starts")
            return f"answer {label}"
        return respond

    fake.named("one").responder = answer("A")
    fake.named("two").responder = answer("B")
    fake.named("judge").responder = lambda *_: '{"winner": "A"}'
    compare("q", model_a="fake:one", model_b="fake:two", judge="fake:judge", verdict_format="winner",
            on_stage=events.append)
    assert events[:4] == ["answer A", "A starts", "answer B", "B starts"]
