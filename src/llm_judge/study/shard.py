"""Shards of a study: the slice of its prompts that one of N machines runs, and what a run's
manifest says about the shards a store holds.

A prompt belongs to shard ``1 + sha256(prompt id) mod N``: the same slice on every machine,
whatever order the prompts are listed in, and every turn, answer and judgment of a prompt (every
repeat) in the one shard, since all of them are the prompt's. The shard is not part of the study's
configuration, so every shard writes the same run (the study's run id); the run's manifest says
which shards this store holds finished, ``"shards": {"of": N, "done": [K, ...]}``, and a run is
``partial`` while some are missing (``shown_status``). Joining two stores' records of one run
(``join``) is the rule ``merge`` follows.

>>> Shard.parse("2/3").holds("q1") == (shard_of("q1", 3) == 2)
True

Left out: running a slice (``study.run``), copying rows between stores (``merge``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..errors import LLMJudgeError

_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
MAX_SHARDS = 100_000


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


P = TypeVar("P", bound=_HasId)


def shard_of(prompt_id: str, count: int) -> int:
    """The shard (1 to ``count``) a prompt belongs to: a hash of its id alone.

    >>> [shard_of(p, 3) for p in ("q1", "q2", "q3", "q4", "q5", "q6")]
    [2, 3, 2, 3, 1, 2]
    """
    digest = hashlib.sha256(prompt_id.encode("utf-8", "surrogatepass")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1 <= index <= count)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` as a shard, or the one-line error."""
        m = _FORM.fullmatch(text)
        if m is None:
            raise LLMJudgeError(f"shard {text!r} is not K/N: give this machine's shard and the number of shards, "
                                "e.g. 2/8")
        return cls.of(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, index: int, count: int) -> Shard:
        if not 1 <= count <= MAX_SHARDS:
            raise LLMJudgeError(f"shard {index}/{count}: split a study into 1 to {MAX_SHARDS} shards")
        if not 1 <= index <= count:
            raise LLMJudgeError(f"shard {index}/{count}: K is 1 to {count} (the shards are numbered from 1)")
        return cls(index, count)

    def holds(self, prompt_id: str) -> bool:
        return shard_of(prompt_id, self.count) == self.index

    def select(self, prompts: Sequence[P]) -> list[P]:
        """The prompts of this shard, in the order given."""
        return [p for p in prompts if self.holds(p.id)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Shards:
    """A manifest's record of a run's shards: how many the study is split into, which are done."""

    count: int
    done: frozenset[int]

    @property
    def missing(self) -> list[int]:
        return [k for k in range(1, self.count + 1) if k not in self.done]

    def to_json(self) -> dict[str, Any]:
        return {"of": self.count, "done": sorted(self.done)}


def read_shards(manifest: Mapping[str, Any]) -> Shards | None:
    """The manifest's shards, None where the run was never sharded."""
    entry = manifest.get("shards")
    if not isinstance(entry, Mapping):
        return None
    return Shards(int(entry["of"]), frozenset(int(k) for k in entry.get("done", ())))


def started(manifest: Mapping[str, Any], status: str, shard: Shard | None) -> dict[str, Any] | None:
    """The manifest's shards once ``shard`` starts on the run (None: nothing to record); a run
    finished whole stays whole, and a run split another way is refused in one line."""
    known = read_shards(manifest)
    if shard is None or (known is None and status == "done"):
        return None
    if known is not None and known.count != shard.count:
        raise LLMJudgeError(f"this store holds the run as {known.count} shards, not {shard.count}: run it with "
                            f"--shard K/{known.count}, or with another store")
    return (known or Shards(shard.count, frozenset())).to_json()


def finished(manifest: Mapping[str, Any], shard: Shard | None) -> dict[str, Any] | None:
    """The manifest's shards once ``shard`` (None: the whole study) finished ``done`` on this store
    (None: a run never split, or finished whole before, which ``started`` left without shards)."""
    known = read_shards(manifest)
    if known is None:
        return None
    done = set(range(1, known.count + 1)) if shard is None else known.done | {shard.index}
    return Shards(known.count, frozenset(done)).to_json()


def shown_status(status: str, manifest: Mapping[str, Any]) -> str:
    """A run's status as ``runs`` and the summary show it: ``partial`` for a run done on the
    shards it holds while others are missing.

    >>> shown_status("done", {"shards": {"of": 3, "done": [1, 3]}}), shown_status("done", {})
    ('partial', 'done')
    """
    known = read_shards(manifest)
    return "partial" if status == "done" and known is not None and known.missing else status


@dataclass(frozen=True)
class RunState:
    """What a store holds of one run's progress: its status and its manifest's shards."""

    status: str
    shards: Shards | None

    @property
    def complete(self) -> bool:
        return self.status == "done" and (self.shards is None or not self.shards.missing)


def join(target: RunState, source: RunState) -> RunState:
    """One run as two stores hold it, joined: the shards done on either, ``done`` where either is
    complete or both are done, else the status of the side that is not (the target's first).
    Raises ``LLMJudgeError`` where the two split the study into different numbers of shards."""
    counts = {s.shards.count for s in (target, source) if s.shards is not None}
    if len(counts) > 1:
        raise LLMJudgeError(f"the stores split the run into {' and '.join(map(str, sorted(counts)))} shards")
    shards = None
    if counts:
        count = counts.pop()
        whole = any(s.shards is None and s.complete for s in (target, source))
        done = set(range(1, count + 1)) if whole else {k for s in (target, source) if s.shards for k in s.shards.done}
        shards = Shards(count, frozenset(done))
    complete = target.complete or source.complete or (shards is not None and not shards.missing)
    if complete or (target.status == source.status == "done"):
        return RunState("done", shards)
    return RunState(next(s.status for s in (target, source) if s.status != "done"), shards)
