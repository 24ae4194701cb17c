"""The OpenAI Batch API for the test server: uploaded files, and batches with their real states.

    POST /v1/files (multipart: purpose=batch, file)    GET /v1/files/{id}    GET /v1/files/{id}/content
    POST /v1/batches    GET /v1/batches    GET /v1/batches/{id}    POST /v1/batches/{id}/cancel

A batch takes one step per ``BatchSettings.step`` seconds since it was created, however often it
is polled (it is brought up to "now" whenever the server is asked about files, batches or /stats,
so a client that polls slowly, or dies and comes back, sees the same batch):

    validating -> failed                                  the input is not valid: errors.data names each line
    validating -> in_progress -> finalizing -> completed
    in_progress -> expired                                after ``expire_after`` lines: the rest ``batch_expired``
    validating | in_progress -> cancelling -> cancelled   on cancel: the rest ``batch_cancelled``

In ``in_progress`` each step answers up to ``rate`` lines (all by default) with the server's own
answer to the body, the live endpoint's without its faults; at ``fault_rate`` (seeded) a line is
instead a 500. Successes go to the output file; failed lines, and lines never run, to the error
file; each file is made only when it has a line. ``request_counts.failed`` counts the lines that
were run and failed, not the ones never run. Left out: endpoints other than chat completions,
listing and deleting files, paging the batch list, and usage totals in the batch object.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import NamedTuple

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"
TERMINAL = ("failed", "completed", "expired", "cancelled")
FINISHED = TERMINAL[1:]  # the terminal states that have result files
TIMES = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at")
COUNTS = ("files_uploaded", "batches_created", "batch_lines_run", "batches_cancelled")
UNRUN = {"batch_expired": "This request could not be executed before the completion window expired.",
         "batch_cancelled": "This request could not be executed before the batch was cancelled."}
FAULT_BODY = {"error": {"message": "injected server error", "type": "server_error"}}

# a request body -> (HTTP status, response body), as the live endpoint would answer it
Answer = Callable[[dict], tuple[int, dict]]


@dataclass(frozen=True)
class BatchSettings:
    step: float = 0.05  # seconds per state (and per chunk of lines in in_progress)
    rate: int | None = None  # lines run per step; None: all
    expire_after: int | None = None  # expire every batch once this many lines have run
    fail_all: bool = False  # every batch fails validation
    fault_rate: float = 0.0  # chance that a line is an injected 500

    def __post_init__(self) -> None:
        if self.step <= 0 or (self.rate is not None and self.rate < 1) or (self.expire_after or 0) < 0:
            raise ValueError("batch settings: --batch-step must be > 0, --batch-rate >= 1, --batch-expire-after >= 0")


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: float

    def to_json(self) -> dict:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": int(self.created_at),
                "filename": self.filename, "purpose": self.purpose}


@dataclass
class Batch:
    id: str
    input_file_id: str
    created_at: float
    requests: list[dict]  # the input's lines, parsed (none when it is not valid)
    problems: list[dict]  # what is wrong with the input: the errors.data of a failed batch
    metadata: dict | None = None
    status: str = "validating"
    steps: int = 0  # steps taken; step k happens at created_at + k * step
    times: dict[str, float] = field(default_factory=dict)  # "in_progress_at" and the like, once reached
    run: int = 0  # requests answered (or given up) so far, in order
    outputs: list[dict] = field(default_factory=list)  # lines of the output file
    failures: list[dict] = field(default_factory=list)  # lines of the error file
    output_file_id: str | None = None
    error_file_id: str | None = None


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _problem(code: str, message: str, line: int | None) -> dict:
    return {"code": code, "message": message, "param": None, "line": line}


def validate(data: bytes, endpoint: str = ENDPOINT) -> tuple[list[dict], list[dict]]:
    """A batch input file's requests, or ``[]`` and its problems: one per bad line, naming it (from 1)."""
    requests: list[dict] = []
    problems: list[dict] = []
    seen: set[str] = set()
    for n, line in enumerate(data.decode("utf-8", "replace").split("\n"), 1):  # not splitlines: U+2028 is text
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError:
            request, wrong = None, ("invalid_json_line", "This line is not parseable as valid JSON.")
        else:
            wrong = _line_problem(request, endpoint, seen)
        if wrong:
            problems.append(_problem(*wrong, n))
        else:
            requests.append(request)
            seen.add(request["custom_id"])
    if not requests and not problems:
        problems.append(_problem("empty_file", "The batch input file is empty.", None))
    return ([], problems) if problems else (requests, [])


def _line_problem(request: object, endpoint: str, seen: set[str]) -> tuple[str, str] | None:
    """(code, message) for what is wrong with one parsed input line, or None."""
    if not isinstance(request, dict):
        return "invalid_json_line", "This line is not a JSON object."
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing_required_parameter", "Missing required parameter: 'custom_id'."
    if custom_id in seen:
        return "duplicate_custom_id", f"The custom_id {custom_id!r} is already used by an earlier line."
    if request.get("method") != "POST":
        return "invalid_request", f"The method must be POST, not {request.get('method')!r}."
    if request.get("url") != endpoint:
        return "url_mismatch", f"The url {request.get('url')!r} does not match the batch's endpoint {endpoint}."
    if not isinstance(request.get("body"), dict):
        return "missing_required_parameter", "Missing required parameter: 'body' (an object)."
    return None


