"""Calls made through batches (``run --batch``, ``run --batch-files``): the request lines, the
answer lines, and the book that holds them for a study.

A batched OpenAI-compatible backend does not send a request: it asks the ``Book`` for the answer
to its body. The book gives the answer line a batch returned for that body, or notes the request
as pending and raises ``errors.Deferred``; the study sends the pending requests as the next batch
and runs its jobs again once the answers are in, so a job that needs several calls (a later turn,
a judge's second attempt, a protocol's auxiliary text) goes on with its next call in the next batch.

Formats (OpenAI's Batch API; vLLM's ``run_batch`` reads and writes the same):

- a request line ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``; the
  custom id is a hash of the body (the model is in it), so one body is one request in a batch,
  however many jobs ask it, and the same request after a restart has the same id;
- an answer line ``{"custom_id", "response": {"status_code", "body"} | null, "error": {"code",
  "message"} | null}``, from the batch's output file (answers) or its error file (failures).

A failure worth retrying (a 5xx or 429 inside the batch, a request the batch did not run before it
expired or was cancelled) is sent again in a later, smaller batch, up to ``attempts`` batches in
this process; any other answer is final. Left out: sending batches and waiting for them
(``batchapi``), and what a study does between them (``study.batched``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import Deferred

ENDPOINT = "/v1/chat/completions"
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
ATTEMPTS = 3  # batches one request is sent in, in one process, before its failure stands


_REPEAT: ContextVar[int] = ContextVar("llm_judge_batch_repeat", default=0)


@contextlib.contextmanager
def repeat(n: int) -> Iterator[None]:
    """The calls made inside are repeat ``n`` of their item (``run --repeat``): the same body asked
    again is another request in a batch, as it is another call live."""
    token = _REPEAT.set(n)
    try:
        yield
    finally:
        _REPEAT.reset(token)


def custom_id(body: Mapping[str, Any], again: int = 0) -> str:
    """The request's id in a batch: a hash of its body (canonical JSON) and, for a repeat, its number.

    >>> custom_id({"model": "m", "messages": []}) == custom_id({"messages": [], "model": "m"})
    True
    >>> custom_id({"model": "m"}) == custom_id({"model": "m"}, again=1)
    False
    """
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text += f"#repeat{again}" if again else ""
    return "llmj-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def request_line(body: Mapping[str, Any], again: int = 0) -> dict[str, Any]:
    """The line of a request file for ``body`` (``again``: the repeat it is)."""
    return {"custom_id": custom_id(body, again), "method": "POST", "url": ENDPOINT, "body": dict(body)}


@dataclass(frozen=True)
class Answer:
    """What a batch returned for one request: the HTTP status and body of its response, or the
    batch's own error (``status`` None: expired, cancelled, or a line the batch could not read)."""

    status: int | None
    body: Any
    error: str = ""
    final: bool = False  # a failure no batch changes (the batch failed as a whole, or none answered it)

    @property
    def retryable(self) -> bool:
        return not self.final and (self.status is None or self.status in RETRY_STATUS)


def read_answer(line: Mapping[str, Any]) -> tuple[str, Answer] | None:
    """(custom id, answer) of one line of an output or error file; None for a line of another shape.

    >>> read_answer({"custom_id": "c", "response": {"status_code": 200, "body": {"x": 1}}, "error": None})
    ('c', Answer(status=200, body={'x': 1}, error='', final=False))
    >>> read_answer({"custom_id": "c", "response": None, "error": {"code": "batch_expired", "message": "late"}})
    ('c', Answer(status=None, body=None, error='batch_expired: late', final=False))
    """
    cid, response, error = line.get("custom_id"), line.get("response"), line.get("error")
    if not isinstance(cid, str):
        return None
    if isinstance(response, Mapping) and isinstance(response.get("status_code"), int):
        return cid, Answer(response["status_code"], response.get("body"), _error_text(error))
    if isinstance(error, Mapping | str) and error:
        return cid, Answer(None, None, _error_text(error))
    return None


