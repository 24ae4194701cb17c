"""Choosing a judge's protocol by measurement (``llm-judge judges tune``, issue #20 part 3).

A gold set is split once into a **dev** and a **held-out** part by a hash of (split seed, item
id): the same split on any machine, whatever order the items come in. Every candidate setting
(protocol x method x format) is evaluated on dev only (``judges.evaluate``: cached in the store,
so a rerun makes no calls); the best by dev accuracy (``decided_accuracy``: of the calibrated
verdicts with the weighted method, the mean of both orders with the plain one; then position
consistency, then seconds per item) is chosen, and the chosen one, the runner-up and llm-judge's
default are then evaluated on the held-out part, which the choice never saw. The choice with
those figures is the judge's **profile** (``Store.add_profile``), which ``--protocol auto`` reads.

    >>> rank([Scored(Setting("a", "plain"), 0.6, 0.9, 2.0), Scored(Setting("b", "plain"), 0.7, 0.5, 9.0)])[0].setting.protocol
    'b'

Held-out intervals are Wilson's over the pairs (``stats.wilson`` with half successes: a pair
right in one order counts one half), not over the 2n judgments, whose two orders of one pair are
not independent.

Leaves out judging and scoring (``judges``, ``judging``, ``verdicts``), loading protocols
(``protocols``), the tables printed (``cli.judges``) and any figure beyond accuracy, consistency
and cost: the cards hold the rest.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import stats as S
from .errors import LLMJudgeError

if TYPE_CHECKING:
    from .criteria import Criterion, Scale
    from .judges import GoldItem
    from .judging import Judge, JudgeSetup
    from .runner import Progress
    from .sampling import SamplingParams
    from .store import Store

OWN = "llm-judge"  # llm-judge's own protocol (today's JSON prompt): the only one with verdict formats
METHODS = ("plain", "weighted")
FORMATS = ("full", "winner")


@dataclass(frozen=True)
class Setting:
    """One way of asking a judge: a protocol (name or path; ``OWN`` = llm-judge's), a method and,
    for llm-judge's own protocol only, a verdict format (None for every other protocol)."""

    protocol: str
    method: str
    fmt: str | None = None

    @property
    def label(self) -> str:
        return " ".join(x for x in (self.protocol, self.method, self.fmt) if x)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "method": self.method, "format": self.fmt}


DEFAULT = Setting(OWN, "plain", "full")  # llm-judge's default: what a judge gets with no option


def settings(protocols: Iterable[str], methods: Iterable[str] = METHODS,
             formats: Iterable[str] = FORMATS) -> list[Setting]:
    """The candidates: protocols x methods, x formats for llm-judge's own protocol only."""
    methods, formats = list(methods), list(formats)
    out = []
    for p in protocols:
        for m in methods:
            out += [Setting(p, m, f) for f in formats] if p == OWN else [Setting(p, m)]
    return list(dict.fromkeys(out))


def fitting_protocols() -> list[str]:
    """Every bundled pairwise protocol a gold set's pairs fit (one turn, no reference answer
    needed), llm-judge's own first; a family counts once, as the protocol it chooses for such pairs."""
    from .protocols import bundled, load_protocol, resolve

    found = [OWN]
    for name in bundled():
        p = load_protocol(name)
        if p.builtin or p.kind != "pairwise":
            continue
        try:
            found.append(resolve(p, turn=1, reference=False).name)
        except LLMJudgeError:
            continue  # needs a reference or a second turn
    return list(dict.fromkeys(found))


# --- the split -------------------------------------------------------------------------------

def _unit(seed: int, item_id: str) -> float:
    """A number in [0, 1) fixed by the seed and the id alone."""
    digest = hashlib.sha256(f"{seed}\x00{item_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(items: Sequence[GoldItem], dev_share: float = 0.5, seed: int = 0) -> tuple[list[GoldItem], list[GoldItem]]:
    """(dev, held-out): an item is in dev when the hash of (seed, its id) falls below ``dev_share``."""
    if not 0 < dev_share < 1:
        raise LLMJudgeError(f"the dev share must lie between 0 and 1 (not {dev_share}): e.g. 0.5, half the pairs")
    dev = [it for it in items if _unit(seed, it.id) < dev_share]
    held = [it for it in items if _unit(seed, it.id) >= dev_share]
    if not dev or not held:
        raise LLMJudgeError(f"{len(items)} pairs leave the {'dev' if not dev else 'held-out'} part empty: "
                            "take more pairs or another dev share")
    return dev, held


# --- the choice ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scored:
    """A setting's figures on one part: accuracy (``decided_accuracy``), position consistency,
    seconds per pair (None when unknown), and the card they come from."""

    setting: Setting
    accuracy: float
    consistency: float | None
    seconds: float | None
    card: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, setting: Setting, card: Mapping[str, Any]) -> Scored:
        return cls(setting, decided_accuracy(setting, card), card["position_consistency"]["rate"],
                   card["cost"]["seconds_per_item"], card)


