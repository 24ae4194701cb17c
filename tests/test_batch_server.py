"""The test server's OpenAI Batch API: files, batches and their states, against the real server on
loopback, and the pure parts of ``llm_judge.testing.batches`` without one."""

import json
import time
from collections import Counter

import httpx
import pytest

from llm_judge.testing.batches import (
    Batch,
    BatchAPI,
    BatchSettings,
    advance,
    batch_json,
    parse_multipart,
    reach,
    validate,
)

from .conftest import server_stats, within

URL = "/v1/chat/completions"
SCHEMA = {"type": "object", "properties": {"justification": {"type": "string"}, "winner": {"enum": ["A", "B", "tie"]}}}


def body(question: str, **extra) -> dict:
    return {"model": "test", "messages": [{"role": "user", "content": question}], "temperature": 0.0, **extra}


def line(custom_id: str, request_body: dict, url: str = URL, method: str = "POST") -> dict:
    return {"custom_id": custom_id, "method": method, "url": url, "body": request_body}


def jsonl(lines: list) -> bytes:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in lines).encode()


def client(base: str, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {key}"} if key else {})


def upload(api: httpx.Client, lines: list) -> str:
    reply = api.post("/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", jsonl(lines))})
    assert reply.status_code == 200, reply.text
    return reply.json()["id"]


def create(api: httpx.Client, lines: list, **extra) -> dict:
    reply = api.post("/batches", json={"input_file_id": upload(api, lines), "endpoint": URL,
                                       "completion_window": "24h", **extra})
    assert reply.status_code == 200, reply.text
    return reply.json()


def wait_for(api: httpx.Client, batch_id: str, *statuses: str, seconds: float = 10) -> dict:
    """Poll the batch until it reaches one of ``statuses`` (a generous deadline, not a timing check)."""
    seen: dict = {}

    def reached() -> bool:
        seen.update(api.get(f"/batches/{batch_id}").json())
        return seen["status"] in statuses

    if within(seconds, reached, poll=0.02):
        return seen
    raise AssertionError(f"batch still {seen['status']} after {seconds} s, not {statuses}")


def file_lines(api: httpx.Client, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    reply = api.get(f"/files/{file_id}/content")
    assert reply.status_code == 200
    return [json.loads(text) for text in reply.text.splitlines()]


# --- against the real server -------------------------------------------------------------------

def test_a_batch_completes_with_the_live_endpoints_answers(test_server):
    base = test_server("--batch-step", "0.01", "--batch-rate", "1")
    bodies = {"c1": body("first question"), "c2": body("second question", temperature=0.7),
              "c3": body("which is better?", response_format={"type": "json_schema", "json_schema": {"schema": SCHEMA}})}
    with client(base) as api:
        batch = create(api, [line(cid, b) for cid, b in bodies.items()], metadata={"study": "s1"})
        assert batch["status"] == "validating" and batch["metadata"] == {"study": "s1"}
        assert batch["id"].startswith("batch_") and batch["output_file_id"] is None
        seen = [batch["status"]]
        while seen[-1] != "completed":
            seen.append(wait_for(api, batch["id"], "in_progress", "finalizing", "completed")["status"])
            assert seen[-1] in ("in_progress", "finalizing", "completed")
        done = wait_for(api, batch["id"], "completed")
        order = ["validating", "in_progress", "finalizing", "completed"]
        assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)  # never backwards
        assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
        assert done["error_file_id"] is None and done["errors"] is None
        assert all(done[k] is not None for k in ("in_progress_at", "finalizing_at", "completed_at"))
        assert done["cancelled_at"] is None and done["failed_at"] is None
        output = file_lines(api, done["output_file_id"])
        assert sorted(o["custom_id"] for o in output) == ["c1", "c2", "c3"]
        for out in output:
            assert out["id"].startswith("batch_req_") and out["error"] is None
            assert out["response"]["status_code"] == 200 and out["response"]["request_id"].startswith("req_")
            live = api.post("/chat/completions", json=bodies[out["custom_id"]])
            assert out["response"]["body"] == live.json()
        meta = api.get(f"/files/{done['output_file_id']}").json()
        assert meta["purpose"] == "batch_output" and meta["object"] == "file"
        listed = api.get("/batches").json()
        assert listed["object"] == "list" and [b["id"] for b in listed["data"]] == [batch["id"]]


