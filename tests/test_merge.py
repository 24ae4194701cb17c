"""Merging stores (issue #21, part 3): ``llm-judge merge STORE... --into STORE`` joins the stores
of a study's shards into one run that summarises and exports as the study run whole; rows are
content-addressed (merging twice changes nothing), conflicts are reported and the target's kept,
a failure never replaces a result, and the sources are never changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from llm_judge.cli import main
from llm_judge.merge import merge_stores
from llm_judge.store import MIGRATIONS, Store
from llm_judge.study import load_run, run_study, summarize
from llm_judge.study.export import export_rows
from llm_judge.study.shard import Shard
from llm_judge.study.summary import summarize_run

from .test_old_store import EXPECTED, assert_same, canonical, old
from .test_shards import run_shards, script, study


def reading(path: Path, run_id: str) -> dict:
    """What the reading side computes of a run: its summary and its exports (CSV and JSONL rows as
    a set: their order is the order items were linked in; verdict records in their order)."""
    store = Store(path)
    try:
        run = load_run(store, run_id)
        rows = {fmt: sorted(canonical(r) for r in export_rows(run, fmt)) for fmt in ("csv", "jsonl")}
        return {"summary": json.loads(json.dumps(summarize_run(run).to_dict())), **rows,
                "verdicts": export_rows(run, "verdicts")}
    finally:
        store.close()


def whole(tmp_path) -> Path:
    """The study run whole, in one process, one call at a time."""
    script()
    store = Store(tmp_path / "whole.db")
    run_study(study(), store, concurrency=1)
    store.close()
    return tmp_path / "whole.db"


def shards(tmp_path, count: int = 3) -> list[Path]:
    stores = run_shards(tmp_path, count)
    for s in stores:
        s.close()
    return [s.path for s in stores]


def dump(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def edit(path: Path, copy: Path, sql: str, *args) -> Path:
    """A copy of the store at ``path`` with one statement applied."""
    shutil.copyfile(path, copy)
    db = sqlite3.connect(copy)
    with db:
        assert db.execute(sql, args).rowcount >= 1
    db.close()
    return copy


def a_judgment(path: Path, kind: str = "pairwise") -> sqlite3.Row:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM judgments WHERE kind=? AND status='scored' ORDER BY key LIMIT 1",
                          (kind,)).fetchone()
    finally:
        db.close()


# --- one run, as it was made whole -----------------------------------------------------------------

def test_three_shards_merged_read_as_the_study_run_whole(tmp_path):
    reference = reading(whole(tmp_path), study().run_id())
    paths = shards(tmp_path)
    result = merge_stores(paths, tmp_path / "merged.db")
    assert result.conflicts == [] and result.added["runs"] == 1
    got = reading(tmp_path / "merged.db", study().run_id())
    assert_same(got["summary"], reference["summary"], "the merged run's summary")
    for fmt in ("csv", "jsonl", "verdicts"):
        assert got[fmt] == reference[fmt], fmt
    merged = Store(tmp_path / "merged.db")
    assert [r[0] for r in merged.db.execute("SELECT name FROM schema_migrations ORDER BY rowid")] == \
        [fn.__name__ for fn in MIGRATIONS]  # a new file, created with every migration
    assert load_run(merged, study().run_id()).manifest["shards"] == {"of": 3, "done": [1, 2, 3]}


def test_the_target_may_be_one_of_the_shards_stores(tmp_path, capsys):
    reference = reading(whole(tmp_path), study().run_id())
    paths = shards(tmp_path)
    assert main(["merge", *map(str, paths), "--into", str(paths[0])]) == 0
    out = capsys.readouterr()
    assert f"skipped {paths[0]}: it is the target" in out.err and "0 conflicts" in out.out
    assert_same(reading(paths[0], study().run_id())["summary"], reference["summary"], "merged into a shard's store")


def test_the_manifests_shard_lists_are_joined_and_a_run_is_partial_until_all_are_there(tmp_path):
    s1, s2, s3 = shards(tmp_path)
    target = tmp_path / "merged.db"
    merge_stores([s3, s1], target)
    store = Store(target)
    assert load_run(store, study().run_id()).manifest["shards"] == {"of": 3, "done": [1, 3]}
    assert summarize(store, study().run_id()).status == "partial"
    merge_stores([s2], target)
    assert summarize(store, study().run_id()).status == "done"


# --- content-addressed ----------------------------------------------------------------------------

def test_merging_again_or_overlapping_shards_changes_nothing(tmp_path):
    paths = shards(tmp_path)
    target = tmp_path / "merged.db"
    merge_stores(paths, target)
    before = dump(target)
    again = merge_stores(paths, target)
    assert (again.added, again.replaced, again.conflicts) == ({}, {}, [])
    assert dump(target) == before
    # shard 2 made again on another machine: other timings and creation times, the same content
    script()
    other = Store(tmp_path / "other.db")
    run_study(study(), other, shard=Shard(2, 3))
    other.close()
    overlap = merge_stores([tmp_path / "other.db"], target)
    assert (overlap.added, overlap.replaced, overlap.conflicts) == ({}, {}, [])
    assert dump(target) == before


def test_a_conflicting_row_is_reported_and_the_targets_kept(tmp_path, capsys):
    paths = shards(tmp_path)
    target = tmp_path / "merged.db"
    merge_stores(paths, target)
    row = a_judgment(paths[0])
    verdict = json.loads(row["verdict"])
    flipped = {**verdict, "winner": {"A": "B", "B": "A"}.get(verdict["winner"], "A")}
    edited = edit(paths[0], tmp_path / "edited.db", "UPDATE judgments SET verdict=? WHERE key=?",
                  json.dumps(flipped, sort_keys=True), row["key"])
    before = dump(target)
    assert main(["merge", str(edited), "--into", str(target)]) == 1
    out = capsys.readouterr()
    assert out.out.strip().endswith("1 conflicts (the target's rows kept)")
    assert f"conflict: judgments {row['key']} in {edited} differs in verdict" in out.err
    assert dump(target) == before  # the target's verdict stays
    assert main(["merge", str(edited), "--into", str(target), "--json"]) == 1
    listed = json.loads(capsys.readouterr().out)["conflicts"]
    assert listed == [{"table": "judgments", "key": row["key"], "source": str(edited), "detail": "differs in verdict"}]


def test_runs_of_one_id_with_other_configurations_conflict(tmp_path):
    s1, s2, _ = shards(tmp_path)
    run_id = study().run_id()
    config = json.loads(sqlite3.connect(s2).execute("SELECT config FROM runs").fetchone()[0])
    edited = edit(s2, tmp_path / "edited.db", "UPDATE runs SET config=?",
                  json.dumps({**config, "n_ctx": config["n_ctx"] * 2}))
    target = tmp_path / "merged.db"
    merge_stores([s1], target)
    items = len(Store(target).items(run_id, repeat=None))
    result = merge_stores([edited], target)
    assert [(c.table, c.key) for c in result.conflicts] == [("runs", run_id)]
    assert "run_items" not in result.added and len(Store(target).items(run_id, repeat=None)) == items


def test_a_failure_never_replaces_a_result_and_a_result_replaces_a_failure(tmp_path):
    s1 = shards(tmp_path)[0]
    judged, answered = a_judgment(s1), sqlite3.connect(s1).execute("SELECT key FROM generations LIMIT 1").fetchone()[0]
    failed = edit(s1, tmp_path / "failed.db", "UPDATE judgments SET status='failed', verdict=NULL, raw=NULL, "
                  "error='server down' WHERE key=?", judged["key"])
    db = sqlite3.connect(failed)
    with db:
        db.execute("UPDATE generations SET status='failed', text=NULL, error='down' WHERE key=?", (answered,))
    db.close()
    ok_first = tmp_path / "ok-first.db"
    merge_stores([s1], ok_first)
    result = merge_stores([failed], ok_first)
    assert (result.added, result.replaced, result.conflicts) == ({}, {}, [])
    assert Store(ok_first).judgment(judged["key"]).status == "scored"
    assert Store(ok_first).generation(answered) is not None
    failed_first = tmp_path / "failed-first.db"
    merge_stores([failed], failed_first)
    result = merge_stores([s1], failed_first)
    assert result.replaced == {"judgments": 1, "generations": 1} and result.conflicts == []
    store = Store(failed_first)
    assert store.judgment(judged["key"]).verdict is not None and store.generation(answered) is not None


def test_the_sources_are_opened_read_only_and_never_changed(tmp_path):
    paths = shards(tmp_path)
    oldcopy = tmp_path / "old.db"
    shutil.copyfile(old.DB, oldcopy)
    sources = [*paths, oldcopy]

    def digests():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir() if p.is_file()}
    before = digests()
    merge_stores(sources, tmp_path / "merged.db")
    after = digests()
    assert {n: d for n, d in after.items() if not n.startswith("merged")} == before


def test_an_old_format_store_merges_and_reads_as_it_did(tmp_path):
    oldcopy = tmp_path / "old.db"
    shutil.copyfile(old.DB, oldcopy)
    target = tmp_path / "merged.db"
    result = merge_stores([oldcopy], target)
    assert result.conflicts == [] and result.added["runs"] == len(EXPECTED["run_ids"])
    store = Store(target)
    for name, run_id in EXPECTED["run_ids"].items():
        got = json.loads(json.dumps(summarize(store, run_id).to_dict()))
        assert_same(got, EXPECTED["runs"][name]["summary"], f"{name}: summary after a merge")
    source = sqlite3.connect(oldcopy)
    for table in ("votes", "judge_cards", "generations", "judgments", "run_items"):  # every row came along
        assert store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == \
            source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, table
    source.close()
    again = merge_stores([oldcopy], target)
    assert (again.added, again.replaced, again.conflicts) == ({}, {}, [])


# --- bad input ------------------------------------------------------------------------------------

def _one_line_error(capsys, args: list[str], says: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err, err


def test_a_file_that_is_not_an_llm_judge_store_is_one_line(tmp_path, capsys):
    text = tmp_path / "notes.db"
    text.write_text("not a database, just text\n" * 100)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    target = str(tmp_path / "merged.db")
    _one_line_error(capsys, ["merge", str(text), "--into", target], "is not an llm-judge store")
    _one_line_error(capsys, ["merge", str(other), "--into", target], "is not an llm-judge store")
    _one_line_error(capsys, ["merge", str(tmp_path / "missing.db"), "--into", target], "no store at")


def test_a_store_named_twice_is_one_line(tmp_path, capsys):
    s1 = shards(tmp_path, 1)[0]
    _one_line_error(capsys, ["merge", str(s1), str(tmp_path / "." / s1.name), "--into", str(tmp_path / "m.db")],
                    "is named twice")


def test_merge_needs_a_target(tmp_path, capsys):
    _one_line_error(capsys, ["merge", str(tmp_path / "a.db")], "--into")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_merged_exports_hold_every_row_once(tmp_path, fmt):
    paths = shards(tmp_path)
    merge_stores(paths, tmp_path / "merged.db")
    rows = reading(tmp_path / "merged.db", study().run_id())[fmt]
    assert len(rows) == len(set(rows)) > 0
