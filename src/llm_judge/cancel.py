"""Stopping a study's calls: each worker thread of a run carries that run's stop event (a context
variable, set in the thread, never process-wide), and a backend waits between retries with
``pause``, which ends as soon as the event is set. Another run's calls, and calls made outside a
study, wait their full time as before.

What it leaves out: a request already sent is not cut off; it runs until it returns or times out
(its result is then dropped), and the CLI does not wait for it.

>>> stop = threading.Event(); stop.set(); carry(stop)
>>> pause(60)
Traceback (most recent call last):
...
llm_judge.cancel.Cancelled: the run was stopped: the call is not retried
>>> carry(None); pause(0)  # no run: a plain sleep
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar

from .errors import LLMJudgeError

_STOP: ContextVar[threading.Event | None] = ContextVar("llm_judge_stop", default=None)


class Cancelled(LLMJudgeError):
    """The run this call belongs to was stopped (Ctrl-C): its result would be dropped anyway."""


def carry(stop: threading.Event | None) -> None:
    """Make ``stop`` the stop event of the calls this thread makes from now on."""
    _STOP.set(stop)


def current() -> threading.Event | None:
    """This thread's stop event (None outside a run): the one a runner's workers carry on."""
    return _STOP.get()


def pause(seconds: float) -> None:
    """Sleep ``seconds``; raise ``Cancelled`` as soon as this thread's run is stopped (at once
    when it is already: ``pause(0)`` is the check before a new request)."""
    stop = _STOP.get()
    if stop is None:
        if seconds > 0:
            time.sleep(seconds)
    elif stop.wait(seconds):
        raise Cancelled("the run was stopped: the call is not retried")
