"""Knowing a judge and making a weak one better: judge cards on gold sets, probability-weighted and
calibrated verdicts, juries. Scripted judges with known behaviour, figures checked by hand."""

import hashlib
import json
import math
import re

import pytest

from llm_judge import compare, make_sampling, parse_criteria
from llm_judge import stats as S
from llm_judge.cli import main
from llm_judge.criteria import Scale
from llm_judge.errors import LLMJudgeError
from llm_judge.judges import GOLD_SETS, card, evaluate, jury_records, load_gold
from llm_judge.judging import JudgeSetup, Jury, load_judge, majority
from llm_judge.store import Store
from llm_judge.testing import fake

SETUP = JudgeSetup(parse_criteria(None), Scale(), make_sampling(None, temperature=0), "winner", "plain")
WEIGHTED = JudgeSetup(parse_criteria(None), Scale(), make_sampling(None, temperature=0), "winner", "weighted")


def shown(messages) -> tuple[str, str]:
    user = messages[-1]["content"]
    return tuple(re.search(rf"<<{lab}-\w+>>\n(.*?)\n<</{lab}-", user, re.S).group(1) for lab in "AB")


def winner_json(w: str) -> str:
    return json.dumps({"winner": w})


def gold_file(tmp_path, n: int, name="gold.json") -> tuple[str, list[dict]]:
    """n synthetic pairs; the better answer is output_1 or output_2 by turns."""
    rows = [{"input": f"question {i}?", "output_1": f"answer one to {i}" + " long" * (i % 3),
             "output_2": f"answer two to {i}", "label": 1 + i % 2} for i in range(n)]
    path = tmp_path / name
    path.write_text(json.dumps(rows))
    return str(path), rows


def better(rows_by_input: dict, messages) -> str:
    """Which shown answer ("A" or "B") is the gold one."""
    q = re.search(r"<<Q-\w+>>\n(.*?)\n<</Q-", messages[-1]["content"], re.S).group(1)
    row = rows_by_input[q]
    gold_text = row["output_1"] if row["label"] == 1 else row["output_2"]
    return "A" if shown(messages)[0] == gold_text else "B"


def test_bundled_sets_load_with_their_sizes_and_labels():
    sizes = {name: len(load_gold(name)) for name in GOLD_SETS}
    assert sizes["llmbar-natural"] == 100 and sizes["llmbar-adversarial"] == 319 and sizes["mtbench-human"] == 200
    assert {it.category for it in load_gold("llmbar-adversarial")} == {
        "llmbar-adversarial-gptinst", "llmbar-adversarial-gptout", "llmbar-adversarial-manual",
        "llmbar-adversarial-neighbor"}
    assert {it.label for it in load_gold("mtbench-human")} == {"A", "B"}
    short = load_gold("llmbar-natural", limit=5, shortest=True)
    assert [len(i.input + i.output_1 + i.output_2) for i in short] == sorted(len(i.input + i.output_1 + i.output_2)
                                                                            for i in short)


def test_an_always_first_judge_card_matches_hand_computation(tmp_path):
    path, rows = gold_file(tmp_path, 20)
    fake.named("first").responder = lambda m, s, sch: winner_json("A")
    records = evaluate(load_judge("fake:first", SETUP), "first", load_gold(path), Store(tmp_path / "s.db"))
    c = card(records, "first", path)
    share_a = sum(r["label"] == 1 for r in rows) / 20  # AB: it names output_1 every time
    assert c["accuracy"]["AB"]["value"] == share_a and c["accuracy"]["BA"]["value"] == 1 - share_a
    assert c["accuracy"]["mean"] == 0.5 and c["accuracy"]["both_orders"]["value"] == 0.0
    assert c["accuracy"]["combined"]["value"] == 0.0  # every pair flips: a tie, never the gold answer
    assert c["position_consistency"]["rate"] == 0.0 and c["first_shown_wins"]["rate"] == 1.0
    assert c["unscored"]["value"] == 0.0 and c["kappa"]["AB"]["value"] == 0.0
    # and it is stored and shown: the card of the CLI is the same
    assert main(["judges", "eval", "--judge", "fake:first", "--set", path, "--verdict-format", "winner",
                 "--db", str(tmp_path / "s.db"), "--quiet", "--json"]) == 0


