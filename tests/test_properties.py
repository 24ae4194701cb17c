"""Property tests: random input never crashes the parser or the readers, and the statistics keep
their invariants (rates in [0, 1], intervals around the estimate, A/B swaps mirror everything)."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_judge import LLMJudgeError, parse_criteria
from llm_judge import stats as S
from llm_judge import verdicts as J
from llm_judge.analyze import read_verdicts
from llm_judge.criteria import Scale
from llm_judge.prompts import parse_csv, parse_jsonl
from llm_judge.records import Verdict

CRIT, SCALE = parse_criteria(None), Scale()
NAMES = [c.name for c in CRIT]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalar = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True), st.text(max_size=8))
score_value = st.one_of(st.integers(-2, 7), st.sampled_from(["1", "4", "x", 3.0, 2.5, True]), st.none())
verdict_like = st.fixed_dictionaries(
    {},
    optional={
        "justification": st.text(max_size=20),
        "winner": st.one_of(st.sampled_from(["A", "B", "tie", "draw", "Response A", "C", ""]), scalar),
        "scores": st.dictionaries(st.sampled_from(NAMES + ["relevance", "Other"]),
                                  st.one_of(st.fixed_dictionaries({}, optional={"A": score_value, "B": score_value}),
                                            score_value), max_size=4),
    })


def check_verdict(v):
    assert v.winner in J.WINNERS
    assert set(v.scores) == set(NAMES)
    for pair in v.scores.values():
        assert set(pair) == {"A", "B"}
        assert all(type(x) is int and SCALE.low <= x <= SCALE.high for x in pair.values())


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_never_crashes_the_parser(text):
    try:
        check_verdict(J.parse_verdict(text, CRIT, SCALE))
    except J.VerdictError:
        pass


@SETTINGS
@given(st.lists(verdict_like, max_size=3), st.text(max_size=30))
def test_random_verdict_shapes_are_valid_or_rejected(objects, noise):
    text = noise.join(json.dumps(o) for o in objects)
    try:
        check_verdict(J.parse_verdict(text, CRIT, SCALE))
    except J.VerdictError:
        pass


@SETTINGS
@given(st.text(max_size=300))
def test_random_single_grades_are_valid_or_rejected(text):
    try:
        g = J.parse_verdict(text, CRIT, SCALE, "single")
        assert set(g.scores) == set(NAMES) and 3 <= g.total <= 12
    except J.VerdictError:
        pass


@SETTINGS
@given(st.text(max_size=400))
def test_random_jsonl_and_csv_never_crash_the_readers(text):
    for parse in (parse_jsonl, parse_csv):
        try:
            items = parse(text, "random")
            assert all(isinstance(i.prompt, str) and i.prompt.strip() for i in items)
        except LLMJudgeError:
            pass


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=40), st.dictionaries(st.sampled_from(["id", "verdict", "verdict_swapped",
                                                                                  "human", "model_a"]), scalar)),
                max_size=5))
def test_random_verdict_files_never_crash_the_reader(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("v") / "v.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    try:
        for rec in read_verdicts(path):
            assert rec["verdict"] in {"A", "B", "tie", None}
    except LLMJudgeError:
        pass


outcomes = st.lists(st.sampled_from(["win", "tie", "loss", None]), max_size=60)
MIRROR = {"win": "loss", "loss": "win", "tie": "tie", None: None}


@SETTINGS
@given(outcomes)
def test_win_rates_stay_in_0_1_and_intervals_hold_the_estimate(outs):
    s = S.pairwise_summary(outs, ("x", "y")).to_dict()
    for key in ("win_rate", "win_rate_without_ties"):
        for e in s[key].values():
            if e["value"] is not None:
                assert 0 <= e["low"] <= e["value"] + 1e-12 and e["value"] <= e["high"] + 1e-12 and e["high"] <= 1
                assert e["high"] - e["low"] > 0.01  # a proportion's interval never collapses, 0/n and n/n included
    p = s["sign_test_p"]
    assert p is None or 0 < p <= 1


@SETTINGS
@given(outcomes)
def test_swapping_a_and_b_mirrors_the_pairwise_statistics(outs):
    a = S.pairwise_summary(outs, ("x", "y")).to_dict()
    b = S.pairwise_summary([MIRROR[o] for o in outs], ("y", "x")).to_dict()
    assert a["wins"] == b["wins"] and a["ties"] == b["ties"] and a["unscored"] == b["unscored"]
    for key in ("win_rate", "win_rate_without_ties"):
        assert a[key] == b[key]  # each side's own figures, whichever side is listed first
    if a["win_rate"]["x"]["value"] is not None:
        assert abs(a["win_rate"]["x"]["value"] + a["win_rate"]["y"]["value"] - 1) < 1e-12
    assert a["sign_test_p"] == b["sign_test_p"]


pair = st.tuples(st.integers(1, 4), st.integers(1, 4))
pair_verdict = st.builds(lambda s, w: Verdict(w, {n: {"A": x, "B": y} for n, (x, y) in zip(NAMES, s)}),
                         st.tuples(pair, pair, pair), st.sampled_from(J.WINNERS))


@SETTINGS
@given(st.one_of(st.none(), pair_verdict), st.one_of(st.none(), pair_verdict))
def test_combining_mirrors_under_a_swap(first, second):
    plain = J.combine(first, second)
    swapped = J.combine(first and first.swapped(), second and second.swapped())
    flip = {"A": "B", "B": "A", "tie": "tie", None: None}
    assert swapped.winner == flip[plain.winner] and swapped.consistent == plain.consistent
    if plain.totals:
        assert swapped.totals == {"A": plain.totals["B"], "B": plain.totals["A"]}
        assert plain.winner in J.WINNERS


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from("AB")), min_size=1, max_size=40))
def test_kappa_is_bounded_and_symmetric(pairs):
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    k = S.cohen_kappa(x, y)
    assert k is None or -1 - 1e-12 <= k <= 1 + 1e-12
    assert k == S.cohen_kappa(y, x)


@SETTINGS
@given(st.lists(st.floats(0, 12, allow_nan=False), min_size=1, max_size=30))
def test_mean_interval_holds_the_mean(values):
    e = S.mean_ci(values, n_boot=100)
    assert e.reason if e.low is None else e.low - 1e-9 <= e.value <= e.high + 1e-9  # no interval: it says why
