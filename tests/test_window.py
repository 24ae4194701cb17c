"""A study keeps a bounded window of calls under way and lets go of what it held of a prompt once
the prompt is settled, so its memory does not grow with its size (bench/scale.py measures it)."""

from __future__ import annotations

import pytest

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.prompts import PromptItem
from llm_judge.runner import Runner
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study
from llm_judge.study import run as study_run

PROMPTS = 150


def config(base: str, mode: str = "pairwise", turns: int = 1) -> StudyConfig:
    spec = f"openai:m@{base}"
    prompts = [PromptItem(f"q{i}", f"Question {i}?") if turns == 1 else
               PromptItem(f"q{i}", f"Question {i}?", followups=(f"And then {i}?",)) for i in range(PROMPTS)]
    return StudyConfig(prompts=prompts, candidates={"a": Candidate(spec, make_sampling("p1")),
                                                    "b": Candidate(spec, make_sampling("p2"))},
                       judge=spec, judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None),
                       mode=mode)


@pytest.fixture
def watched(monkeypatch):
    """The most calls under way at a submit, and the most answers the study held at once."""
    seen = {"outstanding": 0, "held": 0}
    submit = Runner.submit

    def watching_submit(self, job, waiter):
        seen["outstanding"] = max(seen["outstanding"], self.outstanding + 1)
        return submit(self, job, waiter)

    answered = study_run._Pipeline._answered

    def watching_answered(self, *args):
        seen["held"] = max(seen["held"], sum(len(held) for held in self.answers.values()))
        return answered(self, *args)

    monkeypatch.setattr(Runner, "submit", watching_submit)
    monkeypatch.setattr(study_run._Pipeline, "_answered", watching_answered)
    monkeypatch.setattr(study_run, "WINDOW", 16)
    return seen


@pytest.mark.parametrize(("mode", "turns", "per_prompt"), [("pairwise", 1, 4), ("single", 2, 8)])
def test_a_study_keeps_a_bounded_window_of_calls_and_lets_go_of_settled_prompts(test_server, tmp_path, watched,
                                                                               mode, turns, per_prompt):
    base = test_server()
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(base, mode, turns), store, concurrency=2)  # 2 workers: the window is 16
    assert store.run(run_id)["status"] == "done"
    assert len(store.items(run_id)) == PROMPTS * per_prompt
    # a prompt is started only below the window, and each prompt under way has a call under way:
    # at most 17 prompts under way, whatever the study's size (every one of the 150 without the window)
    assert watched["outstanding"] <= (16 + 1) * per_prompt < PROMPTS * 2
    assert watched["held"] <= 2 * turns * (16 + 1)  # the answers of the prompts under way, not of all 150


def test_a_study_after_a_stop_continues_with_the_prompts_it_had_not_started(test_server, tmp_path, monkeypatch):
    base = test_server()
    store, cfg = Store(tmp_path / "s.db"), config(base)
    monkeypatch.setattr(study_run, "WINDOW", 8)
    calls = {"n": 0}
    write = study_run._Pipeline._write_judgment

    def stop_midway(self, finished):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt
        return write(self, finished)

    monkeypatch.setattr(study_run._Pipeline, "_write_judgment", stop_midway)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, store, concurrency=2)
    run_id = cfg.run_id()
    assert store.run(run_id)["status"] == "interrupted"
    started = {i.prompt_id for i in store.items(run_id)}
    assert 0 < len(started) < PROMPTS  # a window's worth, not every prompt
    monkeypatch.setattr(study_run._Pipeline, "_write_judgment", write)
    run_study(cfg, store, concurrency=2)
    assert store.run(run_id)["status"] == "done" and len(store.items(run_id)) == PROMPTS * 4
