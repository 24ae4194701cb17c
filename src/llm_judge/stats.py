"""Statistics for studies and verdict files. Pure functions, checked against reference computations
(scipy's Wilson and Clopper-Pearson intervals, FastChat's logistic-regression Bradley-Terry fit).

Intervals: Wilson score intervals for proportions (they keep their width at 0/n and n/n);
percentile bootstraps over prompts (``n_boot`` resamples, fixed ``seed``) for means and ratings.
A figure the data cannot give is not printed as one: ``bootstrap_estimate`` holds the interval
rules (one prompt, every resample alike: no interval, and why), ``_separated`` and
``_style_unfit`` say when a fit has no finite or no identifiable value (``Estimate.reason``).
Agreement figures divide by every item, as the LLMBar and Auto-J evaluation scripts do: an
unscored verdict counts as not agreeing, and the unscored count is reported beside the figure.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np

from .defaults import BOOTSTRAP
from .errors import LLMJudgeError

DEFAULT_BOOT = BOOTSTRAP
Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal
BT_PRIOR_TIES = 1.0  # pseudo-games added to every pair of a Bradley-Terry fit, half won by each side


def check_resamples(n_boot: object) -> int:
    """A usable number of bootstrap resamples, or the one-line error."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise LLMJudgeError(f"bootstrap resamples must be a whole number of at least 1 (got {n_boot!r}); 1000 is usual")
    return n_boot


@dataclass(frozen=True)
class Estimate:
    """A figure and its interval. ``reason`` says why there is none: with a ``value``, why it has
    no interval (``"one prompt"``); with ``value`` None, why the figure cannot be estimated."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "reason": self.reason}


ALIKE = "every resample alike: the {unit}s' results do not vary"


def bootstrap_estimate(point: float, draws: Sequence[float] | np.ndarray, units: int, level: float = 0.95,
                       unit: str = "prompt") -> Estimate:
    """A bootstrap figure under the three interval rules of this module, kept here alone: fewer
    than two units (prompts) give no interval; nor does a percentile interval of no width (every
    resample alike); an interval that misses its own point estimate is stretched to reach it.

    >>> bootstrap_estimate(2.0, [2.0, 2.0, 2.0], units=3).reason
    "every resample alike: the prompts' results do not vary"
    >>> bootstrap_estimate(2.0, [2.5, 3.0, 3.5], units=3, level=0.5).to_dict()
    {'value': 2.0, 'low': 2.0, 'high': 3.25, 'n': 3, 'reason': None}
    """
    if units < 2:
        return Estimate(point, None, None, units, f"one {unit}")
    alpha = (1 - level) / 2
    low, high = float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))
    if high - low <= 1e-9 * max(1.0, abs(point)):
        return Estimate(point, None, None, units, ALIKE.format(unit=unit))
    return Estimate(point, min(low, point), max(high, point), units)


def mean_ci(values: Iterable[float | None], n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean with a percentile-bootstrap interval (resampling the values: one per prompt), under
    the rules of ``bootstrap_estimate``.

    >>> mean_ci([2, 3, 4]).to_dict()
    {'value': 3.0, 'low': 2.0, 'high': 4.0, 'n': 3, 'reason': None}
    >>> mean_ci([5]).to_dict()
    {'value': 5.0, 'low': None, 'high': None, 'n': 1, 'reason': 'one prompt'}
    """
    n_boot = check_resamples(n_boot)
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return Estimate(None, None, None, 0)
    if x.size < 2:
        return bootstrap_estimate(float(x.mean()), [], 1, level)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // x.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    return bootstrap_estimate(float(x.mean()), means, int(x.size), level)


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (successes may hold halves).

    >>> [round(x, 4) for x in wilson(10, 10)]
    [0.7225, 1.0]
    """
    z = Z95 if level == 0.95 else _z(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if successes <= 0 else low), (1.0 if successes >= n else high)  # exact at the ends


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def proportion(successes: float, n: int, level: float = 0.95) -> Estimate:
    """A proportion with its Wilson interval (``None`` values when ``n`` is 0)."""
    if n == 0:
        return Estimate(None, None, None, 0)
    low, high = wilson(successes, n, level)
    return Estimate(successes / n, low, high, n)


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact sign test of wins against losses (ties dropped).

    >>> round(sign_test(9, 1), 4)
    0.0215
    """
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    if n <= 1000:  # exact
        tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    else:  # the same sum in log space (big integers get slow)
        logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
        top = max(logs)
        tail = math.exp(top) * sum(math.exp(x - top) for x in logs)
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairStats:
    """Both sides of a pair: each side's wins (the other's losses), ties, unscored items, each
    side's win rate with ties as half and without ties (Wilson intervals), the sign test."""

    sides: tuple[str, str]
    wins: dict[str, int]
    ties: int
    unscored: int
    items: int
    win_rate: dict[str, Estimate]
    win_rate_without_ties: dict[str, Estimate]
    sign_test_p: float | None
    length_controlled: dict[str, Estimate] | None = None  # AlpacaEval 2's, where the answers' lengths are known

    @property
    def scored(self) -> int:
        return sum(self.wins.values()) + self.ties

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pairwise_summary(outcomes: list[str | None], sides: tuple[str, str] = ("A", "B"),
                     level: float = 0.95, lengths: Sequence[tuple[int, int] | None] | None = None,
                     n_boot: int = DEFAULT_BOOT, seed: int = 0) -> PairStats:
    """Both sides' figures from the first side's outcomes ("win", "tie", "loss"; None = unscored,
    counted and left out of the rates). With ``lengths`` (each item's (first, second) answer
    lengths), also each side's length-controlled win rate (``length_controlled_ci``)."""
    c = Counter(o for o in outcomes if o is not None)
    w, t, lo = c["win"], c["tie"], c["loss"]
    first, second = sides
    n, decisive = w + t + lo, w + lo
    return PairStats(
        sides=(first, second), wins={first: w, second: lo}, ties=t,
        unscored=sum(o is None for o in outcomes), items=len(outcomes),
        win_rate={first: proportion(w + 0.5 * t, n, level), second: proportion(lo + 0.5 * t, n, level)},
        win_rate_without_ties={first: proportion(w, decisive, level), second: proportion(lo, decisive, level)},
        sign_test_p=sign_test(w, lo),
        length_controlled=_pair_lc(outcomes, lengths, sides, n_boot, seed, level) if lengths else None)


