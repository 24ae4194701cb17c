"""Studies through batches: ``run --batch`` against a real loopback server with OpenAI's files and
batches endpoints and their state machine (``llm_judge.testing.server``), and ``run --batch-files``
with an offline engine's batch run (``llm_judge.testing.run_batch``)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llm_judge.backends.batches import ATTEMPTS, Book, Endpoint, custom_id, read_answer, request_line
from llm_judge.cli import main
from llm_judge.errors import Deferred, LLMJudgeError
from llm_judge.sampling import SamplingParams
from llm_judge.store import Store

from .conftest import server_stats, within

E = Endpoint("openai:m@http://x/v1", "m", "http://x/v1")
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def ok_line(body: dict, text: str = "fine") -> dict:
    return {"custom_id": custom_id(body), "error": None,
            "response": {"status_code": 200, "body": {"choices": [{"message": {"content": text}}]}}}


def error_line(body: dict, status: int | None) -> dict:
    if status is None:
        return {"custom_id": custom_id(body), "response": None, "error": {"code": "batch_expired", "message": "late"}}
    return {"custom_id": custom_id(body), "error": None,
            "response": {"status_code": status, "body": {"error": {"message": "injected"}}}}


# --- the book (no server) --------------------------------------------------------------------------------


def test_a_request_waits_for_its_batch_and_is_answered_from_it():
    book = Book()
    with pytest.raises(Deferred):
        book.answer(E, None, BODY)
    (sent,) = book.take().values()
    assert sent[1] == [request_line(BODY)] and book.take() == {}  # taken once
    book.add(E, [ok_line(BODY)])
    assert book.answer(E, None, BODY).status == 200


def test_one_body_is_one_request_however_many_jobs_ask_it():
    book = Book()
    for _ in range(3):
        with pytest.raises(Deferred):
            book.answer(E, None, dict(BODY))
    (sent,) = book.take().values()
    assert len(sent[1]) == 1


@pytest.mark.parametrize("status", [500, 429, None])
def test_a_failure_worth_retrying_goes_again_until_its_attempts_are_spent(status):
    book = Book()
    for attempt in range(ATTEMPTS):
        with pytest.raises(Deferred):
            book.answer(E, None, BODY)
        assert book.take(), f"attempt {attempt + 1} is sent"
        book.add(E, [error_line(BODY, status)])
    assert book.answer(E, None, BODY).status == status  # final now: the call fails with it


def test_a_refusal_is_final_at_once_and_an_answer_is_never_replaced():
    book = Book()
    other = dict(BODY, temperature=1.0)
    book.add(E, [error_line(BODY, 400), ok_line(other, "first")])
    assert book.answer(E, None, BODY).status == 400
    book.add(E, [ok_line(other, "second")])
    assert book.answer(E, None, other).body["choices"][0]["message"]["content"] == "first"


def test_a_request_no_batch_answers_fails_after_its_attempts_instead_of_going_round_for_ever():
    book = Book()
    for _ in range(ATTEMPTS):
        with pytest.raises(Deferred):
            book.answer(E, None, BODY)
        book.take()  # sent, and the batch's files do not mention it
    answer = book.answer(E, None, BODY)
    assert answer.final and answer.status is None and "no batch answered it" in answer.error


def test_repeats_of_one_body_are_requests_of_their_own():
    from llm_judge.backends.batches import repeat

    book = Book()
    for n in range(3):
        with repeat(n), pytest.raises(Deferred):
            book.answer(E, None, BODY)
    (sent,) = book.take().values()
    assert len({line["custom_id"] for line in sent[1]}) == 3 and all(line["body"] == BODY for line in sent[1])


def test_a_batch_that_failed_as_a_whole_is_not_taken_for_a_refused_response_format():
    """A whole batch's failure is final: the judge's structured-output form is not changed for it
    (a 400 inside a batch would make it try the next form, in another paid batch)."""
    from llm_judge.backends.openai import OpenAIBackend

    book = Book()
    live = OpenAIBackend("openai:j@http://127.0.0.1:9/v1", "j", "http://127.0.0.1:9/v1")
    judge = live.batched(book)
    schema = {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B"]}}}
    with pytest.raises(Deferred):
        judge.generate([{"role": "user", "content": "which?"}], SamplingParams(), schema=schema)
    (sent,) = book.take().values()
    book.fail(judge.endpoint, [line["custom_id"] for line in sent[1]], "the batch b1 failed: line 1: bad")
    with pytest.raises(LLMJudgeError, match="got no answer from its batches: the batch b1 failed") as info:
        judge.generate([{"role": "user", "content": "which?"}], SamplingParams(), schema=schema)
    assert not isinstance(info.value, Deferred) and book.take() == {} and judge.schema_mode is None


def test_request_files_are_named_by_model_server_and_count_so_a_retry_is_a_new_file(tmp_path):
    from llm_judge.backends.batchapi import BatchFiles

    files, lines = BatchFiles(tmp_path), [request_line(BODY)]
    other_server = Endpoint(E.spec.replace("x", "y"), "m", "http://y/v1")
    names = {files.upload(E, None, lines, 1), files.upload(E, None, lines, 2), files.upload(other_server, None, lines, 1)}
    assert len(names) == 3 and all(n.startswith("m-") for n in names)


def test_files_read_back_hold_line_separators_inside_their_strings(tmp_path):
    """JSON Lines end at a newline only: an answer (vLLM writes UTF-8 as it is) or a prompt holding
    U+2028 or U+2029 is one line, not a broken one."""
    from llm_judge.backends.batchapi import BatchFiles

    files = BatchFiles(tmp_path)
    body = dict(BODY, messages=[{"role": "user", "content": "one\u2028two\u2029three\x85four"}])
    name = files.upload(E, None, [request_line(body)], 1)
    assert files.requests(E, None, name) == [request_line(body)]
    answer = ok_line(body, "a\u2028b")
    files.output(name).write_text(json.dumps(answer, ensure_ascii=False) + "\n", encoding="utf-8")
    (line,) = files.lines(E, None, files.state(E, None, name))
    assert read_answer(line)[1].body["choices"][0]["message"]["content"] == "a\u2028b"


def test_lines_of_another_shape_are_not_answers():
    assert read_answer({"response": {"status_code": 200}}) is None
    assert read_answer({"custom_id": "c", "response": {"status_code": "200"}, "error": None}) is None


# --- studies against the loopback Batch API ----------------------------------------------------------------


def study_args(base: str, db: Path, *more: str) -> list[str]:
    return ["run", "--candidate", f"openai:cand@{base}#a", "--candidate", f"openai:cand@{base}@p2#b",
            "--judge", f"openai:judge@{base}", "--limit", "3", "--mode", "pairwise", "--db", str(db), "--quiet",
            "--json", "--batch-poll", "0.02", *more]


def verdicts(db: Path) -> dict[str, str]:
    store = Store(db)
    (run,) = store.runs()
    return {i.item: json.dumps(i.raw) for i in store.items(run["id"], "pairwise")} | {
        i.item: i.text or "" for i in store.items(run["id"], "generation")}


class Said:
    def __init__(self, rc: int, output: str) -> None:
        self.exit_code, self.output = rc, output


def cli(args: list[str]) -> Said:
    """The command line run in this process: its exit code and what it printed (both streams)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(args)
    return Said(rc, out.getvalue())


