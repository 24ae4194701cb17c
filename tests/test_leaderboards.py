"""MT-Bench's and Arena-Hard's figures as their own code computes them: checked against FastChat's
``show_result.py`` and arena-hard-auto's ``show_result.py`` run on fixed, seeded inputs
(``tests/data/leaderboards/make_reference.py`` made the fixtures), and the summary's blocks of
runs judged with those protocols."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_judge import leaderboards as LB
from llm_judge import stats as S
from llm_judge.present.report import tables
from llm_judge.records import Probabilities, Shown, Verdict
from llm_judge.store import RunItem
from llm_judge.study.loaded import LoadedRun, RunCandidate, RunPrompt
from llm_judge.study.summary import summarize_run

DATA = Path(__file__).parent / "data" / "leaderboards"


def fixture(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------------ MT-Bench
def mt_rows() -> list[LB.ScoreRow]:
    return [(m, q, int(t), float(s)) for m, q, t, s in fixture("mt_bench")["rows"]]


def test_mt_bench_means_per_turn_and_overall_are_fastchats_in_its_order():
    ref, got = fixture("mt_bench"), LB.mt_bench(mt_rows(), n_boot=200)
    for key, figs in (("turn_1", got.by_turn[1]), ("turn_2", got.by_turn[2]), ("overall", got.overall)):
        assert [m for m, _ in ref[key]] == list(figs)  # sorted by score, highest first
        for m, value in ref[key]:
            assert figs[m].value == pytest.approx(value, rel=1e-12)


def test_mt_bench_overall_is_the_mean_of_every_rating_not_of_the_two_turn_means():
    got = LB.mt_bench(mt_rows(), n_boot=50)
    ref = dict(fixture("mt_bench")["overall"])
    mean_of_means = (got.by_turn[1]["gpt-4"].value + got.by_turn[2]["gpt-4"].value) / 2
    assert abs(mean_of_means - ref["gpt-4"]) > 1e-3  # the two differ on this input (unequal counts)
    assert got.overall["gpt-4"].value == pytest.approx(ref["gpt-4"])


def test_mt_bench_leaves_out_fastchats_minus_one_and_unscored_ratings_and_counts_them():
    rows = mt_rows()
    got = LB.mt_bench([*rows, ("gpt-4", "999", 1, None)], n_boot=50)
    assert got.dropped == sum(r[3] == -1 for r in rows) + 1 > 1
    assert all(e.low is not None and e.low <= e.value <= e.high for e in got.overall.values())


def test_mt_bench_lines_have_fastchats_blocks_and_an_interval_per_model():
    lines = LB.mt_bench_lines(LB.mt_bench(mt_rows(), n_boot=50))
    assert [ln for ln in lines if ln.startswith("####")] == [
        "########## First turn ##########", "########## Second turn ##########", "########## Average ##########"]
    assert any(ln.startswith("gpt-4") and "8.750000" in ln and "[" in ln for ln in lines)


# ---------------------------------------------------------------------------------------- Arena-Hard
def arena_rows() -> tuple[list[LB.ArenaRow], str]:
    ref = fixture("arena_hard")
    rows = [(j["question_id"], j["model"], game, g["score"]) for j in ref["judgments"]
            for game, g in zip((1, 2), j["games"], strict=True)]
    return rows, ref["baseline"]


def test_arena_hard_ratings_and_scores_match_arena_hard_autos_fit():
    ref = fixture("arena_hard")
    rows, baseline = arena_rows()
    got = LB.arena_hard(rows, baseline, n_boot=300)
    assert got.games == ref["battles"]  # strong verdicts counted three times, unreadable ones left out
    for m, elo in ref["elo"].items():
        assert got.ratings[m].value == pytest.approx(elo, rel=1e-6)
        assert got.scores[m].value == pytest.approx(ref["score_exact"][m], rel=1e-6)
    assert list(got.scores) == [r["model"] for r in ref["table"]]


def test_arena_hard_intervals_are_close_to_the_references_bootstrap():
    ref = fixture("arena_hard")
    rows, baseline = arena_rows()
    got = LB.arena_hard(rows, baseline, n_boot=1000)
    for r in ref["table"]:
        if r["model"] == baseline:
            continue
        e = got.scores[r["model"]]
        assert e.low == pytest.approx(r["lower"], abs=2.5) and e.high == pytest.approx(r["upper"], abs=2.5)


def test_arena_hard_lines_print_show_results_score_column():
    ref = fixture("arena_hard")
    rows, baseline = arena_rows()
    lines = LB.arena_hard_lines(LB.arena_hard(rows, baseline, n_boot=200))[1:]
    assert [ln.split("| 95% CI")[0] for ln in lines] == [ln.split("| 95% CI")[0] for ln in ref["printed"]]


def test_a_strong_verdict_counts_three_times_and_game_two_reads_the_model_as_a():
    games = LB.arena_games([("q", "m", 1, "B>>A"), ("q", "m", 2, "A>B"), ("q", "m", 2, "A=B"), ("q", "m", 1, None),
                            ("q", "m", 2, "B=A")], "base")
    assert games == [("base", "m", 0.0, 3.0), ("base", "m", 0.0, 1.0), ("base", "m", 0.5, 1.0)]


def test_the_five_labels_come_from_a_verdicts_winner_and_strength_in_the_frame_shown():
    assert [LB.arena_label(w, s) for w, s in (("A", True), ("A", False), ("tie", False), ("B", False), ("B", True))] \
        == list(LB.ARENA_LABELS)
    strong_b = Verdict("B", strong=True)
    assert LB.verdict_label(Shown.from_labels(strong_b, "BA").verdict) == "A>>B"  # B shown first: it is A there
    assert LB.verdict_label(None) is None


def test_a_model_that_won_every_game_gets_no_score_and_the_reason():
    got = LB.arena_hard([(f"q{i}", "m", g, "B>A" if g == 1 else "A>B") for i in range(5) for g in (1, 2)], "base",
                        n_boot=20)
    assert got.scores["m"].value is None and "separation" in (got.scores["m"].reason or "")


def test_one_model_that_lost_every_game_leaves_the_others_scored():
    """A weak model's rating is infinite; the others' stay what they are without it (the fit of
    the remaining games), instead of every score going blank."""
    mixed = [(f"q{i}", "mid", g, ("B>A", "A>B", "A=B")[(i + g) % 3]) for i in range(6) for g in (1, 2)]
    weak = [(f"q{i}", "weak", g, "A>B" if g == 1 else "B>A") for i in range(6) for g in (1, 2)]
    alone = LB.arena_hard(mixed, "base", n_boot=50)
    both = LB.arena_hard(mixed + weak, "base", n_boot=50)
    assert both.scores["weak"].value is None and "every game" in both.scores["weak"].reason
    assert both.scores["mid"].value == pytest.approx(alone.scores["mid"].value)


def test_stats_anchored_fit_is_the_closed_form_of_a_star_of_games():
    """Every game against the anchor: the fitted win rate is the share of points won (ties half)."""
    games = [("base", "m", 1.0, 3.0), ("base", "m", 0.0, 1.0), ("base", "m", 0.5, 2.0), ("base", "m", 0.0, 1.0)]
    r = S.bradley_terry_anchored(games, "base", n_boot=20)
    assert S.elo_win_rate(r["m"].value, 1000) == pytest.approx((0 + 1 + 1 + 1) / 7, rel=1e-9)


# ------------------------------------------------------------------------------------- summary hooks
def _item(kind, labels, order, verdict, prompt) -> RunItem:
    return RunItem(f"{kind}:{prompt}:{'|'.join(labels)}:{order}", prompt, kind, labels, order, 0, 1, "k",
                   status="scored", raw="{}", verdict=verdict)


def _run(protocol: str | None, items, baseline="base") -> LoadedRun:
    config = {"mode": "pairwise", "judge": "fake:judge", "criteria": [["A", "accurate"]], "scale": [1, 5],
              "baseline": baseline, "candidates": {"base": {"spec": "fake:b"}, "m": {"spec": "fake:m"}},
              **({"protocol": protocol} if protocol else {})}
    prompts = tuple(RunPrompt(p, f"{p}?") for p in sorted({i.prompt_id for i in items}))
    cands = tuple(RunCandidate(c, f"fake:{c}", {"temperature": 0.7, "min_p": 0.1}) for c in ("base", "m"))
    return LoadedRun("hand", "done", config, {}, prompts, cands, tuple(items))


def arena_items() -> list[RunItem]:
    """Three questions: m much better shown second (game 1), slightly better shown first (game 2)..."""
    verdicts = [(Verdict("B", strong=True), Verdict("B")), (Verdict("A"), Verdict("tie")), (Verdict("B"), Verdict("B"))]
    out = []
    for k, (ab, ba) in enumerate(verdicts):  # in the item's labels (A = base)
        out += [_item("pairwise", ("base", "m"), "AB", ab, f"p{k}"), _item("pairwise", ("base", "m"), "BA", ba, f"p{k}")]
    return out


def test_a_run_judged_with_arena_hard_has_its_score_against_the_baseline():
    s = summarize_run(_run("arena-hard", arena_items()), n_boot=50)
    rows = [("p0", "m", 1, "B>>A"), ("p0", "m", 2, "A>B"), ("p1", "m", 1, "A>B"), ("p1", "m", 2, "A=B"),
            ("p2", "m", 1, "B>A"), ("p2", "m", 2, "A>B")]
    want = LB.arena_hard(rows, "base", n_boot=50)
    assert s.arena_hard is not None and s.arena_hard.scores["m"].value == pytest.approx(want.scores["m"].value)
    assert any(t.startswith("Arena-Hard score against base") for t, _, _ in tables(s))
    assert "arena_hard" in s.to_dict() and "mt_bench" not in s.to_dict()


def test_a_run_without_a_leaderboards_protocol_has_no_leaderboard_block():
    s = summarize_run(_run(None, arena_items()), n_boot=20)
    assert s.arena_hard is None and not set(LB_KEYS) & set(s.to_dict())
    assert not any("Arena-Hard" in t for t, _, _ in tables(s))


LB_KEYS = ("mt_bench", "arena_hard", "alpaca_eval")


def test_a_single_run_judged_with_mt_bench_has_its_means_per_turn():
    from llm_judge.records import Grade

    items = [RunItem(f"s:{p}:{lab}", p, "single", (lab,), "-", 0, 1, "k", status="scored", raw="{}",
                     verdict=Grade({"rating": r}, r)) for p, lab, r in
             (("p1", "base", 6), ("p2", "base", 8), ("p1", "m", 9), ("p2", "m", 7.5))]
    run = _run("mt-bench-single-v1", items, baseline=None)
    run = LoadedRun(run.run_id, run.status, {**run.config, "mode": "single", "criteria": [["rating", "r"]],
                                             "scale": [1, 10]}, {}, run.prompts, run.candidates, run.items)
    s = summarize_run(run, n_boot=20)
    assert s.mt_bench is not None and list(s.mt_bench.overall) == ["m", "base"]
    assert s.mt_bench.by_turn[1]["m"].value == pytest.approx(8.25)
    assert any(t.startswith("MT-Bench") for t, _, _ in tables(s))


def test_a_weighted_alpaca_eval_run_has_the_soft_win_rate_beside_the_discrete_one():
    def weighted(pa: float) -> Verdict:
        return Verdict("A" if pa > 0.5 else "B", probabilities=Probabilities(winner={"A": pa, "B": 1 - pa, "tie": 0.0}))

    items = [_item("pairwise", ("base", "m"), order, weighted(pa), prompt)
             for prompt, order, pa in (("p1", "AB", 0.3), ("p1", "BA", 0.1), ("p2", "AB", 0.6), ("p2", "BA", 0.6))]
    s = summarize_run(_run("alpaca-eval-weighted", items), n_boot=20)
    soft = s.alpaca_eval["base vs m"]
    assert soft.win_rates.win_rate.value == pytest.approx(((1 - 0.2) + (1 - 0.6)) / 2)  # mean P(m better)
    assert soft.win_rates.discrete_win_rate.value == pytest.approx(0.5)
