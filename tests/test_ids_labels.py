"""Figures that came out wrong through ids and labels (issue #23, point 5): repeated ids in
inputs keyed by id, criteria named like the labels, analyze's orientation of single-order lines,
and unit ids of conversation turns that collided with other prompts' ids."""

import json
import re

import pytest

from llm_judge import LLMJudgeError, compare, make_sampling, parse_criteria
from llm_judge.analyze import analyze, read_verdicts
from llm_judge.cli import main
from llm_judge.compare import Candidate
from llm_judge.criteria import Scale
from llm_judge.judges import GoldItem, card, evaluate, load_gold
from llm_judge.judging import JudgeSetup, load_judge
from llm_judge.prompts import PromptItem, read_references
from llm_judge.records import Juror, Probabilities, Verdict
from llm_judge.store import Store
from llm_judge.study import StudyConfig, export_run, run_study, summarize, verdict_records
from llm_judge.study.summary import split_unit, unit_id
from llm_judge.testing import fake

from .conftest import prefers

WINNER_ONLY = JudgeSetup(parse_criteria(None), Scale(), make_sampling(None, temperature=0), "winner", "plain")


def shown_first(messages) -> str:
    return re.search(r"<<A-\w+>>\n(.*?)\n<</A-", messages[-1]["content"], re.S).group(1)


# --- duplicate ids ---------------------------------------------------------------------------------

