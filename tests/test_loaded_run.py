"""The reading side loads a run once: summary, exports, votes' agreement and report are pure
functions of a ``LoadedRun`` (computed with the store closed, or with no store at all), and the
store's typed items keep each verdict in its item's labels, criteria called "A" or "B" included."""

import csv
import io
import json
import random
import sqlite3

import pytest

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.present.report import render_html, render_markdown, tables
from llm_judge.prompts import PromptItem
from llm_judge.records import Grade, Juror, Probabilities, Shown, Verdict
from llm_judge.store import ItemLink, RunItem, Store
from llm_judge.study import StudyConfig, export_run, run_study, summarize, verdict_records
from llm_judge.study.export import export_rows, run_records
from llm_judge.study.loaded import LoadedRun, RunCandidate, RunPrompt, Vote, load_run, pair_rows
from llm_judge.study.summary import summarize_run
from llm_judge.testing import fake
from llm_judge.votes import agreement, cast, next_item, run_agreement

from .conftest import prefers


def config(**kw):
    cands = {"good": Candidate("fake:good", make_sampling("p1")), "bad": Candidate("fake:bad", make_sampling("p2"))}
    prompts = [PromptItem("1", "q one?", category="maths"), PromptItem("2", "q two?", category="prose"),
               PromptItem("3", "q three?", followups=("and then?",))]
    return StudyConfig(prompts=prompts, candidates=cands, judge="fake:judge",
                       judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None), **kw)


def script():
    fake.named("good").responder = lambda m, s, sch: "GOOD and long answer " * 3
    fake.named("bad").responder = lambda m, s, sch: "meh"
    fake.named("judge").responder = prefers("GOOD")


def read_back(path, fmt):
    text = path.read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else [json.loads(x) for x in text.splitlines()]


def test_a_run_read_once_gives_the_same_summary_exports_report_and_agreement_with_the_store_closed(tmp_path):
    script()
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(mode="both"), store)
    for side in ("left", "right", "tie"):
        cast(store, next_item(store, run_id, random.Random(1)), side, voter=side)
    summary = summarize(store, run_id, n_boot=50)
    expected = {"summary": summary.to_dict(), "records": verdict_records(store, run_id),
                "markdown": render_markdown(store, summary), "html": render_html(store, summary),
                "agreement": json.dumps(agreement(store, run_id), default=vars, sort_keys=True)}
    for fmt in ("csv", "jsonl"):
        export_run(store, run_id, tmp_path / f"r.{fmt}", fmt)
    run = load_run(store, run_id[:8])  # a prefix names the run, as everywhere
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):  # nothing below could read the store
        store.db.execute("SELECT 1")
    mine = summarize_run(run, n_boot=50)
    assert mine.to_dict() == expected["summary"] and mine.run_id == run_id
    assert run_records(run) == expected["records"]
    assert render_markdown(run, mine) == expected["markdown"] and render_html(run, mine) == expected["html"]
    assert json.dumps(run_agreement(run), default=vars, sort_keys=True) == expected["agreement"]
    assert run_agreement(run)["votes"] == 3
    for fmt in ("csv", "jsonl"):
        rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in export_rows(run, fmt)]
        got = rows if fmt == "csv" else [json.loads(json.dumps(r, ensure_ascii=False)) for r in export_rows(run, fmt)]
        assert got == read_back(tmp_path / f"r.{fmt}", fmt)


def item(kind, labels, order, verdict=None, *, prompt="1", text=None, turn=1) -> RunItem:
    return RunItem(f"{kind}:{prompt}:{'|'.join(labels)}:{order}", prompt, kind, labels, order, 0, turn, "k",
                   status="ok" if kind == "generation" else "scored", raw="{}", verdict=verdict, text=text)


def hand_built() -> LoadedRun:
    """Two prompts, x against y: y wins both orders on prompt 1; the judge follows the position on 2."""
    crit = {"A": {"A": 2, "B": 5}}  # a criterion called "A": y (B) scored 5
    items = (item("generation", ("x",), "-", text="short"), item("generation", ("y",), "-", text="a longer one"),
             item("generation", ("x",), "-", prompt="2", text="x2"), item("generation", ("y",), "-", prompt="2", text="y2"),
             item("pairwise", ("x", "y"), "AB", Verdict("B", crit)), item("pairwise", ("x", "y"), "BA", Verdict("B", crit)),
             item("pairwise", ("x", "y"), "AB", Verdict("A", crit), prompt="2"),
             item("pairwise", ("x", "y"), "BA", Verdict("B", crit), prompt="2"))
    config = {"mode": "pairwise", "judge": "fake:judge", "criteria": [["A", "accurate"]], "scale": [1, 5],
              "baseline": None, "candidates": {"x": {"spec": "fake:x"}, "y": {"spec": "fake:y"}}}
    return LoadedRun("hand", "done", config, {}, (RunPrompt("1", "q1?"), RunPrompt("2", "q2?")),
                     (RunCandidate("x", "fake:x", {"temperature": 0.7, "min_p": 0.1}),
                      RunCandidate("y", "fake:y", {"temperature": 0.7, "min_p": 0.1})), items,
                     votes=(Vote("1", "y", "x", "y", "A", "ann"),))


