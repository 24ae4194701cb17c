"""One Judge interface for a model and a jury (#19): the typed verdicts, their one relabelling, and
the identities, cache keys and stored bytes of the code before it, unchanged.

The expected keys and stored verdicts were computed with the code before #19 (commit e5dc2dc:
``judging.model_identity``, ``judgment_key``, ``judge_pairwise_order``, ``judge_single`` and
``save_judgment``) on the same inputs, and are hard-coded here and in judge_calls_before_19.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_judge.cache import generation_key, judgment_key, save_judgment
from llm_judge.criteria import Scale, parse_criteria
from llm_judge.judging import Judge, JudgeCall, JudgeSetup, Jury, ModelJudge, judge_pairwise, make_judge
from llm_judge.records import Juror, Probabilities, Shown, Verdict
from llm_judge.sampling import SamplingParams
from llm_judge.store import Store
from llm_judge.testing.fake import FakeBackend

BEFORE = json.loads((Path(__file__).parent / "judge_calls_before_19.json").read_text())["calls"]
ODD = parse_criteria("A=first,B=second,tie=third,winner=fourth")  # criteria named like labels and keys
PLAIN = JudgeSetup(parse_criteria(None), Scale(), SamplingParams())
ODD_PLAIN = JudgeSetup(ODD, Scale(), SamplingParams())


class Local(FakeBackend):
    """A fake that describes itself like a local model (file hash, context, adapter)."""

    def describe(self):
        return {"backend": "llamacpp", "spec": self.spec, "sha256": "ab" * 32, "n_ctx": 4096, "lora_sha256": "cd" * 32}


def probs(messages, text, offset):
    """Next-token probabilities that differ by the value written there (so a swap shows)."""
    ch = text[offset]
    return {"A": 0.1, "B": 0.2, "t": 0.1, ch: 0.6} if ch in "ABt" else {"1": 0.1, "2": 0.2, "3": 0.1, "4": 0.1, ch: 0.5}


def pair_out(winner, a=(4, 3, 1, 2), b=(1, 2, 4, 2)):
    return json.dumps({"justification": "why", "winner": winner,
                       "scores": {c.name: {"A": x, "B": y} for c, x, y in zip(ODD, a, b)}})


def single_out(s=(4, 3, 2, 1)):
    return json.dumps({"justification": "fine", "scores": {c.name: x for c, x in zip(ODD, s)}})


def fake(name, outs, weighted=True):
    return FakeBackend(outs, spec=f"fake:{name}", probabilities=probs if weighted else None)


# --- the verdict and its one relabelling ---------------------------------------------------------

FULL = Verdict("A", {"A": {"A": 4, "B": 1}, "tie": {"A": 2, "B": 3}}, "x",
               Probabilities({"A": 0.7, "B": 0.2, "tie": 0.1}, {"A": {"A": 3.5, "B": 1.5}}),
               (Juror("fake:j", "B", None, None, Probabilities({"A": 0.4, "B": 0.5, "tie": 0.1})),
                Juror("fake:k", None, "unreadable")))


def test_swapping_a_verdict_twice_gives_it_back_and_once_changes_every_side():
    assert FULL.swapped().swapped() == FULL
    once = FULL.swapped()
    assert once.winner == "B" and once.scores["A"] == {"A": 1, "B": 4} and once.scores["tie"] == {"A": 3, "B": 2}
    assert once.probabilities.winner == {"B": 0.7, "A": 0.2, "tie": 0.1}
    assert once.probabilities.scores == {"A": {"A": 1.5, "B": 3.5}}
    assert [j.winner for j in once.jurors] == ["A", None] and once.jurors[0].probabilities.winner["A"] == 0.5


def test_a_verdict_shown_the_other_way_round_is_swapped_once_into_the_items_labels():
    assert Shown(FULL, "AB").in_labels() == FULL and Shown(FULL, "BA").in_labels() == FULL.swapped()
    assert Shown.from_labels(FULL, "BA").in_labels() == FULL


def test_criteria_named_like_labels_survive_a_ba_round_trip_through_the_store(tmp_path):
    judge = ModelJudge(fake("m", [pair_out("A")]), JudgeSetup(ODD, Scale(), SamplingParams(), method="weighted"))
    call = judge.judge_order("Q?", ("one", "two"), "BA")
    # shown first was the item's B: the judge's {"A": 4, "B": 1} for criterion "A" is B 4, A 1
    assert call.verdict.winner == "B" and call.verdict.scores["A"] == {"A": 1, "B": 4}
    assert call.verdict.scores["winner"] == {"A": 2, "B": 2} and call.verdict.scores["tie"] == {"A": 4, "B": 1}
    store = Store(tmp_path / "s.db")
    key = judgment_key("pairwise", judge, "Q?", ["two", "one"])
    save_judgment(store, key, "pairwise", judge.name, call)
    stored = store.judgment(key)
    assert Shown(stored.verdict, call.order) == call.result and call.result.in_labels() == call.verdict


# --- one interface for a model and a jury ----------------------------------------------------------

def judge_both_orders(judge: Judge) -> list[JudgeCall]:
    """What a caller that knows only the interface does."""
    return [judge.judge_order("Q?", ("good", "bad"), order) for order in ("AB", "BA")]


def prefers_good(messages, sampling, schema):
    user = messages[-1]["content"]
    return pair_out("A" if user.index("good") < user.index("bad") else "B")


def test_a_model_and_a_jury_are_used_through_the_same_interface():
    model = make_judge([FakeBackend(responder=prefers_good, spec="fake:m")], ODD_PLAIN)
    jury = make_judge([FakeBackend(responder=prefers_good, spec=f"fake:{n}") for n in "xyz"], ODD_PLAIN)
    assert isinstance(model, ModelJudge) and isinstance(jury, Jury)
    for judge in (model, jury):
        calls = judge_both_orders(judge)
        assert [c.status for c in calls] == ["scored", "scored"] and [c.verdict.winner for c in calls] == ["A", "A"]
        assert [c.result.verdict.winner for c in calls] == ["A", "B"]  # as shown: the good answer was second in BA
        assert judge.concurrency == 1 and judge.setup is ODD_PLAIN
    assert (model.name, jury.name) == ("fake:m", "jury(fake:x, fake:y, fake:z)")
    assert [j.winner for j in judge_both_orders(jury)[1].verdict.jurors] == ["A", "A", "A"]
    calls, combined = judge_pairwise(jury, "Q?", ("good", "bad"))
    assert (combined.winner, combined.consistent) == ("A", True)


def test_a_jury_grades_one_answer_through_the_same_interface():
    jury = Jury([fake("g1", [single_out()], False), fake("g2", [single_out((2, 3, 2, 1))], False)], ODD_PLAIN)
    call = jury.grade("Q?", "one", "B")
    assert call.order == "B" and call.grade.total == 9.0 and call.grade.scores["A"] == 3.0
    assert [j.total for j in call.grade.jurors] == [10, 8]


# --- identities and keys: those of the code before #19 ----------------------------------------------

X, Y, LOCAL = FakeBackend(spec="fake:x"), FakeBackend(spec="fake:y"), Local(spec="gguf:/m.gguf+lora:/l.gguf")
LOCAL_ID = {"sha256": "ab" * 32, "n_ctx": 4096, "lora": "cd" * 32}
ODD_SETUP = JudgeSetup(parse_criteria("A=first,tie=second"), Scale(1, 5), SamplingParams(temperature=0.7, seed=3), fmt="winner",
                       method="weighted")


def test_identity_is_the_model_identity_of_before():
    assert ModelJudge(X, PLAIN).identity() == {"spec": "fake:x"}
    assert ModelJudge(LOCAL, PLAIN).identity() == LOCAL_ID
    assert Jury([X, LOCAL], PLAIN).identity() == {"jury": [{"spec": "fake:x"}, LOCAL_ID]}


HISTORY = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "yo"}]]


@pytest.mark.parametrize("kind,judge,args,expected", [
    ("pairwise", ModelJudge(X, PLAIN), ("Q?", ["one", "two"]),
     "08736c7644b4625100da91e082cfa66b92370ba9de16298f935b455476e29f69"),
    ("pairwise", Jury([X, LOCAL], ODD_SETUP), ("Q?", ["two", "one"], "ref", 2, HISTORY),
     "ffccd025ad90aa1ad373276c5e3a8b9cb1140e67347b2d25698d349604247841"),
    ("single", ModelJudge(LOCAL, ODD_SETUP), ("Q\ud800?", ["one"], None, 0, [[], []]),
     "536ff1c31df28f4c6c6d16ef0c8dadba75fb2448b6e9acc3ede379ffc0d6adc8"),
    ("single", ModelJudge(X, PLAIN), ("Q?", ["one"], None, 1, [{"role": "user", "content": "hi"}]),
     "bddb594b36a6f8df968c22ba079d1387d337615a2b4928fabb2f3fe8e72773f7"),
])
def test_judgment_keys_are_those_of_before(kind, judge, args, expected, prompt_version_before):
    assert judgment_key(kind, judge, *args) == expected


def test_another_prompt_version_is_another_judgment_key(request):
    now = judgment_key("single", ModelJudge(X, PLAIN), "Q?", ["one"])
    request.getfixturevalue("prompt_version_before")
    assert judgment_key("single", ModelJudge(X, PLAIN), "Q?", ["one"]) != now


def test_generation_keys_are_those_of_before():
    key = generation_key(LOCAL, SamplingParams(temperature=0.7, seed=3), [{"role": "user", "content": "hi"}])
    assert key == "267bffe616f0a91b42563d5cfe9bfbf05c724f81da68ecfd4e71a60012b17f42"


# --- the bytes stored for a call: those of before ------------------------------------------------------

def scenarios():
    w = JudgeSetup(ODD, Scale(), SamplingParams(), method="weighted")
    plain = JudgeSetup(ODD, Scale(), SamplingParams())
    winner = JudgeSetup(ODD, Scale(), SamplingParams(), fmt="winner")
    return {
        "model-pair-weighted-BA": ("pairwise", [fake("m", [pair_out("A")])], w, "BA"),
        "jury-pair-weighted-BA": ("pairwise", [fake("j1", [pair_out("A")]), fake("j2", [pair_out("B", a=(2, 2, 3, 1))])],
                                  w, "BA"),
        "jury-pair-one-unscored-BA": ("pairwise", [fake("j1", [pair_out("B")], False), fake("j2", ["no verdict"], False),
                                                   fake("j3", [pair_out("tie", a=(1, 1, 1, 1))], False)], plain, "BA"),
        "model-winner-BA": ("pairwise", [fake("m", ['{"winner": "A"}'], False)], winner, "BA"),
        "jury-none-scored-AB": ("pairwise", [fake("j1", ["x"], False), fake("j2", ["y"], False)], plain, "AB"),
        "model-single-weighted-B": ("single", [fake("m", [single_out()])], w, "B"),
        "jury-single-weighted-A": ("single", [fake("j1", [single_out()]), fake("j2", [single_out((1, 2, 3, 3))])], w, "A"),
        "jury-single-plain-A": ("single", [fake("j1", [single_out()], False), fake("j2", ["nothing"], False)], plain, "A"),
    }


@pytest.mark.parametrize("name", list(BEFORE))
def test_a_judge_call_is_keyed_stored_and_printed_as_before(tmp_path, name, prompt_version_before):
    kind, members, setup, order = scenarios()[name]
    judge = make_judge(members, setup)
    if kind == "pairwise":
        call = judge.judge_order("Q?", ("one", "two"), order, reference="ref")
        shown = ["one", "two"][::1 if order == "AB" else -1]
    else:
        call, shown = judge.grade("Q?", "one", order, reference="ref"), ["one"]
    key = judgment_key(kind, judge, "Q?", shown, "ref")
    store = Store(tmp_path / "s.db")
    save_judgment(store, key, kind, judge.name, call)
    row = store.db.execute("SELECT verdict, status, error, display_order, completion_tokens FROM judgments WHERE key=?",
                           (key,)).fetchone()
    want = BEFORE[name]
    assert key == want["key"]
    assert (row["status"], row["error"], row["display_order"], row["completion_tokens"]) == (
        want["status"], want["error"], want["order"], want["tokens"])
    assert row["verdict"] == want["stored"]  # byte for byte: ints stay ints, floats floats
    assert call.to_dict()["verdict"] == want["printed"]
