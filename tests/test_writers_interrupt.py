"""One writer per run, stored answers never replaced, and Ctrl-C that stops a study (issue #23
points 2 and 7), with real processes and signals, real SQLite and the loopback test server.

The test server's ``--vary`` tags every answer afresh and has each verdict name the tags of the
answers it was shown, so a test reads from the store which answers each verdict judged."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from llm_judge import make_sampling, parse_criteria
from llm_judge.compare import Candidate
from llm_judge.errors import LLMJudgeError
from llm_judge.prompts import load_prompts
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study

from .conftest import free_port, server_stats, within

EXE = os.path.join(os.path.dirname(sys.executable), "llm-judge")
TAG = re.compile(r"vary-[0-9a-f]{8}")


def study_cmd(tmp_path, base: str, judge: str = "judge-a", n: int = 8) -> list[str]:
    """An ``llm-judge run`` of n prompts, two candidates, pairwise, against the server at ``base``
    (with retries enough to get past its injected 500s; their jittered waits vary the timing)."""
    config = tmp_path / "config.toml"
    config.write_text("".join(f'[models.{name}]\nspec = "openai:{name}@{base}"\nconcurrency = 4\nmax_attempts = 12\n'
                              for name in ("srv", "judge-a", "judge-b")))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"Question {i}: how does item {i} work?" for i in range(n)))
    return [EXE, "--config", str(config), "run", "--prompts", str(prompts), "--candidate", "srv@p1",
            "--candidate", "srv@p2#hot", "--judge", judge, "--mode", "pairwise",
            "--db", str(tmp_path / "study.db"), "--quiet", "--json"]


def verdicts_of_other_answers(db, run_id: str) -> list[str]:
    """The run's pairwise items whose stored verdict was given on other answers than the ones the
    run shows (by the tags the judge saw, in the order shown)."""
    store = Store(db)
    try:
        shown = {(g.prompt_id, g.labels[0]): TAG.findall(g.text) for g in store.items(run_id, "generation")}
        wrong = []
        for j in store.items(run_id, "pairwise"):
            labels = j.labels if j.order == "AB" else j.labels[::-1]
            expected = [tag for lab in labels for tag in shown[(j.prompt_id, lab)]]
            if TAG.findall(j.raw) != expected:
                wrong.append(j.item)
        assert len(store.items(run_id, "pairwise")) > 0
        return wrong
    finally:
        store.close()


def run_ids(db) -> list[str]:
    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute("SELECT id FROM runs ORDER BY id")]


def linked(db) -> set[tuple[str, str]]:
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return set(c.execute("SELECT item, result_key FROM run_items"))
    except sqlite3.OperationalError:
        return set()  # not created yet


# --- 2. one writer per run; an answer is never replaced ------------------------------------------

def test_two_processes_on_one_run_one_is_refused_in_one_line_and_every_verdict_is_of_the_answers_shown(
        test_server, tmp_path):
    base = test_server("--vary", "--delay", "0.2", "--fault-rate", "0.3", "--faults", "500")
    cmd = study_cmd(tmp_path, base)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    db = tmp_path / "study.db"
    (run_id,) = run_ids(db)
    assert verdicts_of_other_answers(db, run_id) == []
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refused = next(i for i, p in enumerate(procs) if p.returncode == 2)
    err = outs[refused][1].strip()
    assert err == (f"error: run {run_id} is being written by another process (pid {procs[1 - refused].pid}): wait "
                   "for it to finish (or stop it), then run the same study again to continue it")
    assert json.loads(outs[1 - refused][0])["status"] == "done"
    assert not list(tmp_path.glob("*.lock"))  # the writer removed its lock file
    served = server_stats(base)["ok"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # the lock was let go
    assert again.returncode == 0, again.stderr
    assert server_stats(base)["ok"] == served  # every answer and verdict reused


def test_runs_sharing_answers_at_once_keep_the_first_answer_stored_and_judge_that_one(test_server, tmp_path):
    base = test_server("--vary", "--delay", "0.2")
    # two judges: two runs (no lock between them) asking for the same answers at the same time
    cmds = [study_cmd(tmp_path, base, judge=name) for name in ("judge-a", "judge-b")]
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    db = tmp_path / "study.db"
    ids = run_ids(db)
    assert len(ids) == 2
    assert {run_id: verdicts_of_other_answers(db, run_id) for run_id in ids} == {run_id: [] for run_id in ids}
    with sqlite3.connect(db) as c:  # one answer per prompt and candidate, shared by both runs
        assert c.execute("SELECT COUNT(*) FROM generations WHERE status='ok'").fetchone()[0] == 16


def test_a_stored_answer_is_never_replaced_and_the_one_stored_is_returned(tmp_path):
    store = Store(tmp_path / "s.db")
    put = lambda key, **kw: store.put_generation(key, "spec", {}, "prompt", **kw)  # noqa: E731
    assert put("k", text="first") == "first"
    assert put("k", text="second") == "first"  # another process's answer came later: the first stays
    assert put("k", error="server down") == "first"
    assert store.generation("k")["text"] == "first"
    assert put("f", error="server down") is None
    assert put("f", text="now it answered") == "now it answered"  # a failure is replaced
    assert store.generation("f")["text"] == "now it answered"


def test_a_run_has_one_writer_and_a_killed_writer_leaves_no_lock(tmp_path):
    store = Store(tmp_path / "s.db")
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from llm_judge.store import Store
with Store({str(tmp_path / 's.db')!r}).run_writer("abc123"):
    print("held", flush=True)
    time.sleep(300)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(LLMJudgeError, match=rf"run abc123 is being written by another process \(pid {holder.pid}\)"):
            store.run_writer("abc123").__enter__()
        with store.run_writer("other"):  # another run is free
            pass
    finally:
        holder.kill()
        holder.wait()
    with store.run_writer("abc123"):  # kill -9 took the lock with the process
        with pytest.raises(LLMJudgeError, match=rf"\(pid {os.getpid()}\)"):  # one writer in a process too
            store.run_writer("abc123").__enter__()


# --- 7. Ctrl-C stops a study ---------------------------------------------------------------------

def serve(port: int, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "llm_judge.testing.server", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().startswith("listening on "), "the test server did not start"
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


def test_ctrl_c_stops_a_study_whose_calls_hang_at_once_and_the_rerun_reuses_what_finished(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    # every other call hangs for 300 s (past the client's 120 s timeout): the run stalls on them
    hanging = serve(port, "--fault-rate", "0.5", "--faults", "timeout", "--hang", "300", "--seed", "0")
    cmd = study_cmd(tmp_path, base, n=6)
    db = tmp_path / "study.db"
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        within(60, lambda: proc.poll() is not None or bool(linked(db) and server_stats(base).get("timeout", 0) >= 1))
        assert proc.poll() is None, "the study ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        try:
            err = proc.communicate(timeout=15)[1]  # a generous bound: the hung calls would take minutes
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the study was still running 15 s after Ctrl-C")
        kept = linked(db)
    finally:
        stop(hanging)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert "Traceback" not in err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    healthy = serve(port)  # the same endpoint, answering now
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "done"
        final = linked(db)
        assert kept and kept <= final and len(final) == 24  # 12 answers, 6 prompts x 2 orders judged
        assert server_stats(base)["ok"] == 24 - len(kept)  # what finished before Ctrl-C was reused
    finally:
        stop(healthy)


def test_ctrl_c_ends_the_waits_between_retries_of_the_calls_in_flight(test_server, tmp_path):
    base = test_server("--fault-rate", "1", "--faults", "429", "--retry-after", "30")
    spec = f"openai:test@{base}"
    config = StudyConfig(prompts=load_prompts("seed-10", limit=2), candidates={"x": Candidate(spec, make_sampling("p1"))},
                         judge=spec, judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None))
    store = Store(tmp_path / "s.db")
    before = set(threading.enumerate())

    def ctrl_c_once_both_calls_wait():
        while server_stats(base).get("429", 0) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_once_both_calls_wait, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_study(config, store)
    workers = [t for t in threading.enumerate() if t not in before and t.name.startswith("llm-judge")]
    for t in workers:
        t.join(10)  # the server asked for 30 s between attempts
    assert [t.name for t in workers if t.is_alive()] == []
    assert server_stats(base)["429"] == 2  # and no call was retried after Ctrl-C
    assert store.run(config.run_id())["status"] == "interrupted"
