"""AlpacaEval's soft preferences through ``analyze``: win_rate, discrete_win_rate and both
length-controlled forms checked against alpaca_eval's own functions run on a fixed input
(``tests/data/leaderboards/make_reference.py``), and the verdict-file format's new keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_judge import leaderboards as LB
from llm_judge import stats as S
from llm_judge.analyze import analyze, read_difficulty, read_verdicts
from llm_judge.errors import LLMJudgeError

DATA = Path(__file__).parent / "data" / "leaderboards"
REF = json.loads((DATA / "alpaca_eval.json").read_text())


def write(tmp_path: Path, rows: list[dict], name: str = "v.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    path = write(tmp_path_factory.mktemp("soft"), REF["items"])
    return analyze(read_verdicts(path), n_boot=200, difficulty=read_difficulty(DATA / REF["difficulty_file"]))


def test_win_rate_and_discrete_win_rate_are_alpaca_evals(result):
    w = result["soft_preferences"]["baseline vs model"].win_rates
    assert 100 * w.win_rate.value == pytest.approx(REF["win_rate"], rel=1e-12)
    assert 100 * w.standard_error == pytest.approx(REF["standard_error"], rel=1e-9)
    assert 100 * w.discrete_win_rate.value == pytest.approx(REF["discrete_win_rate"], rel=1e-12)
    assert (w.wins, w.losses, w.draws) == (REF["n_wins"], REF["n_wins_base"], REF["n_draws"])


def test_both_lc_forms_are_the_maximum_likelihood_fit_and_close_to_alpaca_evals_own(result):
    lc = result["soft_preferences"]["baseline vs model"].lc
    assert set(lc) == {LB.LC_MINIMAL, LB.LC_FULL}
    assert 100 * lc[LB.LC_MINIMAL].value == pytest.approx(REF["lc_minimal_mle"], rel=1e-6)
    assert 100 * lc[LB.LC_FULL].value == pytest.approx(REF["lc_full_mle"], rel=1e-6)
    # alpaca_eval picks an L1 penalty by cross-validation: a few hundredths of a point away
    assert 100 * lc[LB.LC_MINIMAL].value == pytest.approx(REF["lc_minimal_alpaca_eval"], abs=0.05)
    assert 100 * lc[LB.LC_FULL].value == pytest.approx(REF["lc_full_alpaca_eval"], abs=0.05)
    for e in lc.values():
        assert e.low < e.value < e.high


def test_the_lc_fit_uses_the_soft_labels_not_the_rounded_ones():
    items = REF["items"]
    prefs = [it["preference"] - 1 for it in items]
    lm, lb = [it["lengths"][1] for it in items], [it["lengths"][0] for it in items]
    rounded = [0.5 if p == 0.5 else round(p) for p in prefs]
    assert abs(S.length_controlled(rounded, lm, lb) - REF["lc_minimal_mle"] / 100) > 0.01
    assert S.length_controlled(prefs, lm, lb) == pytest.approx(REF["lc_minimal_mle"] / 100, rel=1e-6)


def test_p_b_is_the_same_as_preference_and_a_line_given_the_other_way_round_is_mirrored(tmp_path):
    a = analyze(read_verdicts(write(tmp_path, [{"id": 1, "model_a": "x", "model_b": "y", "preference": 1.8},
                                               {"id": 2, "model_a": "x", "model_b": "y", "preference": 1.25}])), n_boot=20)
    b = analyze(read_verdicts(write(tmp_path, [{"id": 1, "model_a": "x", "model_b": "y", "p_b": 0.8},
                                               {"id": 2, "model_a": "y", "model_b": "x", "preference": 1.75}])), n_boot=20)
    wa, wb = (r["soft_preferences"]["x vs y"].win_rates for r in (a, b))
    assert wa.win_rate.value == pytest.approx(wb.win_rate.value) == pytest.approx(0.525)


def test_a_preference_without_a_verdict_gives_the_discrete_verdict_and_null_is_unscored(tmp_path):
    items = read_verdicts(write(tmp_path, [{"model_a": "x", "model_b": "y", "preference": p} for p in (1.2, 1.5, 1.9, None)]))
    assert [it["verdict"] for it in items] == ["A", "tie", "B", None]
    r = analyze(items, n_boot=20)
    assert r["unscored"] == 1 and r["soft_preferences"]["x vs y"].items == 3


def test_alpaca_evals_zero_is_read_as_a_draw(tmp_path):
    items = read_verdicts(write(tmp_path, [{"model_a": "x", "model_b": "y", "preference": 0}]))
    assert items[0]["preference"] == 1.5 and items[0]["verdict"] == "tie"


@pytest.mark.parametrize("row, words", [
    ({"preference": 2.5}, "preference 2.5 must be a number from 1 to 2"),
    ({"preference": "B"}, "preference \"B\" must be a number"),
    ({"p_b": 1.2}, "p_b 1.2 must be a number from 0 to 1"),
    ({"preference": True}, "preference true must be a number"),
    ({"preference": 1.8, "p_b": 0.3}, "preference 1.8 and p_b 0.3 disagree"),
])
def test_a_bad_soft_verdict_is_one_line_naming_the_key(tmp_path, row, words):
    with pytest.raises(LLMJudgeError, match="v.jsonl line 1: " + words.replace("(", r"\(")):
        read_verdicts(write(tmp_path, [{"model_a": "x", "model_b": "y", **row}]))


def test_a_file_without_preferences_has_no_soft_block_and_refuses_a_difficulty_file(tmp_path):
    items = read_verdicts(write(tmp_path, [{"model_a": "x", "model_b": "y", "verdict": "A"}]))
    assert "soft_preferences" not in analyze(items, n_boot=20)
    with pytest.raises(LLMJudgeError, match="no item has a preference"):
        analyze(items, n_boot=20, difficulty={"0": 0.1})


def test_an_item_missing_from_the_difficulty_file_is_named(tmp_path):
    items = read_verdicts(write(tmp_path, [{"id": k, "model_a": "x", "model_b": "y", "preference": 1.2 + k / 10,
                                            "lengths": [10 * k + 5, 7 * k + 1]} for k in range(5)]))
    with pytest.raises(LLMJudgeError, match="no line for id '4'"):
        analyze(items, n_boot=20, difficulty={str(k): 0.1 * k for k in range(4)})


def test_a_malformed_difficulty_file_is_one_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("index,instruction_difficulty\n0,abc\n")
    with pytest.raises(LLMJudgeError, match="d.csv line 2"):
        read_difficulty(path)


def test_the_cli_prints_both_win_rates_and_names_each_lc_form(tmp_path):
    path = write(tmp_path, REF["items"])
    cmd = [sys.executable, "-m", "llm_judge", "analyze", str(path), "--bootstrap", "50"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    full = subprocess.run([*cmd, "--instruction-difficulty", str(DATA / REF["difficulty_file"])],
                          capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and full.returncode == 0, plain.stderr + full.stderr
    assert f"win_rate {REF['win_rate']:.1f}%" in plain.stdout
    assert f"discrete_win_rate {REF['discrete_win_rate']:.1f}%" in plain.stdout
    assert LB.LC_MINIMAL in plain.stdout and LB.LC_FULL not in plain.stdout
    assert f"{LB.LC_FULL} {REF['lc_full_mle']:.1f}%" in full.stdout