def invoke(args: list[str]) -> dict:
    result = cli(args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):])


def test_a_study_through_batches_gives_what_it_gives_live(test_server, tmp_path):
    base = test_server("--batch-step", "0.01")
    live = invoke(study_args(base, tmp_path / "live.db"))
    before = server_stats(base)
    batched = invoke(study_args(base, tmp_path / "batch.db", "--batch"))
    assert batched["status"] == "done" and batched["run_id"] == live["run_id"]
    assert batched["batches"] == {"batches": 2, "requests": 12} and "batches" not in live
    assert verdicts(tmp_path / "batch.db") == verdicts(tmp_path / "live.db")
    stats = server_stats(base)
    # two rounds: the answers (one model), then the judgments (the judge); no live call was made
    assert stats["batches_created"] == 2 and stats.get("ok", 0) == before.get("ok", 0)
    assert stats["batch_lines_run"] == 6 + 6
    rows = Store(tmp_path / "batch.db").batches(batched["run_id"])
    # each read, once its answers were written: a later run of the command does not fetch it again
    assert [(r["model"], r["requests"], r["status"]) for r in rows] == [("cand", 6, "read"), ("judge", 6, "read")]
    assert all(r["batch_id"].startswith("batch_") for r in rows)


def test_the_same_command_after_a_kill_reads_the_run_s_batches_instead_of_paying_twice(test_server, tmp_path):
    base = test_server("--batch-step", "0.5")  # slow enough to kill the run while its first batch is under way
    db = tmp_path / "s.db"
    args = [sys.executable, "-m", "llm_judge.cli", *study_args(base, db, "--batch")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert within(60, lambda: _stored_batch(db)), "the run stored its batch"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert server_stats(base)["batches_created"] == 1
    result = invoke(study_args(base, db, "--batch"))
    assert result["status"] == "done"
    stats = server_stats(base)
    assert stats["batches_created"] == 2  # the first batch read after the kill, the judging batch made
    assert stats["batch_lines_run"] == 12  # no request run twice


def _stored_batch(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        store = Store(db)
        return any(r["batch_id"] for run in store.runs() for r in store.batches(run["id"]))
    except Exception:  # noqa: BLE001 (the store is being created by the other process)
        return False


def test_repeats_go_as_requests_of_their_own_and_a_jury_asks_every_member_in_one_round(test_server, tmp_path,
                                                                                     monkeypatch):
    from llm_judge.study.batched import Rounds

    rounds = []
    collect = Rounds.collect
    monkeypatch.setattr(Rounds, "collect", lambda self: rounds.append(1) or collect(self))
    base = test_server("--batch-step", "0.01")
    args = study_args(base, tmp_path / "s.db", "--batch", "--repeat", "2")
    args[args.index("--judge") + 1:args.index("--judge") + 2] = [f"openai:judge1@{base}", "--judge", f"openai:judge2@{base}"]
    result = invoke(args)
    assert result["status"] == "done"
    rows = Store(tmp_path / "s.db").batches(result["run_id"])
    assert [(r["model"], r["requests"]) for r in rows] == [("cand", 6), ("judge1", 12), ("judge2", 12)]
    assert len(rounds) == 3  # before the first pass, after the answers' batch, after both members' batches


def test_a_batch_made_but_not_stored_is_found_by_its_request_file(test_server, tmp_path):
    from llm_judge.backends import get_backend
    from llm_judge.study.batched import BatchOptions, Rounds

    base = test_server("--batch-step", "0.01")
    backend = get_backend(f"openai:judge@{base}")
    store, book = Store(tmp_path / "s.db"), Book()
    rounds = Rounds(BatchOptions(poll=0.02), book, store, "run1", {backend.spec: backend})
    endpoint, lines = backend.endpoint, [request_line(dict(BODY, model="judge"))]
    input_file = rounds.transport.upload(endpoint, backend, lines, 1)
    store.add_batch("run1", input_file, endpoint.spec, endpoint.model, endpoint.base_url, 1)
    rounds.transport.create(endpoint, backend, input_file, "run1")  # ... and the process dies here
    Rounds(BatchOptions(poll=0.02), book, store, "run1", {backend.spec: backend}).collect()
    assert server_stats(base)["batches_created"] == 1
    assert store.batches("run1")[0]["status"] == "completed" and len(book) == 1


@pytest.mark.parametrize("faults", [("--batch-fault-rate", "0.4", "--seed", "6"), ("--batch-expire-after", "4")])
def test_requests_that_failed_or_expired_in_a_batch_go_again_in_smaller_batches(test_server, tmp_path, faults):
    base = test_server("--batch-step", "0.01", *faults)
    result = invoke(study_args(base, tmp_path / "s.db", "--batch"))
    assert result["status"] == "done"
    rows = Store(tmp_path / "s.db").batches(result["run_id"])
    sizes = [r["requests"] for r in rows if r["model"] == "cand"]
    assert len(sizes) > 1 and sizes == sorted(sizes, reverse=True) and sizes[0] == 6
    ids = ("seed-01", "seed-02", "seed-03")
    assert verdicts(tmp_path / "s.db").keys() == {f"gen:{p}:{lab}" for p in ids for lab in "ab"} | {
        f"pairwise:{p}:a|b:{o}" for p in ids for o in ("AB", "BA")}


def test_a_batch_that_fails_validation_fails_its_calls_in_one_line_each(test_server, tmp_path):
    base = test_server("--batch-step", "0.01", "--batch-fail-all")
    result = invoke(study_args(base, tmp_path / "s.db", "--batch"))
    assert result["status"] == "incomplete"
    store = Store(tmp_path / "s.db")
    (error,) = {r["error"] for r in store.db.execute("SELECT error FROM generations")}
    assert "failed" in error and "\n" not in error
    assert server_stats(base)["batches_created"] == 1  # a failure of the batch is not retried in this run


def test_the_batch_api_sends_the_key_and_a_refused_key_is_one_line(test_server, tmp_path, monkeypatch):
    base = test_server("--batch-step", "0.01", "--require-key", "sk-right")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
    assert invoke(study_args(base, tmp_path / "a.db", "--batch"))["status"] == "done"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    result = cli(study_args(base, tmp_path / "b.db", "--batch"))
    assert result.exit_code == 2 and "refused the API key" in result.output and "Traceback" not in result.output
    assert "sk-wrong" not in result.output


class _NoBatches(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.send_response(404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_a_server_without_a_batch_api_is_one_line_naming_the_way_out(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoBatches)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        result = cli(study_args(base, tmp_path / "s.db", "--batch"))
    finally:
        server.shutdown()
    assert result.exit_code == 2 and "has no Batch API" in result.output and "--batch-files" in result.output


def test_batch_options_are_checked_in_one_line(tmp_path):
    both = cli(["run", "--batch", "--batch-files", str(tmp_path), "--db", str(tmp_path / "s.db")])
    assert both.exit_code == 2 and "give one" in both.output
    local = cli(["run", "--batch", "--limit", "1", "--db", str(tmp_path / "s.db")])
    assert local.exit_code == 2 and "no model of this study" in local.output


# --- request files for an offline engine ---------------------------------------------------------------------


def test_request_files_answered_by_an_offline_engine_give_what_the_study_gives_live(test_server, tmp_path):
    base = test_server()
    live = invoke(study_args(base, tmp_path / "live.db"))
    folder, db, rounds = tmp_path / "requests", tmp_path / "files.db", 0
    while (result := invoke(study_args(base, db, "--batch-files", str(folder))))["status"] != "done":
        rounds += 1
        assert rounds <= 2 and len(result["waiting_for"]) == 1
        name = result["waiting_for"][0]
        again = invoke(study_args(base, db, "--batch-files", str(folder)))  # not answered yet: nothing new written
        assert again["waiting_for"] == [name] and len(_requests_in(folder)) == rounds
        out = folder / name.replace(".jsonl", ".output.jsonl")
        subprocess.run([sys.executable, "-m", "llm_judge.testing.run_batch", "-i", str(folder / name), "-o", str(out),
                        "--url", base], check=True, capture_output=True, env=dict(os.environ))
    assert rounds == 2 and result["run_id"] == live["run_id"]
    assert verdicts(db) == verdicts(tmp_path / "live.db")


def _requests_in(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.jsonl") if not p.name.endswith(".output.jsonl")]


def test_request_files_cleaned_away_are_written_again_instead_of_waited_for(test_server, tmp_path):
    base = test_server()
    db = tmp_path / "s.db"
    first = invoke(study_args(base, db, "--batch-files", str(tmp_path / "one")))["waiting_for"]
    again = invoke(study_args(base, db, "--batch-files", str(tmp_path / "two")))["waiting_for"]
    assert len(again) == 1 and again != first and (tmp_path / "two" / again[0]).is_file()


@pytest.mark.parametrize("output", ['{"custom_id": "x"\n', "[" * 100_000 + "\n"], ids=["cut off", "nested"])
def test_an_unreadable_output_file_is_one_line_naming_it(test_server, tmp_path, output):
    base = test_server()
    folder = tmp_path / "requests"
    name = invoke(study_args(base, tmp_path / "s.db", "--batch-files", str(folder)))["waiting_for"][0]
    (folder / name.replace(".jsonl", ".output.jsonl")).write_text(output)
    result = cli(study_args(base, tmp_path / "s.db", "--batch-files", str(folder)))
    assert result.exit_code == 2 and "line 1 is not JSON" in result.output and "Traceback" not in result.output