def result_line(custom_id: str, status_code: int, body: dict) -> dict:
    """A line of the output file (status 200) or of the error file (any other status)."""
    return {"id": new_id("batch_req_"), "custom_id": custom_id,
            "response": {"status_code": status_code, "request_id": new_id("req_"), "body": body}, "error": None}


def unrun_line(custom_id: str, code: str) -> dict:
    """An error-file line for a request never run: ``code`` is ``batch_expired`` or ``batch_cancelled``."""
    return {"id": new_id("batch_req_"), "custom_id": custom_id, "response": None,
            "error": {"code": code, "message": UNRUN[code]}}


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def advance(batch: Batch, now: float, settings: BatchSettings, answer: Answer) -> None:
    """Take every step due by ``now``: one state (or one chunk of lines) per ``settings.step``."""
    due = int((now - batch.created_at) // settings.step)
    while batch.steps < due and batch.status not in TERMINAL:
        batch.steps += 1
        step(batch, batch.created_at + batch.steps * settings.step, settings, answer)


def step(batch: Batch, at: float, settings: BatchSettings, answer: Answer) -> None:
    """One step of ``batch``'s state machine, taken at time ``at``."""
    if batch.status == "validating":
        _validating(batch, at, settings)
    elif batch.status == "in_progress":
        _in_progress(batch, at, settings, answer)
    elif batch.status == "finalizing":
        reach(batch, "completed", at)
    elif batch.status == "cancelling":
        _give_up(batch, "cancelled", "batch_cancelled", at)


def _validating(batch: Batch, at: float, settings: BatchSettings) -> None:
    if settings.fail_all and not batch.problems:
        batch.problems = [_problem("invalid_request", "This batch was made to fail validation (--batch-fail-all).", None)]
    if batch.problems:
        batch.requests = []
        reach(batch, "failed", at)
    else:
        reach(batch, "in_progress", at)


def _in_progress(batch: Batch, at: float, settings: BatchSettings, answer: Answer) -> None:
    total = len(batch.requests)
    limit = total if settings.expire_after is None else min(settings.expire_after, total)
    if batch.run >= limit:  # only when expire_after < total: with every line run, it is finalizing
        return _give_up(batch, "expired", "batch_expired", at)
    end = limit if settings.rate is None else min(limit, batch.run + settings.rate)
    for request in batch.requests[batch.run:end]:
        status, body = answer(request["body"])
        (batch.outputs if status == 200 else batch.failures).append(result_line(request["custom_id"], status, body))
    batch.run = end
    if batch.run == total:
        reach(batch, "finalizing", at)


def _give_up(batch: Batch, status: str, code: str, at: float) -> None:
    """End ``batch`` as ``status``: every request not yet run goes to the error file with ``code``."""
    batch.failures += [unrun_line(request["custom_id"], code) for request in batch.requests[batch.run:]]
    batch.run = len(batch.requests)
    reach(batch, status, at)


def reach(batch: Batch, status: str, at: float) -> None:
    batch.status = status
    batch.times[f"{status}_at"] = at


def batch_json(batch: Batch) -> dict:
    """The batch object as the API returns it."""
    failed = sum(1 for line in batch.failures if line["response"] is not None)
    stamps = {name: int(batch.times[name]) if name in batch.times else None for name in TIMES}
    return {"id": batch.id, "object": "batch", "endpoint": ENDPOINT,
            "errors": {"object": "list", "data": batch.problems} if batch.status == "failed" else None,
            "input_file_id": batch.input_file_id, "completion_window": WINDOW, "status": batch.status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at), "expires_at": int(batch.created_at) + 24 * 3600, **stamps,
            "request_counts": {"total": 0 if batch.status == "validating" else len(batch.requests),
                               "completed": len(batch.outputs), "failed": failed},
            "metadata": batch.metadata}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename or None, bytes); {} if it is not one."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if message.get_content_type() != "multipart/form-data" or not message.is_multipart():
        return {}
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class Reply(NamedTuple):
    status: int
    payload: dict | bytes
    headers: dict | None = None


def error(status: int, message: str, param: str | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}})