def _pair_lc(outcomes: list[str | None], lengths: Sequence[tuple[int, int] | None], sides: tuple[str, str], n_boot: int,
             seed: int, level: float) -> dict[str, Estimate] | None:
    """Each side's length-controlled win rate; the second side is the "model", the first the
    "baseline" (the fit is symmetric: the first side's is one minus the second's)."""
    rows = [({"win": 0.0, "tie": 0.5, "loss": 1.0}[o], ln) for o, ln in zip(outcomes, lengths) if o is not None and ln]
    if not rows:
        return None
    second = length_controlled_ci([r[0] for r in rows], [r[1][1] for r in rows], [r[1][0] for r in rows], n_boot, seed,
                                  level)
    return {sides[0]: _complement(second), sides[1]: second}


def _complement(e: Estimate) -> Estimate:
    """One minus a proportion, its interval mirrored and its reason kept."""
    def flip(x: float | None) -> float | None:
        return None if x is None else 1 - x
    return Estimate(flip(e.value), flip(e.high), flip(e.low), e.n, e.reason)


def outcome(winner: str | None, side: str = "A") -> str | None:
    """A verdict's winner seen from one side: 'win', 'tie', 'loss' or None (unscored)."""
    if winner is None:
        return None
    return "tie" if winner == "tie" else "win" if winner == side else "loss"


