"""Figures that cannot be estimated are said, not printed (issue #23, point 5): an interval from one
prompt, a bootstrap whose resamples are all alike, a fit with no finite value (complete
separation), style control that cannot tell a candidate from its style; every estimate inside its
own interval; the report's chart titles whole."""

import io
import re
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from scipy import optimize

from llm_judge import make_sampling, parse_criteria
from llm_judge import stats as S
from llm_judge.compare import Candidate
from llm_judge.present.report import charts, render_html, render_markdown, tables, title_width
from llm_judge.present.terminal import print_summary
from llm_judge.prompts import PromptItem, load_prompts
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, summarize
from llm_judge.testing import fake

from .conftest import prefers

COLLAPSED = re.compile(r"\[([-+]?\d+(?:\.\d+)?), \1\]")  # "[1060, 1060]": an interval of no width


def study(tmp_path, prompts, answers, mode="both"):
    """A study of scripted candidates (name -> answer) judged by a fake judge that prefers "GOOD"."""
    for name, text in answers.items():
        fake.named(name).responder = lambda m, s, sch, t=text: t
    fake.named("judge").responder = prefers("GOOD")
    cfg = StudyConfig(prompts=prompts, candidates={n: Candidate(f"fake:{n}", make_sampling("p1")) for n in answers},
                      judge="fake:judge", judge_sampling=make_sampling(None, temperature=0),
                      criteria=parse_criteria(None), mode=mode)
    store = Store(tmp_path / "s.db")
    run_id = run_study(cfg, store)
    return store, summarize(store, run_id, n_boot=200)


THREE = {"best": "GOOD GOOD answer", "mid": "GOOD answer", "worst": "meh"}
ISSUE = {"good": "GOOD and long answer " * 3, "bad": "meh"}  # the better answer is always the longer


def everything_printed(store, summary) -> str:
    """The tables, the HTML and Markdown reports and the terminal's summary, as one text."""
    console = Console(file=io.StringIO(), width=250, record=True)
    print_summary(summary, console)
    cells = "\n".join(" | ".join(r) for _, _, rows in tables(summary) for r in rows)
    return "\n".join([cells, render_html(store, summary), render_markdown(store, summary), console.export_text()])


def table(summary, title_start: str):
    return next((header, rows) for t, header, rows in tables(summary) if t.startswith(title_start))


def test_a_one_prompt_study_prints_no_interval_and_says_why(tmp_path):
    store, s = study(tmp_path, load_prompts("seed-10", limit=1), THREE)
    text = everything_printed(store, s)
    assert not COLLAPSED.search(text), COLLAPSED.search(text)
    _, bt = table(s, "Bradley-Terry ratings (")
    assert all(r[3] == "- (one prompt)" and r[4] == "-" for r in bt)  # interval and rank range
    assert [r[0] for r in bt] == ["1", "1", "3"]  # the ranks stay (best and mid tie on one prompt)
    _, scores = table(s, "Scores per candidate")
    assert all("(no interval: one prompt)" in cell for r in scores for cell in r[2:-2])
    assert s.single["best"].total.value == 12 and s.single["best"].total.reason == "one prompt"


def test_identical_prompts_say_every_resample_is_alike(tmp_path):
    prompts = [PromptItem(f"q{i}", "Name a colour.") for i in range(3)]
    store, s = study(tmp_path, prompts, THREE)
    text = everything_printed(store, s)
    assert not COLLAPSED.search(text), COLLAPSED.search(text)
    for v in s.pairwise.bradley_terry["ratings"].values():
        assert v["low"] is None and v["rank_range"] is None and v["reason"].startswith("every resample alike")
    assert "(no interval: every resample alike" in text


def test_the_issues_separated_study_says_what_cannot_be_estimated(tmp_path):
    store, s = study(tmp_path, load_prompts("seed-10", limit=4), ISSUE)
    text = everything_printed(store, s)
    assert not COLLAPSED.search(text), COLLAPSED.search(text)
    _, pairs = table(s, "Pairwise verdicts")
    lc = {r[1]: r[8] for r in pairs}
    assert lc["good"] == lc["bad"] == ("- (not estimable: one side won every item (complete separation), "
                                       "so the fit has no finite value)")
    titles = [t for t, _, _ in tables(s)]
    plain = next(k for k, t in enumerate(titles) if t.startswith("Bradley-Terry ratings ("))
    assert titles[plain + 1].startswith("Bradley-Terry ratings with style control")  # side by side
    _, style = table(s, "Bradley-Terry ratings with style control")
    assert style == [["every rating and coefficient", "-",
                      "not estimable: the length difference between the answers moves with the candidates, so their "
                      "strength cannot be told from the style's sway (not identifiable)"]]
    _, diag = table(s, "Judge diagnostics")
    longer = next(r for r in diag if "longer answer" in r[0])
    low, high = S.wilson(4, 4)
    assert longer[1] == f"1.000 [{low:.3f}, 1.000]" and longer[2].startswith("4 decisive")


