import json
import os
import sqlite3
import subprocess
import sys

import pytest

from llm_judge import LLMJudgeError, make_sampling, parse_criteria
from llm_judge.analyze import analyze, read_verdicts
from llm_judge.cli import main
from llm_judge.compare import Candidate
from llm_judge.present.report import render_html, render_markdown
from llm_judge.prompts import load_prompts
from llm_judge.store import MIGRATIONS, Store
from llm_judge.study import StudyConfig, export_run, run_study, summarize
from llm_judge.testing import fake

from .conftest import prefers, shared_file, within


def config(mode="both", n=3, **kw):
    cands = {"good": Candidate("fake:good", make_sampling("p1")), "bad": Candidate("fake:bad", make_sampling("p2"))}
    return StudyConfig(prompts=load_prompts("seed-10", limit=n), candidates=cands, judge="fake:judge",
                       judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None), mode=mode, **kw)


def script():
    fake.named("good").responder = lambda m, s, sch: "GOOD and long answer " * 3
    fake.named("bad").responder = lambda m, s, sch: "meh"
    fake.named("judge").responder = prefers("GOOD")


def test_migrations_on_blank_and_existing_db(tmp_path):
    store = Store(tmp_path / "s.db")
    names = [r[0] for r in store.db.execute("SELECT name FROM schema_migrations ORDER BY rowid")]
    assert names == [fn.__name__ for fn in MIGRATIONS] and names[0] == "m001_initial"
    assert store.migrate() == []  # nothing left to apply
    store.close()
    again = Store(tmp_path / "s.db")  # reopening applies nothing twice
    assert [r[0] for r in again.db.execute("SELECT name FROM schema_migrations ORDER BY rowid")] == names
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_study_results_and_statistics(tmp_path):
    script()
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(), store)
    s = summarize(store, run_id).to_dict()
    assert s["status"] == "done" and s["prompts"] == 3
    assert s["single"]["good"]["total"]["value"] == 12 and s["single"]["bad"]["total"]["value"] == 6
    pair = s["pairwise"]["pairs"]["bad vs good"]  # pairs are oriented alphabetically
    assert (pair["wins"], pair["ties"]) == ({"bad": 0, "good": 3}, 0)
    assert pair["win_rate"]["good"]["value"] == 1.0 and pair["win_rate"]["good"]["low"] < 0.5
    assert pair["sign_test_p"] == pytest.approx(0.25)
    diag = s["pairwise"]["diagnostics"]
    assert diag["position_consistency"]["rate"] == 1.0 and diag["first_position_wins"]["rate"] == 0.5
    assert diag["longer_answer_wins"]["rate"] == 1.0
    items = store.items(run_id)
    assert len(items) == 3 * 2 + 3 * 2 + 3 * 2  # generations, single grades, pairwise orders
    assert store.integrity() == "ok"


def test_rerun_reuses_everything_and_duplicates_nothing(tmp_path):
    script()
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(), store)
    calls = {n: len(fake.named(n).calls) for n in ("good", "bad", "judge")}
    assert run_study(config(), store) == run_id
    assert {n: len(fake.named(n).calls) for n in calls} == calls
    assert len(store.items(run_id)) == 18
    # a new run over more prompts reuses the cached three
    run_study(config(n=4), store)
    assert len(fake.named("good").calls) == calls["good"] + 1


def test_failures_are_stored_and_retried(tmp_path):
    script()
    state = {"fail": True}

    def flaky(m, s, sch):
        if state["fail"]:
            raise LLMJudgeError("server down")
        return "meh"
    fake.named("bad").responder = flaky
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(mode="single"), store)
    assert summarize(store, run_id).to_dict()["status"] == "incomplete"
    failed = store.db.execute("SELECT COUNT(*) FROM generations WHERE status='failed'").fetchone()[0]
    assert failed == 3
    state["fail"] = False
    run_study(config(mode="single"), store)
    s = summarize(store, run_id).to_dict()
    assert s["status"] == "done" and s["single"]["bad"]["graded"] == 3


def test_unreadable_verdicts_are_unscored(tmp_path):
    script()
    fake.named("judge").responder = lambda m, s, sch: "I cannot decide"
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(mode="single"), store)
    s = summarize(store, run_id).to_dict()
    assert s["single"]["good"]["graded"] == 0 and s["single"]["good"]["unscored"] == 3
    assert s["single"]["good"]["total"]["value"] is None


def test_report_and_exports(tmp_path):
    script()
    store = Store(tmp_path / "s.db")
    run_id = run_study(config(), store)
    summary = summarize(store, run_id)
    page = render_html(store, summary)
    assert page.count("<svg") == 3 and "Total score per prompt" in page and "GOOD and long answer" in page
    assert "<script" not in page and "http" not in page.split("<body>")[1].split("xmlns")[0]
    md = render_markdown(store, summary)
    assert "| good |" in md
    n = export_run(store, run_id, tmp_path / "v.jsonl", "verdicts")
    assert n == 3
    recs = read_verdicts(tmp_path / "v.jsonl")
    assert all((r["model_a"], r["model_b"], r["verdict"], r["verdict_swapped"]) == ("bad", "good", "B", "B") for r in recs)
    assert analyze(recs)["win_rates"]["bad vs good"].wins == {"bad": 0, "good": 3}
    assert export_run(store, run_id, tmp_path / "r.csv", "csv") == 18