def test_a_judge_right_with_probability_p(tmp_path, capsys):
    path, rows = gold_file(tmp_path, 200)
    by_input = {r["input"]: r for r in rows}

    def right_70(messages, sampling, schema):  # right in 70% of items, the same in both orders
        q = re.search(r"<<Q-\w+>>\n(.*?)\n<</Q-", messages[-1]["content"], re.S).group(1)
        right = int(hashlib.sha256(q.encode()).hexdigest(), 16) % 10 < 7
        gold = better(by_input, messages)
        return winner_json(gold if right else {"A": "B", "B": "A"}[gold])
    fake.named("p70").responder = right_70
    records = evaluate(load_judge("fake:p70", SETUP), "p70", load_gold(path), Store(tmp_path / "s.db"))
    c = card(records, "p70", path)
    expected = sum(int(hashlib.sha256(r["input"].encode()).hexdigest(), 16) % 10 < 7 for r in rows) / 200
    assert c["accuracy"]["AB"]["value"] == c["accuracy"]["BA"]["value"] == c["accuracy"]["mean"] == expected
    assert c["position_consistency"]["rate"] == 1.0 and 0.6 < expected < 0.8


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def biased_judge(rows_by_input, content=1.0, bias=2.0):
    """P(the answer shown first wins) = sigmoid(content * (+1 gold shown first, -1 not) + bias): it
    always *says* the first (bias beats content) but its probabilities still carry the content."""
    def p_first(messages):
        return sigmoid(content * (1 if better(rows_by_input, messages) == "A" else -1) + bias)

    def respond(messages, sampling, schema):
        return winner_json("A" if p_first(messages) > 0.5 else "B")

    def probabilities(messages, text, offset):
        p = p_first(messages)
        return {"A": p, "B": 1 - p, "tie": 0.0}
    return respond, probabilities


def test_calibration_removes_a_pure_position_bias(tmp_path):
    path, rows = gold_file(tmp_path, 40)
    respond, probs = biased_judge({r["input"]: r for r in rows})
    fake.named("biased").responder = respond
    fake.named("biased").probabilities = probs
    records = evaluate(load_judge("fake:biased", WEIGHTED), "biased", load_gold(path), Store(tmp_path / "s.db"))
    c = card(records, "biased", path)
    assert c["accuracy"]["mean"] == 0.5 and c["first_shown_wins"]["rate"] == 1.0  # sampled: position only
    assert c["weighted"]["accuracy"]["value"] == 1.0  # calibrated over both orders: content only
    # P(gold) = mean(sigmoid(1 + 2), 1 - sigmoid(-1 + 2)); bias = mean of P(first) - P(second) in each order
    p_gold = (sigmoid(3) + 1 - sigmoid(1)) / 2
    bias = ((2 * sigmoid(3) - 1) + (2 * sigmoid(1) - 1)) / 2
    assert c["weighted"]["p_correct"]["value"] == pytest.approx(p_gold, abs=1e-4)
    assert c["weighted"]["position_bias"]["value"] == pytest.approx(bias, abs=1e-4)


def test_weighted_compare_keeps_the_sampled_verdict_and_decides_by_calibration():
    rows = [{"input": "Q?", "output_1": "good", "output_2": "bad", "label": 1}]
    fake.named("a").queue("good")
    fake.named("b").queue("bad")
    respond, probs = biased_judge({r["input"]: r for r in rows})
    fake.named("j").responder, fake.named("j").probabilities = respond, probs
    r = compare("Q?", model_a="fake:a", model_b="fake:b", judge="fake:j", judge_method="weighted",
                verdict_format="winner")
    assert [o.verdict.winner for o in r.orders] == ["A", "B"]  # sampled: the first shown both times
    assert r.consistent is False and r.winner == "A"  # calibrated: the good answer
    assert r.weighted.p["A"] == pytest.approx((sigmoid(3) + 1 - sigmoid(1)) / 2, abs=1e-4)
    d = r.to_dict()
    assert d["weighted"]["calibrated"] and d["method"] == "weighted"


