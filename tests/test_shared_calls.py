"""One call serves every slot that shows the same texts in the same positions (they share a cache
key): each slot reads its verdict in its own labels, in a judge evaluation (two gold pairs that
are each other's reverse, as MT-Bench's human set holds) and in a comparison (two identical
answers), on the first run and when the stored judgment is read back."""

from __future__ import annotations

from llm_judge import compare, make_sampling, parse_criteria
from llm_judge.criteria import Scale
from llm_judge.judges import GoldItem, evaluate
from llm_judge.judging import JudgeSetup, load_judge
from llm_judge.store import Store
from llm_judge.testing import fake

SETUP = JudgeSetup(parse_criteria(None), Scale(), make_sampling(None, temperature=0.0), "winner")


def _picks_good(messages, *_):
    """A judge that names the position holding the text GOOD (a perfect judge of these pairs)."""
    text = messages[-1]["content"]
    return '{"winner": "%s"}' % ("A" if text.index("GOOD") < text.index("BAD") else "B")


def _shows_first(*_):
    return '{"winner": "A"}'  # a judge that always names the answer shown first


def test_reversed_gold_pairs_each_get_their_own_verdict_fresh_and_reread(tmp_path):
    fake.named("good").responder = _picks_good
    items = [GoldItem("x", "q", "GOOD", "BAD", "A"), GoldItem("y", "q", "BAD", "GOOD", "B")]
    store = Store(tmp_path / "s.db")
    for attempt in ("fresh", "reread"):
        records = evaluate(load_judge("fake:good", SETUP), "good", items, store)
        got = {r["id"]: (r["verdict"], r["verdict_swapped"]) for r in records}
        assert got == {"x": ("A", "A"), "y": ("B", "B")}, attempt
    assert len(fake.named("good").calls) == 2  # x's AB is y's BA and the other way round


def test_both_orders_of_two_identical_answers_show_a_position_biased_judge_as_inconsistent():
    fake.named("same").responder = lambda *_: "the same answer"
    fake.named("first").responder = _shows_first
    result = compare("q", model_a="fake:same", model_b="fake:same", judge="fake:first", verdict_format="winner")
    assert [(c.order, c.verdict.winner) for c in result.orders] == [("AB", "A"), ("BA", "B")]
    assert result.consistent is False and result.winner == "tie"
