"""The typed records where modules meet: labels, display orders, and a verdict in its frame.

A pairwise verdict is always in one of two frames: as the judge gave it (A is the answer shown
first) or in the labels of the item it judges (A is the item's first label). ``Shown`` holds a
verdict in the first frame together with the order it was shown in; ``Shown.in_labels()`` is the
one way to the second frame and ``Verdict.swapped()`` the one relabelling (scores, winner,
probabilities and jurors alike; a criterion's name is never read as a label, so criteria may be
called "A" or "tie"). A single grade (one answer rated alone) has no frame.

Left out on purpose: deciding anything (``verdicts``), calling a judge (``judging``), and the JSON
form of these records, which only the store reads and writes (``store``).

    >>> v = Verdict("A", {"Relevance": {"A": 4, "B": 2}})
    >>> Shown(v, "BA").in_labels().winner, Shown(v, "BA").in_labels().scores["Relevance"]["B"]
    ('B', 4)
    >>> Shown.from_labels(Shown(v, "BA").in_labels(), "BA") == Shown(v, "BA")
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, cast

Label = Literal["A", "B"]
Winner = Literal["A", "B", "tie"]
Order = Literal["AB", "BA"]
Kind = Literal["single", "pairwise"]

LABELS: tuple[Label, Label] = ("A", "B")
WINNERS: tuple[Winner, Winner, Winner] = ("A", "B", "tie")
ORDERS: tuple[Order, Order] = ("AB", "BA")

Number = int | float  # a score as the judge (or a jury's mean) gave it: an int stays an int
PairScores = Mapping[str, Mapping[Label, Number]]  # criterion -> the score of A and of B
T = TypeVar("T")
K = TypeVar("K", bound=str)  # a side's key: a Label, a Winner, or a stored JSON key
_SWAP = {"A": "B", "B": "A"}


def other(label: Label) -> Label:
    """The other label.

    >>> other("A"), other("B")
    ('B', 'A')
    """
    return "B" if label == "A" else "A"


def swap_winner(winner: Winner) -> Winner:
    """A winner with A and B exchanged (a tie stays).

    >>> swap_winner("A"), swap_winner("tie")
    ('B', 'tie')
    """
    return winner if winner == "tie" else other(winner)


def shown_first(order: Order) -> Label:
    """The label of the answer shown first in ``order``.

    >>> shown_first("AB"), shown_first("BA")
    ('A', 'B')
    """
    return "A" if order == "AB" else "B"


def reverse(order: Order) -> Order:
    """The other display order."""
    return "BA" if order == "AB" else "AB"


def in_order(pair: tuple[T, T], order: Order) -> tuple[T, T]:
    """Two things of labels (A's, B's) in the positions ``order`` shows them.

    >>> in_order(("a", "b"), "BA")
    ('b', 'a')
    """
    return pair if order == "AB" else (pair[1], pair[0])


def swap_sides(sides: Mapping[K, T]) -> dict[K, T]:
    """One {"A": x, "B": y} (a tie's share, or any other key, stays) with A and B exchanged: for
    typed records and for a stored verdict's JSON alike."""
    return {cast(K, _SWAP.get(k, k)): v for k, v in sides.items()}


def swap_pairs(scores: Mapping[str, Mapping[K, T]]) -> dict[str, dict[K, T]]:
    """Per criterion, its {A, B} pair exchanged; the criteria's names are kept whatever they are."""
    return {name: swap_sides(pair) for name, pair in scores.items()}


@dataclass(frozen=True)
class Probabilities:
    """The judge's probabilities at its decisions (``weighting``): of the winner (pairwise), and the
    expected score of each criterion (pairwise: per label; single: one number)."""

    winner: Mapping[Winner, float] | None = None
    scores: Mapping[str, Mapping[Label, float]] | Mapping[str, float] | None = None

    def swapped(self) -> Probabilities:
        """The same probabilities with A and B exchanged (pairwise ones)."""
        scores = self.scores
        if scores and all(isinstance(v, Mapping) for v in scores.values()):
            scores = swap_pairs(scores)  # type: ignore[arg-type]
        winner = None if self.winner is None else swap_sides(self.winner)
        return Probabilities(winner, scores)


@dataclass(frozen=True)
class Juror:
    """One member's verdict inside a jury's (pairwise: its winner; single: its total)."""

    judge: str
    winner: Winner | None
    error: str | None = None
    total: Number | None = None
    probabilities: Probabilities | None = None

    def swapped(self) -> Juror:
        return replace(self, winner=None if self.winner is None else swap_winner(self.winner),
                       probabilities=None if self.probabilities is None else self.probabilities.swapped())


@dataclass(frozen=True)
class Verdict:
    """A pairwise verdict in one frame: the winner, each criterion's scores of A and B (none for a
    winner-only verdict), the judge's reasons, its probabilities (weighted judging) and, for a jury,
    each member's verdict."""

    winner: Winner
    scores: PairScores = field(default_factory=dict)
    justification: str = ""
    probabilities: Probabilities | None = None
    jurors: tuple[Juror, ...] = ()
    strong: bool = False  # a decisive verdict given as strong (Arena-Hard's ``A>>B``); relabelling keeps it

    def swapped(self) -> Verdict:
        """The same verdict with A and B exchanged everywhere: the one relabelling rule."""
        return Verdict(swap_winner(self.winner), swap_pairs(self.scores), self.justification,
                       None if self.probabilities is None else self.probabilities.swapped(),
                       tuple(j.swapped() for j in self.jurors), self.strong)


@dataclass(frozen=True)
class Shown:
    """A pairwise verdict as the judge gave it (A = the answer shown first), with the order shown."""

    verdict: Verdict
    order: Order

    def in_labels(self) -> Verdict:
        """The verdict in the labels of the item judged (A = its first label)."""
        return self.verdict if self.order == "AB" else self.verdict.swapped()

    @classmethod
    def from_labels(cls, verdict: Verdict, order: Order) -> Shown:
        """A verdict in the item's labels, as it was shown in ``order``."""
        return cls(verdict if order == "AB" else verdict.swapped(), order)


@dataclass(frozen=True)
class Grade:
    """One answer rated alone: its score per criterion, their total, the reasons, the expected
    scores (weighted judging) and, for a jury, each member's total."""

    scores: Mapping[str, Number]
    total: Number
    justification: str = ""
    probabilities: Probabilities | None = None
    jurors: tuple[Juror, ...] = ()


@dataclass(frozen=True)
class Calibrated:
    """Both orders' probabilities as one verdict (``verdicts.combine_weighted``): the mean chance
    of each outcome in the item's labels, its most likely winner, the judge's position bias
    (P(shown first wins) - P(shown second wins), averaged over the orders) and whether both orders
    gave probabilities; with the expected scores where the judge gave them."""

    p: Mapping[Winner, float]
    winner: Winner
    position_bias: float
    calibrated: bool
    scores: Mapping[str, Mapping[Label, float]] | None = None