def test_majority_of_three_independent_70_percent_judges_is_right_78_percent(tmp_path):
    path, rows = gold_file(tmp_path, 600)
    by_input = {r["input"]: r for r in rows}
    for k in range(3):
        def right(messages, sampling, schema, k=k):
            q = re.search(r"<<Q-\w+>>\n(.*?)\n<</Q-", messages[-1]["content"], re.S).group(1)
            ok = int(hashlib.sha256(f"{k}:{q}".encode()).hexdigest(), 16) % 100 < 70
            gold = better(by_input, messages)
            return winner_json(gold if ok else {"A": "B", "B": "A"}[gold])
        fake.named(f"j{k}").responder = right
    store = Store(tmp_path / "s.db")
    jury = load_judge(["fake:j0", "fake:j1", "fake:j2"], SETUP)
    assert isinstance(jury, Jury)
    live = card(evaluate(jury, "jury", load_gold(path), store), "jury", path)
    members = {f"j{k}": evaluate(load_judge(f"fake:j{k}", SETUP), f"j{k}", load_gold(path), store) for k in range(3)}
    singles = [card(r, n, path)["accuracy"]["mean"] for n, r in members.items()]
    assert all(0.64 < a < 0.76 for a in singles), singles  # 0.7 each, 600 items (sd 0.019)
    assert 0.75 < live["accuracy"]["mean"] < 0.82  # 0.7^3 + 3 * 0.7^2 * 0.3 = 0.784
    # the jury's card from its members' verdicts is the live jury's card
    assert card(jury_records(members), "jury", path)["accuracy"] == live["accuracy"]


def test_majority_rule():
    assert majority(["A", "B", "B"]) == "B" and majority(["A", "B"]) == "tie" and majority([None, None]) is None