def test_a_gold_file_that_repeats_an_id_is_refused_naming_the_id_and_both_lines(tmp_path, capsys):
    rows = [{"id": "p1", "input": "q1?", "output_1": "GOOD one", "output_2": "meh", "label": 1},
            {"id": "p2", "input": "q2?", "output_1": "meh", "output_2": "GOOD two", "label": 2},
            {"id": "p1", "input": "q3?", "output_1": "meh", "output_2": "GOOD three", "label": 2}]
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(LLMJudgeError, match=r"gold.jsonl line 3: id 'p1' is already the id of line 1"):
        load_gold(str(path))
    fake.named("judge").responder = lambda m, s, sch: json.dumps({"winner": "A" if "GOOD" in shown_first(m) else "B"})
    code = main(["judges", "eval", "--judge", "fake:judge", "--set", str(path), "--verdict-format", "winner",
                 "--db", str(tmp_path / "s.db"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "id 'p1' is already the id of line 1" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and not fake.named("judge").calls  # refused before judging


def test_pairs_that_share_an_id_keep_their_own_verdicts_in_an_evaluation(tmp_path):
    """The issue's wrong card: results keyed by (id, order) gave each same-id pair the second's verdicts."""
    items = [GoldItem("p1", "q1?", "GOOD one", "meh", "A"), GoldItem("p1", "q3?", "meh", "GOOD three", "B")]
    fake.named("judge").responder = lambda m, s, sch: json.dumps({"winner": "A" if "GOOD" in shown_first(m) else "B"})
    records = evaluate(load_judge("fake:judge", WINNER_ONLY), "judge", items, Store(tmp_path / "s.db"))
    assert [(r["verdict"], r["verdict_swapped"]) for r in records] == [("A", "A"), ("B", "B")]
    assert card(records, "judge", "two pairs")["accuracy"]["mean"] == 1.0


def test_a_reference_file_that_repeats_an_id_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "refs.jsonl"
    path.write_text('{"id": "1", "reference": "four"}\n{"id": "2", "reference": "x"}\n'
                    '{"question_id": 1, "choices": [{"turns": ["five"]}]}\n')
    with pytest.raises(LLMJudgeError, match=r"refs.jsonl line 3: id '1' already has references on line 1"):
        read_references(path)


def config(prompts, mode="pairwise", criteria=None):
    return StudyConfig(prompts=prompts, candidates={"good": Candidate("fake:good", make_sampling("p1")),
                                                    "bad": Candidate("fake:bad", make_sampling("p2"))},
                       judge="fake:judge", judge_sampling=make_sampling(None, temperature=0),
                       criteria=parse_criteria(criteria), mode=mode)


def test_a_study_given_two_prompts_with_one_id_is_refused_in_one_line(tmp_path):
    prompts = [PromptItem("1", "first?"), PromptItem("1", "second?")]
    with pytest.raises(LLMJudgeError, match=r"prompt id '1' is given twice"):
        run_study(config(prompts), Store(tmp_path / "s.db"))
    assert not fake.named("good").calls


# --- criteria named like the labels ----------------------------------------------------------------

def scoring_judge(points: dict[str, tuple[int, int]]):
    """Prefers the answer with GOOD in it and gives it points[criterion][0], the other [1]."""
    def respond(messages, sampling, schema):
        if schema is None:
            return "an answer"
        good_first = "GOOD" in shown_first(messages)
        scores = {c: {"A": hi, "B": lo} if good_first else {"A": lo, "B": hi} for c, (hi, lo) in points.items()}
        return json.dumps({"justification": "x", "scores": scores, "winner": "A" if good_first else "B"})
    return respond


@pytest.mark.parametrize("names", [("A",), ("A", "B"), ("A", "B", "tie"), ("winner", "scores", "B")])
def test_criteria_named_like_labels_keep_their_scores_with_the_right_candidate(names):
    points = dict(zip(names, [(4, 1), (3, 2), (2, 4)]))  # distinct per criterion
    fake.named("a").queue("GOOD answer from A")
    fake.named("b").queue("weak answer from B")
    fake.named("judge").responder = scoring_judge(points)
    r = compare("How?", model_a="fake:a", model_b="fake:b", judge="fake:judge",
                criteria=[f"{n}=the {n} criterion" for n in names])
    assert (r.winner, r.consistent) == ("A", True)
    assert r.scores == {n: {"A": hi, "B": lo} for n, (hi, lo) in points.items()}
    assert [c.verdict.scores for c in r.orders] == [r.scores, r.scores]  # BA mapped back by structure


def test_relabelling_goes_by_structure_not_by_key_names():
    verdict = Verdict("A", {"A": {"A": 4, "B": 1}, "tie": {"A": 2, "B": 3}}, "A won",
                      Probabilities({"A": 0.7, "B": 0.2, "tie": 0.1}, {"B": {"A": 3.5, "B": 1.5}}),
                      (Juror("j", "tie", None, probabilities=Probabilities({"A": 0.1, "B": 0.6, "tie": 0.3})),))
    swapped = verdict.swapped()
    assert swapped.scores == {"A": {"A": 1, "B": 4}, "tie": {"A": 3, "B": 2}}
    assert swapped.winner == "B" and swapped.justification == "A won"
    assert swapped.probabilities == Probabilities({"A": 0.2, "B": 0.7, "tie": 0.1}, {"B": {"A": 1.5, "B": 3.5}})
    assert swapped.jurors[0].winner == "tie" and swapped.jurors[0].probabilities.winner["B"] == 0.1
    assert swapped.swapped() == verdict


def test_a_study_with_criteria_named_a_and_b_reports_each_candidates_own_scores(tmp_path):
    fake.named("good").responder = lambda m, s, sch: "GOOD answer"
    fake.named("bad").responder = lambda m, s, sch: "meh answer"
    fake.named("judge").responder = scoring_judge({"A": (4, 1), "B": (3, 2)})
    store = Store(tmp_path / "s.db")
    run_id = run_study(config([PromptItem("1", "q?"), PromptItem("2", "r?")], criteria=["A=accurate", "B=brief"]),
                       store)
    pair = summarize(store, run_id, n_boot=50).pairwise.pairs["bad vs good"]
    assert pair.wins["good"] == 2
    for r in verdict_records(store, run_id):
        assert (r["verdict"], r["verdict_swapped"]) == ("B", "B")
    stored = [i.verdict for i in store.items(run_id, "pairwise")]
    assert all(v.scores == {"A": {"A": 1, "B": 4}, "B": {"A": 2, "B": 3}} for v in stored)  # A = bad


# --- analyze's orientation -------------------------------------------------------------------------

def write(tmp_path, rows) -> str:
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_single_order_file_with_each_pair_written_both_ways_gives_its_position_consistency(tmp_path, capsys):
    rows = [{"id": "q1", "model_a": "x", "model_b": "y", "verdict": "A"},  # x shown first: x wins
            {"id": "q1", "model_a": "y", "model_b": "x", "verdict": "B"},  # y shown first: x wins (consistent)
            {"id": "q2", "model_a": "y", "model_b": "x", "verdict": "A"},  # y shown first: y wins
            {"id": "q2", "model_a": "x", "model_b": "y", "verdict": "A"}]  # x shown first: x wins (inconsistent)
    assert main(["analyze", write(tmp_path, rows), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pc = out["position_consistency"]
    assert out["items"] == 2 and (pc["items"], pc["agreeing"], pc["unscored"]) == (2, 1, 0)
    pair = out["win_rates"]["x vs y"]
    assert (pair["wins"]["x"], pair["ties"], pair["wins"]["y"]) == (1, 1, 0)


def test_a_single_order_line_without_its_other_order_stays_out_of_position_consistency(tmp_path):
    rows = [{"id": "q1", "model_a": "x", "model_b": "y", "verdict": "A", "verdict_swapped": "A"},
            {"id": "q2", "model_a": "y", "model_b": "x", "verdict": "B", "human": "B"}]
    out = analyze(read_verdicts(write(tmp_path, rows)), n_boot=50)
    assert out["items"] == 2 and out["position_consistency"]["items"] == 1
    assert out["position_consistency"]["agreeing"] == 1
    assert out["win_rates"]["x vs y"].wins["x"] == 2


def test_a_line_written_the_other_way_round_has_its_orders_exchanged_too(tmp_path):
    """``verdict`` is the order that showed model_a first: on a "y vs x" line that is y, so in the
    file's "x vs y" its verdict is the swapped order's."""
    rows = [{"id": "q1", "model_a": "x", "model_b": "y", "verdict": "A", "verdict_swapped": "A", "human": "A"},
            {"id": "q2", "model_a": "y", "model_b": "x", "verdict": "A", "verdict_swapped": "B", "human": "B"}]
    agree = analyze(read_verdicts(write(tmp_path, rows)), n_boot=50)["human_agreement"]["with_ties"]
    assert agree["verdict"]["accuracy"] == 1.0  # x shown first: x named both times
    assert agree["verdict_swapped"]["accuracy"] == 0.5  # y shown first: q2 named y


# --- unit ids --------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt_id", ["x", "x@t2", "x@t2@t1", "@t3", "a@t", "a@tb", "x@t\u0662", "x@t2\n", "x@t02"])
@pytest.mark.parametrize("turn", [1, 2, 10])
def test_every_unit_id_reads_back_as_its_prompt_and_turn(prompt_id, turn):
    assert split_unit(unit_id(prompt_id, turn)) == (prompt_id, turn)


def test_unit_ids_of_ordinary_prompts_are_unchanged():
    assert [unit_id("81", 1), unit_id("81", 2), unit_id("a@b", 1)] == ["81", "81@t2", "a@b"]


def _x_and_x_at_t2() -> list:
    """Prompt x with a second turn, and a prompt whose id is x@t2; a judge that prefers GOOD."""
    fake.named("good").responder = lambda m, s, sch: "GOOD answer"
    fake.named("bad").responder = lambda m, s, sch: "meh answer"
    fake.named("judge").responder = prefers("GOOD")
    return [PromptItem("x", "first?", category="math", followups=("and then?",)),
            PromptItem("x@t2", "other?", category="writing")]


def test_a_prompt_id_ending_like_a_second_turn_is_its_own_unit(tmp_path):
    prompts = _x_and_x_at_t2()
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(prompts), store)
    s = summarize(store, run_id, n_boot=50)
    assert s.pairwise.pairs["bad vs good"].wins["good"] == 3  # x turn 1, x turn 2, x@t2
    assert s.pairwise.diagnostics.judgments == 6
    assert s.by_turn[1]["pairs"]["bad vs good"].wins["good"] == 2 and s.by_turn[2]["pairs"]["bad vs good"].wins["good"] == 1
    assert s.categories["writing"]["good"].n == 1 and s.categories["math"]["good"].n == 2
    recs = {r["id"]: r.get("category") for r in verdict_records(store, run_id)}
    assert recs == {"x": "math", "x@t2": "math", "x@t2@t1": "writing"}
    store.add_vote(run_id, "x@t2", "bad", "good", "good", "B")  # a person's vote on the prompt x@t2
    human = {r["id"]: r.get("human") for r in verdict_records(store, run_id)}
    assert human == {"x": None, "x@t2": None, "x@t2@t1": "B"}
    assert export_run(store, run_id, tmp_path / "v.jsonl", "verdicts") == 3
    calls, items = len(fake.named("judge").calls), len(store.items(run_id, repeat=None))
    assert run_study(config(prompts), store) == run_id  # the stored run is reused as it is
    assert len(fake.named("judge").calls) == calls and len(store.items(run_id, repeat=None)) == items


def test_a_vote_on_a_prompt_whose_id_ends_like_a_second_turn_counts_for_that_prompt(tmp_path):
    from llm_judge.votes import judge_verdicts

    prompts = _x_and_x_at_t2()
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(prompts, mode="single"), store)
    store.add_vote(run_id, "x@t2", "bad", "good", "bad", "B")
    recs = judge_verdicts(store, run_id)  # single grading: the records come from the two totals
    assert {r["id"]: (r.get("category"), r.get("human")) for r in recs.values()} == {
        "x": ("math", None), "x@t2@t1": ("writing", "B")}


def test_a_candidate_label_that_ends_like_a_later_turn_is_refused_in_one_line():
    """A study names a later turn's answer ``LABEL@t2``: a label ``a@t2`` would share names with
    candidate ``a``'s second turn."""
    from llm_judge.compare import Candidate, candidates_by_label

    with pytest.raises(LLMJudgeError, match=r"candidate label 'a@t2' ends like a conversation's turn.*#LABEL"):
        candidates_by_label([Candidate.parse("fake:x#a@t2"), Candidate.parse("fake:y#a")])
    assert list(candidates_by_label([Candidate.parse("fake:x#a@tb")])) == ["a@tb"]
