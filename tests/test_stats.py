"""Statistics, checked against reference implementations (scipy, FastChat's Bradley-Terry fit) and
published figures, not only by hand."""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from llm_judge import LLMJudgeError
from llm_judge import stats as S


def test_mean_ci_matches_scipys_percentile_bootstrap():
    rng = np.random.default_rng(3)
    x = list(rng.integers(3, 13, size=40))
    e = S.mean_ci(x, n_boot=4000, seed=1)
    ref = stats.bootstrap((np.array(x, dtype=float),), np.mean, n_resamples=4000, method="percentile",
                          random_state=7).confidence_interval
    assert e.value == pytest.approx(np.mean(x)) and e.n == 40
    # two independent 4000-resample bootstraps agree to within Monte Carlo error
    assert e.low == pytest.approx(ref.low, abs=0.12) and e.high == pytest.approx(ref.high, abs=0.12)
    assert S.mean_ci(x, n_boot=4000, seed=1) == e  # reproducible with its seed
    assert S.mean_ci([]).value is None


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (7, 10), (1, 37), (250, 400)])
def test_wilson_interval_matches_scipy(k, n):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = S.wilson(k, n)
    assert low == pytest.approx(ref.low, abs=1e-9) and high == pytest.approx(ref.high, abs=1e-9)
    # and it never has zero width, unlike a bootstrap at 0/n or n/n
    assert high - low > 0.05 or n > 300


def test_a_perfect_record_keeps_a_wide_interval():
    s = S.pairwise_summary(["win"] * 10, ("x", "y")).to_dict()
    wr = s["win_rate"]["x"]
    assert wr["value"] == 1.0 and wr["high"] == 1.0 and wr["low"] == pytest.approx(0.7225, abs=1e-4)
    # Clopper-Pearson (exact) is wider still; Wilson sits between it and a point
    cp = stats.binomtest(10, 10).proportion_ci(method="exact")
    assert cp.low < wr["low"] < 1.0
    assert s["win_rate"]["y"]["low"] == 0.0 and s["win_rate"]["y"]["high"] == pytest.approx(1 - 0.7225, abs=1e-4)


def test_sign_test_matches_scipy_binomtest():
    for w, lo in [(9, 1), (5, 5), (30, 12), (0, 4), (2600, 2400), (5200, 4800), (700, 1300)]:
        assert S.sign_test(w, lo) == pytest.approx(stats.binomtest(w, w + lo).pvalue, rel=1e-9, abs=1e-300)
    assert S.sign_test(0, 0) is None


def test_pairwise_summary_hand_computed():
    s = S.pairwise_summary(["win"] * 6 + ["tie"] * 2 + ["loss"] * 2 + [None], ("x", "y")).to_dict()
    assert (s["wins"], s["ties"], s["unscored"], s["items"]) == ({"x": 6, "y": 2}, 2, 1, 11)
    assert s["win_rate"]["x"]["value"] == pytest.approx(0.7)  # (6 + 1) / 10
    assert s["win_rate"]["y"]["value"] == pytest.approx(0.3)
    assert s["win_rate_without_ties"]["x"]["value"] == pytest.approx(0.75)  # 6 / 8
    assert s["win_rate"]["x"]["low"] == pytest.approx(S.wilson(7, 10)[0])
    assert s["sign_test_p"] == pytest.approx(2 * (1 + 8 + 28) / 256)


def fastchat_mle_elo(games, scale=400, base=10, init=1000):
    """FastChat's ``compute_mle_elo`` (logistic regression on +log(base)/-log(base) rows, a win
    weighted 2, a tie 1 on each side), reimplemented with scipy instead of sklearn."""
    players = sorted({p for g in games for p in g[:2]})
    idx = {p: k for k, p in enumerate(players)}
    rows, ys, ws = [], [], []
    for i, j, s in games:
        x = np.zeros(len(players))
        x[idx[i]], x[idx[j]] = math.log(base), -math.log(base)
        for y, w in ((1.0, 2 * s), (0.0, 2 * (1 - s))):
            if w:
                rows.append(x)
                ys.append(y)
                ws.append(w)
    X, Y, W = np.array(rows), np.array(ys), np.array(ws)

    def nll(beta):
        z = X @ beta
        return float(np.sum(W * (np.logaddexp(0, z) - Y * z)))

    beta = optimize.minimize(nll, np.zeros(len(players)), method="BFGS", options={"gtol": 1e-10}).x
    beta -= beta.mean()
    return {p: scale * beta[idx[p]] + init for p in players}


