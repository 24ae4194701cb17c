import random
from pathlib import Path

import pytest

from llm_judge import LLMJudgeError, compare, make_sampling, parse_criteria
from llm_judge.analyze import analyze
from llm_judge.compare import Candidate
from llm_judge.present import page as views
from llm_judge.prompts import load_prompts
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, verdict_records
from llm_judge.testing import fake
from llm_judge.votes import agreement, cast, judge_verdicts, next_item, vote_pairs

from .conftest import prefers


def test_normalise_spec_forms():
    assert views.normalise_spec("forestav/LoRA-2000 unsloth.F16.gguf") == "hf:forestav/LoRA-2000/unsloth.F16.gguf"
    assert views.normalise_spec("gguf:/m/a.gguf") == "gguf:/m/a.gguf"
    assert views.normalise_spec("judge") == "judge"
    with pytest.raises(LLMJudgeError, match="a model is empty"):
        views.normalise_spec("  ")


def test_public_server_restricts_files_and_urls(tmp_path):
    allowed = tmp_path / "models"
    allowed.mkdir()
    ok = f"gguf:{allowed / 'a.gguf'}"
    views.check_spec_allowed(ok, public=True, allowed_dirs=[allowed], configured=set())
    for bad in (f"gguf:{tmp_path / 'other.gguf'}", f"gguf:{allowed}/../other.gguf", "gguf:/etc/passwd"):
        with pytest.raises(LLMJudgeError, match="local model files are restricted"):
            views.check_spec_allowed(bad, public=True, allowed_dirs=[allowed], configured=set())
    with pytest.raises(LLMJudgeError, match="server URLs are restricted"):
        views.check_spec_allowed("openai:m@http://10.0.0.1/v1", public=True, allowed_dirs=[], configured=set())
    views.check_spec_allowed("openai:m@http://x/v1", public=True, allowed_dirs=[], configured={"openai:m@http://x/v1"})
    views.check_spec_allowed("gguf:/etc/passwd", public=False, allowed_dirs=[], configured=set())  # localhost: free


def test_optional_numbers():
    assert views.optional_number("", "x") is None and views.optional_number("1.5", "x") == 1.5
    with pytest.raises(LLMJudgeError, match="max tokens must be a whole number, not 'abc'"):
        views.optional_number("abc", "max tokens", int)


def test_selected_criteria_limit():
    assert views.selected_criteria(["Relevance"], "Tone=Friendly?\n", 3) == ["Relevance", "Tone=Friendly?"]
    with pytest.raises(LLMJudgeError, match="select up to 3 criteria \\(4 selected\\)"):
        views.selected_criteria(["Relevance", "Depth", "Clarity", "Accuracy"], "", 3)
    with pytest.raises(LLMJudgeError, match="at least one"):
        views.selected_criteria([], " ", 3)


def test_verdict_views_from_a_result():
    fake.named("a").queue("GOOD")
    fake.named("b").queue("meh")
    fake.named("j").responder = prefers("GOOD")
    d = compare("q", model_a="fake:a", model_b="fake:b", judge="fake:j").to_dict()
    assert views.verdict_rows(d) == [["Relevance", "4", "2"], ["Coherence", "4", "2"], ["Completeness", "4", "2"],
                                     ["Total", "12", "6"]]
    md = views.verdict_markdown(d)
    assert "**Winner: A (fake:a)**" in md and "Both orders agreed: yes" in md


def test_verdict_rows_unscored():
    d = {"criteria": [{"name": "Relevance"}], "scores": None, "totals": None}
    assert views.verdict_rows(d) == [["Relevance", "-", "-"], ["Total", "-", "-"]]


def make_run(tmp_path: Path):
    fake.named("good").responder = lambda m, s, sch: "GOOD answer"
    fake.named("bad").responder = lambda m, s, sch: "meh"
    fake.named("judge").responder = prefers("GOOD")
    store = Store(tmp_path / "v.db")
    cfg = StudyConfig(prompts=load_prompts("seed-10", limit=3),
                      candidates={"good": Candidate("fake:good", make_sampling("p1")),
                                  "bad": Candidate("fake:bad", make_sampling("p2"))},
                      judge="fake:judge", judge_sampling=make_sampling("greedy"), criteria=parse_criteria(None),
                      mode="both")
    return store, run_study(cfg, store)


def test_blind_votes_map_back_and_agreement(tmp_path):
    store, run_id = make_run(tmp_path)
    assert len(vote_pairs(store, run_id)) == 3
    rng = random.Random(1)
    sides = set()
    for _ in range(3):
        item = next_item(store, run_id, rng)
        sides.add(item["left"])
        assert {item["left"], item["right"]} == {"good", "bad"}
        good_side = "left" if item["left"] == "good" else "right"
        assert cast(store, item, good_side) == ("A" if item["label_a"] == "good" else "B")
    assert sides == {"good", "bad"}  # the sides were randomised
    assert {(v["prompt_id"]) for v in store.votes(run_id)} == {"seed-01", "seed-02", "seed-03"}  # fewest first
    result = agreement(store, run_id)
    ha = result["analysis"]["human_agreement"]["with_ties"]
    assert result["votes"] == result["judged_votes"] == 3
    assert ha["verdict"]["accuracy"] == 1.0 and ha["both_orders_correct"]["rate"] == 1.0
    assert "Judge agrees with you on 100%" in views.agreement_markdown(result)
    assert len(judge_verdicts(store, run_id)) == 3
    exported = verdict_records(store, run_id)  # the votes fill "human" in the analyze format
    assert [r["human"] for r in exported] == [("A" if r["model_a"] == "good" else "B") for r in exported]
    assert analyze(exported)["human_agreement"]["with_ties"]["verdict"]["accuracy"] == 1.0


def test_vote_errors(tmp_path):
    store, run_id = make_run(tmp_path)
    item = next_item(store, run_id, random.Random(0))
    with pytest.raises(LLMJudgeError, match="left, right or tie"):
        cast(store, item, "up")
    with pytest.raises(LLMJudgeError, match="no run 'zzz'"):
        next_item(store, "zzz", random.Random(0))


def test_page_compare_passes_each_sides_sampling_and_saves_the_result(tmp_path):
    from llm_judge.ui import App

    fake.named("a").queue("GOOD")
    fake.named("b").queue("meh")
    fake.named("j").responder = prefers("GOOD")
    app = App(Store(tmp_path / "ui.db"))
    updates = list(app.compare("fake:a", "fake:b", "fake:j", "p1", "p2", "64", "0.3", "", "0.9", "5",
                               "", "0.2", "", "", "7", ["Relevance"], "", "Why?"))
    status, answer_a, answer_b, rows, verdict, result = updates[-1]
    sa, sb = fake.named("a").calls[0].sampling, fake.named("b").calls[0].sampling
    assert (sa.temperature, sa.min_p, sa.top_p, sa.top_k, sa.max_tokens, sa.seed) == (0.3, 0.05, 0.9, 5, 64, 7)
    assert (sb.temperature, sb.min_p, sb.top_p, sb.top_k) == (1.5, 0.2, 1.0, 0)
    assert rows == [["Relevance", "4", "2"], ["Total", "4", "2"]] and "Winner: A" in verdict
    assert app.store.comparisons()[0]["candidates"]["A"]["text"] == answer_a == "GOOD"
