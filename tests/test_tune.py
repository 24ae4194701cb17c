"""Choosing a judge's protocol by measurement (issue #20 part 3): the dev / held-out split, the
choice rule, the held-out figure from the held-out pairs only, the stored profile and
``--protocol auto``. Scripted ``fake:`` judges that read the prompt to decide."""

import json
import re

import pytest
from scipy.stats import binomtest

from llm_judge import make_sampling, parse_criteria
from llm_judge.cli import main
from llm_judge.criteria import Scale
from llm_judge.errors import LLMJudgeError
from llm_judge.judges import load_gold
from llm_judge.judging import load_judge
from llm_judge.store import Store
from llm_judge.testing import fake
from llm_judge.tune import DEFAULT, OWN, Scored, Setting, judge_setup, profile_line, rank, settings, split, tune

SAMPLING = make_sampling(None, temperature=0)


def gold_file(tmp_path, n: int) -> tuple[str, dict[str, dict]]:
    """n labelled pairs (ids p0..), the better answer first or second by turns; rows by question."""
    rows = [{"id": f"p{i}", "input": f"question {i}?", "output_1": f"answer one to {i}",
             "output_2": f"answer two to {i}", "label": 1 + i % 2} for i in range(n)]
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(rows))
    return str(path), {r["input"]: r for r in rows}


def own_prompt(messages) -> tuple[str, str]:
    """(question, the answer shown first) in llm-judge's own prompt."""
    user = messages[-1]["content"]
    q = re.search(r"<<Q-\w+>>\n(.*?)\n<</Q-", user, re.S).group(1)
    return q, re.search(r"<<A-\w+>>\n(.*?)\n<</A-", user, re.S).group(1)


def own_reply(schema, winner: str) -> str:
    """A verdict in llm-judge's own format, full or winner alone as the schema asks."""
    props = schema["properties"]
    if "scores" not in props:
        return json.dumps({"winner": winner})
    names = list(props["scores"]["properties"])
    hi, lo = (4, 2) if winner == "A" else (2, 4)
    return json.dumps({"justification": "x", "winner": winner,
                       "scores": {c: {"A": hi, "B": lo} if winner == "A" else {"A": lo, "B": hi} for c in names}})


def scripted(rows: dict[str, dict], right) -> fake.FakeBackend:
    """A judge answering in llm-judge's own format: the gold answer where ``right(row, schema)``."""
    def respond(messages, sampling, schema):
        question, first = own_prompt(messages)
        row = rows[question]
        gold = row["output_1"] if row["label"] == 1 else row["output_2"]
        gold_shown = "A" if first == gold else "B"
        other = "B" if gold_shown == "A" else "A"
        return own_reply(schema, gold_shown if right(row, schema) else other)
    backend = fake.named("tuned")
    backend.responder = respond
    return backend


def judge_for(setting: Setting):
    return load_judge("fake:tuned", judge_setup(parse_criteria(None), Scale(), SAMPLING, setting.fmt or "full",
                                                setting.method, None if setting.protocol == OWN else setting.protocol))


# --- the split ---------------------------------------------------------------------------------

def test_the_split_is_disjoint_deterministic_and_blind_to_the_order_of_the_items(tmp_path):
    path, _rows = gold_file(tmp_path, 200)
    items = load_gold(path)
    dev, held = split(items, 0.5, seed=0)
    assert {it.id for it in dev}.isdisjoint({it.id for it in held})
    assert len(dev) + len(held) == 200 and 80 < len(dev) < 120
    dev2, held2 = split(list(reversed(items)), 0.5, seed=0)
    assert {it.id for it in dev2} == {it.id for it in dev} and {it.id for it in held2} == {it.id for it in held}
    assert {it.id for it in split(items, 0.5, seed=1)[0]} != {it.id for it in dev}
    assert 20 < len(split(items, 0.2, seed=0)[0]) < 60
    # the same on any machine: a hash of (seed, id), not Python's salted hash()
    assert [it.id for it in split(items[:10], 0.5, seed=0)[0]] == PINNED_DEV


PINNED_DEV = ["p1", "p2", "p3", "p9"]  # sha256 of "0\x00p<i>" below 2**63


@pytest.mark.parametrize("share", [0, 1, 1.5, -0.1])
def test_a_dev_share_outside_0_and_1_is_one_line(tmp_path, share):
    path, _rows = gold_file(tmp_path, 10)
    with pytest.raises(LLMJudgeError, match="between 0 and 1"):
        split(load_gold(path), share)


