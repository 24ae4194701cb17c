"""A published protocol through the judge, the cache and a study (#20): the protocol's prompt and
verdict format in both orders, its weighted reading, Arena-Hard's second attempt, LLMBar's
auxiliary texts made once and kept, the cache key (unchanged for llm-judge's own protocol), and
the refusals of a protocol used the wrong way."""

from __future__ import annotations

import re

import pytest

from llm_judge.cache import judgment_key, save_judgment, template_version
from llm_judge.compare import compare
from llm_judge.criteria import Scale, parse_criteria
from llm_judge.errors import LLMJudgeError
from llm_judge.judging import JudgeSetup, ModelJudge, judge_pairwise
from llm_judge.prompts import load_prompts
from llm_judge.protocols import load_protocol
from llm_judge.records import Grade, Verdict
from llm_judge.sampling import SamplingParams, make_sampling
from llm_judge.store import Store
from llm_judge.study.loaded import load_run
from llm_judge.study.run import Candidate, StudyConfig, run_study
from llm_judge.testing import fake
from llm_judge.testing.fake import FakeBackend

SAMPLING = SamplingParams(temperature=0.0, max_tokens=512)
# the key of one judgment as the code before protocols computed it (main at b0cdcd4)
KEY_BEFORE = "e267969e7c06632c8ce9df54db78437d3ce6e7123b65fcfd7d343d713bedd4b9"


def setup(protocol: str | None, method: str = "plain") -> JudgeSetup:
    return JudgeSetup(parse_criteria(None), Scale(), SAMPLING, method=method,
                      protocol=None if protocol is None else load_protocol(protocol))


def shown_answers(messages) -> tuple[str, str]:
    """Which of the two texts "GOOD ..." / "bad ..." the prompt shows first."""
    text = messages[-1]["content"]
    return ("GOOD", "bad") if text.index("GOOD") < text.index("bad") else ("bad", "GOOD")


def test_the_key_of_llm_judges_own_protocol_is_unchanged(prompt_version_before):
    judge = ModelJudge(FakeBackend(spec="fake:k"), JudgeSetup(parse_criteria(None), Scale(), SAMPLING))
    builtin = ModelJudge(FakeBackend(spec="fake:k"), setup("llm-judge"))
    assert builtin.setup.own is None
    assert judgment_key("pairwise", judge, "q", ["a", "b"]) == KEY_BEFORE
    assert judgment_key("pairwise", builtin, "q", ["a", "b"]) == KEY_BEFORE
    assert template_version(builtin) == template_version(judge)


def test_a_protocol_is_in_the_key_by_name_and_digest(tmp_path):
    vanilla = ModelJudge(FakeBackend(spec="fake:k"), setup("llmbar-vanilla"))
    key = judgment_key("pairwise", vanilla, "q", ["a", "b"])
    assert key != KEY_BEFORE
    assert template_version(vanilla).startswith("llmbar-vanilla@")
    # a user's copy of the protocol, then edited: the same name, new keys
    src = load_protocol("llmbar-vanilla").path
    mine = tmp_path / "mine"
    mine.mkdir()
    for f in __import__("pathlib").Path(src).iterdir():
        (mine / f.name).write_bytes(f.read_bytes())
    copy = ModelJudge(FakeBackend(spec="fake:k"), setup(str(mine)))
    assert judgment_key("pairwise", copy, "q", ["a", "b"]) == key  # the same files: the same judgments
    user = (mine / "user.txt").read_text(encoding="utf-8")
    (mine / "user.txt").write_text(user.replace("Which is better", "Which one is better"), encoding="utf-8")
    edited = ModelJudge(FakeBackend(spec="fake:k"), setup(str(mine)))
    assert judgment_key("pairwise", edited, "q", ["a", "b"]) != key