def test_bradley_terry_matches_fastchats_compute_mle_elo():
    rng = np.random.default_rng(0)
    strength = {"a": 1.2, "b": 0.4, "c": 0.0, "d": -0.9}
    games = []
    for _ in range(600):
        i, j = rng.choice(list(strength), 2, replace=False)
        p = 1 / (1 + math.exp(strength[j] - strength[i]))
        u = rng.random()
        games.append((i, j, 1.0 if u < p * 0.9 else 0.5 if u < p * 0.9 + 0.1 else 0.0))
    ours = S.bradley_terry(games, prior=0)
    ref = fastchat_mle_elo(games)
    for p in strength:
        assert ours[p] == pytest.approx(ref[p], abs=0.05)
    assert sum(ours.values()) / 4 == pytest.approx(1000)


def test_bradley_terry_prior_keeps_an_unbeaten_candidate_finite():
    games = [("x", "y", 1.0)] * 5
    r = S.bradley_terry(games)  # default prior: one tie per pair
    assert math.isfinite(r["x"]) and r["x"] > r["y"]
    # with the prior made explicit as games, the plain fit gives the same ratings
    assert S.bradley_terry(games + [("x", "y", 0.5)], prior=0)["x"] == pytest.approx(r["x"], abs=1e-6)


def test_bradley_terry_intervals_resample_prompts():
    by_prompt = {f"p{k}": [("x", "y", 1.0), ("y", "z", 1.0), ("x", "z", 1.0 if k % 3 else 0.0)] for k in range(30)}
    bt = S.bradley_terry_ci(by_prompt, n_boot=300, seed=1)
    assert bt["resamples"] == 300 and bt["method"] == "percentile bootstrap over prompts"
    assert bt["prior_ties_per_pair"] == S.BT_PRIOR_TIES
    r = bt["ratings"]
    assert r["x"]["low"] < r["x"]["rating"] < r["x"]["high"] and r["x"]["rating"] > r["y"]["rating"] > r["z"]["rating"]
    # all games of a prompt move together: identical prompts give no interval, and say why
    same = S.bradley_terry_ci({f"p{k}": [("x", "y", 1.0), ("x", "y", 0.0)] for k in range(10)}, n_boot=50)
    assert same["ratings"]["x"]["low"] is None and same["ratings"]["x"]["reason"].startswith("every resample alike")


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "10"])
def test_resamples_must_be_a_positive_whole_number(bad):
    with pytest.raises(LLMJudgeError, match="bootstrap resamples must be"):
        S.mean_ci([1, 2, 3], n_boot=bad)


def test_cohen_kappa_matches_a_reference():
    # po = 3/4; pe = (2*1 + 2*3)/16 = 0.5 -> kappa 0.5
    assert S.cohen_kappa(list("ABAB"), list("ABBB")) == pytest.approx(0.5)
    assert S.cohen_kappa(list("AB"), list("AB")) == 1.0
    # Cohen (1960)'s worked example: 200 items, po = 0.70, pe = 0.50 -> kappa 0.40
    x = ["y"] * 70 + ["y"] * 30 + ["n"] * 30 + ["n"] * 70
    y = ["y"] * 70 + ["n"] * 30 + ["y"] * 30 + ["n"] * 70
    assert S.cohen_kappa(x, y) == pytest.approx(0.4)


def test_diagnostics_divide_by_all_items():
    pc = S.position_consistency([("A", "A"), ("A", "B"), (None, "A")])
    assert (pc["rate"], pc["agreeing"], pc["items"], pc["unscored"]) == (pytest.approx(1 / 3), 1, 3, 1)
    fp = S.first_position_rate([True, True, False, None])
    assert fp["rate"] == pytest.approx(2 / 3) and (fp["decisive"], fp["verdicts"]) == (3, 4)
    assert S.longer_answer_rate([("A", 10, 5), ("B", 10, 5), ("tie", 1, 2), ("A", 3, 3)])["rate"] == 0.5


