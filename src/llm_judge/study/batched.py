"""A study through batches (``run --batch``, ``run --batch-files DIR``): rounds of a pass and a batch.

Each round runs the study's pipeline once with batched backends: what the store or the book
(``backends.batches``) holds is written, every call still to make is pending. The pending requests
of each model go as one batch; once it has ended, its answers go into the book and the next round
runs. So the stages that depend on answers (a later turn, the judging, a judge's second attempt)
go as the next batch, and a round with nothing pending ends the study.

Every request file and batch is stored with the run (``Store.add_batch``) before the next step:
running the same study again, after a kill or a reboot, first waits for and reads the run's
earlier batches (one whose id was not stored yet is found by its request file), so no batch is
paid for twice. A batch that failed as a whole fails its requests; requests that failed inside a
batch, or that it did not run before it expired or was cancelled, go again in the next batch (up
to ``batches.ATTEMPTS``). With a folder (``BatchFiles``), a round whose answers are not there yet
stops the run, ``incomplete``, naming the files to run: the same command reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import Backend
from ..backends.batchapi import BatchAPI, BatchFiles, BatchState, Gone, Transport
from ..backends.batches import Book, Endpoint, batchable
from ..cancel import pause
from ..errors import LLMJudgeError
from ..runner import Progress
from ..store import Store

POLL = 30.0  # seconds between two looks at a batch under way
MAX_REQUESTS = 50_000  # OpenAI's limits of one batch's file: requests, and bytes (200 MB, with room)
MAX_BYTES = 190_000_000
# a stored batch not to look at again: its answers written (read), its files gone, or never made
SETTLED = ("read", "gone", "refused")


@dataclass(frozen=True)
class BatchOptions:
    """How a study's calls go in batches: to the Batch API of each model's server, or as request
    files in ``folder`` for an offline engine."""

    folder: Path | None = None
    poll: float = POLL

    def transport(self) -> Transport:
        return BatchAPI() if self.folder is None else BatchFiles(self.folder)


@dataclass
class Waiting:
    """Request files written and not answered yet: what the user runs before the same command again."""

    files: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def message(self, run_id: str) -> str:
        runs = "\n".join(f"  {c}" for c in self.commands)
        return (f"run {run_id} waits for {len(self.files)} request file(s); answer each with your engine, "
                f"writing NAME.output.jsonl beside NAME.jsonl, then run the same command again:\n{runs}")


class Incomplete(Exception):  # noqa: N818 (not an error: the run stops until its answers are there)
    def __init__(self, waiting: Waiting) -> None:
        super().__init__(f"waiting for {len(waiting.files)} request file(s)")
        self.waiting = waiting


def chunks(lines: list[dict[str, Any]], most: int = MAX_REQUESTS, most_bytes: int = MAX_BYTES
           ) -> Iterator[list[dict[str, Any]]]:
    """A model's pending requests in files a Batch API takes (at most ``most`` lines and about
    ``most_bytes`` bytes each).

    >>> [len(c) for c in chunks([{"a": 1}] * 5, most=2)]
    [2, 2, 1]
    """
    part: list[dict[str, Any]] = []
    size = 0
    for line in lines:
        n = len(json.dumps(line, ensure_ascii=False).encode()) + 1
        if part and (len(part) >= most or size + n > most_bytes):
            yield part
            part, size = [], 0
        part.append(line)
        size += n
    if part:
        yield part


def batched_backends(backends: Mapping[str, Backend], book: Book) -> dict[str, Backend]:
    """The study's models with every OpenAI-compatible one answering from ``book``; one line when
    there is none (a local model runs in this process: nothing to batch)."""
    out: dict[str, Backend] = {s: b.batched(book) if batchable(b) else b  # type: ignore[attr-defined]
                               for s, b in backends.items()}
    if not any(batchable(b) for b in backends.values()):
        raise LLMJudgeError("--batch sends an OpenAI-compatible server's calls in batches, and no model of this study "
                            "is one (openai:MODEL@URL): run without --batch")
    return out


class Rounds:
    """A batched study's rounds on one store and run."""

    def __init__(self, options: BatchOptions, book: Book, store: Store, run_id: str,
                 backends: Mapping[str, Backend], progress: Progress | None = None,
                 transport: Transport | None = None) -> None:
        self.options, self.book, self.store, self.run_id = options, book, store, run_id
        self.transport = transport or options.transport()
        self.by_spec = {b.spec: b for b in backends.values() if batchable(b)}
        self.tell = progress or (lambda *_: None)
        self.read: set[str] = set()  # request files whose answers are in the book, not yet in the store

    def run(self, one_pass: Callable[[], int]) -> int:
        """Rounds until one has nothing pending; returns that pass's failures."""
        self.collect()
        while True:
            failed = one_pass()
            self._written()
            pending = self.book.take()
            if not pending:
                self.store.set_manifest_entry(self.run_id, "batches", lambda _m, _status: self.counts())
                return failed
            for endpoint, (backend, lines) in pending.items():
                for part in chunks(lines):
                    self.send(endpoint, backend, part)
            self.collect()

    def _written(self) -> None:
        """The batches read before this pass: their answers are in the store now, so they are marked
        ``read`` (settled: neither this run of the command nor a later one reads them again)."""
        for input_file in self.read:
            self.store.set_batch(self.run_id, input_file, status="read")
        self.read.clear()

    def counts(self) -> dict[str, int]:
        """The run's batches and the requests they held (``run --json`` shows them)."""
        rows = self.store.batches(self.run_id)
        return {"batches": len(rows), "requests": sum(int(r["requests"]) for r in rows)}

    def send(self, endpoint: Endpoint, backend: Any, lines: list[dict[str, Any]]) -> None:
        """Upload a model's pending requests and make a batch of them, storing each step; a server
        that refuses to make it leaves the file marked ``refused`` (the next run asks again)."""
        seq = len(self.store.batches(self.run_id)) + 1
        input_file = self.transport.upload(endpoint, backend, lines, seq)
        self.store.add_batch(self.run_id, input_file, endpoint.spec, endpoint.model, endpoint.base_url, len(lines))
        try:
            batch_id = self.transport.create(endpoint, backend, input_file, self.run_id)
        except LLMJudgeError:
            self.store.set_batch(self.run_id, input_file, status="refused")
            raise
        self.store.set_batch(self.run_id, input_file, batch_id=batch_id, status="validating")

    def collect(self) -> None:
        """Wait for every batch of the run not read yet, and put its answers in the book."""
        waiting = Waiting()
        for row in self.store.batches(self.run_id):
            if row["input_file"] in self.read or row["status"] in SETTLED:
                continue
            endpoint = Endpoint(row["spec"], row["model"], row["base_url"])
            backend = self.by_spec.get(row["spec"])
            if backend is None:  # a model of an earlier form of the run: nothing of this study asks it
                continue
            batch_id = row["batch_id"] or self._made(endpoint, backend, row["input_file"])
            state = self._wait(endpoint, backend, batch_id, row["input_file"])
            if state.status == "gone":
                continue  # marked by _wait: its requests are asked again
            if not state.ended:
                waiting.files.append(str(batch_id))
                if isinstance(self.transport, BatchFiles):
                    waiting.commands.append(self.transport.command(endpoint, batch_id))
                continue
            self._take_in(endpoint, backend, row, state)
        if waiting.files:
            raise Incomplete(waiting)

    def _made(self, endpoint: Endpoint, backend: Any, input_file: str) -> str:
        """The batch of a request file stored without one: found where it was made, else made now."""
        batch_id = self.transport.find(endpoint, backend, input_file)
        if batch_id is None:
            batch_id = self.transport.create(endpoint, backend, input_file, self.run_id)
        self.store.set_batch(self.run_id, input_file, batch_id=batch_id, status="validating")
        return batch_id

    def _wait(self, endpoint: Endpoint, backend: Any, batch_id: str, input_file: str) -> BatchState:
        """The batch once it has ended (a folder's: as it is now)."""
        while True:
            state = self.transport.state(endpoint, backend, batch_id)
            self.store.set_batch(self.run_id, input_file, status=state.status)
            done = int(state.counts.get("completed", 0)) + int(state.counts.get("failed", 0))
            self.tell(f"batch {state.id[-8:]}", done, int(state.counts.get("total", 0)), 0)  # one line a batch
            if state.ended or not self.transport.waits:
                return state
            pause(self.options.poll)

    def _take_in(self, endpoint: Endpoint, backend: Any, row: Any, state: BatchState) -> None:
        try:
            lines = self.transport.lines(endpoint, backend, state)
        except Gone:  # its files were deleted (or expired): its requests go again
            self.store.set_batch(self.run_id, row["input_file"], status="gone")
            return
        self.book.add(endpoint, lines)
        if state.status == "failed":
            ids = [str(x.get("custom_id")) for x in self.transport.requests(endpoint, backend, row["input_file"])]
            self.book.fail(endpoint, ids, f"the batch {state.id} failed: {state.why or 'no reason given'}")
        self.read.add(row["input_file"])