def _bt_fit(wins: np.ndarray, games: np.ndarray, prior: float, iters: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Bradley-Terry log10-strengths x 400 (mean 0) by the MM algorithm (Hunter 2004).

    ``wins[i, j]``: wins of i over j (ties already split half and half); ``games[i, j]``: games
    between them. ``prior`` pseudo-games per pair, half won by each side, keep unbeaten players finite.
    """
    m = wins.shape[0]
    off = np.ones((m, m)) - np.eye(m)
    n = games + prior * off
    w = wins.sum(axis=1) + 0.5 * prior * off.sum(axis=1)
    p = np.ones(m)
    for _ in range(iters):
        new = w / (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.maximum(new, 1e-300)
        new /= np.exp(np.log(new).mean())
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    r: np.ndarray = 400 * np.log10(p)
    return cast(np.ndarray, r - r.mean())


def _tables(games: list[tuple[str, str, float]], players: list[str]) -> tuple[np.ndarray, np.ndarray]:
    idx = {p: k for k, p in enumerate(players)}
    m = len(players)
    wins, n = np.zeros((m, m)), np.zeros((m, m))
    for i, j, s in games:
        a, b = idx[i], idx[j]
        wins[a, b] += s
        wins[b, a] += 1 - s
        n[a, b] += 1
        n[b, a] += 1
    return wins, n


def bradley_terry(games: list[tuple[str, str, float]], prior: float = BT_PRIOR_TIES) -> dict[str, float]:
    """Bradley-Terry ratings on the Elo scale (400 log10 strength, mean 1000) from games
    ``(i, j, s)`` with s = 1 (i won), 0.5 (tie) or 0. Ties count half a win each, as in FastChat's
    ``compute_mle_elo``; ``prior`` ties per pair (default 1) keep unbeaten candidates finite
    (0 gives the plain maximum-likelihood fit, which needs every candidate to win and lose).
    """
    players = sorted({p for g in games for p in g[:2]})
    if len(players) < 2:
        return {p: 1000.0 for p in players}
    wins, n = _tables(games, players)
    r = _bt_fit(wins, n, prior) + 1000
    return {pl: float(r[k]) for k, pl in enumerate(players)}


def bradley_terry_ci(games_by_prompt: dict[str, list[tuple[str, str, float]]], n_boot: int = DEFAULT_BOOT,
                     seed: int = 0, level: float = 0.95, prior: float = BT_PRIOR_TIES) -> dict[str, Any]:
    """Ratings with percentile-bootstrap intervals, resampling prompts (all games of a drawn
    prompt go in together), ``n_boot`` resamples; the method, resamples and prior are returned."""
    n_boot = check_resamples(n_boot)
    prompts = list(games_by_prompt)
    players = sorted({p for gs in games_by_prompt.values() for g in gs for p in g[:2]})
    all_games = [g for gs in games_by_prompt.values() for g in gs]
    point = bradley_terry(all_games, prior)
    rank = {pl: 1 + sum(point[o] > point[pl] + 1e-6 for o in players) for pl in players}
    out: dict[str, Any] = {"method": "percentile bootstrap over prompts", "resamples": n_boot, "seed": seed,
                           "prior_ties_per_pair": prior, "ratings": {}}
    if len(players) < 2 or len(prompts) < 2:
        out["ratings"] = {pl: _rating(bootstrap_estimate(r, [], len(prompts), level), rank[pl], None)
                          for pl, r in point.items()}
        return out
    m = len(players)
    # Resampling prompts is drawing, for each distinct pattern of games a prompt can hold, how many
    # times it comes: a multinomial over the patterns (few when each item is its own prompt).
    patterns = Counter(tuple(sorted(games_by_prompt[p])) for p in prompts)
    unique = list(patterns)
    per = np.stack([np.stack(_tables(list(g), players)).ravel() for g in unique])  # patterns x 2m²
    freq = np.array([patterns[g] for g in unique], dtype=float) / len(prompts)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_boot, m))
    for start in range(0, n_boot, 100):  # in chunks: the counts stay small in memory
        counts = rng.multinomial(len(prompts), freq, size=min(100, n_boot - start)).astype(float)
        tables = (counts @ per).reshape(-1, 2, m, m)  # each resample's wins and games
        for b, t in enumerate(tables):
            samples[start + b] = _bt_fit(t[0], t[1], prior, iters=300, tol=1e-7) + 1000
    alpha = (1 - level) / 2
    # a rank is 1 + the number of players rated higher (by more than float noise): ties share one
    ranks = 1 + (samples[:, None, :] > samples[:, :, None] + 1e-6).sum(axis=2)  # (resamples, players)
    rank_low = np.quantile(ranks, alpha, axis=0, method="lower")
    rank_high = np.quantile(ranks, 1 - alpha, axis=0, method="higher")
    out["ratings"] = {pl: _rating(bootstrap_estimate(point[pl], samples[:, k], len(prompts), level), rank[pl],
                                  (int(rank_low[k]), int(rank_high[k])))
                      for k, pl in enumerate(players)}
    return out


def _rating(e: Estimate, rank: int, rank_range: tuple[int, int] | None) -> dict[str, Any]:
    """A Bradley-Terry rating's entry: a rank range only where the rating has an interval (the
    same resamples make both), stretched like the interval to hold the rank itself."""
    span = None if e.low is None or rank_range is None else [min(rank_range[0], rank), max(rank_range[1], rank)]
    return {"rating": e.value, "low": e.low, "high": e.high, "reason": e.reason, "rank": rank, "rank_range": span}


def position_consistency(pairs: Sequence[tuple[str | None, str | None]], level: float = 0.95) -> dict[str, Any]:
    """Share of items whose two verdicts (in the original labels) agree, over *all* items: an item
    with an unscored order counts as not agreeing (LLMBar's and Auto-J's convention)."""
    agree = sum(a is not None and a == b for a, b in pairs)
    unscored = sum(a is None or b is None for a, b in pairs)
    est = proportion(agree, len(pairs), level).to_dict()
    return {"items": len(pairs), "agreeing": agree, "unscored": unscored, "rate": est["value"],
            "low": est["low"], "high": est["high"]}


def first_position_rate(shown_first_won: list[bool | None], level: float = 0.95) -> dict[str, Any]:
    """Share of decisive verdicts that went to the answer shown first (0.5 = no position bias);
    None marks a tie or an unscored verdict, counted apart."""
    decisive = [x for x in shown_first_won if x is not None]
    est = proportion(sum(decisive), len(decisive), level).to_dict()
    return {"decisive": len(decisive), "verdicts": len(shown_first_won), "rate": est["value"],
            "low": est["low"], "high": est["high"]}


def longer_answer_rate(items: Sequence[tuple[str | None, int, int]], level: float = 0.95) -> dict[str, Any]:
    """Share of decisive verdicts (answers of unequal length) won by the longer answer, with its
    Wilson interval like the other diagnostics: items are (winner, len_a, len_b)."""
    decisive = [(w, la, lb) for w, la, lb in items if w in ("A", "B") and la != lb]
    longer = sum((w == "A") == (la > lb) for w, la, lb in decisive)
    est = proportion(longer, len(decisive), level)
    return {"decisive": len(decisive), "rate": est.value, "low": est.low, "high": est.high}


def cohen_kappa(x: list[str], y: list[str]) -> float | None:
    """Cohen's kappa between two labelings of the same items.

    >>> cohen_kappa(["A", "B", "A", "B"], ["A", "B", "B", "B"])
    0.5
    """
    n = len(x)
    if n == 0:
        return None
    po = sum(a == b for a, b in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    pe = sum(cx[k] * cy[k] for k in set(cx) | set(cy)) / n ** 2
    return None if pe == 1 else (po - pe) / (1 - pe)


def kappa_ci(x: list[str], y: list[str], n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95) -> Estimate:
    """Cohen's kappa with a percentile-bootstrap interval over items (resamples where kappa is
    undefined are left out)."""
    point = cohen_kappa(x, y)
    if point is None or not x:
        return Estimate(point, None, None, len(x))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(check_resamples(n_boot)):
        idx = rng.integers(0, len(x), len(x))
        k = cohen_kappa([x[i] for i in idx], [y[i] for i in idx])
        if k is not None:
            draws.append(k)
    if not draws:
        return Estimate(point, None, None, len(x), "kappa is undefined in every resample")
    return bootstrap_estimate(point, draws, len(x), level, unit="item")


def agreement(items: list[dict[str, Any]], level: float = 0.95) -> dict[str, Any]:
    """Agreement of verdicts with human labels; items hold verdict, verdict_swapped, human.

    Accuracies divide by every labelled item (an unscored verdict counts as wrong) and carry
    Wilson intervals; kappa is computed on the scored items (None where it is undefined).
    """
    labelled = [it for it in items if it.get("human") is not None]

    def block(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"items": len(rows)}
        for key in ("verdict", "verdict_swapped"):
            have = [r for r in rows if r.get(key) is not None]
            acc = proportion(sum(r[key] == r["human"] for r in have), len(rows), level).to_dict()
            out[key] = {"items": len(rows), "scored": len(have), "unscored": len(rows) - len(have),
                        "accuracy": acc["value"], "low": acc["low"], "high": acc["high"],
                        "kappa": cohen_kappa([r[key] for r in have], [r["human"] for r in have])}
        both = sum(r.get("verdict") is not None and r["verdict"] == r["human"] == r.get("verdict_swapped") for r in rows)
        est = proportion(both, len(rows), level).to_dict()
        out["both_orders_correct"] = {"items": len(rows), "correct": both, "rate": est["value"],
                                      "low": est["low"], "high": est["high"]}
        return out

    result: dict[str, Any] = {"with_ties": block(labelled), "without_ties": block([r for r in labelled if r["human"] != "tie"])}
    cats = sorted({r["category"] for r in labelled if r.get("category")})
    result["by_category"] = {c: block([r for r in labelled if r.get("category") == c]) for c in cats}
    return result


def fleiss_kappa(ratings: list[list[str]]) -> float | None:
    """Fleiss' kappa of several raters' labels per item (every item rated by the same number).

    >>> round(fleiss_kappa([["a", "a", "b"], ["a", "a", "a"], ["b", "b", "a"], ["b", "b", "b"]]), 4)
    0.3333
    """
    items = [r for r in ratings if r]
    if not items or len({len(r) for r in items}) != 1 or len(items[0]) < 2:
        return None
    n, k = len(items), len(items[0])
    cats = sorted({x for r in items for x in r})
    counts = [[r.count(c) for c in cats] for r in items]
    p_i = [(sum(x * x for x in row) - k) / (k * (k - 1)) for row in counts]
    p_bar = sum(p_i) / n
    p_j = [sum(row[j] for row in counts) / (n * k) for j in range(len(cats))]
    pe = sum(x * x for x in p_j)
    return None if pe == 1 else (p_bar - pe) / (1 - pe)


def juror_agreement(ratings: Sequence[Sequence[str | None]]) -> dict[str, Any]:
    """How a jury's members agreed: per judgment (an item in one order) the members' verdicts
    (None = unscored). Unanimity over all judgments (an unscored member breaks it), the mean
    agreement of each pair of members (likewise), and Fleiss' kappa on the fully scored ones."""
    n = len(ratings)
    unanimous = sum(all(x is not None for x in r) and len(set(r)) == 1 for r in ratings)
    pairs = [(i, j) for i in range(len(ratings[0]) if ratings else 0) for j in range(i + 1, len(ratings[0]))]
    pairwise = (sum(r[i] is not None and r[i] == r[j] for r in ratings for i, j in pairs) / (n * len(pairs))
                if n and pairs else None)
    return {"judgments": n, "unanimous": unanimous / n if n else None, "pairwise": pairwise,
            "fleiss_kappa": fleiss_kappa(cast(list[list[str]], [r for r in ratings if all(x is not None for x in r)]))}


