"""Statistics for studies and verdict files. Pure functions, checked against hand computations.

Intervals are percentile bootstraps (``n_boot`` resamples, fixed ``seed``) unless stated.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

DEFAULT_BOOT = 1000


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def mean_ci(values, n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean with a percentile-bootstrap interval.

    >>> mean_ci([2, 2, 2]).to_dict()
    {'value': 2.0, 'low': 2.0, 'high': 2.0, 'n': 3}
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return Estimate(None, None, None, 0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // x.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return Estimate(float(x.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)), int(x.size))


def _rate_ci(wins: int, ties: int, losses: int, n_boot: int, seed: int, level: float, ties_half: bool) -> Estimate:
    n = wins + ties + losses if ties_half else wins + losses
    if n == 0:
        return Estimate(None, None, None, 0)
    value = (wins + 0.5 * ties) / n if ties_half else wins / n
    rng = np.random.default_rng(seed)
    if ties_half:
        draws = rng.multinomial(n, [wins / n, ties / n, losses / n], size=n_boot)
        rates = (draws[:, 0] + 0.5 * draws[:, 1]) / n
    else:
        rates = rng.binomial(n, wins / n, size=n_boot) / n
    alpha = (1 - level) / 2
    return Estimate(value, float(np.quantile(rates, alpha)), float(np.quantile(rates, 1 - alpha)), n)


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact sign test of wins against losses (ties dropped).

    >>> round(sign_test(9, 1), 4)
    0.0215
    """
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def pairwise_summary(outcomes: list[str], n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95) -> dict:
    """Outcomes from the first model's side ("win", "tie", "loss"; None = unscored, skipped)."""
    c = Counter(o for o in outcomes if o is not None)
    w, t, lo = c["win"], c["tie"], c["loss"]
    return {
        "wins": w, "ties": t, "losses": lo, "unscored": sum(o is None for o in outcomes),
        "win_rate": _rate_ci(w, t, lo, n_boot, seed, level, True).to_dict(),
        "win_rate_without_ties": _rate_ci(w, t, lo, n_boot, seed, level, False).to_dict(),
        "sign_test_p": sign_test(w, lo),
    }


def outcome(winner: str | None, side: str = "A") -> str | None:
    """A verdict's winner seen from one side: 'win', 'tie', 'loss' or None (unscored)."""
    if winner is None:
        return None
    return "tie" if winner == "tie" else "win" if winner == side else "loss"


def bradley_terry(games: list[tuple[str, str, float]], iters: int = 500, tol: float = 1e-9) -> dict[str, float]:
    """Bradley-Terry strengths by the MM algorithm; ``(i, j, s)`` with s = 1 (i won), 0.5 tie, 0.

    Returned as Elo-like ratings (400 log10 strength, mean 1000). Ties count half a win each;
    a small prior (one tie against every other player) keeps unbeaten players finite.
    """
    players = sorted({p for g in games for p in g[:2]})
    if len(players) < 2:
        return {p: 1000.0 for p in players}
    idx = {p: k for k, p in enumerate(players)}
    m = len(players)
    wins = np.zeros(m)
    n = np.zeros((m, m))
    for i, j, s in games:
        a, b = idx[i], idx[j]
        wins[a] += s
        wins[b] += 1 - s
        n[a, b] += 1
        n[b, a] += 1
    prior = np.ones((m, m)) - np.eye(m)
    n += prior
    wins += 0.5 * prior.sum(axis=1)
    p = np.ones(m)
    for _ in range(iters):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    ratings = 400 * np.log10(p)
    ratings += 1000 - ratings.mean()
    return {pl: float(ratings[idx[pl]]) for pl in players}


def bradley_terry_ci(games, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict[str, dict]:
    point = bradley_terry(games)
    rng = np.random.default_rng(seed)
    samples = defaultdict(list)
    for _ in range(n_boot):
        pick = rng.integers(0, len(games), size=len(games))
        for pl, r in bradley_terry([games[k] for k in pick], iters=200, tol=1e-6).items():
            samples[pl].append(r)
    alpha = (1 - level) / 2
    return {pl: {"rating": r, "low": float(np.quantile(samples[pl], alpha)) if samples[pl] else None,
                 "high": float(np.quantile(samples[pl], 1 - alpha)) if samples[pl] else None}
            for pl, r in point.items()}


def position_consistency(pairs: list[tuple[str | None, str | None]]) -> dict:
    """Share of items whose two verdicts (in original labels) agree, among items with both."""
    both = [(a, b) for a, b in pairs if a is not None and b is not None]
    agree = sum(a == b for a, b in both)
    return {"items": len(both), "agreeing": agree, "rate": agree / len(both) if both else None}


def first_position_rate(shown_first_won: list[bool | None]) -> dict:
    """Share of decisive verdicts that went to the answer shown first (0.5 = no position bias)."""
    decisive = [x for x in shown_first_won if x is not None]
    return {"decisive": len(decisive), "rate": sum(decisive) / len(decisive) if decisive else None}


def longer_answer_rate(items: list[tuple[str | None, int, int]]) -> dict:
    """Share of decisive verdicts won by the longer answer: (winner, len_a, len_b)."""
    decisive = [(w, la, lb) for w, la, lb in items if w in ("A", "B") and la != lb]
    longer = sum((w == "A") == (la > lb) for w, la, lb in decisive)
    return {"decisive": len(decisive), "rate": longer / len(decisive) if decisive else None}


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


def agreement(items: list[dict]) -> dict:
    """Agreement of verdicts with human labels; items hold verdict, verdict_swapped?, human."""
    labelled = [it for it in items if it.get("human") is not None]

    def block(rows: list[dict]) -> dict:
        out = {"items": len(rows)}
        for key in ("verdict", "verdict_swapped"):
            have = [r for r in rows if r.get(key) is not None]
            out[key] = {"items": len(have),
                        "accuracy": sum(r[key] == r["human"] for r in have) / len(have) if have else None,
                        "kappa": cohen_kappa([r[key] for r in have], [r["human"] for r in have])}
        both = [r for r in rows if r.get("verdict") is not None and r.get("verdict_swapped") is not None]
        out["both_orders_correct"] = {
            "items": len(both),
            "rate": sum(r["verdict"] == r["human"] == r["verdict_swapped"] for r in both) / len(both) if both else None}
        return out

    result = {"with_ties": block(labelled), "without_ties": block([r for r in labelled if r["human"] != "tie"])}
    cats = sorted({r.get("category") for r in labelled if r.get("category")})
    result["by_category"] = {c: block([r for r in labelled if r.get("category") == c]) for c in cats}
    return result