def decided_accuracy(setting: Setting, card: Mapping[str, Any]) -> float:
    """The accuracy of the verdicts a setting gives: with the weighted method, the calibrated
    verdict of both orders' probabilities (what ``compare`` and ``run`` decide by; every pair
    counts, one without probabilities as wrong); plain, the mean of both orders (LLMBar's figure)."""
    weighted = card.get("weighted")
    if setting.method == "weighted":
        return float(weighted["accuracy"]["value"]) if weighted else 0.0
    return float(card["accuracy"]["mean"])


def _rank_key(s: Scored) -> tuple[float, float, bool, float]:
    return (-s.accuracy, -(s.consistency or 0.0), s.setting != DEFAULT, math.inf if s.seconds is None else s.seconds)


def rank(scored: Iterable[Scored]) -> list[Scored]:
    """Best first: accuracy, then position consistency, then llm-judge's default (another setting
    must beat it to be chosen), then cost; a full tie keeps the given order."""
    return sorted(scored, key=_rank_key)


def heldout_figure(s: Scored) -> dict[str, Any]:
    """Held-out accuracy with its Wilson interval over the pairs."""
    n = int(s.card["items"])
    low, high = S.wilson(s.accuracy * n, n)
    return {"items": n, "accuracy": s.accuracy, "low": low, "high": high}


# --- the loop --------------------------------------------------------------------------------

JudgeFor = Callable[[Setting], "Judge"]


@dataclass(frozen=True)
class Tuned:
    """What ``tune`` found: every candidate on dev (best first) and the held-out figures of the
    chosen one, the runner-up and llm-judge's default."""

    judge: str
    gold_set: str
    dev_share: float
    seed: int
    dev: list[Scored]
    heldout: dict[Setting, Scored]

    @property
    def chosen(self) -> Scored:
        return self.dev[0]

    @property
    def runner_up(self) -> Scored | None:
        return self.dev[1] if len(self.dev) > 1 else None

    def profile(self) -> dict[str, Any]:
        """The judge's profile as stored (``Store.add_profile``)."""
        return {**self.chosen.setting.to_dict(), "set": self.gold_set, "judge": self.judge,
                "split": {"dev_share": self.dev_share, "seed": self.seed}, **self._figures(self.chosen.setting),
                "runner_up": self._other(self.runner_up.setting if self.runner_up else None),
                "default": self._other(DEFAULT)}

    def _figures(self, setting: Setting) -> dict[str, Any]:
        dev = next((s for s in self.dev if s.setting == setting), None)
        return {"dev": None if dev is None else {"items": dev.card["items"], "accuracy": dev.accuracy},
                "heldout": heldout_figure(self.heldout[setting])}

    def _other(self, setting: Setting | None) -> dict[str, Any] | None:
        return None if setting is None else {**setting.to_dict(), **self._figures(setting)}


def tune(judge: str, gold_set: str, items: Sequence[GoldItem], store: Store, judge_for: JudgeFor,
         candidates: Sequence[Setting], *, dev_share: float = 0.5, seed: int = 0,
         progress: Progress | None = None) -> Tuned:
    """Evaluate ``candidates`` on the dev part of ``items``, choose, and evaluate the chosen one,
    the runner-up and the default on the held-out part. ``judge_for(setting)``: the judge asked so."""
    if not candidates:
        raise LLMJudgeError("no setting to tune over: name at least one protocol and method")
    dev, held = split(items, dev_share, seed)
    judges = _judges(judge_for, [*candidates, DEFAULT])  # every setting checked before the first call

    def asked(setting: Setting) -> Judge:
        return judges[setting]
    ranked = rank(_scored(judge, gold_set, dev, store, asked, s, progress) for s in candidates)
    finals = list(dict.fromkeys([ranked[0].setting, *(s.setting for s in ranked[1:2]), DEFAULT]))
    heldout = {s: _scored(judge, gold_set, held, store, asked, s, progress) for s in finals}
    return Tuned(judge, gold_set, dev_share, seed, ranked, heldout)