def test_llmbar_in_both_orders_reads_the_verdict_in_the_items_labels():
    judge_model = FakeBackend(responder=lambda m, s, sch: "Output (a)" if shown_answers(m)[0] == "GOOD" else "Output (b)")
    judge = ModelJudge(judge_model, setup("llmbar-vanilla"))
    calls, combined = judge_pairwise(judge, "Say something.", ("GOOD answer", "bad answer"))
    assert [c.pair.winner for c in calls] == ["A", "A"]  # A is GOOD in the item's labels, both orders
    assert combined.winner == "A"
    prompt = judge_model.calls[0].messages[-1]["content"]
    assert "# Output (a):" in prompt and "GOOD answer" in prompt
    assert judge_model.calls[0].grammar is not None and "Output (" in judge_model.calls[0].grammar
    assert judge_model.calls[0].schema is None
    assert judge_model.calls[0].sampling.max_tokens < SAMPLING.max_tokens  # a verdict-first protocol's cap


def test_an_unreadable_protocol_verdict_is_unscored_not_a_tie():
    judge = ModelJudge(FakeBackend(["The first one.", "Output (b)"]), setup("llmbar-vanilla"))
    calls, combined = judge_pairwise(judge, "q", ("x", "y"))
    assert calls[0].result is None and calls[0].status == "unscored" and calls[0].error
    assert calls[1].pair.winner == "A"  # (b) shown second-first is A
    assert combined.winner == "A"  # one unscored order does not make a tie


def test_mt_bench_pair_reads_the_tie_label_and_a_single_protocol_its_rating():
    judge = ModelJudge(FakeBackend(["Both equal. [[C]]", "[[C]]"]), setup("mt-bench-pair-v2"))
    calls, combined = judge_pairwise(judge, "q", ("x", "y"))
    assert [c.pair.winner for c in calls] == ["tie", "tie"]
    grader = ModelJudge(FakeBackend(["Good. Rating: [[7.5]]"]), setup("mt-bench-single-v1"))
    assert grader.setup.scale == Scale(1, 10) and [c.name for c in grader.setup.criteria] == ["rating"]
    call = grader.grade("q", "an answer", "A")
    assert isinstance(call.result, Grade) and call.result.total == 7.5


def test_arena_hard_asks_once_more_when_no_label_is_given_and_keeps_strength():
    model = FakeBackend(["My own answer first: ...", "My final verdict is: [[B>>A]]", "[[A>B]]"])
    judge = ModelJudge(model, setup("arena-hard"))
    first = judge.judge_order("q", ("x", "y"), "AB")
    assert len(model.calls) == 2  # the second attempt is inside the same judge call
    assert model.calls[1].messages[-2] == {"role": "assistant", "content": "My own answer first: ..."}
    assert "continue your judgment" in model.calls[1].messages[-1]["content"]
    assert first.raw == "My own answer first: ...\nMy final verdict is: [[B>>A]]"
    assert isinstance(first.pair, Verdict) and first.pair.winner == "B" and first.pair.strong
    assert first.completion.completion_tokens == sum(len(t.split()) for t in
                                                     ["My own answer first: ...", "My final verdict is: [[B>>A]]"])
    second = judge.judge_order("q", ("x", "y"), "BA")  # [[A>B]] shown B first: A of the display is B
    assert second.pair.winner == "B" and not second.pair.strong and len(model.calls) == 3


def test_arena_hard_without_a_label_after_two_attempts_is_unscored():
    judge = ModelJudge(FakeBackend(["no label", "still none"]), setup("arena-hard"))
    call = judge.judge_order("q", ("x", "y"), "AB")
    assert call.result is None and call.status == "unscored" and "second attempt" in call.error


def _probabilities_at_decision(messages, text, offset):
    return {"a": 0.8, "b": 0.2} if text[offset] in "ab" else {}


def test_weighted_llmbar_reads_the_label_probabilities_in_the_frame_shown():
    model = FakeBackend(["Output (a)", "Output (a)"], probabilities=_probabilities_at_decision)
    judge = ModelJudge(model, setup("llmbar-vanilla", "weighted"))
    ab = judge.judge_order("q", ("x", "y"), "AB")
    ba = judge.judge_order("q", ("x", "y"), "BA")
    assert ab.pair.probabilities.winner["A"] == pytest.approx(0.8)
    assert ba.pair.probabilities.winner["B"] == pytest.approx(0.8)  # shown first in BA is B