def test_too_few_pairs_for_both_parts_is_one_line(tmp_path):
    path, _rows = gold_file(tmp_path, 1)
    with pytest.raises(LLMJudgeError, match="empty: take more pairs"):
        split(load_gold(path), 0.5)


# --- the choice --------------------------------------------------------------------------------

def s(name: str, acc: float, cons: float | None, secs: float | None) -> Scored:
    return Scored(Setting(name, "plain"), acc, cons, secs)


def test_the_choice_is_accuracy_then_consistency_then_cost():
    assert rank([s("a", 0.6, 1.0, 0.1), s("b", 0.7, 0.1, 9.0)])[0].setting.protocol == "b"
    assert rank([s("a", 0.7, 0.5, 0.1), s("b", 0.7, 0.9, 9.0)])[0].setting.protocol == "b"
    assert rank([s("a", 0.7, 0.9, 2.0), s("b", 0.7, 0.9, 1.0)])[0].setting.protocol == "b"
    assert rank([s("a", 0.7, 0.9, None), s("b", 0.7, 0.9, 5.0)])[0].setting.protocol == "b"  # unknown cost last
    assert [x.setting.protocol for x in rank([s("a", 0.7, 0.9, 1.0), s("b", 0.7, 0.9, 1.0)])] == ["a", "b"]


def test_a_tie_keeps_llm_judges_default_another_setting_must_beat_it():
    tied = [Scored(Setting("llmbar-vanilla", "plain"), 0.5, 0.0, 0.1), Scored(DEFAULT, 0.5, 0.0, 9.0)]
    assert rank(tied)[0].setting == DEFAULT
    assert rank([Scored(Setting("llmbar-vanilla", "plain"), 0.52, 0.0, 0.1), Scored(DEFAULT, 0.5, 0.0, 9.0)])[0] \
        .setting.protocol == "llmbar-vanilla"


def test_a_candidate_that_cannot_judge_the_pairs_is_refused_before_any_call(tmp_path):
    path, rows = gold_file(tmp_path, 10)
    backend = scripted(rows, lambda row, schema: True)
    with pytest.raises(LLMJudgeError, match="needs a reference answer"):
        tune("fake:tuned", path, load_gold(path), Store(tmp_path / "s.db"), judge_for,
             [Setting(OWN, "plain", "winner"), Setting("mt-bench-pair-math-v1", "plain")])
    assert backend.calls == []  # not after the first candidate's evaluation


def test_formats_apply_to_llm_judges_own_protocol_only():
    got = settings([OWN, "llmbar-vanilla"], ["plain", "weighted"], ["full", "winner"])
    assert [x.label for x in got] == ["llm-judge plain full", "llm-judge plain winner", "llm-judge weighted full",
                                      "llm-judge weighted winner", "llmbar-vanilla plain", "llmbar-vanilla weighted"]


# --- the held-out figure comes from the held-out pairs only ------------------------------------