def _error_text(error: object) -> str:
    """An answer line's error: OpenAI's object, or the string vLLM's ``run_batch`` writes.

    >>> _error_text({"code": "batch_expired", "message": "late"}), _error_text("bad request")
    ('batch_expired: late', 'bad request')
    """
    if isinstance(error, str):
        return " ".join(error.split())[:200]
    if not isinstance(error, Mapping):
        return ""
    code, message = error.get("code"), error.get("message")
    return ": ".join(str(p) for p in (code, message) if p)


@dataclass(frozen=True)
class Endpoint:
    """Where one batch of requests goes: a model on one server (its first replica's URL)."""

    spec: str
    model: str
    base_url: str


class Batched(Protocol):
    """A backend whose calls can go in batches (``OpenAIBackend``): its twin that answers from a
    book, where its batches go, and the headers a request to a URL carries (its key decision)."""

    spec: str
    key_env: str

    def batched(self, book: Book) -> Any: ...

    @property
    def endpoint(self) -> Endpoint: ...

    def headers_for(self, url: str) -> dict[str, str]: ...


def batchable(backend: object) -> bool:
    """Whether a backend's calls can go in batches."""
    return callable(getattr(backend, "batched", None)) and callable(getattr(backend, "headers_for", None))


@dataclass
class _Requests:
    backend: Any  # the batched backend that asked (its key decision, for the upload)
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)


class Book:
    """The answers of a study's batches, and the requests still waiting for one (thread-safe:
    a study's jobs ask from its worker threads)."""

    def __init__(self, attempts: int = ATTEMPTS) -> None:
        self.attempts = attempts
        self._lock = threading.Lock()
        self._answers: dict[tuple[Endpoint, str], Answer] = {}
        self._sent: dict[tuple[Endpoint, str], int] = {}  # batches each request went in, in this process
        self._pending: dict[Endpoint, _Requests] = {}

    def answer(self, endpoint: Endpoint, backend: Any, body: Mapping[str, Any]) -> Answer:
        """The answer to ``body``: a success or a final failure; else the request is pending and
        ``Deferred`` is raised. A request sent in ``attempts`` batches of this process without an
        answer line in any (a batch that lost it) fails for good, so no run goes round for ever."""
        line = request_line(body, _REPEAT.get())
        key = (endpoint, line["custom_id"])
        with self._lock:
            got, sent = self._answers.get(key), self._sent.get(key, 0)
            if got is not None and (not got.retryable or sent >= self.attempts):
                return got
            if got is None and sent >= self.attempts:
                return Answer(None, None, f"no batch answered it in {sent} batches", final=True)
            self._pending.setdefault(endpoint, _Requests(backend)).lines[line["custom_id"]] = line
        raise Deferred(line["custom_id"])

    def take(self) -> dict[Endpoint, tuple[Any, list[dict[str, Any]]]]:
        """The pending requests, by endpoint (with the backend that asked), counted as sent."""
        with self._lock:
            pending, self._pending = self._pending, {}
            for endpoint, requests in pending.items():
                for cid in requests.lines:
                    self._sent[(endpoint, cid)] = self._sent.get((endpoint, cid), 0) + 1
        # in the order of their ids: the same requests make the same file, whatever order the jobs asked in
        return {e: (r.backend, [r.lines[cid] for cid in sorted(r.lines)]) for e, r in pending.items()}

    def add(self, endpoint: Endpoint, lines: Iterable[Mapping[str, Any]]) -> int:
        """Take in the lines of a batch's output and error files; returns how many were read. An
        answer replaces an earlier retryable failure, never a success."""
        read = 0
        with self._lock:
            for found in filter(None, map(read_answer, lines)):
                cid, answer = found
                old = self._answers.get((endpoint, cid))
                if old is None or old.retryable:
                    self._answers[(endpoint, cid)] = answer
                read += 1
        return read

    def fail(self, endpoint: Endpoint, custom_ids: Iterable[str], why: str) -> None:
        """A batch that failed as a whole: each of its requests fails with ``why`` (final)."""
        with self._lock:
            for cid in custom_ids:
                if (endpoint, cid) not in self._answers:
                    self._answers[(endpoint, cid)] = Answer(None, None, why, final=True)

    def __len__(self) -> int:
        return len(self._answers)
