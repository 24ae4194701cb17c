import math

import pytest

from llm_judge import stats as S


def test_mean_ci_brackets_the_mean_and_is_reproducible():
    x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    e = S.mean_ci(x, n_boot=2000, seed=1)
    assert e.value == 5.5 and e.low < 5.5 < e.high and e.n == 10
    assert S.mean_ci(x, n_boot=2000, seed=1) == e
    # the bootstrap interval is close to the normal one: 5.5 +- 1.96 * sd/sqrt(n)
    se = math.sqrt(sum((v - 5.5) ** 2 for v in x) / 10) / math.sqrt(10)
    assert abs(e.low - (5.5 - 1.96 * se)) < 0.4 and abs(e.high - (5.5 + 1.96 * se)) < 0.4
    assert S.mean_ci([]).value is None


def test_sign_test_hand_computed():
    # 9 wins, 1 loss: P(X<=1) = (1 + 10) / 1024; two-sided = 22/1024
    assert S.sign_test(9, 1) == pytest.approx(22 / 1024)
    assert S.sign_test(5, 5) == 1.0
    assert S.sign_test(0, 0) is None


def test_pairwise_summary_hand_computed():
    s = S.pairwise_summary(["win"] * 6 + ["tie"] * 2 + ["loss"] * 2 + [None])
    assert (s["wins"], s["ties"], s["losses"], s["unscored"]) == (6, 2, 2, 1)
    assert s["win_rate"]["value"] == pytest.approx(0.7)  # (6 + 1) / 10
    assert s["win_rate_without_ties"]["value"] == pytest.approx(0.75)  # 6 / 8
    assert s["win_rate"]["low"] <= 0.7 <= s["win_rate"]["high"]
    assert s["sign_test_p"] == pytest.approx(2 * (1 + 8 + 28) / 256)


def test_swapping_sides_mirrors_win_rates():
    outs = ["win"] * 5 + ["tie"] * 3 + ["loss"] * 2
    mirror = [{"win": "loss", "loss": "win", "tie": "tie"}[o] for o in outs]
    a, b = S.pairwise_summary(outs), S.pairwise_summary(mirror)
    assert a["win_rate"]["value"] + b["win_rate"]["value"] == pytest.approx(1.0)
    assert a["sign_test_p"] == b["sign_test_p"]


def test_bradley_terry_orders_players_and_is_symmetric():
    games = [("x", "y", 1.0)] * 8 + [("x", "y", 0.0)] * 2 + [("y", "z", 1.0)] * 8 + [("y", "z", 0.0)] * 2
    r = S.bradley_terry(games)
    assert r["x"] > r["y"] > r["z"]
    assert sum(r.values()) / 3 == pytest.approx(1000)
    even = S.bradley_terry([("p", "q", 1.0), ("p", "q", 0.0)])
    assert even["p"] == pytest.approx(even["q"])


def test_cohen_kappa_hand_computed():
    # po = 3/4; pe = (2*1 + 2*3)/16 = 0.5 -> kappa 0.5
    assert S.cohen_kappa(list("ABAB"), list("ABBB")) == pytest.approx(0.5)
    assert S.cohen_kappa(list("AB"), list("AB")) == 1.0


def test_diagnostics():
    assert S.position_consistency([("A", "A"), ("A", "B"), (None, "A")])["rate"] == 0.5
    assert S.first_position_rate([True, True, False, None])["rate"] == pytest.approx(2 / 3)
    assert S.longer_answer_rate([("A", 10, 5), ("B", 10, 5), ("tie", 1, 2), ("A", 3, 3)])["rate"] == 0.5
