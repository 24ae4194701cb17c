"""The formatting every output shares (terminal, page, report): numbers, intervals, p-values, a
comparison's verdict as parts, HTML tables. Pure functions; no decision about a verdict is made here.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, is_dataclass


def fmt_score(x: float | None) -> str:
    """A score or total: 3, 3.5; '-' when unscored.

    >>> fmt_score(3.0), fmt_score(3.25), fmt_score(None)
    ('3', '3.2', '-')
    """
    if x is None:
        return "-"
    return f"{x:g}" if float(x).is_integer() else f"{x:.1f}"


def fmt_estimate(e, digits: int = 2) -> str:
    """``0.70 [0.40, 0.89]`` from an Estimate (or its dict); ``-`` when there is no value."""
    if e is not None and not isinstance(e, dict):
        e = {"value": e.value, "low": e.low, "high": e.high}
    if not e or e.get("value") is None:
        return "-"
    if e.get("low") is None:
        return f"{e['value']:.{digits}f}"
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def fmt_rate(d: dict, key: str = "rate", digits: int = 3) -> str:
    """A figure stored as ``{key, low, high}`` (diagnostics, agreement) with its interval."""
    return fmt_estimate({"value": d[key], "low": d.get("low"), "high": d.get("high")}, digits)


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
    kind is winner-none, winner-tie, winner, agreement, justification or warning."""
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