def test_llmbar_agreement_matches_hand_computation(tmp_path):
    data = json.loads(shared_file("data", "llmbar-natural", "dataset.json").read_text())
    # a scripted judge: always the first shown (A), and A again when swapped, i.e. B in original labels
    rows = [{"id": str(i), "model_a": "output_1", "model_b": "output_2", "verdict": "A", "verdict_swapped": "B",
             "human": "A" if d["label"] == 1 else "B"} for i, d in enumerate(data)]
    path = tmp_path / "llmbar.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = analyze(read_verdicts(path))
    n_a = sum(d["label"] == 1 for d in data)
    ha = result["human_agreement"]["with_ties"]
    assert ha["verdict"]["accuracy"] == pytest.approx(n_a / len(data))
    assert ha["verdict_swapped"]["accuracy"] == pytest.approx(1 - n_a / len(data))
    assert ha["both_orders_correct"]["rate"] == 0.0
    assert ha["verdict"]["kappa"] == pytest.approx(0.0)  # a constant verdict carries no information
    assert result["position_consistency"]["rate"] == 0.0
    assert result["win_rates"]["output_1 vs output_2"].ties == len(data)


def test_cli_study_errors(capsys, tmp_path):
    db = str(tmp_path / "s.db")
    assert main(["report", "nope", "--db", db]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    (tmp_path / "junk.db").write_text("this is not sqlite" * 100)
    assert main(["runs", "--db", str(tmp_path / "junk.db")]) == 2
    assert "cannot use" in capsys.readouterr().err
    assert main(["run", "--candidate", "fake:a", "--judge", "fake:j", "--mode", "pairwise", "--db", db]) == 2
    assert "at least two candidates" in capsys.readouterr().err
    script()
    assert main(["run", "--candidate", "fake:good", "--candidate", "fake:bad", "--judge", "fake:judge", "--limit", "1",
                 "--db", db, "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["report", run_id, "--html", "/no/such/dir/r.html", "--db", db]) == 2
    assert "cannot write the report" in capsys.readouterr().err
    assert main(["report", run_id, "--html", str(tmp_path / "r.html"), "--md", str(tmp_path / "r.md"), "--db", db]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>") and (tmp_path / "r.md").exists()
    assert main(["report", run_id, "--md", str(tmp_path / "b.md"), "--bootstrap", "200", "--db", db]) == 0
    assert "200 resamples" in (tmp_path / "b.md").read_text()  # the written report uses --bootstrap
    assert main(["runs", "--db", db]) == 0 and run_id in capsys.readouterr().out


@pytest.mark.model
def test_kill_minus_9_and_resume_real_process(tmp_path):
    """A real study process is SIGKILLed mid-run; the same command resumes to exactly one result per item."""
    db = tmp_path / "kill.db"
    exe = os.path.join(os.path.dirname(sys.executable), "llm-judge")
    cmd = [exe, "run", "--prompts", "seed-10", "--limit", "3", "--candidate", "embedded@p1", "--candidate",
           "embedded@p2", "--max-tokens", "24", "--judge-max-tokens", "200", "--db", str(db), "--quiet", "--json"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def graded() -> int:
        try:
            with sqlite3.connect(db, timeout=1) as c:
                return c.execute("SELECT COUNT(*) FROM run_items WHERE kind='single'").fetchone()[0]
        except sqlite3.Error:  # not created yet, or busy
            return 0

    in_time = within(300, lambda: proc.poll() is not None or graded() >= 1, poll=0.3)
    if proc.poll() is None:
        proc.kill()  # at its first stored grade (or, hung, at the bound)
    proc.wait()
    assert in_time, "no grade was stored within the bound"
    assert proc.returncode == -9, "the study finished before it could be killed"
    with sqlite3.connect(db) as c:
        before = set(c.execute("SELECT result_key FROM run_items"))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = c.execute("SELECT kind, COUNT(*) FROM run_items GROUP BY kind").fetchall()
        after = set(c.execute("SELECT result_key FROM run_items"))
        assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert dict(rows) == {"generation": 6, "single": 6}
    assert before <= after  # nothing finished before the kill was lost or redone under another key
    assert summary["status"] == "done"


def test_items_sharing_a_key_share_one_call_and_progress_reaches_its_total(tmp_path):
    script()
    same = Candidate("fake:good", make_sampling("p1"))
    cfg = StudyConfig(prompts=load_prompts("seed-10", limit=3), candidates={"one": same, "two": same},
                      judge="fake:judge", judge_sampling=make_sampling("greedy"), criteria=parse_criteria(None),
                      mode="single")
    seen = []
    store = Store(tmp_path / "s.db")
    run_id = run_study(cfg, store, progress=lambda stage, done, total, flight=0: seen.append((stage, done, total)))
    assert len(fake.named("good").calls) == 3 and len(fake.named("judge").calls) == 3  # one call per key
    assert len(store.items(run_id, "generation")) == 6 and len(store.items(run_id, "single")) == 6
    last = {stage: (done, total) for stage, done, total in seen}
    assert last == {"generating": (6, 6), "judging": (6, 6)}