def _logistic_fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-6, iters: int = 50,
                  start: np.ndarray | None = None) -> np.ndarray:
    """Weighted logistic regression by Newton's method (a tiny ridge keeps it defined when the
    data separate); y may be 0/1 labels or soft targets; ``start`` warm-starts it."""
    beta = np.zeros(X.shape[1]) if start is None else start.copy()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ beta)))
        grad = X.T @ (w * (p - y)) + l2 * beta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + l2 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def _basis(X: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """An orthonormal basis of the span of ``X``'s columns (each scaled to unit length first, so
    that a column's units do not decide whether it counts; all-zero columns dropped)."""
    norms = np.linalg.norm(X, axis=0)
    cols: np.ndarray = X[:, norms > 0] / norms[norms > 0]
    if cols.shape[1] == 0:
        return cols
    u, sv, _ = np.linalg.svd(cols, full_matrices=False)
    return u[:, sv > tol * sv[0]]


def _separated(X: np.ndarray, y: np.ndarray) -> bool:
    """Whether a logistic fit of targets ``y`` (1 win, 0.5 tie, 0 loss) on ``X`` is completely or
    quasi-completely separated: some combination of the columns predicts every verdict, so the
    maximum-likelihood fit has no finite value (a ridge only parks it at a bound). Seen by easing
    a ridge on an orthonormal basis of the columns: on separated data the fitted log-odds keep
    growing, by about ln(10^4) = 9 from ridge 1e-6 to 1e-10; where a finite fit exists they move
    by about 1e-6 times its log-odds over its smallest p(1 - p), so a fit separated all but for
    one tie (finite log-odds in the tens, probabilities within 1e-10 of 0 or 1) may count too.
    Checked against a linear program (``tests/test_estimability.py``)."""
    Q = _basis(X)
    if Q.shape[1] == 0:
        return False
    w = np.ones(len(y))
    loose = _logistic_fit(Q, y, w, l2=1e-6, iters=200)
    looser = _logistic_fit(Q, y, w, l2=1e-10, iters=200, start=loose)
    return float(np.max(np.abs(Q @ (looser - loose)))) > 1.0


def _lc_design(len_model: Sequence[int], len_baseline: Sequence[int]) -> np.ndarray:
    delta = np.asarray(len_baseline, dtype=float) - np.asarray(len_model, dtype=float)
    sd = delta.std(ddof=1) if delta.size > 1 else 0.0
    x = np.tanh(delta / sd) if sd > 0 else np.zeros_like(delta)
    return np.column_stack([x, np.ones_like(x)])


def _lc_fit_many(X: np.ndarray, y: np.ndarray, weights: np.ndarray, iters: int = 60, l2: float = 1e-6,
                 start: np.ndarray | None = None) -> np.ndarray:
    """The soft-label logistic fit of ``length_controlled`` for many weightings of the same items
    at once (``weights``: resamples x items): Newton's method on two parameters, vectorised."""
    beta = np.zeros((weights.shape[0], 2)) if start is None else np.tile(start, (weights.shape[0], 1))
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(beta @ X.T)))  # resamples x items
        g = (weights * (p - y)) @ X + l2 * beta
        v = weights * p * (1 - p)
        h00, h01, h11 = v @ (X[:, 0] ** 2) + l2, v @ (X[:, 0] * X[:, 1]), v @ (X[:, 1] ** 2) + l2
        det = h00 * h11 - h01 * h01
        step = np.column_stack([(h11 * g[:, 0] - h01 * g[:, 1]) / det, (h00 * g[:, 1] - h01 * g[:, 0]) / det])
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def length_controlled(preference: list[float], len_model: list[int], len_baseline: list[int]) -> float | None:
    """AlpacaEval 2's length-controlled win rate of a model against a baseline, for two models
    (the instruction-difficulty term dropped): regress the judge's preference for the model
    (1 win, 0.5 tie, 0 loss) on tanh of the standardised length difference (baseline minus model,
    divided by its sample standard deviation) and a constant, then predict at zero difference:
    sigmoid(constant). Soft labels as AlpacaEval fits them (a preference p counts p as a win and
    1 - p as a loss, the same as fitting each item twice with weights p and 1 - p). None where it
    cannot be estimated (``length_controlled_ci`` says why).
    """
    beta, _ = _lc_beta(preference, len_model, len_baseline)
    return None if beta is None else float(1 / (1 + np.exp(-beta[1])))