def test_progress_follows_the_clock_not_the_polls(test_server):
    base = test_server("--batch-step", "0.01", "--batch-rate", "1")
    with client(base) as api:
        batch = create(api, [line(f"c{i}", body(f"q{i}")) for i in range(3)])
        time.sleep(0.5)  # at least 50 steps pass unpolled; 5 are needed
        assert server_stats(base)["batch_lines_run"] == 3  # /stats sees them too
        first = api.get(f"/batches/{batch['id']}").json()
    assert first["status"] == "completed" and first["request_counts"]["completed"] == 3


@pytest.mark.parametrize(("lines", "bad_line", "code"), [
    ([line("c1", body("q")), '{"custom_id": "c2", "method": "POST",', line("c3", body("q"))], 2, "invalid_json_line"),
    ([line("c1", body("q")), line("c2", body("q")), line("c1", body("again"))], 3, "duplicate_custom_id"),
    ([line("c1", body("q")), line("c2", body("q"), url="/v1/embeddings")], 2, "url_mismatch"),
    ([line("c1", body("q"), method="GET")], 1, "invalid_request"),
    ([{"method": "POST", "url": URL, "body": body("q")}], 1, "missing_required_parameter"),
])
def test_invalid_input_fails_validation_naming_the_line(test_server, lines, bad_line, code):
    base = test_server("--batch-step", "0.01")
    with client(base) as api:
        failed = wait_for(api, create(api, lines)["id"], "failed", "completed")
    assert failed["status"] == "failed" and failed["failed_at"] is not None
    assert [(e["line"], e["code"]) for e in failed["errors"]["data"]] == [(bad_line, code)]
    assert failed["output_file_id"] is None and failed["error_file_id"] is None
    assert failed["in_progress_at"] is None and server_stats(base)["batch_lines_run"] == 0


def test_vary_tags_batch_answers_as_it_tags_live_ones(test_server):
    base = test_server("--batch-step", "0.01", "--vary")
    with client(base) as api:
        done = wait_for(api, create(api, [line("c1", body("q")), line("c2", body("q"))])["id"], "completed")
        answers = [o["response"]["body"]["choices"][0]["message"]["content"] for o in file_lines(api, done["output_file_id"])]
    assert all(a.startswith("answer vary-") for a in answers) and answers[0] != answers[1]


def test_fail_all_fails_every_batch_validation(test_server):
    base = test_server("--batch-step", "0.01", "--batch-fail-all")
    with client(base) as api:
        failed = wait_for(api, create(api, [line("c1", body("q"))])["id"], "failed", "completed")
    assert failed["status"] == "failed" and failed["errors"]["data"][0]["code"] == "invalid_request"


def test_expiry_keeps_the_lines_run_and_gives_the_rest_batch_expired(test_server):
    base = test_server("--batch-step", "0.01", "--batch-expire-after", "2")
    with client(base) as api:
        expired = wait_for(api, create(api, [line(f"c{i}", body(f"q{i}")) for i in range(5)])["id"], "expired", "completed")
        output, errors = file_lines(api, expired["output_file_id"]), file_lines(api, expired["error_file_id"])
    assert expired["status"] == "expired" and expired["expired_at"] is not None and expired["completed_at"] is None
    assert [o["custom_id"] for o in output] == ["c0", "c1"]
    assert [e["custom_id"] for e in errors] == ["c2", "c3", "c4"]
    for e in errors:
        assert e["response"] is None and e["error"]["code"] == "batch_expired"
        assert e["error"]["message"] == "This request could not be executed before the completion window expired."
    assert expired["request_counts"] == {"total": 5, "completed": 2, "failed": 0}
    assert server_stats(base)["batch_lines_run"] == 2


