import pytest

from llm_judge import LLMJudgeError, make_sampling, parse_criteria
from llm_judge.criteria import CATALOGUE, Scale, parse_scale


def test_presets_match_the_seed_study():
    assert (make_sampling("p1").temperature, make_sampling("p1").min_p) == (0.5, 0.05)
    assert (make_sampling("p2").temperature, make_sampling("p2").min_p) == (1.5, 0.1)


def test_overrides_win_over_preset():
    s = make_sampling("p2", temperature=0.7, max_tokens=32)
    assert (s.temperature, s.min_p, s.max_tokens) == (0.7, 0.1, 32)


@pytest.mark.parametrize("field,value,needle", [
    ("temperature", -1, "temperature=-1"), ("min_p", 2, "min_p=2"), ("max_tokens", 0, "max_tokens=0"),
    ("top_p", 0, "top_p=0"), ("top_k", -3, "top_k=-3"), ("repeat_penalty", 0, "repeat_penalty=0"),
])
def test_out_of_range_is_a_clear_error(field, value, needle):
    with pytest.raises(LLMJudgeError, match=needle):
        make_sampling(None, **{field: value})


def test_unknown_preset_and_unknown_field():
    with pytest.raises(LLMJudgeError, match="unknown sampling preset 'p9'"):
        make_sampling("p9")
    with pytest.raises(LLMJudgeError, match="unknown sampling option 'temp'"):
        make_sampling(None, temp=1)


def test_default_criteria_are_the_seed_study_criteria():
    assert [c.name for c in parse_criteria(None)] == ["Relevance", "Coherence", "Completeness"]


def test_catalogue_names_case_insensitive_and_custom():
    crits = parse_criteria(["user-friendliness", "Tone=Is it friendly?"])
    assert [(c.name, c.rubric) for c in crits] == [
        ("User-Friendliness", CATALOGUE["User-Friendliness"]), ("Tone", "Is it friendly?")]


@pytest.mark.parametrize("items,needle", [
    (["Foo"], "unknown criterion 'Foo'"), (["Tone="], "bad custom criterion"),
    ([""], "empty criterion"), (["Relevance", "relevance"], "listed twice"), ([], "no criteria"),
])
def test_bad_criteria(items, needle):
    with pytest.raises(LLMJudgeError, match=needle):
        parse_criteria(items)


def test_scale():
    assert parse_scale("1-10").values == list(range(1, 11))
    for bad in ("1-1", "4-1", "x", "1-"):
        with pytest.raises(LLMJudgeError):
            parse_scale(bad)
    assert Scale().values == [1, 2, 3, 4]