def test_the_longer_answers_share_has_a_wilson_interval_like_its_neighbours():
    d = S.longer_answer_rate([("A", 9, 3), ("B", 9, 3), ("A", 9, 3), ("tie", 9, 3), ("A", 4, 4)])
    assert d["decisive"] == 3 and d["rate"] == pytest.approx(2 / 3)
    assert (d["low"], d["high"]) == pytest.approx(S.wilson(2, 3))


# --- complete separation, checked against a linear program -------------------------------------

def lp_separated(X, y) -> bool:
    """Konis's linear program for (quasi-)complete separation of a logistic fit: is there a
    direction b with x.b >= 0 for every win, x.b <= 0 for every loss (a tie is both), and > 0 or
    < 0 somewhere? Maximise the total signed margin in a box; separated iff it is positive."""
    A = np.vstack([X[y > 0], -X[y < 1]])
    res = optimize.linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(A)), bounds=[(-1, 1)] * X.shape[1],
                           method="highs")
    return -res.fun > 1e-7


designs = st.integers(2, 9).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(-3, 3), min_size=3, max_size=3), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n, max_size=n),
    st.integers(1, 3)))


def mle_log_odds(X, y) -> float:
    """The largest fitted log-odds of the unpenalised fit (scipy's trust-region Newton method)."""
    Q = S._basis(X)

    def parts(beta):
        z = Q @ beta
        p = 1 / (1 + np.exp(-z))
        return float(np.sum(np.logaddexp(0, z) - y * z)), Q.T @ (p - y), (Q * (p * (1 - p))[:, None]).T @ Q

    res = optimize.minimize(lambda b: parts(b)[0], np.zeros(Q.shape[1]), jac=lambda b: parts(b)[1],
                            hess=lambda b: parts(b)[2], method="trust-exact", options={"gtol": 1e-10})
    return float(np.abs(Q @ res.x).max())


@settings(max_examples=400, deadline=None)
@given(designs)
def test_the_separation_check_agrees_with_a_linear_program(design):
    rows, y, k = design
    X, y = np.array(rows, dtype=float)[:, :k], np.array(y)
    ours, exact = S._separated(X, y), lp_separated(X, y)
    if exact:
        assert ours  # never a separated fit printed as a figure
    elif ours:  # only a fit all but separated, whose probabilities come within 1e-10 of 0 or 1
        assert mle_log_odds(X, y) > 23


def test_separation_makes_the_length_controlled_rate_not_estimable():
    # the longer answer won every item though each side was the longer one sometimes
    len_model, len_base = [300, 90, 250, 60, 400], [100, 200, 80, 150, 120]
    pref = [1.0 if m > b else 0.0 for m, b in zip(len_model, len_base)]
    e = S.length_controlled_ci(pref, len_model, len_base, n_boot=100)
    assert e.value is None and e.reason.startswith("the length difference alone tells the wins from the losses")
    assert S.length_controlled(pref, len_model, len_base) is None
    pref[0] = 0.0  # one upset: a finite fit, inside its own interval
    e = S.length_controlled_ci(pref, len_model, len_base, n_boot=100)
    assert e.reason is None and e.low <= e.value <= e.high


# --- style control that cannot tell a candidate from its style ----------------------------------

def styled(lengths_a, lengths_b, outcomes):
    plain = {"headers": 0, "bold": 0, "list_items": 0}
    return {f"p{k}": [("a", "b", s, {"length": la, **plain}, {"length": lb, **plain})]
            for k, (la, lb, s) in enumerate(zip(lengths_a, lengths_b, outcomes))}


def test_a_style_feature_that_moves_with_the_candidate_is_not_identifiable():
    # "b" always writes three times as long; outcomes mixed, so only the collinearity stands in the way
    games = styled([100, 200, 300, 400, 500], [300, 600, 900, 1200, 1500], [1, 0, 0, 1, 0])
    X = S._style_design([g for gs in games.values() for g in gs], ["a", "b"],
                        [(g[3], g[4]) for gs in games.values() for g in gs])
    assert np.linalg.matrix_rank(X[:, [0, 2]]) == 1  # the reference: the length column is the candidates'
    sc = S.bradley_terry_style(games, n_boot=50)
    assert "moves with the candidates" in sc["reason"] and sc["ratings"]["a"]["rating"] is None
    assert sc["coefficients"]["length"]["value"] is None


