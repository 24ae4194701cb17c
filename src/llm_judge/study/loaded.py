"""A stored run read once: one typed ``LoadedRun`` that the summary, the exports, the votes'
agreement and the report are computed from, as pure functions of it.

``load_run`` reads everything a reader of a run needs in one go: the run's row, its configuration
and manifest, its prompts and conversations, its candidates, the items of every repeat (with
their answers and verdicts, pairwise ones in each item's labels), the human votes and the
judge's known figures. ``pair_rows`` groups the pairwise items per unit and pair, the pair
oriented as the run orients it. A later turn of a conversation is its own unit (``unit_id``).

Left out: computing any figure (``study.summary``, ``stats``), writing (``study.run``,
``study.export``) and the store's SQL and JSON (``store``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..compare import LATER_TURN
from ..judges import known_figures
from ..judging import jury_name
from ..records import ORDERS, Order, Verdict, Winner, reverse
from ..store import ItemKind, RunItem, Store
from .run import orient


@dataclass(frozen=True)
class RunPrompt:
    """One prompt of a run: its text, reference, category and conversation (later turns in
    ``followups``, their references, fixed earlier messages in ``context``; empty when none)."""

    prompt_id: str
    prompt: str
    reference: str | None = None
    category: str | None = None
    conversation: Mapping[str, Any] = field(default_factory=dict)

    @property
    def questions(self) -> list[str]:
        """The user's message of each turn, the first one first."""
        return [self.prompt, *self.conversation.get("followups", [])]


@dataclass(frozen=True)
class RunCandidate:
    label: str
    spec: str
    sampling: Mapping[str, Any]


@dataclass(frozen=True)
class Vote:
    """One person's vote on (label_a, label_b) of a prompt, in those labels (``voter`` None: unknown)."""

    prompt_id: str
    label_a: str
    label_b: str
    shown_left: str
    choice: Winner
    voter: str | None = None


@dataclass(frozen=True)
class PairRow:
    """One pair on one unit, in the pair's orientation (a = A): its verdict in each display order
    (``by_order`` follows ``ORDERS``: a shown first, then b), None where that order is unscored or
    missing."""

    unit: str
    pair: tuple[str, str]
    by_order: tuple[Verdict | None, Verdict | None]

    def orders(self) -> list[tuple[Order, Verdict | None]]:
        return list(zip(ORDERS, self.by_order, strict=True))


@dataclass(frozen=True)
class LoadedRun:
    """Everything stored about one run, read once (``load_run``); ``config`` is the study's
    stored configuration (``StudyConfig.to_dict``), ``items`` those of every repeat."""

    run_id: str
    status: str
    config: Mapping[str, Any]
    manifest: Mapping[str, Any]
    prompts: tuple[RunPrompt, ...]
    candidates: tuple[RunCandidate, ...]
    items: tuple[RunItem, ...]
    votes: tuple[Vote, ...] = ()
    judge_cards: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.candidates]

    @property
    def baseline(self) -> str | None:
        baseline: str | None = self.config.get("baseline")
        return baseline

    @property
    def judge(self) -> str:
        """The judge's name: its spec, or jury(a, b, c)."""
        return _judge_name(self.config)

    @property
    def criteria(self) -> list[str]:
        return [c[0] for c in self.config["criteria"]]

    def units(self, kind: ItemKind | None = None, repeat: int | None = 0) -> list[RunItem]:
        """The items (of one kind, of one repeat; None: every repeat) with each later turn of a
        conversation as its own unit (``unit_id`` in ``prompt_id``): what every reader groups by,
        so that a second turn never stands in for a first."""
        return [_as_unit(i) for i in self.items if (kind is None or i.kind == kind)
                and (repeat is None or i.repeat == repeat)]

    def answers(self) -> dict[tuple[str, str], str | None]:
        """(unit, label) -> the stored answer (None where it failed)."""
        return {(i.prompt_id, i.labels[0]): i.text for i in self.units("generation")}

    def auxiliary(self) -> dict[str, dict[str, str]]:
        """unit -> {"NAME (judge spec)": text}: the texts a protocol's judge wrote from the question
        alone (its questions about the outputs, its own reference answer)."""
        out: dict[str, dict[str, str]] = {}
        for i in self.units("auxiliary"):
            out.setdefault(i.prompt_id, {})[f"{i.order} ({i.labels[0]})"] = i.text or ""
        return out