def test_cancel_goes_through_cancelling_to_cancelled(test_server):
    base = test_server("--batch-step", "0.2", "--batch-rate", "1")  # 40 lines: 8 s to run, far beyond the cancel
    ids = [f"c{i}" for i in range(40)]
    with client(base) as api:
        batch = create(api, [line(cid, body(cid)) for cid in ids])
        cancelling = api.post(f"/batches/{batch['id']}/cancel").json()
        assert cancelling["status"] == "cancelling" and cancelling["cancelling_at"] is not None
        cancelled = wait_for(api, batch["id"], "cancelled")
        again = api.post(f"/batches/{batch['id']}/cancel")
        output, errors = file_lines(api, cancelled["output_file_id"]), file_lines(api, cancelled["error_file_id"])
        stats = server_stats(base)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert cancelled["cancelled_at"] is not None and cancelled["completed_at"] is None
    assert sorted(o["custom_id"] for o in output + errors) == sorted(ids)  # every request once
    assert errors and all(e["error"]["code"] == "batch_cancelled" and e["response"] is None for e in errors)
    assert stats["batches_cancelled"] == 1 and stats["batch_lines_run"] == len(output)


def test_a_finished_batch_cannot_be_cancelled(test_server):
    base = test_server("--batch-step", "0.01")
    with client(base) as api:
        done = wait_for(api, create(api, [line("c1", body("q"))])["id"], "completed")
        reply = api.post(f"/batches/{done['id']}/cancel")
    assert reply.status_code == 400 and "status 'completed'" in reply.json()["error"]["message"]
    assert server_stats(base)["batches_cancelled"] == 0


def test_fault_rate_puts_500_lines_in_the_error_file(test_server):
    base = test_server("--batch-step", "0.01", "--batch-fault-rate", "0.5", "--seed", "1")
    ids = [f"c{i}" for i in range(20)]
    with client(base) as api:
        done = wait_for(api, create(api, [line(cid, body(cid)) for cid in ids])["id"], "completed")
        output, errors = file_lines(api, done["output_file_id"]), file_lines(api, done["error_file_id"])
    assert output and errors and sorted(x["custom_id"] for x in output + errors) == sorted(ids)
    for e in errors:
        assert e["error"] is None and e["response"]["status_code"] == 500
        assert e["response"]["body"]["error"]["type"] == "server_error"
    assert done["request_counts"] == {"total": 20, "completed": len(output), "failed": len(errors)}
    assert server_stats(base)["batch_lines_run"] == 20


def test_no_output_file_when_every_line_fails(test_server):
    base = test_server("--batch-step", "0.01", "--batch-fault-rate", "1")
    with client(base) as api:
        done = wait_for(api, create(api, [line("c1", body("q")), line("c2", body("q"))])["id"], "completed")
    assert done["output_file_id"] is None and done["error_file_id"] is not None
    assert done["request_counts"] == {"total": 2, "completed": 0, "failed": 2}


def test_a_rejected_field_gives_that_line_a_400(test_server):
    base = test_server("--batch-step", "0.01", "--reject-fields", "top_k")
    with client(base) as api:
        done = wait_for(api, create(api, [line("c1", body("q")), line("c2", body("q", top_k=40))])["id"], "completed")
        output, errors = file_lines(api, done["output_file_id"]), file_lines(api, done["error_file_id"])
        live = api.post("/chat/completions", json=body("q", top_k=40))
    assert [o["custom_id"] for o in output] == ["c1"] and [e["custom_id"] for e in errors] == ["c2"]
    assert errors[0]["response"]["status_code"] == 400 == live.status_code
    assert errors[0]["response"]["body"] == live.json()


def test_stats_count_uploads_batches_and_each_line_once(test_server):
    base = test_server("--batch-step", "0.01")
    assert {k: server_stats(base)[k] for k in ("files_uploaded", "batches_created", "batch_lines_run")} == \
        {"files_uploaded": 0, "batches_created": 0, "batch_lines_run": 0}
    with client(base) as api:
        upload(api, [line("spare", body("q"))])
        done = wait_for(api, create(api, [line(f"c{i}", body(f"q{i}")) for i in range(4)])["id"], "completed")
        for _ in range(3):  # polls and downloads after the end run nothing again
            wait_for(api, done["id"], "completed")
            file_lines(api, done["output_file_id"])
    stats = server_stats(base)
    assert (stats["files_uploaded"], stats["batches_created"], stats["batch_lines_run"], stats["batches_cancelled"]) == \
        (2, 1, 4, 0)
    assert stats.get("ok", 0) == 0  # batch lines are not live calls


