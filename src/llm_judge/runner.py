"""The one runner for every batch of calls (a study, ``compare``, a judge evaluation): named jobs
run on worker threads, at most ``limits[group]`` of one endpoint's at once and ``workers`` in all,
jobs that share a key made as one call, progress counted per stage, and a stop that ends it all.

A caller submits jobs, each with a *waiter* (what the caller needs back with the result: a run
item, a label), and reads ``finished()``: one ``Finished`` per call as calls end, on the caller's
thread, so results are written and progress told by one thread. It may submit more while reading
(a study submits a judgment as soon as its answers are there). A job that fails with a non-fatal
``LLMJudgeError`` ends as ``Finished.error``, one put in a batch (``errors.Deferred``) as its
result; any other exception (a fatal error, ``Cancelled``, a
bug) is raised to the caller as it was raised.

The workers are daemon threads that carry the runner's stop event (``cancel``): ``stop`` (called
when the caller leaves the ``with`` block by an exception, Ctrl-C included) drops the jobs not yet
started, ends the waits between a backend's retries and returns at once, leaving the calls in flight
unwaited, so Ctrl-C ends a study within a moment whatever its endpoints do. The event is the calling
thread's own when it carries one (the page stops a comparison so: its calls end, and the caller sees
it when the call under way returns), else new.

Left out: retrying a request (each backend retries its own, ``cancel.pause`` ends the waits; a
failed call is retried by the next run through the store's cache) and any caching: the caller
looks results up before it submits and writes them when they finish.

    >>> with Runner(2) as runner:
    ...     runner.submit(Call("twice", lambda: 2 * 21), "the answer")
    ...     [(f.waiters, f.value()) for f in runner.finished()]
    [(['the answer'], 42)]
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from . import cancel
from .backends.batches import repeat as batch_repeat
from .errors import Deferred, LLMJudgeError

if TYPE_CHECKING:
    from .backends import Backend, Completion, Messages, TokenCallback
    from .judging import AuxTexts, Judge, JudgeCall
    from .records import Order
    from .sampling import SamplingParams
    from .store import ItemLink

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
W = TypeVar("W")
Progress = Callable[[str, int, int, int], None]  # (stage, done, total, in_flight)


class Job(Protocol[R_co]):
    """A call to make: its ``stage`` (for progress), its ``key`` (jobs with one stage and key are
    one call) and its ``group`` (the endpoint it runs on, for the concurrency limits)."""

    @property
    def stage(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def group(self) -> str: ...

    def run(self) -> R_co: ...


@dataclass(frozen=True)
class Generate:
    """A candidate's answer: ``backend`` answers ``messages`` with ``sampling``."""

    backend: Backend
    messages: Messages
    sampling: SamplingParams
    key: str
    link: ItemLink | None = None
    on_token: TokenCallback | None = None
    stage: str = "generating"

    @property
    def group(self) -> str:
        return self.backend.spec

    def run(self) -> Completion:
        return self.backend.generate(self.messages, self.sampling, on_token=self.on_token)


@dataclass(frozen=True)
class JudgeOrder:
    """One order of a pairwise judgment: ``answers`` (and ``history``) in the item's labels."""

    judge: Judge
    question: str
    answers: tuple[str, str]
    order: Order
    key: str
    link: ItemLink | None = None
    reference: str | None = None
    history: tuple[Messages, Messages] | None = None
    auxiliary: AuxTexts | None = None  # where a protocol's auxiliary texts come from (``cache``)
    earlier_references: tuple[str | None, ...] = ()  # the earlier turns' references (a protocol may show them)
    repeat: int = 0  # the item's repeat (``--repeat``): in a batch, its own request
    stage: str = "judging"

    @property
    def group(self) -> str:
        return self.judge.name

    def run(self) -> JudgeCall:
        with batch_repeat(self.repeat):
            return self.judge.judge_order(self.question, self.answers, self.order, reference=self.reference,
                                          history=self.history, auxiliary=self.auxiliary,
                                          earlier_references=self.earlier_references)