def test_a_protocol_used_the_wrong_way_is_refused_in_one_line():
    with pytest.raises(LLMJudgeError, match="mode single"):
        compare("q", judge="fake:j", mode="pairwise", protocol="mt-bench-single-v1")
    with pytest.raises(LLMJudgeError, match="verdict format"):
        compare("q", judge="fake:j", protocol="llmbar-vanilla", verdict_format="winner")
    with pytest.raises(LLMJudgeError, match="protocol"):
        compare("q", judge="fake:j", protocol="no-such-protocol")


def _good_and_bad():
    fake.reset()
    fake.named("good").responder = lambda m, s, sch: "GOOD answer"
    fake.named("bad").responder = lambda m, s, sch: "bad answer"


def _llmbar_metrics_judge(messages, sampling, schema):
    """Questions when asked for them (the question alone), else a verdict for the GOOD answer."""
    text = messages[-1]["content"]
    if "GOOD" not in text:
        return "1. Does it answer?\n2. Is it short?"
    return "Output (a)" if shown_answers(messages)[0] == "GOOD" else "Output (b)"


def test_compare_under_a_protocol_with_auxiliary_texts_asks_for_them_once():
    _good_and_bad()
    fake.named("judge").responder = _llmbar_metrics_judge
    result = compare("Write something.", candidates={"A": Candidate("fake:good", make_sampling("p1")),
                                                     "B": Candidate("fake:bad", make_sampling("p2"))},
                     judge="fake:judge", protocol="llmbar-metrics")
    calls = fake.named("judge").calls
    asked = [c for c in calls if "GOOD" not in c.messages[-1]["content"]]
    assert len(asked) == 1 and len(calls) == 3  # one auxiliary text, two orders
    assert "Does it answer?" in calls[-1].messages[-1]["content"]  # the questions fill the comparison prompt
    assert result.winner == "A" and result.to_dict()["judge"]["protocol"] == "llmbar-metrics"


def test_a_study_keeps_auxiliary_texts_links_them_and_makes_no_call_again(tmp_path):
    _good_and_bad()
    fake.named("judge").responder = _llmbar_metrics_judge
    store = Store(tmp_path / "s.db")
    cfg = StudyConfig(prompts=load_prompts("seed-10", limit=2), candidates={
        "good": Candidate("fake:good", make_sampling("p1")), "bad": Candidate("fake:bad", make_sampling("p2"))},
        judge="fake:judge", judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None),
        mode="pairwise", protocol="llmbar-metrics")
    assert cfg.to_dict()["protocol"] == "llmbar-metrics"
    run_id = run_study(cfg, store)
    calls = fake.named("judge").calls
    aux_calls = [c for c in calls if "GOOD" not in c.messages[-1]["content"]]
    assert len(aux_calls) == 2 and len(calls) == 2 + 4  # a text per question, both orders per prompt
    run = load_run(store, run_id)
    texts = run.auxiliary()
    assert len(texts) == 2 and all("Does it answer?" in t for d in texts.values() for t in d.values())
    pairwise = [i for i in run.items if i.kind == "pairwise"]
    assert pairwise and all(i.verdict is not None and i.verdict.winner == ("A" if i.labels[0] == "good" else "B")
                            for i in pairwise)
    versions = {r[0] for r in store.db.execute("SELECT template_version FROM judgments")}
    assert len(versions) == 1 and re.fullmatch(r"llmbar-metrics@[0-9a-f]{12}", versions.pop())
    fake.named("judge").calls.clear()
    assert run_study(cfg, store) == run_id and fake.named("judge").calls == []  # all kept: no call again
    from llm_judge.present.report import render_markdown
    from llm_judge.study.summary import summarize_run
    report = render_markdown(run, summarize_run(run))
    assert "under protocol llmbar-metrics" in report and "Does it answer?" in report


def test_a_failed_auxiliary_call_fails_the_judgment_and_is_retried(tmp_path):
    from llm_judge.cache import StoredAuxiliary

    class Broken(FakeBackend):
        def generate(self, messages, sampling, **kw):
            if "GOOD" not in messages[-1]["content"]:
                raise LLMJudgeError("connection refused")
            return super().generate(messages, sampling, **kw)

    store = Store(tmp_path / "s.db")
    judge = ModelJudge(Broken(responder=_llmbar_metrics_judge), setup("llmbar-metrics"))
    call = judge.judge_order("q", ("GOOD answer", "bad answer"), "AB", auxiliary=StoredAuxiliary(store))
    assert call.status == "failed" and "auxiliary" in call.error
    save_judgment(store, "k", "pairwise", "fake:j", call)
    assert store.judgment("k") is None  # a failure is not a result: the next run asks again
    assert store.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 0


