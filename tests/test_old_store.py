"""A store written by main at c1e8cdf (before the #19 restructuring) is read and reused as is.

``tests/data/store-main-c1e8cdf.db`` and what that code computed from it
(``store-main-c1e8cdf.expected.json``) were written by ``tests/data/make_old_store.py``: summaries,
exports, reports and vote agreement must come out the same (the same structure and types, so ``4``
and ``4.0`` differ, and floats equal to 12 significant digits: numpy's vectorised ``exp`` and ``log``
differ in the last digit between CPUs and releases), the studies' configurations, run ids and
judgment keys must be the same, and running every recorded study again must make no call and
leave every stored generation and judgment byte for byte as it was.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from llm_judge.store import Store
from llm_judge.testing import fake

DATA = Path(__file__).resolve().parent / "data"
_spec = importlib.util.spec_from_file_location("make_old_store", DATA / "make_old_store.py")
old = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(old)
EXPECTED = json.loads(old.EXPECTED.read_text(encoding="utf-8"))
FAKES = ("alpha", "beta", "gamma", "judge", "biased", "weighted", "card")


def canonical(obj) -> str:
    """The JSON text of a value with sorted keys: equal texts mean equal values, ints and floats apart."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


FLOAT_DIGITS = 1e-12  # relative: far above an ULP's 2e-16, far below any change of method or data


def alike(got, recorded) -> bool:
    """The same value as read back from JSON: the same keys, lengths and types (an int is not a
    float, a bool is not an int), equal strings and ints, floats within ``FLOAT_DIGITS`` (NaN to NaN).

    >>> alike({"a": [1, 0.1 + 0.2]}, {"a": [1, 0.3]}), alike(4, 4.0), alike(0.3, 0.3001), alike(float("nan"), float("nan"))
    (True, False, False, True)
    """
    if type(got) is not type(recorded):
        return False
    if isinstance(got, dict):
        return got.keys() == recorded.keys() and all(alike(got[k], recorded[k]) for k in got)
    if isinstance(got, list):
        return len(got) == len(recorded) and all(alike(a, b) for a, b in zip(got, recorded))
    if isinstance(got, float):
        both_nan = math.isnan(got) and math.isnan(recorded)
        return both_nan or math.isclose(got, recorded, rel_tol=FLOAT_DIGITS, abs_tol=FLOAT_DIGITS)
    return got == recorded


def assert_same(got, recorded, what: str) -> None:
    got, recorded = json.loads(canonical(got)), json.loads(canonical(recorded))  # tuples as lists, as stored
    if not alike(got, recorded):
        assert got == recorded, what  # a readable diff where the values differ
        pytest.fail(f"{what}: equal values of other types (an int became a float), or floats apart by more than {FLOAT_DIGITS:g}")


@pytest.fixture
def store_copy(tmp_path) -> Path:
    path = tmp_path / old.DB.name
    shutil.copyfile(old.DB, path)
    return path


def rows(path: Path) -> dict[str, list[tuple]]:
    """Every stored row of a run's content, read with plain sqlite3 (no migration runs): results
    with their rowids; a run's items, prompts and candidates as sets (continuing a run relinks
    its items, ``INSERT OR REPLACE``, which gives them new rowids)."""
    db = sqlite3.connect(path)
    try:
        out = {t: db.execute(f"SELECT rowid, * FROM {t} ORDER BY rowid").fetchall() for t in ("generations", "judgments")}
        for t in ("run_items", "run_prompts", "run_candidates", "votes", "comparisons"):
            out[t] = sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
        return out
    finally:
        db.close()


def exports(store: Store, run_id: str, folder: Path) -> dict:
    """A run's three exports, parsed: CSV rows as dicts, JSONL and verdict files as lists of records."""
    from llm_judge.study import export_run

    out = {}
    for fmt in ("csv", "jsonl", "verdicts"):
        path = folder / f"{run_id}.{fmt}"
        export_run(store, run_id, path, fmt)
        text = path.read_text(encoding="utf-8")
        out[fmt] = list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else [json.loads(x) for x in text.splitlines()]
    return out


def parsed_exports(recorded: dict) -> dict:
    return {fmt: list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else [json.loads(x) for x in text.splitlines()]
            for fmt, text in recorded.items()}


def unordered(exported: dict) -> dict:
    return {fmt: sorted(records, key=canonical) for fmt, records in exported.items()}


def markdown(store: Store, summary) -> str:
    from llm_judge.present.report import render_markdown

    return render_markdown(store, summary)


def reading(store: Store, run_id: str, folder: Path) -> dict:
    """What the reading side computes of one run: summary, exports, report, vote agreement."""
    from llm_judge.study import summarize
    from llm_judge.votes import agreement

    summary = summarize(store, run_id)
    return {"summary": json.loads(json.dumps(summary.to_dict())), "exports": exports(store, run_id, folder),
            "markdown": markdown(store, summary),
            "agreement": json.loads(json.dumps(agreement(store, run_id), default=vars))}


def as_now(markdown: str) -> str:
    """The recorded report with the one deliberate change since: the length-controlled column
    says which form it is (#20: AlpacaEval's minimal form)."""
    from llm_judge.present.report import LC_COLUMN

    return markdown.replace("| length-controlled win rate |", f"| {LC_COLUMN} |")