def test_a_hand_built_run_is_summarised_reported_and_exported_with_no_store_at_all():
    run = hand_built()
    s = summarize_run(run, n_boot=20)
    pair = s.pairwise.pairs["x vs y"]
    assert (pair.wins, pair.ties) == ({"x": 0, "y": 1}, 1)  # prompt 2: the orders disagree, a tie
    assert s.pairwise.diagnostics.position_consistency["agreeing"] == 1
    records = run_records(run)
    assert [(r["id"], r["verdict"], r["verdict_swapped"]) for r in records] == [("1", "B", "B"), ("2", "A", "B")]
    assert records[0]["human"] == "B" and records[0]["lengths"] == [5, 12]  # y's vote, in the pair's labels
    md = render_markdown(run, s)
    assert "# llm-judge run hand" in md and any(t.startswith("Pairwise verdicts") for t, _, _ in tables(s))
    assert "x vs y (BA): winner B" in render_html(run, s)
    rows = export_rows(run, "csv")
    assert [json.loads(r["verdict"])["scores"] for r in rows if r["kind"] == "pairwise"] == [{"A": {"A": 2, "B": 5}}] * 4


def test_a_pair_stored_the_other_way_round_is_read_in_the_runs_orientation():
    """An item whose labels are (y, x) is the pair (x, y) shown the other way: its order reversed,
    its verdict relabelled, criteria called "A" and "B" kept by name."""
    v = Verdict("A", {"A": {"A": 4, "B": 1}, "B": {"A": 3, "B": 2}}, "y won",
                Probabilities({"A": 0.8, "B": 0.1, "tie": 0.1}), (Juror("j", "A"),))
    rows = pair_rows([item("pairwise", ("y", "x"), "AB", v)])
    assert [(r.unit, r.pair) for r in rows] == [("1", ("x", "y"))]
    ab, ba = rows[0].by_order
    assert ab is None and ba == v.swapped()
    assert ba.winner == "B" and ba.scores == {"A": {"B": 4, "A": 1}, "B": {"B": 3, "A": 2}}  # y (B) kept its 4 and 3
    assert ba.probabilities.winner["B"] == 0.8 and ba.jurors[0].winner == "B"


def test_a_verdict_shown_second_first_is_read_in_the_items_labels_with_criteria_named_a_and_b(tmp_path):
    store = Store(tmp_path / "s.db")
    store.create_run("r", {}, {}, [], {})
    shown = Verdict("A", {"A": {"A": 5, "B": 1}, "B": {"A": 4, "B": 2}}, "the first shown is better")
    link = ItemLink("r", "pairwise:1:x|y:BA", "1", "pairwise", ("x", "y"), "BA")
    store.put_judgment("k", "pairwise", "fake:judge", "t", "BA", status="scored", raw="{}", verdict=shown, link=link)
    stored = store.db.execute("SELECT verdict FROM judgments WHERE key='k'").fetchone()[0]
    assert stored == ('{"justification": "the first shown is better", "scores": {"A": {"A": 5, "B": 1}, '
                      '"B": {"A": 4, "B": 2}}, "winner": "A"}')  # as shown, ints as ints
    assert store.judgment("k").verdict == shown and Shown(store.judgment("k").verdict, "BA").in_labels() == shown.swapped()
    [got] = store.items("r")
    assert got.verdict.winner == "B"  # y (B) was shown first and won
    assert got.verdict.scores == {"A": {"A": 1, "B": 5}, "B": {"A": 2, "B": 4}}  # the criteria keep their names


@pytest.mark.parametrize("kind, text", [
    ("pairwise", '{"justification": "", "scores": {}, "winner": "tie", "weighted": {"scores": {}}}'),
    ("pairwise", '{"jurors": [{"error": null, "judge": "a", "weighted": {"winner": {"A": 1.0, "B": 0.0, "tie": 0.0}}, '
                 '"winner": "A"}, {"error": "bad", "judge": "b", "winner": null}], "justification": "a: A; b: unscored", '
                 '"scores": {"R": {"A": 4.0, "B": 2.0}}, "weighted": {"winner": {"A": 1.0, "B": 0.0, "tie": 0.0}}, '
                 '"winner": "A"}'),
    ("single", '{"justification": "j", "scores": {"R": 4, "S": 5}, "total": 9, "weighted": {"scores": {"R": 3.9}}}'),
    ("single", '{"jurors": [{"error": null, "judge": "a", "total": 9, "winner": null}], "justification": "a: 9", '
               '"scores": {"R": 4.5}, "total": 4.5}'),
])
def test_a_stored_verdict_read_and_written_again_is_the_same_bytes(tmp_path, kind, text):
    store = Store(tmp_path / "s.db")
    store.db.execute("INSERT INTO judgments (key, kind, judge_spec, template_version, display_order, status, verdict, "
                     "created_at) VALUES ('old', ?, 'j', 't', 'AB', 'scored', ?, 0)", (kind, text))
    verdict = store.judgment("old").verdict
    assert isinstance(verdict, Verdict if kind == "pairwise" else Grade)
    store.put_judgment("new", kind, "j", "t", "AB", status="scored", verdict=verdict)
    again = store.db.execute("SELECT verdict FROM judgments WHERE key='new'").fetchone()[0]
    assert again == json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
