"""Many candidates: a leaderboard with rank ranges, the win-rate heat map, per-category scores and
a report that stays readable at scale."""

import json
import sys
from pathlib import Path

from llm_judge import make_sampling, parse_criteria
from llm_judge.cli import main
from llm_judge.compare import Candidate
from llm_judge.present.report import MAX_DRILLDOWN, render_html, tables
from llm_judge.prompts import PromptItem
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, summarize
from llm_judge.testing import fake

from .conftest import prefers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


def three_candidate_study(tmp_path, mode="pairwise"):
    for name, text in (("best", "GOOD GOOD answer"), ("mid", "GOOD answer"), ("worst", "meh")):
        fake.named(name).responder = lambda m, s, sch, t=text: t
    fake.named("judge").responder = prefers("GOOD GOOD")
    prompts = [PromptItem(f"q{i}", f"question {i}?", category=("math", "writing", "coding")[i % 3]) for i in range(9)]
    cfg = StudyConfig(prompts=prompts, candidates={n: Candidate(f"fake:{n}", make_sampling("p1"))
                                                   for n in ("best", "mid", "worst")},
                      judge="fake:judge", judge_sampling=make_sampling(None, temperature=0),
                      criteria=parse_criteria(None), mode=mode)
    store = Store(tmp_path / "s.db")
    return store, run_study(cfg, store)


def test_a_leaderboard_with_rank_ranges_heat_map_and_categories(tmp_path):
    store, run_id = three_candidate_study(tmp_path, mode="both")
    s = summarize(store, run_id, n_boot=200)
    bt = s.pairwise.bradley_terry["ratings"]
    assert bt["best"]["rank"] == 1
    # every prompt's verdicts alike: resamples all the same claim no rank range (tests/test_estimability.py)
    assert all(v["rank_range"] is None and v["reason"].startswith("every resample alike") for v in bt.values())
    assert set(s.categories) == {"math", "writing", "coding"} and s.category_measure == "mean total score"
    assert s.categories["math"]["best"].value == 12
    titles = [t for t, _, _ in tables(s)]
    assert any(t.startswith("Per category") for t in titles)
    page = render_html(store, s)
    assert 'class="chart heatmap"' in page and 'class="chart radar"' in page
    assert "best vs worst: 1.00" in page  # the heat map's cell: row best against column worst


def test_analyze_ranks_three_models_or_more(tmp_path, capsys):
    rows = [{"id": f"{i}-{a}{b}", "model_a": a, "model_b": b, "verdict": "A" if a < b else "B",
             "verdict_swapped": "A" if a < b else "B"}
            for i in range(10) for a, b in (("x", "y"), ("y", "z"), ("x", "z"))]
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["analyze", str(path), "--json"]) == 0
    bt = json.loads(capsys.readouterr().out)["bradley_terry"]["ratings"]
    assert [bt[m]["rank"] for m in "xyz"] == [1, 2, 3]
    assert main(["analyze", str(path)]) == 0
    assert " 1. x: " in capsys.readouterr().out


def test_a_large_study_report_stays_readable(tmp_path):
    from study import synthetic_store

    run_id = synthetic_store(tmp_path / "big.db", n_candidates=6, n_prompts=150)
    store = Store(tmp_path / "big.db")
    s = summarize(store, run_id, n_boot=50)
    page = render_html(store, s)
    assert page.count("<details>") == MAX_DRILLDOWN and f"The first {MAX_DRILLDOWN} of 150 prompts" in page
    assert "Total score per prompt" not in page and 'class="chart heatmap"' in page
    assert s.pairwise.style_control and s.pairwise.pairs["c00 vs c01"].length_controlled
