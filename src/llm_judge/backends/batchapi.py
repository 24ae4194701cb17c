"""Sending batches and reading their answers: OpenAI's Batch API (``run --batch``) or a folder of
request files for an offline engine (``run --batch-files DIR``).

The API: the request lines are uploaded as a file (``POST /v1/files``, purpose ``batch``), a batch
is made of it (``POST /v1/batches``), polled (``GET /v1/batches/{id}``) until it ends (completed,
failed, expired, cancelled), and its output and error files are read (``GET
/v1/files/{id}/content``). The key goes with these requests exactly where it goes with the model's
live calls (the backend's decision for its first server). A request to the API that fails is tried
again a few times; a server that has no Batch API is one line naming the fix.

A folder: the requests of one model are written to ``DIR/<model>-<hash>.jsonl``, and its answers
are read from ``DIR/<model>-<hash>.output.jsonl`` once the engine has written them (vLLM:
``python -m vllm.entrypoints.openai.run_batch -i IN -o OUT --model MODEL``); until then the batch
is ``waiting``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from ..cancel import pause
from ..errors import LLMJudgeError
from ..redact import redact
from ..textfiles import jsonl_lines
from .batches import ENDPOINT, Endpoint

TERMINAL = ("completed", "failed", "expired", "cancelled")
WINDOW = "24h"
TRIES = 4  # attempts of one request to the Batch API
FIND_PAGES = 20  # pages of 100 batches looked through for one made of a request file


class Gone(LLMJudgeError):
    """A batch's file the server no longer has (deleted, or past its retention)."""


@dataclass(frozen=True)
class BatchState:
    """A batch as last seen: its status, its files (None until it has them), its counts and, for a
    batch that failed as a whole, why."""

    id: str
    status: str
    output_file: str | None = None
    error_file: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    why: str = ""

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


class Transport(Protocol):
    """Where a study's batches go."""

    waits: bool  # True: a batch is polled until it ends; False: the run stops until its answers are there

    def upload(self, endpoint: Endpoint, backend: Any, lines: Sequence[Mapping[str, Any]], seq: int) -> str: ...

    def create(self, endpoint: Endpoint, backend: Any, input_file: str, run_id: str) -> str: ...

    def find(self, endpoint: Endpoint, backend: Any, input_file: str) -> str | None: ...

    def state(self, endpoint: Endpoint, backend: Any, batch_id: str) -> BatchState: ...

    def lines(self, endpoint: Endpoint, backend: Any, state: BatchState) -> list[dict[str, Any]]: ...

    def requests(self, endpoint: Endpoint, backend: Any, input_file: str) -> list[dict[str, Any]]: ...