class BatchAPI:
    """One server's files and batches. ``answer`` answers one line's body; ``stats`` gets ``COUNTS``."""

    def __init__(self, settings: BatchSettings, answer: Answer, stats: Counter, seed: int = 0,
                 clock: Callable[[], float] = time.time):
        self.settings, self.answer, self.stats, self.clock = settings, answer, stats, clock
        self.rng = random.Random(seed)  # apart from the live endpoint's, so its faults stay as they were
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}
        for name in COUNTS:
            stats[name] += 0  # present from the start

    def handle(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        """Serve one request under /v1/files or /v1/batches (``path`` without its query)."""
        self.advance_all()
        match method, tuple(path.strip("/").split("/")):
            case "POST", ("v1", "files"):
                return self.upload(headers.get("content-type", ""), body)
            case "GET", ("v1", "files", file_id):
                return Reply(200, self.files[file_id].to_json()) if file_id in self.files else _missing("File", file_id)
            case "GET", ("v1", "files", file_id, "content"):
                return self.content(file_id)
            case "POST", ("v1", "batches"):
                return self.create(body)
            case "GET", ("v1", "batches"):
                newest_first = [batch_json(batch) for batch in reversed(self.batches.values())]
                return Reply(200, {"object": "list", "data": newest_first, "has_more": False})
            case "GET", ("v1", "batches", batch_id):
                return Reply(200, batch_json(self.batches[batch_id])) if batch_id in self.batches else _missing("Batch", batch_id)
            case "POST", ("v1", "batches", batch_id, "cancel"):
                return self.cancel(batch_id)
        return error(404, f"no route {method} {path}")

    def advance_all(self) -> None:
        """Bring every batch up to now; a batch that has just finished gets its result files."""
        now = self.clock()
        for batch in self.batches.values():
            if batch.status not in TERMINAL:
                advance(batch, now, self.settings, self._answer)
                if batch.status in FINISHED:
                    batch.output_file_id = self._save(f"{batch.id}_output.jsonl", batch.outputs)
                    batch.error_file_id = self._save(f"{batch.id}_error.jsonl", batch.failures)

    def upload(self, content_type: str, body: bytes) -> Reply:
        fields = parse_multipart(content_type, body)
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if "file" not in fields:
            return error(400, "Missing required parameter: 'file' (send multipart/form-data with a file field).", "file")
        if purpose != "batch":
            return error(400, f"purpose must be 'batch' on this server, not {purpose!r}.", "purpose")
        file = StoredFile(new_id("file-"), fields["file"][0] or "file", "batch", fields["file"][1], self.clock())
        self.files[file.id] = file
        self.stats["files_uploaded"] += 1
        return Reply(200, file.to_json())

    def content(self, file_id: str) -> Reply:
        if file_id not in self.files:
            return _missing("File", file_id)
        return Reply(200, self.files[file_id].data, {"Content-Type": "application/octet-stream"})

    def create(self, body: bytes) -> Reply:
        try:
            data = json.loads(body)
        except ValueError:
            return error(400, "request body is not JSON")
        wrong = _create_problem(data, self.files)
        if wrong:
            return error(400, *wrong)
        requests, problems = validate(self.files[data["input_file_id"]].data)
        batch = Batch(new_id("batch_"), data["input_file_id"], self.clock(), requests, problems, data.get("metadata"))
        self.batches[batch.id] = batch
        self.stats["batches_created"] += 1
        return Reply(200, batch_json(batch))

    def cancel(self, batch_id: str) -> Reply:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _missing("Batch", batch_id)
        if batch.status in ("validating", "in_progress"):
            reach(batch, "cancelling", self.clock())
            self.stats["batches_cancelled"] += 1
        elif batch.status not in ("cancelling", "cancelled"):  # cancelling twice is harmless
            return error(400, f"Cannot cancel a batch with status '{batch.status}'.")
        return Reply(200, batch_json(batch))

    def _answer(self, body: dict) -> tuple[int, dict]:
        self.stats["batch_lines_run"] += 1
        if self.rng.random() < self.settings.fault_rate:
            return 500, FAULT_BODY
        try:
            return self.answer(body)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError) as e:  # a body of the wrong shape
            return 400, {"error": {"message": f"could not answer this body: {e}", "type": "invalid_request_error"}}

    def _save(self, filename: str, lines: list[dict]) -> str | None:
        if not lines:
            return None
        file = StoredFile(new_id("file-"), filename, "batch_output", jsonl(lines), self.clock())
        self.files[file.id] = file
        return file.id


def _create_problem(data: object, files: dict[str, StoredFile]) -> tuple[str, str] | None:
    """(message, param) for what is wrong with a POST /v1/batches body, or None."""
    if not isinstance(data, dict):
        return "request body must be a JSON object", "body"
    file_id = data.get("input_file_id")
    file = files.get(file_id) if isinstance(file_id, str) else None
    if file is None or file.purpose != "batch":
        return f"No uploaded batch file with id {data.get('input_file_id')!r}.", "input_file_id"
    if data.get("endpoint") != ENDPOINT:
        return f"endpoint must be {ENDPOINT} on this server, not {data.get('endpoint')!r}.", "endpoint"
    if data.get("completion_window") != WINDOW:
        return f"completion_window must be {WINDOW!r}, not {data.get('completion_window')!r}.", "completion_window"
    if data.get("metadata") is not None and not isinstance(data["metadata"], dict):
        return "metadata must be an object of strings.", "metadata"
    return None


def _missing(kind: str, object_id: str) -> Reply:
    return error(404, f"No such {kind} object: {object_id}", "id")