def load_run(store: Store, run_id: str) -> LoadedRun:
    """Read a stored run (``run_id`` or a unique prefix of it) once, whole."""
    row = store.run(run_id)
    run_id = row["id"]
    config = json.loads(row["config"])
    return LoadedRun(
        run_id=run_id, status=row["status"], config=config, manifest=json.loads(row["manifest"]),
        prompts=tuple(RunPrompt(p["prompt_id"], p["prompt"], p["reference"], p["category"],
                                json.loads(p["conversation"]) if p["conversation"] else {})
                      for p in store.prompts(run_id)),
        candidates=tuple(RunCandidate(c["label"], c["spec"], json.loads(c["sampling"]))
                         for c in store.candidates(run_id)),
        items=tuple(store.items(run_id, repeat=None)),
        votes=tuple(Vote(v["prompt_id"], v["label_a"], v["label_b"], v["shown_left"], v["choice"], v["voter"])
                    for v in store.votes(run_id)),
        judge_cards=tuple(known_figures(store, _judge_name(config))))


def _judge_name(config: Mapping[str, Any]) -> str:
    judge = config["judge"]
    return jury_name([judge] if isinstance(judge, str) else list(judge))


def as_loaded(source: LoadedRun | Store, run_id: str) -> LoadedRun:
    """A run already loaded, or the run ``run_id`` of a store, loaded now (once)."""
    return source if isinstance(source, LoadedRun) else load_run(source, run_id)


def pair_rows(items: Sequence[RunItem], baseline: str | None = None) -> list[PairRow]:
    """The pairwise items grouped per (unit, pair), the pair oriented by ``orient``, in the order
    first seen; each order's verdict in the labels a=A, b=B.

    An item stored the other way round (a run continued with its candidates listed in another
    order by llm-judge 0.1) is the same question: its verdict is relabelled (``Verdict.swapped``)
    and its display order reversed (b shown first is BA), so each pair appears once; where an
    order appears twice the first item counts.
    """
    rows: dict[tuple[str, tuple[str, str]], dict[Order, Verdict | None]] = {}
    for i in items:
        if i.kind != "pairwise" or i.order not in ORDERS:
            continue
        a, b = i.labels
        pair, order, verdict = orient(a, b, baseline), i.order, i.verdict
        if not isinstance(verdict, Verdict):
            verdict = None
        if pair != (a, b):
            order, verdict = reverse(order), None if verdict is None else verdict.swapped()
        rows.setdefault((i.prompt_id, pair), {}).setdefault(order, verdict)
    return [PairRow(unit, pair, (found.get(ORDERS[0]), found.get(ORDERS[1]))) for (unit, pair), found in rows.items()]


def unit_id(prompt_id: str, turn: int) -> str:
    """How a turn of a conversation is named among a run's judged units: its prompt id, and
    ``@t2`` for the second turn. A first turn whose id already ends like a later turn's is named
    with ``@t1``, so that no two units share a name (``split_unit`` reads every one back).

    >>> unit_id("q1", 1), unit_id("q1", 2), unit_id("q1@t2", 1)
    ('q1', 'q1@t2', 'q1@t2@t1')
    """
    return prompt_id if turn == 1 and not LATER_TURN.search(prompt_id) else f"{prompt_id}@t{turn}"


def split_unit(unit: str) -> tuple[str, int]:
    """The (prompt id, turn) a unit id names: the inverse of ``unit_id``.

    >>> split_unit("q1"), split_unit("q1@t2"), split_unit("q1@t2@t1"), split_unit("a@tb")
    (('q1', 1), ('q1', 2), ('q1@t2', 1), ('a@tb', 1))
    """
    m = LATER_TURN.search(unit)
    return (unit[:m.start()], int(m.group(1))) if m else (unit, 1)


def prompt_of(unit: str) -> str:
    return split_unit(unit)[0]


def _as_unit(item: RunItem) -> RunItem:
    unit = unit_id(item.prompt_id, item.turn)
    return item if unit == item.prompt_id else replace(item, prompt_id=unit)