def jsonl(lines: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def read_jsonl(data: bytes | str, where: str) -> list[dict[str, Any]]:
    """The objects of a JSONL file (its lines as ``textfiles.jsonl_lines`` reads them: an answer may
    hold U+2028 as it is); one line naming the file for a line that is not JSON. Unlike a user's
    own files, an engine's answer may hold a lone surrogate: it is read, and the reply's text made
    whole as a live reply's is (``openai.whole_text``)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    out = []
    for n, line in jsonl_lines(text):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested past what Python reads
            raise LLMJudgeError(f"{where} line {n} is not JSON: give the engine's output file as it wrote it") from None
        if isinstance(obj, dict):
            out.append(obj)
    return out


def batch_state(data: object) -> BatchState:
    """A batch object of the API as a ``BatchState``; a field of another type than OpenAI's is
    read as absent (a count that is no integer, a file id that is no string).

    >>> batch_state({"id": "b1", "status": "failed", "errors": {"data": [{"line": 2, "message": "bad"}]}}).why
    'line 2: bad'
    >>> batch_state({"id": "b2", "status": "completed", "request_counts": {"total": "9", "completed": 1},
    ...              "output_file_id": 7, "errors": {"data": 5}})
    BatchState(id='b2', status='completed', output_file=None, error_file=None, counts={'completed': 1}, why='')
    """
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("status"), str):
        raise LLMJudgeError(f"the Batch API answered with no batch object ({str(data)[:80]!r})")
    errors = data.get("errors")
    listed = errors.get("data") if isinstance(errors, dict) else None
    why = "; ".join(f"line {e.get('line')}: {e.get('message')}" if e.get("line") else str(e.get("message"))
                    for e in (listed if isinstance(listed, list) else []) if isinstance(e, dict))
    given = data.get("request_counts")
    counts = {k: v for k, v in given.items() if isinstance(v, int)} if isinstance(given, dict) else {}
    return BatchState(data["id"], data["status"], _text(data.get("output_file_id")), _text(data.get("error_file_id")),
                      counts, why)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class BatchAPI:
    """OpenAI's Batch API on the model's first server."""

    waits = True

    def __init__(self, timeout: float = 120.0, backoff: float = 1.0) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        self.backoff = backoff

    def upload(self, endpoint: Endpoint, backend: Any, lines: Sequence[Mapping[str, Any]], seq: int) -> str:
        data = self._call(endpoint, backend, "POST", "/files", "upload the requests",
                          files={"file": (f"llm-judge-{seq:03d}.jsonl", jsonl(lines), "application/jsonl")},
                          data={"purpose": "batch"})
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise LLMJudgeError(f"{endpoint.base_url} took the request file but gave no file id")
        return data["id"]

    def create(self, endpoint: Endpoint, backend: Any, input_file: str, run_id: str) -> str:
        body = {"input_file_id": input_file, "endpoint": ENDPOINT, "completion_window": WINDOW,
                "metadata": {"llm_judge_run": run_id}}
        return batch_state(self._call(endpoint, backend, "POST", "/batches", "create the batch", json=body)).id

    def find(self, endpoint: Endpoint, backend: Any, input_file: str) -> str | None:
        """The batch made of ``input_file``, where one was made (a run stopped between making it and
        storing its id): the batches listed, newest first, a page after another."""
        after = ""
        for _page in range(FIND_PAGES):
            data = self._call(endpoint, backend, "GET", f"/batches?limit=100{after}", "list the batches")
            listed = data.get("data") if isinstance(data, dict) else None
            batches = [b for b in (listed if isinstance(listed, list) else []) if isinstance(b, dict)]
            found = [b for b in batches if b.get("input_file_id") == input_file]
            if found:
                return batch_state(found[0]).id
            if not (isinstance(data, dict) and data.get("has_more") and batches):
                return None
            after = f"&after={batches[-1].get('id')}"
        return None

    def state(self, endpoint: Endpoint, backend: Any, batch_id: str) -> BatchState:
        return batch_state(self._call(endpoint, backend, "GET", f"/batches/{batch_id}", "read the batch"))

    def lines(self, endpoint: Endpoint, backend: Any, state: BatchState) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for file_id in filter(None, (state.output_file, state.error_file)):
            raw = self._call(endpoint, backend, "GET", f"/files/{file_id}/content", "read the answers", raw=True)
            out += read_jsonl(raw, f"{endpoint.base_url} file {file_id}")
        return out

    def requests(self, endpoint: Endpoint, backend: Any, input_file: str) -> list[dict[str, Any]]:
        raw = self._call(endpoint, backend, "GET", f"/files/{input_file}/content", "read the requests", raw=True)
        return read_jsonl(raw, f"{endpoint.base_url} file {input_file}")

    def _call(self, endpoint: Endpoint, backend: Any, method: str, path: str, what: str, *, raw: bool = False,
              **kwargs: Any) -> Any:
        """One request to the Batch API, tried again on a failed connection, a 429 or a 5xx."""
        base = endpoint.base_url
        headers = backend.headers_for(base)
        last = ""
        for attempt in range(TRIES):
            try:
                resp = self.client.request(method, f"{base}{path}", headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                last = f"connection failed ({type(exc).__name__})"
            else:
                if resp.status_code == 200:
                    return resp.content if raw else _json(resp, base, what)
                detail = redact(" ".join(resp.text.split())[:200], [os.environ.get(backend.key_env)])
                if resp.status_code == 404 and method == "GET" and path.startswith("/files/"):
                    raise Gone(f"{base} no longer has the file of {path.split('/')[2]} (HTTP 404)")
                if resp.status_code not in (429, 500, 502, 503, 504):
                    raise LLMJudgeError(_refused(base, what, resp.status_code, detail, backend.key_env))
                last = f"HTTP {resp.status_code}: {detail}"
            if attempt + 1 < TRIES:
                pause(self.backoff * 2 ** attempt)
        raise LLMJudgeError(f"{base} could not {what} after {TRIES} attempts: {last}")


def _json(resp: httpx.Response, base: str, what: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise LLMJudgeError(f"{base} answered a request to {what} with no JSON: is it an OpenAI-compatible API?") from None


def _refused(base: str, what: str, status: int, detail: str, key_env: str) -> str:
    if status == 401:
        return f"{base} refused the API key when asked to {what} (401): set the right key in {key_env}"
    if status in (404, 405):
        return (f"{base} has no Batch API (HTTP {status} when asked to {what}): run without --batch, or write the "
                "requests for an offline engine with --batch-files DIR")
    return f"{base} refused to {what} (HTTP {status}: {detail})"


class BatchFiles:
    """Request files in a folder, answered by an engine the user runs (vLLM's ``run_batch``)."""

    waits = False

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LLMJudgeError(f"cannot write request files to {self.folder}: {exc.strerror}; give a writable "
                                "folder with --batch-files") from None

    def upload(self, endpoint: Endpoint, backend: Any, lines: Sequence[Mapping[str, Any]], seq: int) -> str:
        """Write the request file, whole or not at all, under a name of the model, the run's count of
        files and a hash of the model's spec and server and of the requests (never one used before)."""
        from .batches import custom_id

        digest = custom_id({"spec": endpoint.spec, "url": endpoint.base_url,
                            "ids": sorted(str(x["custom_id"]) for x in lines)})[5:15]
        name = f"{_slug(endpoint.model)}-{seq:03d}-{digest}.jsonl"
        path = self.folder / name
        tmp = path.with_suffix(".part")
        try:
            tmp.write_bytes(jsonl(lines))
            tmp.replace(path)  # whole or absent: an engine never reads half a file
        except OSError as exc:
            raise LLMJudgeError(f"cannot write {path}: {exc.strerror}; free some space or give another "
                                "folder with --batch-files") from None
        return name

    def create(self, endpoint: Endpoint, backend: Any, input_file: str, run_id: str) -> str:
        return input_file

    def find(self, endpoint: Endpoint, backend: Any, input_file: str) -> str | None:
        return input_file

    def output(self, batch_id: str) -> Path:
        return self.folder / (batch_id.removesuffix(".jsonl") + ".output.jsonl")

    def state(self, endpoint: Endpoint, backend: Any, batch_id: str) -> BatchState:
        out = self.output(batch_id)
        if out.is_file():
            return BatchState(batch_id, "completed", str(out))
        # its request file gone too (the folder cleaned, or another folder given): its requests go again
        return BatchState(batch_id, "waiting" if (self.folder / batch_id).is_file() else "gone")

    def lines(self, endpoint: Endpoint, backend: Any, state: BatchState) -> list[dict[str, Any]]:
        return _read(self.output(state.id))

    def requests(self, endpoint: Endpoint, backend: Any, input_file: str) -> list[dict[str, Any]]:
        return _read(self.folder / input_file)

    def command(self, endpoint: Endpoint, batch_id: str) -> str:
        """What runs one request file through vLLM."""
        return shlex.join(["python", "-m", "vllm.entrypoints.openai.run_batch", "-i", str(self.folder / batch_id),
                           "-o", str(self.output(batch_id)), "--model", endpoint.model])


def _read(path: Path) -> list[dict[str, Any]]:
    """A file of the folder as JSONL; a file gone or unreadable is one line naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Gone(f"cannot read {path}: {exc.strerror}") from None
    return read_jsonl(data, str(path))


def _slug(model: str) -> str:
    """A model name as a file name's start.

    >>> _slug("Qwen/Qwen2.5-7B-Instruct")
    'Qwen_Qwen2.5-7B-Instruct'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model)[:60] or "model"