def _lc_beta(preference: Sequence[float], len_model: Sequence[int],
             len_baseline: Sequence[int]) -> tuple[np.ndarray | None, str | None]:
    """The fit's coefficients, or None and why it has none: one item, or complete separation."""
    p = np.asarray(preference, dtype=float)
    if p.size < 2:
        return None, "one prompt"
    X = _lc_design(len_model, len_baseline)
    if _separated(X, p):
        who = ("one side won every item" if p[0] != 0.5 and np.all(p == p[0])
               else "the length difference alone tells the wins from the losses")
        return None, f"{who} (complete separation), so the fit has no finite value"
    return _lc_fit_many(X, p, np.ones((1, p.size)))[0], None


def length_controlled_ci(preference: Sequence[float], len_model: Sequence[int], len_baseline: Sequence[int],
                         n_boot: int = DEFAULT_BOOT, seed: int = 0,
                         level: float = 0.95) -> Estimate:
    """The length-controlled win rate with a percentile-bootstrap interval over prompts (the
    standardisation fixed by the whole sample; every resample refitted), or why it has none."""
    beta, why = _lc_beta(preference, len_model, len_baseline)
    if beta is None:
        return Estimate(None, None, None, len(preference), why)
    value = float(1 / (1 + np.exp(-beta[1])))
    p = np.asarray(preference, dtype=float)
    X = _lc_design(len_model, len_baseline)
    fits = [_lc_fit_many(X, p, counts, start=beta)[:, 1]
            for counts in resample_counts(np.random.default_rng(seed), p.size, check_resamples(n_boot))]
    draws = 1 / (1 + np.exp(-np.concatenate(fits)))
    return bootstrap_estimate(value, draws, int(p.size), level)


def resample_counts(rng: np.random.Generator, n: int, n_boot: int, cells: int = 4_000_000) -> Iterator[np.ndarray]:
    """The bootstrap's resamples of ``n`` items as counts (how often each item was drawn), in
    blocks of about ``cells`` numbers (a study of 100,000 prompts: 40 resamples a block, not one
    matrix of 10^8), drawn from ``rng`` exactly as one resample after another would draw them.

    >>> one = np.random.default_rng(1)
    >>> a = np.stack([np.bincount(one.integers(0, 5, 5), minlength=5) for _ in range(3)])
    >>> bool((np.concatenate(list(resample_counts(np.random.default_rng(1), 5, 3, cells=5))) == a).all())
    True
    """
    rows = max(1, cells // max(1, n))
    for start in range(0, n_boot, rows):
        b = min(rows, n_boot - start)
        idx = rng.integers(0, n, (b, n)) + (np.arange(b) * n)[:, None]  # each resample's draws in a row of its own
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, np.exp(-np.logaddexp(0, -x)))


def length_controlled_full_ci(preference: Sequence[float], len_model: Sequence[int], len_baseline: Sequence[int],
                              difficulty: Sequence[float], n_boot: int = DEFAULT_BOOT, seed: int = 0,
                              level: float = 0.95) -> Estimate:
    """AlpacaEval 2's length-controlled win rate with its instruction-difficulty term (the form of
    ``length_controlled_noreg``: AlpacaEval's published ``length_controlled_v1`` also pulls the
    fit towards its gamed baselines, which need its own annotations): regress the soft preference
    on tanh of the standardised length difference, the instruction's difficulty and a constant,
    then average the predictions at zero length difference over the items. Maximum likelihood
    (AlpacaEval picks an L1 penalty by cross-validation; the two agree to a few hundredths of a
    point on its scale). Bootstrap over prompts as ``length_controlled_ci``."""
    p = np.asarray(preference, dtype=float)
    if p.size < 2:
        return Estimate(None, None, None, int(p.size), "one prompt")
    d = np.asarray(difficulty, dtype=float)
    X = np.column_stack([_lc_design(len_model, len_baseline)[:, 0], d, np.ones(p.size)])
    if _separated(X, p):
        return Estimate(None, None, None, int(p.size), "the length difference and the instructions' difficulty "
                        "alone tell the wins from the losses (complete separation), so the fit has no finite value")
    beta = _logistic_fit(X, p, np.ones(p.size), l2=1e-6, iters=100)
    value = float(_sigmoid(beta[2] + beta[1] * d).mean())
    draws = []
    for w in itertools.chain.from_iterable(resample_counts(np.random.default_rng(seed), p.size, check_resamples(n_boot))):
        beta_b = _logistic_fit(X, p, w, l2=1e-6, iters=30, start=beta)
        draws.append(float((w * _sigmoid(beta_b[2] + beta_b[1] * d)).sum() / w.sum()))
    return bootstrap_estimate(value, draws, int(p.size), level)