@dataclass(frozen=True)
class GradeOne:
    """One answer graded alone, under its label."""

    judge: Judge
    question: str
    answer: str
    label: str  # "A"/"B" in a comparison, the candidate's label in a study
    key: str
    link: ItemLink | None = None
    reference: str | None = None
    history: Messages | None = None
    auxiliary: AuxTexts | None = None
    earlier_references: tuple[str | None, ...] = ()
    repeat: int = 0
    stage: str = "judging"

    @property
    def group(self) -> str:
        return self.judge.name

    def run(self) -> JudgeCall:
        with batch_repeat(self.repeat):
            return self.judge.grade(self.question, self.answer, self.label, reference=self.reference,
                                    history=self.history, auxiliary=self.auxiliary,
                                    earlier_references=self.earlier_references)


@dataclass(frozen=True)
class Call(Generic[R]):
    """Any callable as a job (tests, and calls that need nothing else)."""

    key: str
    fn: Callable[[], R]
    group: str = ""
    stage: str = "calling"

    def run(self) -> R:
        return self.fn()


@dataclass
class Finished(Generic[W]):
    """A call that ended: its job, every waiter that shares it, and its result or its error."""

    job: Job[Any]
    waiters: list[W]
    result: Any = None
    error: LLMJudgeError | None = None

    def value(self) -> Any:
        """The result, or the call's error raised (for callers that stop on any failure)."""
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class _Pending(Generic[W]):
    job: Job[Any]
    waiters: list[W]
    outcome: BaseException | None = None
    result: Any = None


@dataclass
class _Stage:
    total: int = 0
    done: int = 0
    in_flight: int = 0


@dataclass
class _State(Generic[W]):
    queue: deque[_Pending[W]] = field(default_factory=deque)  # submitted, not started
    calls: dict[tuple[str, str], _Pending[W]] = field(default_factory=dict)  # submitted, not yet read
    ended: deque[_Pending[W]] = field(default_factory=deque)  # ended, not yet read
    running: Counter[str] = field(default_factory=Counter)  # started per group
    closed: bool = False