@pytest.mark.parametrize("name", sorted(EXPECTED["runs"]))
def test_an_old_run_reads_as_the_old_code_read_it(store_copy, tmp_path, name):
    recorded = EXPECTED["runs"][name]
    store = Store(store_copy)
    got = reading(store, recorded["run_id"], tmp_path)
    assert_same(got["summary"], recorded["summary"], f"{name}: summary")
    assert_same(got["exports"], parsed_exports(recorded["exports"]), f"{name}: exports")
    assert got["markdown"] == as_now(recorded["markdown"]), f"{name}: the report's Markdown"
    assert_same(got["agreement"], recorded["agreement"], f"{name}: agreement with the votes")


def test_old_cards_and_comparisons_read_as_stored(store_copy):
    store = Store(store_copy)
    assert_same(store.cards(), EXPECTED["cards"], "judge cards")
    assert_same(store.comparisons(), EXPECTED["comparisons"], "saved comparisons")


@pytest.mark.parametrize("name", sorted(EXPECTED["configs"]))
def test_a_study_has_the_old_configuration_run_id_and_judgment_keys(store_copy, name, prompt_version_before):
    config = old.studies()[name]
    assert_same(config.to_dict(), EXPECTED["configs"][name], f"{name}: StudyConfig.to_dict()")
    assert config.run_id() == EXPECTED["run_ids"][name]
    stored = {r[0] for r in sqlite3.connect(store_copy).execute("SELECT key FROM judgments")}
    for got, recorded in zip(old.key_examples(config), EXPECTED["keys"][name], strict=True):
        assert got["key"] == recorded["key"], f"{name}: judgment_key of {recorded['kind']} {recorded['shown']}"
        assert got["key"] in stored  # the key the old run stored its judgment under


def fake_calls() -> int:
    return sum(len(fake.named(n).calls) for n in FAKES)


def rerun_card(store_path: Path, folder: Path) -> None:
    """``llm-judge judges eval`` again on the card's gold set, as the old store was made."""
    from llm_judge.cli import main

    (folder / old.GOLD_FILE).write_text(json.dumps(old.GOLD))
    here = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["judges", "eval", "--judge", "fake:card", "--set", old.GOLD_FILE, "--verdict-format", "winner",
                     "--db", str(store_path), "--quiet", "--json"]) == 0
    finally:
        os.chdir(here)


def test_running_every_old_study_again_makes_no_call_and_changes_no_stored_row(store_copy, tmp_path,
                                                                            prompt_version_before):
    from llm_judge.study import run_study

    before = rows(store_copy)
    old.script_fakes()
    store = Store(store_copy)
    for name, config in old.studies().items():
        assert run_study(config, store) == EXPECTED["run_ids"][name]
    rerun_card(store_copy, tmp_path)
    assert fake_calls() == 0, [(n, len(fake.named(n).calls)) for n in FAKES if fake.named(n).calls]
    store.close()
    after = rows(store_copy)
    for table in before:
        assert len(after[table]) == len(before[table]), f"{table}: rows added"
        assert after[table] == before[table], f"{table}: a stored row changed"
    statuses = {r[0]: r[1] for r in sqlite3.connect(store_copy).execute("SELECT id, status FROM runs")}
    assert statuses == dict.fromkeys(EXPECTED["run_ids"].values(), "done")


def test_an_old_study_run_under_todays_prompt_is_a_new_run_judged_again_and_the_old_rows_stay(store_copy):
    """The prompt's version is part of a run's id and of every judgment's key: the same study under
    today's prompt (v4) reuses every stored answer (no candidate is called), asks the judge again, and
    leaves every row of before as it was."""
    from llm_judge.study import run_study

    before = rows(store_copy)
    old.script_fakes()
    store = Store(store_copy)
    name, config = "both", old.studies()["both"]  # single grades and pairwise verdicts, one judge
    assert run_study(config, store) != EXPECTED["run_ids"][name]
    judge_calls = len(fake.named("judge").calls)
    assert judge_calls > 0 and fake_calls() == judge_calls  # only the judge: the answers came from the store
    store.close()
    after = rows(store_copy)
    assert after["generations"] == before["generations"]
    assert after["judgments"][:len(before["judgments"])] == before["judgments"]


def test_an_old_run_continued_reads_the_same(store_copy, tmp_path):
    """Continuing a run relinks its items; what is read from it afterwards is what was read before
    (the same rows: their order follows the order the items were linked in, as it did before #19)."""
    from llm_judge.study import run_study

    old.script_fakes()
    store = Store(store_copy)
    for name, config in old.studies().items():
        run_study(config, store)
        recorded = EXPECTED["runs"][name]
        got = reading(store, recorded["run_id"], tmp_path)
        assert_same(got["summary"], recorded["summary"], f"{name}: summary after a rerun")
        # the exports' rows follow the items' rowids, which relinking renews: the same rows, in another order
        assert_same(unordered(got["exports"]), unordered(parsed_exports(recorded["exports"])),
                    f"{name}: exports after a rerun")
        # so do the report's per-prompt lines (``Store.items`` reads in rowid order)
        assert sorted(got["markdown"].splitlines()) == sorted(as_now(recorded["markdown"]).splitlines()), \
            f"{name}: the report after a rerun"