@dataclass(frozen=True)
class SoftWinRate:
    """AlpacaEval's win rates of the second side from soft preferences (``pairwise_to_winrate``):
    ``win_rate`` the mean preference mapped to [0, 1] (percentile bootstrap over prompts),
    ``standard_error`` AlpacaEval's (standard error of that mean), ``discrete_win_rate`` the
    rounded preferences with exact draws (1.5) as half (Wilson interval), and the counts."""

    win_rate: Estimate
    standard_error: float | None
    discrete_win_rate: Estimate
    wins: int
    losses: int
    draws: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def soft_win_rate(preference: Sequence[float], n_boot: int = DEFAULT_BOOT, seed: int = 0,
                  level: float = 0.95) -> SoftWinRate:
    """The win rates of ``SoftWinRate`` from preferences on AlpacaEval's 1-2 scale (2: the second
    side wins). A preference above 1.5 is a win, below a loss (``n_wins`` / ``n_wins_base``);
    exactly 1.5 a draw.

    >>> r = soft_win_rate([1.2, 1.5, 2.0, 1.9])
    >>> round(r.win_rate.value, 3), r.discrete_win_rate.value, (r.wins, r.losses, r.draws)
    (0.65, 0.625, (2, 1, 1))
    """
    x = np.asarray(preference, dtype=float) - 1
    draws = int((x == 0.5).sum())
    discrete = np.where(x == 0.5, 0.5, np.round(x))
    sem = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else None
    return SoftWinRate(win_rate=mean_ci(x.tolist(), n_boot, seed, level), standard_error=sem,
                       discrete_win_rate=proportion(float(discrete.sum()), int(x.size), level),
                       wins=int((x > 0.5).sum()), losses=int((x < 0.5).sum()), draws=draws)


def pooled_mean_ci(groups: Sequence[Sequence[float]], n_boot: int = DEFAULT_BOOT, seed: int = 0,
                   level: float = 0.95) -> Estimate:
    """The mean of every value of every group, with a percentile-bootstrap interval resampling
    the groups (a prompt's turns go in together), under the rules of ``bootstrap_estimate``.

    >>> pooled_mean_ci([[8, 6], [4]]).value
    6.0
    """
    kept = [list(g) for g in groups if len(g)]
    if not kept:
        return Estimate(None, None, None, 0)
    sums = np.array([sum(g) for g in kept], dtype=float)
    counts = np.array([len(g) for g in kept], dtype=float)
    point = float(sums.sum() / counts.sum())
    if len(kept) < 2:
        return bootstrap_estimate(point, [], 1, level)
    blocks = resample_counts(np.random.default_rng(seed), len(kept), check_resamples(n_boot))
    return bootstrap_estimate(point, np.concatenate([(w @ sums) / (w @ counts) for w in blocks]), len(kept), level)


# a weighted game: (i, j, s, weight), s = 1 (i won), 0.5 (tie) or 0; weight: how many times it counts
WeightedGame = tuple[str, str, float, float]
ELO_UNIT = math.log(10)  # a rating's coefficient scale: 400 points = a factor 10 in the odds


def _anchored_design(games: Sequence[WeightedGame], players: list[str], anchor: str) -> np.ndarray:
    """Rows of the Bradley-Terry logistic regression (+ln10 for i, -ln10 for j), the anchor's
    column dropped so that the anchor is rated 0 and the fit is identified."""
    free = [p for p in players if p != anchor]
    idx = {p: k for k, p in enumerate(free)}
    X = np.zeros((len(games), len(free)))
    for r, (i, j, _s, _w) in enumerate(games):
        if i in idx:
            X[r, idx[i]] += ELO_UNIT
        if j in idx:
            X[r, idx[j]] -= ELO_UNIT
    return X


