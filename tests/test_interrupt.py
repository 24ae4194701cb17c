"""Interruptions and concurrency with real processes: kill -9 a study at 10 random points and
resume each time; read a run while another process writes it."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from llm_judge.store import Store
from llm_judge.study import summarize

from .conftest import within

EXE = os.path.join(os.path.dirname(sys.executable), "llm-judge")
N_PROMPTS = 15
TOTAL_ITEMS = N_PROMPTS * 2 + N_PROMPTS * 2 + N_PROMPTS * 2  # generations, single grades, pairwise orders


@pytest.fixture
def study_cmd(test_server, tmp_path):
    base = test_server("--delay", "0.08")
    config = tmp_path / "config.toml"
    config.write_text(f'[models.srv]\nspec = "openai:test@{base}"\nconcurrency = 2\n')
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"Question {i}: how does item {i} work?" for i in range(N_PROMPTS)))
    db = tmp_path / "study.db"
    cmd = [EXE, "--config", str(config), "run", "--prompts", str(prompts), "--candidate", "srv@p1",
           "--candidate", "srv@p2#hot", "--judge", "srv", "--mode", "both", "--db", str(db), "--quiet", "--json"]
    return cmd, db


def linked(db) -> set[tuple[str, str]]:
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return set(c.execute("SELECT item, result_key FROM run_items"))
    except sqlite3.OperationalError:
        return set()  # not created yet


def test_kill_9_at_ten_random_points_then_resume(study_cmd):
    cmd, db = study_cmd
    rng = random.Random(7)
    kept: set = set()
    kills = []
    for target in sorted(rng.sample(range(2, TOTAL_ITEMS - 2), 10)):  # ten points spread over the run
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        within(60, lambda p=proc, n=target: p.poll() is not None or len(linked(db)) >= n, poll=0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the study ended before it could be killed"
        now = linked(db)
        assert kept <= now  # nothing that had finished was lost or re-keyed
        kills.append(len(now))
        kept = now
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "done"
    final = linked(db)
    assert kept <= final
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        items = [r[0] for r in c.execute("SELECT item FROM run_items")]
    assert len(items) == len(set(items)) == TOTAL_ITEMS  # exactly one result per item
    assert len(set(kills)) >= 5, kills  # the kills landed at different points of the run
    print(f"kill -9 points (items done): {kills}; final {len(final)}/{TOTAL_ITEMS}")


def test_reading_a_run_while_another_process_writes_it(study_cmd):
    cmd, db = study_cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reads, last = 0, -1
    try:
        while proc.poll() is None:
            if not db.exists():
                time.sleep(0.05)
                continue
            store = Store(db)
            try:
                rows = store.db.execute("SELECT id FROM runs").fetchall()
                if rows:
                    s = summarize(store, rows[0]["id"], n_boot=20).to_dict()  # what the page shows, mid-run
                    broken = store.db.execute("""
                        SELECT COUNT(*) FROM run_items i LEFT JOIN generations g ON g.key=i.result_key
                        LEFT JOIN judgments j ON j.key=i.result_key
                        WHERE (g.key IS NULL AND j.key IS NULL) OR g.status='failed' OR j.status='failed'
                    """).fetchone()[0]
                    assert broken == 0  # every linked item has its finished result
                    count = store.db.execute("SELECT COUNT(*) FROM run_items").fetchone()[0]
                    assert count >= last
                    last = count
                    assert s["prompts"] == N_PROMPTS
                    reads += 1
            finally:
                store.close()
            time.sleep(0.05)
    finally:
        proc.wait(60)
    assert proc.returncode == 0, proc.stderr.read()
    assert reads >= 5 and last == TOTAL_ITEMS
