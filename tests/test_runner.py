"""The runner's contract with scripted jobs: the concurrency bounds hold, a shared key is one call,
a stop drops what has not started and returns at once, progress counts every item, and a job's
exception reaches the caller as it was raised."""

from __future__ import annotations

import threading
import time

import pytest

from llm_judge import cancel
from llm_judge.errors import LLMJudgeError
from llm_judge.runner import Call, Runner


class Gauge:
    """Counts the calls in flight, per group and in all, and the most seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.calls: list[str] = []

    def job(self, key: str, group: str, seconds: float = 0.02) -> Call[str]:
        def fn() -> str:
            with self.lock:
                self.calls.append(key)
                for g in (group, "*"):
                    self.now[g] = self.now.get(g, 0) + 1
                    self.most[g] = max(self.most.get(g, 0), self.now[g])
            time.sleep(seconds)
            with self.lock:
                for g in (group, "*"):
                    self.now[g] -= 1
            return key.upper()
        return Call(key, fn, group)


def test_the_concurrency_bounds_are_never_exceeded():
    gauge = Gauge()
    with Runner(4, limits={"slow": 1, "wide": 3}) as runner:
        for i in range(12):
            runner.submit(gauge.job(f"s{i}", "slow"), i)
            runner.submit(gauge.job(f"w{i}", "wide"), i)
        results = {f.job.key: f.value() for f in runner.finished()}
    assert len(results) == 24 and results["w3"] == "W3"
    assert gauge.most == {"slow": 1, "wide": 3, "*": 4}  # each bound reached, none passed


def test_one_group_at_its_limit_does_not_hold_up_another():
    gate = threading.Event()
    order = []
    with Runner(2, limits={"a": 1, "b": 1}) as runner:
        runner.submit(Call("a1", lambda: gate.wait(5), "a"), "a1")
        runner.submit(Call("a2", lambda: order.append("a2"), "a"), "a2")
        runner.submit(Call("b1", lambda: (order.append("b1"), gate.set()), "b"), "b1")
        done = [f.waiters[0] for f in runner.finished()]
    assert order == ["b1", "a2"] and sorted(done) == ["a1", "a2", "b1"]


def test_jobs_sharing_a_key_are_one_call_and_every_waiter_gets_it():
    gauge = Gauge()
    with Runner(3) as runner:
        for waiter in ("x", "y", "z"):
            runner.submit(gauge.job("same", "g", seconds=0.1), waiter)
        runner.submit(gauge.job("other", "g"), "w")
        finished = {f.job.key: (f.waiters, f.value()) for f in runner.finished()}
    assert sorted(gauge.calls) == ["other", "same"]
    assert finished["same"] == (["x", "y", "z"], "SAME")


def test_one_key_in_two_stages_is_two_calls():
    calls = []
    with Runner(1) as runner:
        runner.submit(Call("k", lambda: calls.append("gen"), stage="generating"), 1)
        runner.submit(Call("k", lambda: calls.append("judge"), stage="judging"), 2)
        list(runner.finished())
    assert sorted(calls) == ["gen", "judge"]


def test_jobs_submitted_while_reading_are_read_too():
    with Runner(2) as runner:
        runner.submit(Call("1", lambda: 1), 1)
        seen = []
        for f in runner.finished():
            seen.append(f.value())
            if f.value() < 4:
                runner.submit(Call(str(f.value() + 1), lambda n=f.value() + 1: n), f.value() + 1)
    assert seen == [1, 2, 3, 4]


def test_stop_drops_the_queued_jobs_and_returns_at_once():
    started = threading.Event()
    ran = []

    def slow() -> None:
        started.set()
        time.sleep(3)  # a request that is not cut off: it is left unwaited

    before = set(threading.enumerate())
    runner: Runner[int] = Runner(1)
    runner.submit(Call("slow", slow), 0)
    for i in range(5):
        runner.submit(Call(f"q{i}", lambda i=i: ran.append(i)), i)
    assert started.wait(5)
    t0 = time.monotonic()
    runner.stop()
    assert time.monotonic() - t0 < 0.5
    runner.threads[0].join(5)
    assert ran == []  # nothing queued ran after the stop
    assert all(not t.is_alive() for t in set(threading.enumerate()) - before)


def test_ctrl_c_in_the_block_stops_the_runner_and_the_waits_between_retries():
    waiting = threading.Event()
    woke = []

    def retrying() -> None:
        waiting.set()
        try:
            cancel.pause(30)  # a backend waiting before its next attempt
        except cancel.Cancelled:
            woke.append(time.monotonic())

    with pytest.raises(KeyboardInterrupt):
        with Runner(1) as runner:
            runner.submit(Call("r", retrying), 0)
            assert waiting.wait(5)
            t0 = time.monotonic()
            raise KeyboardInterrupt
    runner.threads[0].join(5)
    assert woke and woke[0] - t0 < 2 and not runner.threads[0].is_alive()


def test_a_stop_event_set_from_outside_ends_the_callers_wait():
    stop = threading.Event()
    cancel.carry(stop)  # the page's comparison thread carries its visitor's stop event
    try:
        with Runner(1) as runner:
            runner.submit(Call("waits", lambda: cancel.pause(30)), 0)
            threading.Timer(0.2, stop.set).start()
            with pytest.raises(cancel.Cancelled):
                list(runner.finished())
    finally:
        cancel.carry(None)


def test_progress_counts_cached_and_shared_items_to_the_total():
    seen = []
    with Runner(2, progress=lambda *told: seen.append(told)) as runner:
        runner.expect("judging", 5)
        runner.count("judging")  # found in the cache
        for waiter in range(3):
            runner.submit(Call("shared", lambda: time.sleep(0.05), stage="judging"), waiter)
        runner.submit(Call("alone", lambda: None, stage="judging"), 3)
        in_flight_then = []
        for _ in runner.finished():
            in_flight_then.append(runner.stages["judging"].in_flight)
    assert seen[0] == ("judging", 0, 5, 0) and seen[-1] == ("judging", 5, 5, 0)
    assert [done for _stage, done, _total, _flight in seen] == sorted(done for _s, done, _t, _f in seen)
    assert max(in_flight_then) <= 1  # the call just read no longer counts as in flight


class Boom(Exception):
    pass


def test_a_jobs_exception_reaches_the_caller_as_raised():
    with pytest.raises(Boom, match="bug in a job"):
        with Runner(2) as runner:
            runner.submit(Call("x", lambda: (_ for _ in ()).throw(Boom("bug in a job"))), 0)
            list(runner.finished())


def test_a_fatal_error_is_raised_and_a_plain_failure_is_a_result():
    fatal = LLMJudgeError("the key was refused")
    fatal.fatal = True

    def refuse() -> None:
        raise fatal

    def fail() -> None:
        raise LLMJudgeError("the server went away")

    with Runner(1) as runner:
        runner.submit(Call("f", fail), 0)
        (only,) = list(runner.finished())
    assert isinstance(only.error, LLMJudgeError) and only.result is None
    with pytest.raises(LLMJudgeError, match="server went away"):
        only.value()
    with pytest.raises(LLMJudgeError, match="refused") as caught:
        with Runner(1) as runner:
            runner.submit(Call("r", refuse), 0)
            list(runner.finished())
    assert caught.value is fatal


def test_a_runner_needs_a_worker():
    with pytest.raises(LLMJudgeError, match="at least 1"):
        Runner(0)
