"""The formatting every output shares (terminal, page, report): numbers, intervals, p-values, a
comparison's verdict as parts, HTML tables. Pure functions of JSON forms (a comparison's
``to_dict``, a judge card, a summary's figures); no decision about a verdict is made here, and
nothing is read from the store.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, is_dataclass

from ..records import ORDERS

AB, BA = ORDERS  # the keys of a card's per-order figures and of a comparison's jurors (their JSON form)


def fmt_score(x: float | None) -> str:
    """A score or total: 3, 3.5; '-' when unscored.

    >>> fmt_score(3.0), fmt_score(3.25), fmt_score(None)
    ('3', '3.2', '-')
    """
    if x is None:
        return "-"
    return f"{x:g}" if float(x).is_integer() else f"{x:.1f}"


def _estimate_dict(e) -> dict:
    """An Estimate, or a figure's dict, as ``{value, low, high, reason}`` (a rating's dict holds
    its figure under ``rating``)."""
    if e is None:
        return {}
    if not isinstance(e, dict):
        return {"value": e.value, "low": e.low, "high": e.high, "reason": getattr(e, "reason", None)}
    return {"value": e.get("value", e.get("rating")), "low": e.get("low"), "high": e.get("high"),
            "reason": e.get("reason")}


def fmt_interval(e, digits: int = 2, sign: str = "") -> str:
    """An estimate's interval, ``[0.40, 0.89]``; where it has none, ``-`` and why.

    >>> fmt_interval({"value": 1060.0, "low": None, "high": None, "reason": "one prompt"}, 0)
    '- (one prompt)'
    """
    d = _estimate_dict(e)
    if d.get("low") is None:
        return f"- ({d['reason']})" if d.get("reason") else "-"
    return f"[{d['low']:{sign}.{digits}f}, {d['high']:{sign}.{digits}f}]"


def fmt_estimate(e, digits: int = 2, sign: str = "") -> str:
    """``0.70 [0.40, 0.89]`` from an Estimate (or its dict); a figure without an interval says
    why, and one that cannot be estimated is ``-`` with the reason.

    >>> fmt_estimate({"value": 5.0, "low": None, "high": None, "reason": "one prompt"})
    '5.00 (no interval: one prompt)'
    >>> fmt_estimate({"value": None, "reason": "one side won every item"})
    '- (not estimable: one side won every item)'
    """
    d = _estimate_dict(e)
    if d.get("value") is None:
        return f"- (not estimable: {d['reason']})" if d.get("reason") else "-"
    value = f"{d['value']:{sign}.{digits}f}"
    if d.get("low") is None:
        return f"{value} (no interval: {d['reason']})" if d.get("reason") else value
    return f"{value} {fmt_interval(d, digits, sign)}"


def fmt_rate(d: dict, key: str = "rate", digits: int = 3) -> str:
    """A figure stored as ``{key, low, high}`` (diagnostics, agreement) with its interval."""
    return fmt_estimate({"value": d[key], "low": d.get("low"), "high": d.get("high"), "reason": d.get("reason")},
                        digits)


def fmt_p(p: float | None) -> str:
    """A p-value readably: 0.021, 1.9e-09, 1.

    >>> fmt_p(1.862645149230957e-09), fmt_p(0.0214), fmt_p(1.0), fmt_p(None)
    ('1.9e-09', '0.021', '1', '-')
    """
    return "-" if p is None else f"{p:.2g}"


def fmt_share(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def verdict_parts(result: dict) -> list[tuple[str, str]]:
    """A comparison's outcome (``ComparisonResult.to_dict()``) as (kind, text) parts, in order:
    kind is winner-none, winner-tie, winner, agreement, weighted, juror, justification or warning."""
    winner = result.get("winner")
    names = {lab: c["label"] for lab, c in result["candidates"].items()}
    if winner is None:
        parts = [("winner-none", "Winner: none (unscored: the judge gave no readable verdict)")]
    elif winner == "tie":
        parts = [("winner-tie", "Winner: tie")]
    else:
        parts = [("winner", f"Winner: {winner} ({names[winner]})")]
    if result["mode"] == "pairwise":
        agreed = {True: "yes", False: "NO", None: "unknown"}[result.get("consistent")]
        per = ", ".join(f"{o['order']}: {o['verdict']['winner'] if o['verdict'] else 'unscored'}"
                        for o in result["orders"])
        parts.append(("agreement", f"Both orders agreed: {agreed} ({per}; winners in the original labels)"))
    w = result.get("weighted")
    if w:
        p = w["p"]
        parts.append(("weighted", f"Weighted{' and calibrated over both orders' if w['calibrated'] else ' (one order)'}: "
                                  f"P(A wins) {p['A']:.2f}, P(B wins) {p['B']:.2f}, P(tie) {p['tie']:.2f}; the judge's "
                                  f"measured position bias {w['position_bias']:+.2f} (+1: always the answer shown first)"))
    for j in result.get("jurors") or []:
        parts.append(("juror", f"Juror {j['judge']}: AB {j[AB] or 'unscored'}, BA {j[BA] or 'unscored'}, "
                               f"both orders {j['winner'] or 'unscored'}"))
    for o in result["orders"]:
        if o["verdict"]:
            parts.append(("justification", f"Judge ({o['order']}): {o['verdict'].get('justification') or '(no justification)'}"))
    parts += [("warning", f"warning: {w}") for w in result.get("warnings", [])]
    return parts


def score_rows(result: dict) -> list[list[str]]:
    """Criteria x (A, B), then the totals; '-' where unscored."""
    scores, totals = result.get("scores") or {}, result.get("totals") or {}
    rows = [[c["name"], fmt_score((scores.get(c["name"]) or {}).get("A")), fmt_score((scores.get(c["name"]) or {}).get("B"))]
            for c in result["criteria"]]
    rows.append(["Total", fmt_score(totals.get("A")), fmt_score(totals.get("B"))])
    return rows


def html_table(title: str, header: list[str], rows: list[list[str]], level: int = 2) -> str:
    e = html.escape
    return (f"<h{level}>{e(title)}</h{level}><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def to_json(obj) -> str:
    """JSON of results that hold dataclasses (``stats.PairStats``, ``stats.Estimate``)."""
    return json.dumps(obj, indent=2, ensure_ascii=False,
                      default=lambda o: asdict(o) if is_dataclass(o) else str(o))


CARD_ROWS = [  # (measure, how to read it from a card)
    ("set", lambda c: f"{c['set']} ({c['items']} pairs)"),
    ("method", lambda c: (f"protocol {c['protocol']}, {c.get('method', 'plain')}" if c.get("protocol")
                          else f"{c.get('method', 'plain')}, {c.get('format', 'full')} verdicts")),
    ("accuracy, A shown first", lambda c: fmt_estimate(c["accuracy"][AB])),
    ("accuracy, B shown first", lambda c: fmt_estimate(c["accuracy"][BA])),
    ("accuracy, mean of both orders", lambda c: f"{c['accuracy']['mean']:.2f}"),
    ("both orders correct", lambda c: fmt_estimate(c["accuracy"]["both_orders"])),
    ("both orders combined (disagreement = tie)", lambda c: fmt_estimate(c["accuracy"]["combined"])),
    ("weighted, calibrated accuracy", lambda c: fmt_estimate(c["weighted"]["accuracy"]) if c.get("weighted") else "-"),
    ("weighted, mean P(gold answer)", lambda c: fmt_estimate(c["weighted"]["p_correct"]) if c.get("weighted") else "-"),
    ("position bias (P first - P second)", lambda c: fmt_estimate(c["weighted"]["position_bias"]) if c.get("weighted") else "-"),
    ("Cohen's kappa, A shown first", lambda c: fmt_estimate(c["kappa"][AB])),
    ("Cohen's kappa, B shown first", lambda c: fmt_estimate(c["kappa"][BA])),
    ("position consistency", lambda c: fmt_rate(c["position_consistency"], digits=2)),
    ("decisive verdicts for the first shown", lambda c: fmt_rate(c["first_shown_wins"], digits=2)),
    ("decisive verdicts for the longer answer", lambda c: fmt_estimate(c["longer_wins"])),
    ("unscored judgments", lambda c: fmt_estimate(c["unscored"])),
    ("seconds / tokens per pair (both orders)", lambda c: " / ".join(
        "-" if v is None else f"{v:.1f}" for v in (c["cost"]["seconds_per_item"], c["cost"]["tokens_per_item"]))),
    ("GPT-4 on this set (LLMBar, published)", lambda c: "-" if not c.get("published_gpt4") else f"{c['published_gpt4']:.3f}"),
]


CARDS_TITLE = "Judge cards (95% Wilson intervals; accuracies over every pair, unscored = wrong)"


def card_header(cards: list[dict]) -> list[str]:
    return ["measure", *(c["judge"] for c in cards)]


def card_rows(cards: list[dict]) -> list[list[str]]:
    """Judge cards side by side, one column per card (AlpacaEval's evaluator leaderboard)."""
    return [[name, *(read(c) for c in cards)] for name, read in CARD_ROWS]