def test_fleiss_kappa_matches_the_published_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = [[str(c) for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert S.fleiss_kappa(ratings) == pytest.approx(0.210, abs=5e-4)


def test_a_jury_study_stores_each_jurors_verdict_and_reports_their_agreement(tmp_path, capsys):
    fake.named("good").responder = lambda m, s, sch: "GOOD answer"
    fake.named("bad").responder = lambda m, s, sch: "meh"
    for k, answer in enumerate(("GOOD", "GOOD", "first")):
        fake.named(f"j{k}").responder = (lambda m, s, sch, a=answer: winner_json(
            ("A" if "GOOD" in shown(m)[0] else "B") if a == "GOOD" else "A"))
    db = str(tmp_path / "s.db")
    args = ["run", "--candidate", "fake:good#good", "--candidate", "fake:bad#bad", "--mode", "pairwise",
            "--verdict-format", "winner", "--limit", "3", "--db", db, "--json"]
    for k in range(3):
        args += ["--judge", f"fake:j{k}"]
    assert main(args) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["judge"] == "jury(fake:j0, fake:j1, fake:j2)"
    pair = s["pairwise"]["pairs"]["bad vs good"]
    assert pair["wins"]["good"] == 3  # two of three name the good answer in both orders
    jurors = s["pairwise"]["jurors"]
    assert jurors["judgments"] == 6 and jurors["unanimous"] == 0.5  # the position-only juror agrees in AB only
    row = Store(db).db.execute("SELECT verdict FROM judgments LIMIT 1").fetchone()
    assert [j["judge"] for j in json.loads(row[0])["jurors"]] == ["fake:j0", "fake:j1", "fake:j2"]
    assert main(["report", s["run_id"], "--db", db]) == 0
    assert "Jury: agreement between its members" in capsys.readouterr().out


def test_compare_shows_each_juror():
    fake.named("a").queue("GOOD")
    fake.named("b").queue("meh")
    for k in range(3):
        fake.named(f"j{k}").responder = lambda m, s, sch: winner_json("A" if "GOOD" in shown(m)[0] else "B")
    r = compare("Q?", model_a="fake:a", model_b="fake:b", judge=["fake:j0", "fake:j1", "fake:j2"],
                verdict_format="winner")
    assert r.winner == "A" and r.judge_spec == "jury(fake:j0, fake:j1, fake:j2)"
    assert [j["winner"] for j in r.jurors] == ["A", "A", "A"]
    from llm_judge.present.page import verdict_markdown
    assert "Juror fake:j1: AB A, BA A, both orders A" in verdict_markdown(r.to_dict())


def test_weighted_verdicts_through_an_openai_compatible_server(test_server):
    base = test_server()
    spec = f"openai:test@{base}"
    r = compare("Q?", model_a=spec, model_b=spec, judge=spec, judge_method="weighted")
    for o in r.orders:  # the scripted server gives the sampled value 0.7, its alternatives the rest
        w = o.verdict.probabilities
        assert w.winner[o.verdict.winner] == pytest.approx(0.7)
        assert all(w.scores[c][lab] == pytest.approx(0.7 * o.verdict.scores[c][lab]
                                                     + 0.1 * (10 - o.verdict.scores[c][lab]))
                   for c in w.scores for lab in "AB")
    assert r.weighted.calibrated


def test_a_server_without_probabilities_is_said_and_the_sampled_verdict_stands(test_server):
    base = test_server("--reject-fields", "top_logprobs")
    spec = f"openai:test@{base}"
    r = compare("Q?", model_a=spec, model_b=spec, judge=spec, judge_method="weighted")
    assert r.weighted is None and any("no probabilities" in w for w in r.warnings)
    assert any("gives no token probabilities" in w for w in r.warnings)


@pytest.mark.model
def test_weighted_reading_on_the_real_model_agrees_with_its_greedy_verdict():
    """Through llama.cpp: at the winner's position the most likely value is the one the greedy
    judge wrote, and the probabilities are a distribution."""
    r = compare("How do I boil an egg?", model_a="embedded", model_b="embedded", judge="embedded",
                judge_method="weighted", sampling_a=make_sampling("p1", max_tokens=48),
                sampling_b=make_sampling("p2", max_tokens=48))
    for o in r.orders:
        w = o.verdict.probabilities
        assert max(w.winner, key=w.winner.get) == o.verdict.winner
        assert sum(w.winner.values()) == pytest.approx(1.0, abs=1e-4)
        for pair in w.scores.values():
            assert all(1 <= pair[lab] <= 4 for lab in "AB")
    # the position bias is read from the two orders' probabilities (A shown first in AB, B in BA)
    first = {o.order: o.verdict.probabilities.winner for o in r.orders}
    bias = ((first["AB"]["A"] - first["AB"]["B"]) + (first["BA"]["B"] - first["BA"]["A"])) / 2
    assert r.weighted.calibrated and r.weighted.position_bias == pytest.approx(bias, abs=1e-6)


@pytest.mark.model
def test_judges_eval_on_the_real_model_then_known_figures(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert main(["judges", "eval", "--judge", "embedded", "--set", "llmbar-natural", "--limit", "3", "--shortest",
                 "--verdict-format", "winner", "--judge-method", "weighted", "--db", db, "--quiet", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)[0]
    assert c["items"] == 3 and c["weighted"]["items"] == 3 and c["cost"]["seconds_per_item"] > 0
    assert main(["judges", "list", "--db", db]) == 0
    assert "llmbar-natural (3 pairs)" in capsys.readouterr().out
    assert main(["run", "--limit", "1", "--db", db, "--max-tokens", "16", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert any(w.startswith("judge card llmbar-natural (3 pairs, weighted)") for w in s["judge_cards"])


@pytest.mark.parametrize("args,needle", [
    (["judges", "eval", "--judge", "fake:x", "--set", "/no/such.json"], "gold set not found"),
    (["judges", "eval", "--set", "llmbar-natural"], "name a judge to evaluate"),
    (["judges", "eval", "--jury", "fake:a,fake:a", "--set", "llmbar-natural", "--limit", "1"],
     "names the same judge twice"),
    (["run", "--verdict-format", "winner", "--mode", "single"], "winner-only verdict format is for pairwise"),
])
def test_bad_judge_input_gives_one_line(capsys, tmp_path, args, needle):
    assert main([*args, "--db", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_bad_gold_labels(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps([{"input": "q", "output_1": "a", "output_2": "b", "label": 3}]))
    with pytest.raises(LLMJudgeError, match="label 3 must be"):
        load_gold(str(path))


def test_verdict_order_relabelling_keeps_probabilities():
    from llm_judge.records import Probabilities, Shown, Verdict

    v = Verdict("A", probabilities=Probabilities({"A": 0.8, "B": 0.1, "tie": 0.1}))
    assert Shown(v, "BA").in_labels().probabilities.winner == {"B": 0.8, "A": 0.1, "tie": 0.1}


def test_a_verdict_file_with_human_labels_is_scored_as_it_is(tmp_path, capsys):
    rows = [{"id": str(i), "verdict": "A", "verdict_swapped": "A" if i < 6 else "B", "human": "A" if i < 8 else "B"}
            for i in range(10)]
    path = tmp_path / "verdicts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["judges", "eval", "--set", str(path), "--db", str(tmp_path / "s.db"), "--json"]) == 0
    c = json.loads(capsys.readouterr().out)[0]
    assert c["items"] == 10 and c["accuracy"]["AB"]["value"] == 0.8  # 8 of 10 labels are A
    # B shown first: "A" on pairs 0-5 (labels A: right), "B" on 6-9 (labels A, A, B, B): 8 of 10 right
    assert c["accuracy"]["BA"]["value"] == 0.8 and c["position_consistency"]["rate"] == 0.6