def test_a_protocol_that_does_not_fit_the_items_is_refused_before_any_call(tmp_path):
    from llm_judge.judges import GoldItem, evaluate
    from llm_judge.prompts import PromptItem

    _good_and_bad()
    fake.named("judge").responder = lambda m, s, sch: "[[A]]"
    two_turns = [PromptItem("p1", "First question?", followups=["And then?"])]
    cfg = StudyConfig(prompts=two_turns, candidates={
        "good": Candidate("fake:good", make_sampling("p1")), "bad": Candidate("fake:bad", make_sampling("p2"))},
        judge="fake:judge", judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None),
        mode="pairwise", protocol="mt-bench-pair-v2")
    with pytest.raises(LLMJudgeError, match="turn 2: use mt-bench-pair") as info:
        run_study(cfg, Store(tmp_path / "s.db"))
    assert "\n" not in str(info.value) and fake.named("good").calls == []  # before any answer
    judge = ModelJudge(FakeBackend(["[[A]]"]), setup("mt-bench-pair-math-v1"))
    with pytest.raises(LLMJudgeError, match="needs a reference answer"):
        evaluate(judge, "fake:j", [GoldItem("1", "q", "a", "b", "A")], Store(tmp_path / "e.db"))
    assert judge.backend.calls == []


def test_an_item_a_protocol_cannot_fill_fails_with_its_reason_instead_of_raising():
    judge = ModelJudge(FakeBackend(["[[A]]"]), setup("mt-bench-pair-math-v1"))
    call = judge.judge_order("q", ("a", "b"), "AB")  # no reference: the check before a run would refuse it
    assert call.status == "failed" and "needs a reference answer" in call.error and judge.backend.calls == []


def test_a_failed_second_attempt_fails_the_judgment_so_the_next_run_asks_again(tmp_path):
    class Drops(FakeBackend):
        def generate(self, messages, sampling, **kw):
            if len(messages) > 2:
                raise LLMJudgeError("connection reset")
            return super().generate(messages, sampling, **kw)

    call = ModelJudge(Drops(["My own answer: ..."]), setup("arena-hard")).judge_order("q", ("x", "y"), "AB")
    assert call.status == "failed" and "connection reset" in call.error
    store = Store(tmp_path / "s.db")
    save_judgment(store, "k", "pairwise", "fake:j", call)
    assert store.judgment("k") is None


def test_prometheus_rubric_comes_from_the_criteria_and_is_in_the_key():
    def prompt_of(criteria: str | None) -> tuple[str, str]:
        model = FakeBackend(["Good. [RESULT] 4"])
        s = JudgeSetup(parse_criteria(criteria), Scale(), SAMPLING, protocol=load_protocol("prometheus2-absolute"))
        judge = ModelJudge(model, s)
        assert judge.grade("q", "an answer", "A").result.total == 4
        return model.calls[0].messages[-1]["content"], judgment_key("single", judge, "q", ["an answer"])

    default, key_default = prompt_of(None)
    mine, key_mine = prompt_of("Accuracy")
    assert "helpful" in default.lower() and "[]" not in default
    assert "the facts, steps and claims in the answer correct" in mine and key_mine != key_default
    cfg = StudyConfig(prompts=load_prompts("seed-10", limit=1), candidates={"a": Candidate("fake:a", make_sampling("p1"))},
                      judge="fake:j", judge_sampling=make_sampling(None, temperature=0),
                      criteria=parse_criteria("Accuracy"), protocol="prometheus2-absolute")
    assert cfg.setup.rubric and "claims in the answer correct" in cfg.setup.rubric  # the study keeps the criteria
    assert cfg.to_dict()["criteria"] == [["score", ""]] and cfg.to_dict()["scale"] == [1, 5]
    assert cfg.to_dict()["rubric"] == cfg.setup.rubric