def test_agreement_counts_unscored_as_wrong_like_llmbar():
    items = [{"verdict": "A", "verdict_swapped": "A", "human": "A"},
             {"verdict": None, "verdict_swapped": "B", "human": "B"},
             {"verdict": "B", "verdict_swapped": None, "human": "A"},
             {"verdict": None, "verdict_swapped": None, "human": "A"}]
    b = S.agreement(items)["with_ties"]
    assert b["verdict"]["accuracy"] == pytest.approx(1 / 4) and b["verdict"]["unscored"] == 2
    assert b["verdict_swapped"]["accuracy"] == pytest.approx(2 / 4)
    assert b["both_orders_correct"]["rate"] == pytest.approx(1 / 4)


def alpaca_eval_lc(preference_1_2, output_1_len, output_2_len):
    """AlpacaEval 2's glm_winrate for two models, reimplemented: preference in {1, 2, 1.5}
    (output_2 is the model), std_delta_len = (len_1 - len_2) / its sample std (pandas' ddof=1),
    formula "np.tanh(std_delta_len) + not_gamed_baseline - 1" with no intercept, soft labels by
    duplication, then the mean predicted preference at std_delta_len = 0. Solved unpenalised."""
    y = np.asarray(preference_1_2, dtype=float) - 1
    delta = np.asarray(output_1_len, dtype=float) - np.asarray(output_2_len, dtype=float)
    X = np.column_stack([np.tanh(delta / delta.std(ddof=1)), np.ones_like(delta)])
    Xd, yd, wd = np.vstack([X, X]), np.concatenate([np.ones_like(y), np.zeros_like(y)]), np.concatenate([y, 1 - y])

    def loss(beta):
        z = Xd @ beta
        return float(np.sum(wd * (np.logaddexp(0, z) - yd * z)))

    beta = optimize.minimize(loss, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    return float(np.mean(1 / (1 + np.exp(-(np.column_stack([np.zeros_like(delta), np.ones_like(delta)]) @ beta)))))


def test_length_controlled_win_rate_matches_alpaca_evals_glm():
    rng = np.random.default_rng(5)
    n = 400
    len_model, len_base = rng.integers(200, 3000, n), rng.integers(200, 3000, n)
    p = 1 / (1 + np.exp(-(0.4 + 1.2 * np.tanh((len_model - len_base) / 900))))
    u = rng.random(n)
    pref_model = np.where(u < p * 0.9, 1.0, np.where(u < p * 0.9 + 0.1, 0.5, 0.0))  # some ties
    ours = S.length_controlled(list(pref_model), list(len_model), list(len_base))
    ref = alpaca_eval_lc(list(1 + pref_model), list(len_base), list(len_model))
    assert ours == pytest.approx(ref, abs=1e-5)


def test_length_control_removes_a_pure_length_preference():
    rng = np.random.default_rng(2)
    n = 600
    len_model = rng.integers(800, 2500, n)  # the model writes longer answers...
    len_base = rng.integers(200, 1500, n)
    # ...and the judge prefers length, not quality: equal models
    p = 1 / (1 + np.exp(-2.5 * np.tanh((len_model - len_base) / 500)))
    pref = (rng.random(n) < p).astype(float)
    outcomes = ["loss" if x else "win" for x in pref]  # from the baseline's side
    s = S.pairwise_summary(outcomes, ("base", "model"), lengths=list(zip(len_base, len_model)), n_boot=300)
    assert s.win_rate["model"].value > 0.75
    lc = s.length_controlled["model"]
    assert abs(lc.value - 0.5) < 0.08 and lc.low < 0.5 < lc.high  # what it would be at equal lengths
    assert s.length_controlled["base"].value == pytest.approx(1 - lc.value)


def arena_style_control(games, styles):
    """Chatbot Arena's style-controlled Bradley-Terry fit, reimplemented: rows +ln10/400 and
    -ln10/400 for the two models, the style features' normalised differences (a - b) / (a + b)
    standardised, a tie half a win each side, an unpenalised logistic fit; ratings centred on 1000."""
    players = sorted({p for g in games for p in g[:2]})
    idx = {p: k for k, p in enumerate(players)}
    feats = list(styles[0][0])
    X = np.zeros((len(games), len(players) + len(feats)))
    for r, ((i, j, _s), (sa, sb)) in enumerate(zip(games, styles)):
        X[r, idx[i]], X[r, idx[j]] = math.log(10) / 400, -math.log(10) / 400
        for k, f in enumerate(feats):
            X[r, len(players) + k] = (sa[f] - sb[f]) / (sa[f] + sb[f]) if sa[f] + sb[f] else 0.0
    d = X[:, len(players):]
    X[:, len(players):] = (d - d.mean(axis=0)) / np.where(d.std(axis=0) > 0, d.std(axis=0), 1)
    s = np.array([g[2] for g in games])
    Xd, yd, wd = np.vstack([X, X]), np.concatenate([np.ones(len(s)), np.zeros(len(s))]), np.concatenate([s, 1 - s])

    def loss(beta):
        z = Xd @ beta
        return float(np.sum(wd * (np.logaddexp(0, z) - yd * z)))

    beta = optimize.minimize(loss, np.zeros(X.shape[1]), method="BFGS", options={"gtol": 1e-9}).x
    r = beta[:len(players)]
    return {p: float(r[idx[p]] - r.mean() + 1000) for p in players}, beta[len(players):]


def styled_games(n_prompts=150, seed=4):
    """Three equally good models; "verbose" writes long answers with lists, and the judge likes
    length: it wins on style alone."""
    rng = np.random.default_rng(seed)
    mean_length = {"verbose": 1300, "plain": 700, "terse": 400}  # each varies from answer to answer
    by_prompt = {}
    for p in range(n_prompts):
        games = []
        for a, b in (("verbose", "plain"), ("verbose", "terse"), ("plain", "terse")):
            sa, sb = ({"length": max(50, int(rng.normal(mean_length[x], 350))), "headers": int(rng.integers(0, 2)),
                       "bold": int(rng.integers(0, 3)), "list_items": int(rng.integers(0, 6))} for x in (a, b))
            p_a = 1 / (1 + math.exp(-4.0 * (sa["length"] - sb["length"]) / (sa["length"] + sb["length"])))
            games.append((a, b, float(rng.random() < p_a), sa, sb))
        by_prompt[f"p{p}"] = games
    return by_prompt


def test_style_control_matches_the_arena_fit_and_removes_a_style_preference():
    by_prompt = styled_games()
    sc = S.bradley_terry_style(by_prompt, n_boot=100)
    games = [g for gs in by_prompt.values() for g in gs]
    # Arena's fit on every game in both orientations (as its random orientation would have them)
    both = games + [(b, a, 1 - s, sb, sa) for a, b, s, sa, sb in games]
    ref_ratings, ref_coef = arena_style_control([g[:3] for g in both], [(g[3], g[4]) for g in both])
    for p, r in ref_ratings.items():
        assert sc["ratings"][p]["rating"] == pytest.approx(r, abs=1.0)  # our fit has a tiny ridge
    assert sc["coefficients"]["length"]["value"] == pytest.approx(ref_coef[0], abs=0.01)
    plain = S.bradley_terry([g[:3] for g in games], prior=0)
    assert plain["verbose"] - plain["terse"] > 150  # without style control verbosity wins
    for p in ("verbose", "plain", "terse"):  # with it, three equally good models rate alike
        assert abs(sc["ratings"][p]["rating"] - 1000) < 40
        assert sc["ratings"][p]["low"] < 1000 < sc["ratings"][p]["high"]
    assert sc["coefficients"]["length"]["low"] > 0 and sc["coefficients"]["list_items"]["low"] < 0 < \
        sc["coefficients"]["list_items"]["high"]


def test_the_one_step_style_bootstrap_agrees_with_exact_refits(monkeypatch):
    by_prompt = styled_games(n_prompts=300, seed=7)
    exact = S.bradley_terry_style(by_prompt, n_boot=200, seed=3)
    monkeypatch.setattr(S, "STYLE_EXACT_LIMIT", 0)
    fast = S.bradley_terry_style(by_prompt, n_boot=200, seed=3)
    assert "one Newton step" in fast["method"] and "one Newton step" not in exact["method"]
    for p, r in exact["ratings"].items():
        assert fast["ratings"][p]["rating"] == r["rating"]  # the point fit is the same
        assert fast["ratings"][p]["low"] == pytest.approx(r["low"], abs=6)
        assert fast["ratings"][p]["high"] == pytest.approx(r["high"], abs=6)
    for f, c in exact["coefficients"].items():  # within a tenth of the interval's width
        width = c["high"] - c["low"]
        assert fast["coefficients"][f]["low"] == pytest.approx(c["low"], abs=0.1 * width)
        assert fast["coefficients"][f]["high"] == pytest.approx(c["high"], abs=0.1 * width)
