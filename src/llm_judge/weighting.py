"""Probability-weighted verdicts (G-Eval's idea, on any backend that gives token probabilities).

Where the probabilities are read: in the judge's *own* output, at each position where it wrote a
decision: the first character of the winner's value (``"winner": "A"``) and of every score
(``"A": 3``). The backend reports, for the token it generated there, the judge's next-token
distribution at that point (llama.cpp in-process: the logits, re-read from the generated tokens;
OpenAI-compatible servers: ``top_logprobs``). Each allowed value's probability is the mass of the
tokens that spell it after the same leading characters (a token ``' "A'`` after ``' "'``), and the
values' probabilities are renormalised: the judge's belief between A, B and tie, and its expected
score. The sampled verdict is kept beside them.

The result is a ``records.Probabilities`` in the frame shown (A = the answer shown first).

Left out: scales with a value of two digits (a first digit cannot tell 1 from 10): there only the
winner is weighted. Calibrating the two orders is ``verdicts.combine_weighted``; relabelling is
``Probabilities.swapped``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .criteria import Criterion, Scale
from .records import LABELS, WINNERS, Probabilities
from .verdicts import json_spans

METHODS = ("plain", "weighted")
_VALUE = re.compile(r"[A-Za-z0-9]+")
Decision = Mapping[str, Any]  # {"offset", "start", "token", "top": {token text: probability}} (backends.Completion)
Offsets = dict[tuple[str, ...], int]  # ("winner",) or ("score", criterion[, label]) -> where its value starts


def decision_offsets(text: str, criteria: list[Criterion], scale: Scale, mode: str = "pairwise") -> Offsets:
    """Where each decision's value starts in the judge's output: {("winner",): offset,
    ("score", criterion, "A"|"B"): offset} (single mode: ("score", criterion)).

    >>> from llm_judge.criteria import parse_criteria
    >>> out = '{"justification": "x", "scores": {"Relevance": {"A": 3, "B": 2}}, "winner": "A"}'
    >>> offsets = decision_offsets(out, parse_criteria("Relevance"), Scale())
    >>> {k: out[v] for k, v in offsets.items()}
    {('winner',): 'A', ('score', 'Relevance', 'A'): '3', ('score', 'Relevance', 'B'): '2'}
    """
    spans = json_spans(text or "")
    if not spans:
        return {}
    start, end, _obj = spans[-1]  # the last object: where the parser's verdict stands
    body = text[start:end]
    out: Offsets = {}
    m = re.search(r'"winner"\s*:\s*"', body)
    if m:
        out[("winner",)] = start + m.end()
    if scale.high > 9:
        return out
    for c in criteria:
        name = re.escape(json_string(c.name))
        if mode == "pairwise":
            block = re.search(name + r'\s*:\s*\{([^{}]*)\}', body)
            if block:
                for lab in LABELS:
                    v = re.search(r'"' + lab + r'"\s*:\s*"?(?=\d)', block.group(1))
                    if v:
                        out[("score", c.name, lab)] = start + block.start(1) + v.end()
        else:
            v = re.search(name + r'\s*:\s*"?(?=\d)', body)
            if v:
                out[("score", c.name)] = start + v.end()
    return out


def json_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def option_probabilities(decision: Decision, text: str, options: Sequence[str]) -> dict[str, float] | None:
    """The renormalised probability of each option at one decision.

    ``decision``: {"offset": where the value starts, "start": where the generated token starts,
    "top": {token text: probability}}. A token counts for an option when, after the characters
    the generated token had before the value, it spells the option (or its start: "t" for "tie").

    >>> d = {"offset": 11, "start": 10, "top": {' "A': 0.6, ' "B': 0.3, ' "t': 0.1, ' {': 0.2}}
    >>> option_probabilities(d, '"winner": "A"}', ["A", "B", "tie"])
    {'A': 0.6, 'B': 0.3, 'tie': 0.1}
    """
    lead = text[decision["start"]:decision["offset"]].lstrip()  # leading spaces may differ: " 3" and "3" agree
    mass = dict.fromkeys(options, 0.0)
    for token, p in decision["top"].items():
        token = token.lstrip()
        if not token.startswith(lead):
            continue
        m = _VALUE.match(token[len(lead):])
        if not m:
            continue
        word = m.group(0)
        for o in options:
            if word == o or (len(o) > 1 and o.startswith(word)):
                mass[o] += p
                break
    total = sum(mass.values())
    if total <= 1e-9:
        return None
    return {o: round(v / total, 6) for o, v in mass.items()}


def _expected(probs: Mapping[str, float]) -> float:
    """The expected score from each value's probability."""
    return round(sum(int(v) * p for v, p in probs.items()), 4)


def read_weighted(decisions: Sequence[Decision] | None, text: str, offsets: Offsets, scale: Scale,
                  mode: str = "pairwise") -> Probabilities | None:
    """The judge's probabilities at its decisions, in the labels shown: of the winner (A, B, tie)
    and each criterion's expected score (pairwise: of A and of B, criteria with both only; single:
    one number); None when the backend gave no probabilities. Where scores were read but none
    kept, ``scores`` is empty (not None): the store keeps that difference.

    >>> from llm_judge.criteria import parse_criteria
    >>> out = '{"winner": "A"}'
    >>> read_weighted([{"offset": 12, "start": 12, "top": {"A": 0.75, "B": 0.25}}], out,
    ...               decision_offsets(out, parse_criteria("Relevance"), Scale()), Scale())
    Probabilities(winner={'A': 0.75, 'B': 0.25, 'tie': 0.0}, scores=None)
    """
    if not decisions:
        return None
    by_offset = {d["offset"]: d for d in decisions}
    values = [str(v) for v in scale.values]
    read = {key: probs for key, offset in offsets.items()
            if (d := by_offset.get(offset)) is not None
            and (probs := option_probabilities(d, text, list(WINNERS) if key[0] == "winner" else values))}
    scored = [(key[1:], _expected(p)) for key, p in read.items() if key[0] == "score"]
    winner = read.get(("winner",))
    if winner is None and not scored:
        return None
    scores = (_pair_scores(scored) if mode == "pairwise" else {k[0]: e for k, e in scored}) if scored else None
    return Probabilities(winner, scores)  # type: ignore[arg-type]  # A, B, tie / per criterion, as read


def _pair_scores(scored: list[tuple[tuple[str, ...], float]]) -> dict[str, dict[str, float]]:
    """Each criterion's expected score of A and of B; a criterion missing either is left out."""
    pairs: dict[str, dict[str, float]] = {}
    for (name, label), expected in scored:
        pairs.setdefault(name, {})[label] = expected
    return {c: v for c, v in pairs.items() if set(v) == set(LABELS)}