@pytest.mark.parametrize("right_on_dev", [True, False])
def test_the_reported_held_out_figure_comes_from_the_held_out_split_only(tmp_path, right_on_dev):
    path, rows = gold_file(tmp_path, 40)
    items = load_gold(path)
    dev_ids = {it.id for it in split(items, 0.5, 0)[0]}
    scripted(rows, lambda row, schema: (row["id"] in dev_ids) == right_on_dev)
    tuned = tune("fake:tuned", path, items, Store(tmp_path / "s.db"), judge_for,
                 [Setting(OWN, "plain", "winner")], dev_share=0.5, seed=0)
    profile = tuned.profile()
    assert profile["dev"] == {"items": len(dev_ids), "accuracy": 1.0 if right_on_dev else 0.0}
    held = profile["heldout"]
    assert held["items"] == 40 - len(dev_ids) and held["accuracy"] == (0.0 if right_on_dev else 1.0)
    ci = binomtest(0 if right_on_dev else held["items"], held["items"]).proportion_ci(method="wilson")
    assert (held["low"], held["high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))  # Wilson over the pairs


def test_tune_chooses_on_dev_proves_on_held_out_and_a_rerun_makes_no_call(tmp_path):
    path, rows = gold_file(tmp_path, 40)
    items = load_gold(path)
    backend = scripted(rows, lambda row, schema: "scores" not in schema["properties"])  # right with winner-only
    store = Store(tmp_path / "s.db")
    candidates = [Setting(OWN, "plain", "full"), Setting(OWN, "plain", "winner")]
    tuned = tune("fake:tuned", "gold", items, store, judge_for, candidates)
    assert tuned.chosen.setting == Setting(OWN, "plain", "winner") and tuned.runner_up.setting == DEFAULT
    profile = tuned.profile()
    assert profile["heldout"]["accuracy"] == 1.0 and profile["default"]["heldout"]["accuracy"] == 0.0
    assert profile["runner_up"]["protocol"] == OWN and profile["runner_up"]["format"] == "full"
    calls = len(backend.calls)
    assert calls == 2 * 40 * 2  # both settings on dev (20 pairs, 2 orders), both again on held-out
    again = tune("fake:tuned", "gold", list(reversed(items)), store, judge_for, candidates)
    assert len(backend.calls) == calls and again.profile()["heldout"] == profile["heldout"]


# --- the profile -------------------------------------------------------------------------------

def test_the_latest_profile_of_a_judge_is_read_back(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.profile("fake:x") is None
    store.add_profile("fake:x", "a", {"protocol": OWN, "method": "plain"})
    second = store.add_profile("fake:x", "b", {"protocol": "llmbar-vanilla", "method": "weighted"})
    store.add_profile("fake:y", "c", {"protocol": OWN, "method": "plain"})
    got = store.profile("fake:x")
    assert got["id"] == second and got["protocol"] == "llmbar-vanilla"
    assert "m009_judge_profiles" in {r[0] for r in store.db.execute("SELECT name FROM schema_migrations")}


def test_the_profile_line_says_where_the_choice_came_from():
    line = profile_line({"protocol": "llmbar-vanilla", "method": "weighted", "format": None, "set": "llmbar-natural",
                         "dev": {"items": 50, "accuracy": 0.74},
                         "heldout": {"items": 50, "accuracy": 0.71, "low": 0.573, "high": 0.818}})
    assert line == ("protocol llmbar-vanilla (weighted), chosen by judges tune on llmbar-natural dev (50 pairs); "
                    "held-out 71% [57, 82] (50 pairs)")


def test_judges_tune_stores_the_profile_and_protocol_auto_reads_it(tmp_path, capsys):
    path, rows = gold_file(tmp_path, 30)
    backend = scripted(rows, lambda row, schema: "scores" not in schema["properties"])
    db = str(tmp_path / "s.db")
    assert main(["judges", "tune", "--judge", "fake:tuned", "--set", path, "--protocol", "llm-judge",
                 "--judge-method", "plain", "--db", db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["format"] == "winner" and len(out["dev"]) == 2
    assert Store(db).profile("fake:tuned")["format"] == "winner"
    backend.calls.clear()
    fake.named("a").responder = lambda m, s, sch: "answer one to 1"
    fake.named("b").responder = lambda m, s, sch: "answer two to 1"
    assert main(["compare", "question 1?", "--model-a", "fake:a", "--model-b", "fake:b", "--judge", "fake:tuned",
                 "--protocol", "auto", "--db", db, "--json"]) == 0
    captured = capsys.readouterr()
    assert "chosen by judges tune on" in captured.err and "protocol llm-judge (plain, winner)" in captured.err
    judged = [c for c in backend.calls if c.schema is not None]
    assert judged and all("scores" not in c.schema["properties"] for c in judged)  # the profile's format
    backend.calls.clear()
    assert main(["compare", "question 1?", "--model-a", "fake:a", "--model-b", "fake:b", "--judge", "fake:tuned",
                 "--protocol", "auto", "--verdict-format", "full", "--db", db, "--json"]) == 0
    judged = [c for c in backend.calls if c.schema is not None]
    assert judged and all("scores" in c.schema["properties"] for c in judged)  # given options stay as given


def test_protocol_auto_without_a_profile_says_so_and_uses_llm_judges_own(tmp_path, capsys):
    fake.named("j").responder = lambda m, s, sch: own_reply(sch, "A") if sch else "an answer"
    assert main(["compare", "hi?", "--model-a", "fake:a", "--model-b", "fake:b", "--judge", "fake:j",
                 "--protocol", "auto", "--db", str(tmp_path / "none.db"), "--json"]) == 0
    err = capsys.readouterr().err
    assert ("no tuned profile for fake:j (llm-judge judges tune --judge fake:j): llm-judge's own protocol" in err)
    assert not (tmp_path / "none.db").exists()  # looking for a profile creates no store


def test_protocol_auto_for_a_jury_is_one_line(tmp_path, capsys):
    assert main(["compare", "hi?", "--judge", "fake:j", "--judge", "fake:k", "--protocol", "auto",
                 "--db", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "one judge's tuned profile" in err