def _judges(judge_for: JudgeFor, settings: Sequence[Setting]) -> dict[Setting, Judge]:
    """The judge of every setting, each protocol checked against a gold pair (one turn, no
    reference): a setting that cannot judge them is refused before any call, not after the others'."""
    from .judges import check_fits_gold

    out = {}
    for s in dict.fromkeys(settings):
        out[s] = judge_for(s)
        check_fits_gold(out[s])
    return out


def _scored(judge: str, gold_set: str, items: Sequence[GoldItem], store: Store, judge_for: JudgeFor,
            setting: Setting, progress: Progress | None) -> Scored:
    from .judges import card, evaluate

    records = evaluate(judge_for(setting), judge, list(items), store, progress)
    return Scored.of(setting, card(records, judge, gold_set, card_settings(setting)))


def card_settings(setting: Setting) -> dict[str, Any]:
    """How a card says it was asked: method and format, and the protocol when it is not llm-judge's."""
    return {"method": setting.method, "format": setting.fmt or "full",
            **({"protocol": setting.protocol} if setting.protocol != OWN else {})}


# --- setups and profiles -----------------------------------------------------------------------

def judge_setup(criteria: list[Criterion], scale: Scale, sampling: SamplingParams, fmt: str, method: str,
                protocol: str | None = None, mode: str = "pairwise") -> JudgeSetup:
    """How a judge is asked, with ``protocol`` (a name or path) loaded and checked for ``mode``
    (``judging.check_protocol``); llm-judge's own protocol (or None) gives today's setup unchanged."""
    from .judging import JudgeSetup, check_protocol
    from .protocols import load_protocol

    loaded = None if protocol in (None, OWN) else load_protocol(protocol)
    if loaded is None or loaded.builtin:
        return JudgeSetup(criteria, scale, sampling, fmt, method)
    setup = JudgeSetup(criteria, scale, sampling, fmt, method, protocol=loaded)
    check_protocol(setup, mode)
    return setup


def profile_setting(profile: Mapping[str, Any]) -> Setting:
    """The setting a stored profile chose."""
    return Setting(str(profile["protocol"]), str(profile["method"]), profile.get("format"))


@dataclass(frozen=True)
class ProfileChoice:
    """How a judge is asked under "auto": its tuned profile's protocol (None: llm-judge's own),
    method and format, and the line that says where they came from."""

    protocol: str | None
    method: str
    fmt: str
    note: str


def profile_choice(judge: str, profile: Mapping[str, Any] | None) -> ProfileChoice:
    """The choice "auto" makes for ``judge`` from its stored profile (``Store.profile``), or
    llm-judge's own protocol with a note saying no profile is stored."""
    if profile is None:
        return ProfileChoice(None, "plain", "full", f"no tuned profile for {judge} (llm-judge judges tune "
                                                     f"--judge {judge}): llm-judge's own protocol")
    s = profile_setting(profile)
    return ProfileChoice(None if s.protocol == OWN else s.protocol, s.method, s.fmt or "full", profile_line(profile))


def profile_line(profile: Mapping[str, Any]) -> str:
    """Where a profile's choice came from, in one line.

    >>> profile_line({"protocol": "llmbar-vanilla", "method": "weighted", "format": None, "set": "llmbar-natural",
    ...               "dev": {"items": 50, "accuracy": 0.74},
    ...               "heldout": {"items": 50, "accuracy": 0.71, "low": 0.573, "high": 0.818}})
    'protocol llmbar-vanilla (weighted), chosen by judges tune on llmbar-natural dev (50 pairs); held-out 71% [57, 82] (50 pairs)'
    """
    s, dev, held = profile_setting(profile), profile.get("dev") or {}, profile["heldout"]
    how = ", ".join(x for x in (s.method, s.fmt) if x)
    return (f"protocol {s.protocol} ({how}), chosen by judges tune on {profile['set']} dev ({dev.get('items')} pairs); "
            f"held-out {percent(held['accuracy'])} [{percent(held['low'], '')}, {percent(held['high'], '')}] "
            f"({held['items']} pairs)")


def percent(x: float | None, sign: str = "%") -> str:
    return "-" if x is None else f"{100 * x:.0f}{sign}"