def bradley_terry_anchored(games: Sequence[WeightedGame], anchor: str, n_boot: int = DEFAULT_BOOT, seed: int = 0,
                           level: float = 0.95) -> dict[str, Estimate]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale with ``anchor`` at 1000, as
    arena-hard-auto's ``compute_mle_elo`` fits them (a tie half a win each; unpenalised; a game
    of weight 3 counted three times), with percentile-bootstrap intervals that, like its
    ``get_bootstrap_result``, resample the games one counted copy at a time (``battles.sample``).
    Where the games predict every outcome (a player won or lost all its games) no rating is
    given and ``reason`` says why."""
    everyone = sorted({p for g in games for p in g[:2]} | {anchor})
    patterns: dict[tuple[str, str, float], float] = {}
    for i, j, s, w in games:
        patterns[(i, j, s)] = patterns.get((i, j, s), 0.0) + w
    all_rows = [(i, j, s, w) for (i, j, s), w in patterns.items() if w > 0]
    out_of_fit = _one_sided(all_rows, anchor)  # won or lost every game: no finite rating, the others still have one
    rows = [r for r in all_rows if r[0] not in out_of_fit and r[1] not in out_of_fit]
    players = [p for p in everyone if p not in out_of_fit]
    free = [p for p in players if p != anchor]
    n = int(round(sum(r[3] for r in all_rows)))
    one_sided = {p: Estimate(None, None, None, n, "won or lost every game it played (complete separation), so its "
                                                  "rating has no finite value") for p in sorted(out_of_fit)}
    if not free or not rows:
        return {anchor: Estimate(1000.0, None, None, n, "no games" if n == 0 else "the anchor"), **one_sided}
    X, y = _anchored_design(rows, players, anchor), np.array([r[2] for r in rows], dtype=float)
    weights = np.array([r[3] for r in rows], dtype=float)
    if _separated(X, y):
        why = "the candidates split into groups that won or lost every game between them (complete separation)"
        return {p: Estimate(1000.0 if p == anchor else None, None, None, n, why) for p in everyone}
    beta = _logistic_fit(X, y, weights, l2=0.0, iters=100)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, weights / weights.sum(), size=check_resamples(n_boot)).astype(float)
    draws = np.stack([_logistic_fit(X, y, c, l2=1e-6, iters=30, start=beta) for c in counts])
    out = {anchor: Estimate(1000.0, None, None, n, "the anchor"), **one_sided}
    for k, p in enumerate(free):
        out[p] = bootstrap_estimate(1000 + 400 * float(beta[k]), 1000 + 400 * draws[:, k], n, level, unit="game")
    return out


def _one_sided(rows: Sequence[WeightedGame], anchor: str) -> set[str]:
    """The players (never the anchor) who won every game they played or lost every one (a tie is
    neither), found again among the rest until none is left: their ratings are infinite, while the
    others' stay estimable without them.

    >>> sorted(_one_sided([("a", "b", 1.0, 1), ("a", "c", 0.5, 1), ("c", "b", 1.0, 1), ("a", "c", 1.0, 1)], "a"))
    ['b']
    """
    out: set[str] = set()
    while True:
        seen: dict[str, set[float]] = {}
        for i, j, s, _w in rows:
            if i in out or j in out:
                continue
            seen.setdefault(i, set()).add(s)
            seen.setdefault(j, set()).add(1.0 - s)
        found = {p for p, scores in seen.items() if p != anchor and (scores == {1.0} or scores == {0.0})}
        if not found:
            return out
        out |= found


def elo_win_rate(rating: float, against: float) -> float:
    """The predicted chance that a player rated ``rating`` beats one rated ``against`` (Elo scale,
    arena-hard-auto's ``predict_win_rate``).

    >>> elo_win_rate(1000, 1000), round(elo_win_rate(1400, 1000), 4)
    (0.5, 0.9091)
    """
    return float(1 / (1 + 10 ** ((against - rating) / 400)))


STYLE_FEATURES = ("length", "headers", "bold", "list_items")
_HEADER = re.compile(r"^#{1,6}\s", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s", re.M)
# a style-controlled game: (i, j, s, style_i, style_j), s = 1 (i won), 0.5 (tie) or 0
StyleGame = tuple[str, str, float, dict[str, int], dict[str, int]]


def style_features(text: str) -> dict[str, int]:
    """The style covariates of an answer, as Chatbot Arena's style control counts them: its
    length (characters), markdown headers, bold spans and list items.

    >>> style_features("# Title\\n- **one**\\n- two\\n")
    {'length': 24, 'headers': 1, 'bold': 1, 'list_items': 2}
    """
    return {"length": len(text), "headers": len(_HEADER.findall(text)), "bold": len(_BOLD.findall(text)),
            "list_items": len(_LIST.findall(text))}


def _style_design(games: Sequence[StyleGame], players: list[str],
                  styles: list[tuple[dict[str, int], dict[str, int]]]) -> np.ndarray:
    """Rows of a Bradley-Terry logistic regression with style covariates: +ln10/400 for the
    first player, -ln10/400 for the second (so coefficients are Elo points), then each style
    feature's normalised difference (a - b) / (a + b), scaled by its root mean square over the
    games. Arena standardises (centres, then scales) because its battles come in random
    orientation, where the two agree; a study's pairs have one orientation, and centring a signed
    difference would move its mean into the ratings."""
    idx = {p: k for k, p in enumerate(players)}
    X = np.zeros((len(games), len(players) + len(STYLE_FEATURES)))
    unit = math.log(10) / 400
    for r, game in enumerate(games):
        X[r, idx[game[0]]], X[r, idx[game[1]]] = unit, -unit
    diffs = np.array([[(sa[f] - sb[f]) / (sa[f] + sb[f]) if sa[f] + sb[f] else 0.0 for f in STYLE_FEATURES]
                      for sa, sb in styles], dtype=float).reshape(len(games), len(STYLE_FEATURES))
    rms = np.sqrt((diffs ** 2).mean(axis=0))
    X[:, len(players):] = diffs / np.where(rms > 0, rms, 1.0)
    return X


def _style_fit(X: np.ndarray, s: np.ndarray, n_players: int, weights: np.ndarray | None = None,
               start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratings (mean 1000) and style coefficients; a tie counts half a win each, as in FastChat
    (a soft target: the same fit as each game twice with weights s and 1 - s)."""
    w = np.ones(len(s)) if weights is None else weights
    beta = _logistic_fit(X, s, w, l2=1e-4, start=start)
    ratings = beta[:n_players] - beta[:n_players].mean() + 1000
    return ratings, beta[n_players:], beta


STYLE_EXACT_LIMIT = 2_000_000  # games x resamples up to which every resample is refitted exactly


def _one_step(X: np.ndarray, s: np.ndarray, beta: np.ndarray, prompt_of_row: np.ndarray,
              blocks: Iterable[np.ndarray], n_prompts: int, l2: float = 1e-4) -> np.ndarray:
    """Every resample's one-step Newton estimate from ``beta`` (``blocks``: the resamples' prompt
    counts, a block at a time): its gradient and Hessian at beta are sums of per-prompt
    contributions weighted by the resample's prompt counts."""
    p = 1 / (1 + np.exp(-(X @ beta)))
    k = X.shape[1]
    grad_rows = X * (p - s)[:, None]
    g_prompt = np.zeros((n_prompts, k))
    np.add.at(g_prompt, prompt_of_row, grad_rows)
    v = p * (1 - p)
    outer = (X[:, :, None] * X[:, None, :]) * v[:, None, None]
    h_prompt = np.zeros((n_prompts, k, k))
    np.add.at(h_prompt, prompt_of_row, outer)
    h_flat, out = h_prompt.reshape(n_prompts, k * k), []
    for counts in blocks:
        g = counts @ g_prompt + l2 * beta
        h = (counts @ h_flat).reshape(-1, k, k) + l2 * np.eye(k)
        out.append(beta - np.linalg.solve(h, g[:, :, None])[:, :, 0])
    return np.concatenate(out)


def bradley_terry_style(games_by_prompt: dict[str, list[StyleGame]], n_boot: int = DEFAULT_BOOT, seed: int = 0,
                        level: float = 0.95) -> dict[str, Any] | None:
    """Bradley-Terry ratings with style control (Chatbot Arena, Arena-Hard): the same logistic
    fit with each battle's style differences as covariates, so a rating is what a candidate wins
    with its style held equal; the coefficients say how much each style feature sways the judge.
    Games are (i, j, s, style_i, style_j); percentile-bootstrap intervals resampling prompts.
    Where the games cannot give such a fit (``_style_unfit``), ``reason`` says why and no figure
    is given."""
    n_boot = check_resamples(n_boot)
    prompts = [p for p, gs in games_by_prompt.items() if gs]
    games = [g for p in prompts for g in games_by_prompt[p]]
    players = sorted({x for g in games for x in g[:2]})
    if len(players) < 2 or len(games) < 3:
        return None
    X = _style_design(games, players, [(g[3], g[4]) for g in games])
    s = np.array([g[2] for g in games], dtype=float)
    out: dict[str, Any] = {"method": "percentile bootstrap over prompts", "resamples": n_boot, "seed": seed,
                           "features": "normalised differences (a - b) / (a + b), scaled by their root mean square",
           "reason": _style_unfit(X, s, len(players))}
    if out["reason"]:
        none = Estimate(None, None, None, len(prompts), out["reason"])
        return {**out, "ratings": {p: _entry(none, "rating") for p in players},
                "coefficients": {f: _entry(none, "value") for f in STYLE_FEATURES}}
    ratings, coef, beta = _style_fit(X, s, len(players))
    prompt_of_row = np.repeat(np.arange(len(prompts)), [len(games_by_prompt[p]) for p in prompts])
    draws_r, draws_c, exact = _style_draws(X, s, beta, prompt_of_row, len(prompts), len(players), n_boot, seed)
    flat = cast(np.ndarray, ~X[:, len(players):].any(axis=0))  # features in which the two answers of a game never differ
    n = len(prompts)
    return {**out, "method": out["method"] + ("" if exact else " (one Newton step per resample)"),
            "ratings": {p: _entry(bootstrap_estimate(float(ratings[k]), draws_r[:, k], n, level), "rating")
                        for k, p in enumerate(players)},
            "coefficients": {f: _entry(Estimate(None, None, None, n, "the answers never differ in it") if flat[k] else
                                       bootstrap_estimate(float(coef[k]), draws_c[:, k], n, level), "value")
                             for k, f in enumerate(STYLE_FEATURES)}}


def _entry(e: Estimate, key: str) -> dict[str, Any]:
    """An estimate as the entries of a fit's result hold it: ``{key, low, high, reason}``."""
    return {key: e.value, "low": e.low, "high": e.high, "reason": e.reason}


def _style_draws(X: np.ndarray, s: np.ndarray, beta: np.ndarray, prompt_of_row: np.ndarray, n_prompts: int,
                 n_players: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The bootstrap resamples of a style-controlled fit: ratings, coefficients, and whether each
    resample was refitted exactly (else the one-step bootstrap)."""
    blocks = resample_counts(np.random.default_rng(seed), n_prompts, n_boot)
    exact = len(s) * n_boot <= STYLE_EXACT_LIMIT
    if exact:  # each resample refitted: its prompts' games weighted by how often they were drawn
        draws = [_style_fit(X, s, n_players, c[prompt_of_row], start=beta) for counts in blocks for c in counts]
        return np.array([d[0] for d in draws]), np.array([d[1] for d in draws]), True
    # the one-step bootstrap: one Newton step from the full-sample fit, a block of resamples at once
    betas = _one_step(X, s, beta, prompt_of_row, blocks, n_prompts)
    draws_r = betas[:, :n_players] - betas[:, :n_players].mean(axis=1, keepdims=True) + 1000
    return draws_r, betas[:, n_players:], False


COLLINEAR = 0.01  # a style feature whose differences are this close to the other columns' span


def _style_unfit(X: np.ndarray, s: np.ndarray, n_players: int) -> str | None:
    """Why games cannot give a style-controlled fit, or None. Not identifiable: a feature's
    differences are, to within ``COLLINEAR`` of their size, a combination of the candidates'
    columns and the other features' (a candidate that always writes the longer answer), so its
    sway and the candidates' strength cannot be told apart. No finite fit: the verdicts are
    predicted exactly (complete separation, e.g. one candidate won every game)."""
    tied = [f for k, f in enumerate(STYLE_FEATURES) if _nearly_spanned(X, n_players + k)]
    if tied:
        return (f"the {' and '.join(tied)} difference between the answers moves with the candidates, so their "
                "strength cannot be told from the style's sway (not identifiable)")
    if _separated(X, s):
        return ("the verdicts are predicted exactly by who played or by a style difference (complete separation), "
                "so the fit has no finite value")
    return None


def _nearly_spanned(X: np.ndarray, k: int) -> bool:
    """Whether column ``k`` (not all zero) lies within ``COLLINEAR`` of the span of the others."""
    col = X[:, k]
    if not col.any():
        return False
    Q = _basis(np.delete(X, k, axis=1))
    return bool(np.linalg.norm(col - Q @ (Q.T @ col)) < COLLINEAR * np.linalg.norm(col))