def test_batches_are_listed_newest_first(test_server):
    base = test_server("--batch-step", "0.01")
    with client(base) as api:
        first, second = create(api, [line("c1", body("q"))]), create(api, [line("c1", body("q"))])
        listed = [b["id"] for b in api.get("/batches").json()["data"]]
    assert listed == [second["id"], first["id"]]


def test_the_batch_endpoints_need_the_key(test_server):
    base = test_server("--batch-step", "0.01", "--require-key", "right-key")
    with client(base) as api:
        assert api.post("/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", b"{}")}).status_code == 401
        assert api.get("/batches").status_code == 401
        assert api.get("/files/file-x/content").status_code == 401
    with client(base, "right-key") as api:
        assert wait_for(api, create(api, [line("c1", body("q"))])["id"], "completed")["status"] == "completed"


def test_unknown_ids_are_404(test_server):
    base = test_server()
    with client(base) as api:
        for method, path in [("GET", "/files/file-nope"), ("GET", "/files/file-nope/content"),
                             ("GET", "/batches/batch_nope"), ("POST", "/batches/batch_nope/cancel")]:
            reply = api.request(method, path)
            assert reply.status_code == 404 and reply.json()["error"]["message"].startswith("No such"), path


def test_bad_uploads_and_batch_requests_are_400(test_server):
    base = test_server()
    with client(base) as api:
        no_file = api.post("/files", data={"purpose": "batch"}, files={})
        assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]["message"]
        not_multipart = api.post("/files", json={"purpose": "batch"})
        assert not_multipart.status_code == 400
        wrong_purpose = api.post("/files", data={"purpose": "fine-tune"}, files={"file": ("a.jsonl", b"{}")})
        assert wrong_purpose.status_code == 400 and "purpose" in wrong_purpose.json()["error"]["message"]
        file_id = upload(api, [line("c1", body("q"))])
        good = {"input_file_id": file_id, "endpoint": URL, "completion_window": "24h"}
        for wrong, param in [({"input_file_id": "file-nope"}, "input_file_id"), ({"endpoint": "/v1/embeddings"}, "endpoint"),
                             ({"completion_window": "1h"}, "completion_window")]:
            reply = api.post("/batches", json={**good, **wrong})
            assert reply.status_code == 400 and reply.json()["error"]["param"] == param
        assert server_stats(base)["batches_created"] == 0


# --- the pure parts, without a server ----------------------------------------------------------

def answer(request_body: dict) -> tuple[int, dict]:
    return 200, {"echo": request_body["messages"][-1]["content"]}


def batch_of(n: int, created_at: float = 100.0) -> Batch:
    requests, problems = validate(jsonl([line(f"c{i}", body(f"q{i}")) for i in range(n)]))
    return Batch("batch_x", "file-x", created_at, requests, problems)


def test_validate_names_every_bad_line_counting_blank_ones():
    data = jsonl([line("c1", body("q")), "", "not json", line("c1", body("q")), line("c4", body("q"), url="/v1/x")])
    requests, problems = validate(data)
    assert requests == []
    assert [(p["line"], p["code"]) for p in problems] == [(3, "invalid_json_line"), (4, "duplicate_custom_id"),
                                                          (5, "url_mismatch")]


def test_validate_keeps_a_line_separator_inside_a_string():
    data = json.dumps(line("c1", body("a\u2028b")), ensure_ascii=False).encode() + b"\r\n"
    requests, problems = validate(data)
    assert problems == [] and requests[0]["body"]["messages"][0]["content"] == "a\u2028b"


def test_validate_fails_an_empty_file():
    assert [p["code"] for p in validate(b"\n \n")[1]] == ["empty_file"]