class Runner(Generic[W]):
    """Worker threads for one batch of calls; use it as a context manager (an exception out of the
    block stops it, a normal end lets its threads finish)."""

    def __init__(self, workers: int, limits: Mapping[str, int] | None = None, progress: Progress | None = None,
                 stop: threading.Event | None = None) -> None:
        if workers < 1:
            raise LLMJudgeError(f"{workers} workers: a runner needs at least 1")
        starved = next((group for group, n in (limits or {}).items() if n < 1), None)
        if starved is not None:  # its calls would never start
            raise LLMJudgeError(f"{starved} takes {limits[starved]} calls at a time: give it at least 1")  # type: ignore[index]
        self.workers, self.limits, self.tell = workers, dict(limits or {}), progress or _silent
        self.stopped = stop or cancel.current() or threading.Event()
        self.stages: dict[str, _Stage] = {}
        self._state: _State[W] = _State()
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # the caller waits on it for calls that ended
        self._idle = threading.Condition(lock)  # idle workers wait on it
        self.threads = [threading.Thread(target=self._work, name=f"llm-judge-worker-{i}", daemon=True)
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def __enter__(self) -> Runner[W]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.stop()

    # the caller's side

    def submit(self, job: Job[Any], waiter: W) -> None:
        """Make ``job``'s call, or, when a call with its stage and key is under way, let
        ``waiter`` share that one."""
        with self._cond:
            pending = self._state.calls.get((job.stage, job.key))
            if pending is not None:
                pending.waiters.append(waiter)
                return
            pending = _Pending(job, [waiter])
            self._state.calls[(job.stage, job.key)] = pending
            self._state.queue.append(pending)
            self._idle.notify()  # one idle worker: waking them all for one job costs each call O(workers)

    @property
    def outstanding(self) -> int:
        """Calls submitted and not yet read back (the window a caller keeps bounded)."""
        with self._cond:
            return len(self._state.calls)

    def expect(self, stage: str, total: int) -> None:
        """Announce how many items ``stage`` settles (and tell the progress)."""
        self._stage(stage).total = total
        self._tell(stage)

    def count(self, stage: str, items: int = 1) -> None:
        """Count items settled without a call (found in the cache, or waiting for a failed answer)."""
        self._stage(stage).done += items
        self._tell(stage)

    def finished(self) -> Iterator[Finished[W]]:
        """Each call as it ends, until no call is left (jobs submitted meanwhile included); its
        waiters are counted done once the caller has handled it."""
        while (pending := self._next()) is not None:
            if pending.outcome is not None:
                raise pending.outcome
            job = pending.job
            error = pending.result if isinstance(pending.result, LLMJudgeError) else None
            yield Finished(job, pending.waiters, None if error else pending.result, error)
            self.count(job.stage, len(pending.waiters))

    def stop(self) -> None:
        """Drop the jobs not started, end the retries' waits, and return at once."""
        self.stopped.set()
        with self._cond:
            self._state.queue.clear()
            self._state.closed = True
            self._cond.notify_all()
            self._idle.notify_all()

    def close(self) -> None:
        """Let the threads end once no job is left to start."""
        with self._cond:
            self._state.closed = True
            self._cond.notify_all()
            self._idle.notify_all()

    def _next(self) -> _Pending[W] | None:
        with self._cond:
            while not self._state.ended:
                if not self._state.calls:
                    return None
                if self.stopped.is_set():
                    raise cancel.Cancelled("the run was stopped: its calls are dropped")
                self._cond.wait()
            pending = self._state.ended.popleft()
            del self._state.calls[(pending.job.stage, pending.job.key)]
            self._stage(pending.job.stage).in_flight -= 1
            return pending

    def _stage(self, stage: str) -> _Stage:
        return self.stages.setdefault(stage, _Stage())

    def _tell(self, stage: str) -> None:
        s = self.stages[stage]
        self.tell(stage, s.done, s.total, s.in_flight)

    # the workers' side

    def _work(self) -> None:
        cancel.carry(self.stopped)
        while (pending := self._take()) is not None:
            try:
                pending.result = pending.job.run()
            except Deferred as exc:  # put in a batch (``run --batch``): its answer comes later
                pending.result = exc
            except LLMJudgeError as exc:
                if exc.fatal or isinstance(exc, cancel.Cancelled):
                    pending.outcome = exc
                else:
                    pending.result = exc
            except BaseException as exc:  # a bug, or an interrupt: the caller sees it as raised
                pending.outcome = exc
            self._end(pending)

    def _take(self) -> _Pending[W] | None:
        """The first job whose group has room; None once the runner is stopped or closed and empty."""
        with self._cond:
            while True:
                if self.stopped.is_set():
                    self._cond.notify_all()  # a caller waiting for these calls is told it was stopped
                    return None
                pending = next((p for p in self._state.queue if self._has_room(p.job.group)), None)
                if pending is not None:
                    self._state.queue.remove(pending)
                    self._state.running[pending.job.group] += 1
                    self._stage(pending.job.stage).in_flight += 1
                    return pending
                if self._state.closed and not self._state.queue:
                    return None
                self._idle.wait()

    def _has_room(self, group: str) -> bool:
        return self._state.running[group] < self.limits.get(group, self.workers)

    def _end(self, pending: _Pending[W]) -> None:
        with self._cond:
            self._state.running[pending.job.group] -= 1
            if not self.stopped.is_set():
                self._state.ended.append(pending)
            self._cond.notify()  # the caller, reading what ended
            self._idle.notify()  # a slot of the job's group is free: one idle worker may take a job of it


def _silent(stage: str, done: int, total: int, in_flight: int) -> None:
    """No progress to tell."""
