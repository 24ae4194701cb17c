"""Several servers of one model (replicas): which one a call goes to, which are out, and what each did.

The ``openai`` backend asks :meth:`Replicas.choose` for a replica before each attempt of a call and
tells :meth:`Replicas.settle` how the attempt went. The rules, all here:

- **Choice**: among the replicas in service with a free slot (each has its own limit of calls in
  flight), the one with the fewest in flight; ties go to the one used least recently, so equal
  replicas take turns. A retried call goes to another replica where one is free.
- **Taken out**: a replica that refused the connection is out at once; one that failed
  ``STREAK`` attempts in a row (5xx, 429, timeouts, malformed replies, dropped connections) is out
  too. The k-th time in a row it is out for ``backoff * 2**(k-1)`` seconds, at most ``cap``.
- **Back**: when its time is up it takes one call (a probe); a success puts it back in full
  service and forgets its failures, a failure takes it out again for twice as long.
- **A lone replica is never taken out**: there is nowhere else to send its calls, which back off
  between attempts as they always did.

    >>> clock = [0.0]
    >>> pool = Replicas(["http://a/v1", "http://b/v1"], limit=2, clock=lambda: clock[0])
    >>> first = pool.choose(); first.url, pool.choose().url   # the fewest in flight
    ('http://a/v1', 'http://b/v1')
    >>> pool.settle(first, "refused"); pool.in_service()      # out for 2 s
    ['http://b/v1']
    >>> clock[0] = 2.0; pool.in_service()                     # back, on probation
    ['http://a/v1', 'http://b/v1']

What it leaves out: HTTP, keys and URLs' meaning (``openai``), the attempts of a call and the waits
between them (the caller's), and any state beyond this process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

# answered (any status not retried); no connection; a failed attempt; stopped before it ended (counts nothing)
Outcome = Literal["ok", "refused", "failed", "aborted"]
STREAK = 3  # failed attempts in a row that take a replica out
BACKOFF = 2.0  # seconds out, the first time in a row
CAP = 60.0  # the longest time out


@dataclass
class Replica:
    """One server of the model, and what it did (the counts of ``describe()``)."""

    url: str
    limit: int  # calls in flight at most
    in_flight: int = 0
    calls: int = 0  # attempts sent
    failures: int = 0  # attempts that got no answer
    answered: int = 0
    answer_seconds: float = 0.0
    taken_out: int = 0
    streak: int = 0  # failed attempts in a row
    outs: int = 0  # times out in a row (since its last answer)
    back_at: float | None = None  # out until then; None: in service
    probing: bool = False  # back from an outage: one call at a time until one is answered
    last_used: int = 0

    def counts(self) -> dict[str, object]:
        """Calls, failures, mean latency of its answers (ms) and the times it was taken out."""
        mean = round(1000 * self.answer_seconds / self.answered, 1) if self.answered else None
        return {"calls": self.calls, "failures": self.failures, "mean_ms": mean, "taken_out": self.taken_out}


class Replicas:
    """The replicas of one model, shared by the threads calling it."""

    def __init__(self, urls: Sequence[str], limit: int, *, backoff: float = BACKOFF, cap: float = CAP,
                 clock: Callable[[], float] = time.monotonic):
        self.replicas = [Replica(url, max(1, limit)) for url in urls]
        self.backoff, self.cap, self.clock = backoff, cap, clock
        self._changed = threading.Condition()
        self._uses = 0

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def _returned(self, now: float) -> None:
        """Replicas whose time out is over come back, on probation."""
        for r in self.replicas:
            if r.back_at is not None and now >= r.back_at:
                r.back_at, r.probing = None, True

    def _free(self) -> list[Replica]:
        return [r for r in self.replicas if r.back_at is None and r.in_flight < (1 if r.probing else r.limit)]

    def choose(self, avoid: Replica | None = None) -> Replica | None:
        """The replica for the next attempt (counted in flight until ``settle``), or None when none
        has a free slot; ``avoid`` (where the call failed) only when no other is free."""
        with self._changed:
            self._returned(self.clock())
            free = self._free()
            others = [r for r in free if r is not avoid]
            if not free:
                return None
            chosen = min(others or free, key=lambda r: (r.in_flight, r.last_used))
            self._uses += 1
            chosen.last_used, chosen.in_flight, chosen.calls = self._uses, chosen.in_flight + 1, chosen.calls + 1
            return chosen

    def settle(self, replica: Replica, outcome: Outcome, seconds: float = 0.0) -> None:
        """How an attempt on ``replica`` went: its slot is free again, its counts and state follow."""
        with self._changed:
            replica.in_flight -= 1
            if outcome == "aborted":
                replica.calls -= 1
            elif outcome == "ok":
                replica.answered, replica.answer_seconds = replica.answered + 1, replica.answer_seconds + seconds
                replica.streak, replica.outs, replica.probing = 0, 0, False
            else:
                replica.failures, replica.streak = replica.failures + 1, replica.streak + 1
                if self._should_go(replica, outcome):
                    self._take_out(replica, self.clock())
            self._changed.notify_all()

    def _should_go(self, replica: Replica, outcome: Outcome) -> bool:
        """Whether a failure takes ``replica`` out: never the only one, nor one out already."""
        if len(self.replicas) < 2 or replica.back_at is not None:
            return False
        return outcome == "refused" or replica.probing or replica.streak >= STREAK

    def _take_out(self, replica: Replica, now: float) -> None:
        replica.outs, replica.taken_out, replica.streak, replica.probing = replica.outs + 1, replica.taken_out + 1, 0, False
        replica.back_at = now + min(self.cap, self.backoff * 2 ** (replica.outs - 1))

    def in_service(self) -> list[str]:
        """The URLs of the replicas not out now."""
        with self._changed:
            self._returned(self.clock())
            return [r.url for r in self.replicas if r.back_at is None]

    def all_out(self) -> bool:
        """Whether every replica is out now (no attempt can be sent until one is back)."""
        return not self.in_service()

    def others_in_service(self, replica: Replica | None) -> bool:
        """Whether a replica other than ``replica`` is in service (a retry need not wait for it)."""
        return any(url != (replica.url if replica else None) for url in self.in_service())

    def wait(self, seconds: float) -> None:
        """Wait until an attempt settles (a slot frees, a replica's state changes), at most ``seconds``."""
        with self._changed:
            self._changed.wait(seconds)

    def counts(self) -> dict[str, dict[str, object]]:
        """Each replica's counts by URL (``describe()``'s ``replicas``)."""
        with self._changed:
            return {r.url: r.counts() for r in self.replicas}