def test_states_advance_one_per_step_and_a_late_reader_sees_the_same():
    settings = BatchSettings(step=1.0, rate=2)
    polled, late = batch_of(5), batch_of(5)
    history = []
    for t in range(101, 107):
        advance(polled, t + 0.5, settings, answer)
        history.append((polled.status, polled.run))
    assert history == [("in_progress", 0), ("in_progress", 2), ("in_progress", 4), ("finalizing", 5),
                       ("completed", 5), ("completed", 5)]
    advance(late, 106.5, settings, answer)
    assert (late.status, late.times, late.steps) == (polled.status, polled.times, polled.steps)
    assert [o["custom_id"] for o in late.outputs] == [f"c{i}" for i in range(5)]
    assert late.times == {"in_progress_at": 101.0, "finalizing_at": 104.0, "completed_at": 105.0}


def test_expiry_after_n_lines_and_the_counts_leave_out_lines_never_run():
    batch = batch_of(5)
    advance(batch, 110, BatchSettings(step=1.0, expire_after=2), answer)
    assert batch.status == "expired" and batch.times["expired_at"] == 103.0
    assert [f["error"]["code"] for f in batch.failures] == ["batch_expired"] * 3
    assert batch_json(batch)["request_counts"] == {"total": 5, "completed": 2, "failed": 0}


def test_cancel_while_validating_gives_every_request_batch_cancelled():
    batch = batch_of(3)
    reach(batch, "cancelling", 100.2)
    advance(batch, 101.5, BatchSettings(step=1.0), answer)
    assert batch.status == "cancelled" and batch.outputs == []
    assert [f["custom_id"] for f in batch.failures] == ["c0", "c1", "c2"]


def test_a_failed_batch_shows_its_errors_and_counts_nothing():
    requests, problems = validate(b"nope\n")
    batch = Batch("batch_x", "file-x", 100.0, requests, problems)
    assert batch_json(batch)["errors"] is None  # not before the validating step
    advance(batch, 101, BatchSettings(step=1.0), answer)
    shown = batch_json(batch)
    assert shown["status"] == "failed" and shown["errors"]["data"][0]["line"] == 1
    assert shown["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_settings_refuse_a_step_that_never_advances():
    with pytest.raises(ValueError, match="--batch-step"):
        BatchSettings(step=0)
    with pytest.raises(ValueError, match="--batch-rate"):
        BatchSettings(rate=0)


def test_multipart_round_trips_the_file_bytes():
    data = '{"a": "é"}\r\n{"b": 1}\n'.encode()
    request = httpx.Request("POST", "http://x/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", data)})
    fields = parse_multipart(request.headers["content-type"], request.read())
    assert fields == {"purpose": (None, b"batch"), "file": ("in.jsonl", data)}
    assert parse_multipart("application/json", b'{"purpose": "batch"}') == {}


def test_result_files_are_made_once_and_only_with_lines():
    clock = [100.0]
    stats: Counter = Counter()
    api = BatchAPI(BatchSettings(step=1.0), answer, stats, clock=lambda: clock[0])
    request = httpx.Request("POST", "http://x/v1/files", data={"purpose": "batch"},
                            files={"file": ("in.jsonl", jsonl([line("c1", body("q")), line("c2", body("q"))]))})
    uploaded = api.handle("POST", "/v1/files", {"content-type": request.headers["content-type"]}, request.read())
    created = api.handle("POST", "/v1/batches", {}, json.dumps({"input_file_id": uploaded.payload["id"],
                                                              "endpoint": URL, "completion_window": "24h"}).encode())
    batch_id = created.payload["id"]
    clock[0] = 110.0
    done = api.handle("GET", f"/v1/batches/{batch_id}", {}, b"").payload
    assert done["status"] == "completed" and done["error_file_id"] is None
    files_after = dict(api.files)
    api.advance_all()
    assert api.files == files_after and len(api.files) == 2  # the input and one output file
    output = api.handle("GET", f"/v1/files/{done['output_file_id']}/content", {}, b"")
    assert [json.loads(text)["custom_id"] for text in output.payload.decode().splitlines()] == ["c1", "c2"]
    assert (stats["files_uploaded"], stats["batches_created"], stats["batch_lines_run"]) == (1, 1, 2)