def test_a_style_fit_with_variation_keeps_its_figures_and_says_which_features_never_differ():
    games = styled([100, 900, 300, 800, 500, 650], [300, 200, 900, 700, 1500, 600], [1, 0, 0, 1, 0, 1])
    sc = S.bradley_terry_style(games, n_boot=200)
    assert sc["reason"] is None
    for v in [*sc["ratings"].values(), sc["coefficients"]["length"]]:
        value = v.get("rating", v.get("value"))
        assert v["low"] <= value <= v["high"]
    assert sc["coefficients"]["bold"] == {"value": None, "low": None, "high": None,
                                          "reason": "the answers never differ in it"}


def test_style_that_predicts_every_verdict_has_no_finite_fit():
    games = styled([100, 900, 300, 800, 500], [300, 200, 900, 700, 1500], [0, 1, 0, 1, 0])  # the longer won
    sc = S.bradley_terry_style(games, n_boot=50)
    assert sc["reason"].startswith("the verdicts are predicted exactly")


# --- every estimate inside its own interval -------------------------------------------------------

games_by_prompt = st.dictionaries(
    st.text("pq", min_size=1, max_size=3),
    st.lists(st.tuples(st.sampled_from(["x", "y", "z"]), st.sampled_from(["x", "y", "z"]),
                       st.sampled_from([0.0, 0.5, 1.0])).filter(lambda g: g[0] != g[1]), min_size=1, max_size=3),
    min_size=1, max_size=6)


def assert_inside_or_said(value, low, high, reason):
    if low is None:
        assert reason, "an estimate without an interval says why"
    else:
        assert low <= value <= high, (value, low, high)
        assert high > low and reason is None


@settings(max_examples=150, deadline=None)
@given(games_by_prompt)
def test_bradley_terry_ratings_and_ranks_lie_inside_their_intervals(by_prompt):
    bt = S.bradley_terry_ci(by_prompt, n_boot=60)
    for v in bt["ratings"].values():
        assert_inside_or_said(v["rating"], v["low"], v["high"], v.get("reason"))
        if v["rank_range"]:
            assert v["rank_range"][0] <= v["rank"] <= v["rank_range"][1]
        if len(by_prompt) < 2:
            assert v["reason"] == "one prompt" and v["rank_range"] is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 2.5, 4.0]), min_size=1, max_size=12))
def test_means_lie_inside_their_intervals_or_say_why_not(values):
    e = S.mean_ci(values, n_boot=80)
    assert_inside_or_said(e.value, e.low, e.high, getattr(e, "reason", None))
    assert (e.low is None) == (len(set(values)) == 1)  # one value, or all alike: no interval


def test_an_interval_that_misses_its_estimate_is_stretched_to_reach_it():
    e = S.bootstrap_estimate(1.0, [1.5, 2.0, 2.5, 3.0], units=4)
    assert e.low == 1.0 and e.high == pytest.approx(2.9625)


# --- the report's chart titles, whole -------------------------------------------------------------

def test_every_chart_is_as_wide_as_its_title(tmp_path):
    store, s = study(tmp_path, load_prompts("seed-10", limit=4), ISSUE)
    svgs = charts(store, s)
    assert any("Pairwise win rate of each side (ties half, Wilson 95% interval)" in svg for svg in svgs)
    for svg in svgs:
        width = float(re.search(r'<svg [^>]*width="([\d.]+)"', svg).group(1))
        title = re.search(r'font-weight="bold">([^<]*)</text>', svg).group(1)
        assert title_width(title) + 20 <= width


@pytest.mark.model  # headless Chromium, like the browser tests
def test_the_chart_titles_fit_their_charts_in_a_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium is not installed: bash scripts/setup.sh installs it")
    store, s = study(tmp_path, load_prompts("seed-10", limit=4), ISSUE)
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(store, s), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(page_file.as_uri())
        boxes = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(svg => {
            const t = svg.querySelector('text'), b = t.getBBox();
            return {title: t.textContent, left: b.x, right: b.x + b.width, width: svg.width.baseVal.value};
        })""")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert any(b["title"].startswith("Pairwise win rate") for b in boxes)
    for b in boxes:
        assert 0 <= b["left"] and b["right"] <= b["width"], b
