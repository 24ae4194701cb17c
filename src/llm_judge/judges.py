"""Knowing a judge: how often it agrees with people on pairs they labelled, how much position and
length sway it, how often it gives no verdict, and what it costs, as a **judge card** (AlpacaEval's
evaluator leaderboard and LLMBar's tables, for any judge that llm-judge can run).

Every item is judged in both orders, through the same calls and cache as studies (an evaluation
that is interrupted continues where it stopped). Gold sets: the bundled ones (``GOLD_SETS``, see
data/judgesets/README.md for their sources and licences) or a file of
``{"id"?, "input", "output_1", "output_2", "label": 1 | 2 | "A" | "B" | "tie"}`` (JSON list or
JSONL; an id names one pair only), or
a verdict file in the ``analyze`` format with ``human`` (its verdicts are scored as they are).

The calls run through ``runner`` (up to the judge's concurrency); the records keep each order's
verdict typed (``Verdict``, in the pair's labels: A = output_1) and ``records_jsonl`` writes them.

A judge is asked under its setup's protocol: llm-judge's own (with the criteria given) or a
published one (``protocols``: LLMBar's own prompts among them, so a card can be set beside LLMBar's
published figures); a protocol's auxiliary texts are kept in the store like its judgments.

Left out: choosing a protocol by measurement (``tune``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from . import stats as S
from . import verdicts as V
from .analyze import read_verdicts
from .cache import StoredAuxiliary, judgment_key, save_judgment, template_version
from .errors import LLMJudgeError
from .judging import Judge, JudgeCall, check_fits, check_protocol, jury_verdict
from .prompts import select
from .records import ORDERS, Order, Shown, Verdict, in_order
from .runner import JudgeOrder, Progress, Runner
from .store import Store, StoredJudgment, verdict_json
from .textfiles import iter_jsonl, parse_json, read_text

_ADVERSARIAL = ["gptinst", "gptout", "manual", "neighbor"]
GOLD_SETS: dict[str, list[str]] = {
    "llmbar-natural": ["llmbar-natural"],
    "llmbar-adversarial": [f"llmbar-adversarial-{x}" for x in _ADVERSARIAL],
    **{f"llmbar-adversarial-{x}": [f"llmbar-adversarial-{x}"] for x in _ADVERSARIAL},
    "mtbench-human": ["mtbench-human"],
}
# GPT-4 with LLMBar's "Vanilla, no rules" prompt, accuracy averaged over both orders (LLMBar's
# statistics.json files): for orientation beside our own judges' cards.
PUBLISHED_GPT4 = {"llmbar-natural": 0.935, "llmbar-adversarial-gptinst": 0.766, "llmbar-adversarial-gptout": 0.766,
                  "llmbar-adversarial-manual": 0.750, "llmbar-adversarial-neighbor": 0.642, "mtbench-human": 0.810}


@dataclass(frozen=True)
class GoldItem:
    id: str
    input: str
    output_1: str
    output_2: str
    label: str  # "A" (output_1 is better), "B" or "tie"
    category: str | None = None


def _label(value: object, where: str) -> str:
    mapping: dict[object, str] = {1: "A", 2: "B", "1": "A", "2": "B", "A": "A", "B": "B", "tie": "tie"}
    if isinstance(value, bool) or not isinstance(value, int | str) or value not in mapping:
        raise LLMJudgeError(f"{where}: label {json.dumps(value)[:30]} must be 1, 2, \"A\", \"B\" or \"tie\"")
    return mapping[value]


def _items(records: list[tuple[int, Any]], name: str, category: str | None = None, unit: str = "item") -> list[GoldItem]:
    """The pairs of ``records`` ((number, object): ``unit`` n of the set), each id given once:
    an evaluation keys its verdicts by id, so a repeated id would mix two pairs' verdicts."""
    out: list[GoldItem] = []
    first: dict[str, int] = {}
    for n, rec in records:
        where = f"{name} {unit} {n}"
        if not isinstance(rec, dict):
            raise LLMJudgeError(f"{where}: expected an object with input, output_1, output_2 and label")
        for key in ("input", "output_1", "output_2"):
            if not isinstance(rec.get(key), str):
                raise LLMJudgeError(f"{where}: no {key!r} text (expected input, output_1, output_2, label)")
        item = GoldItem(str(rec.get("id", f"{category or name}-{n}")), rec["input"], rec["output_1"],
                        rec["output_2"], _label(rec.get("label"), where),
                        str(rec["category"]) if rec.get("category") else category)
        if item.id in first:
            raise LLMJudgeError(f"{where}: id {item.id!r} is already the id of {unit} {first[item.id]}; "
                                "give every pair its own id")
        first[item.id] = n
        out.append(item)
    return out


def bundled(part: str) -> list[GoldItem]:
    data = json.loads(files("llm_judge").joinpath("data", "judgesets", f"{part}.json").read_text(encoding="utf-8"))
    return _items(list(enumerate(data, 1)), part, part)


def is_verdict_file(source: str) -> bool:
    """A file in the analyze format (verdicts already given, with ``human``) rather than pairs to judge."""
    if source in GOLD_SETS or not Path(source).expanduser().is_file():
        return False
    text = read_text(source, "gold set").lstrip()
    if text.startswith("["):
        return False
    first = next(iter_jsonl(text, Path(source).name), (0, {}))[1]
    return "verdict" in first and "output_1" not in first


def load_gold(source: str, *, limit: int | None = None, sample: int | None = None, seed: int = 0,
              shortest: bool = False) -> list[GoldItem]:
    """A bundled set's items (``GOLD_SETS``) or a file's; ``shortest`` takes the pairs with the
    fewest characters first (cheap checks), ``sample`` a random sample, ``limit`` the first N."""
    if source in GOLD_SETS:
        items = [it for part in GOLD_SETS[source] for it in bundled(part)]
    else:
        path = Path(source).expanduser()
        text = read_text(path, "gold set", f" (bundled: {', '.join(GOLD_SETS)})")
        if text.lstrip().startswith("["):
            data = parse_json(text, path.name)  # a list: the text starts with "["
            items = _items(list(enumerate(data, 1)), path.name)
        else:
            items = _items(list(iter_jsonl(text, path.name)), path.name, unit="line")
    if not items:
        raise LLMJudgeError(f"gold set {source!r} holds no pairs")
    if shortest:
        items = sorted(items, key=lambda it: len(it.input) + len(it.output_1) + len(it.output_2))
    return select(items, limit=limit, sample=sample, seed=seed, what="pairs")


@dataclass(frozen=True)
class _Judged:
    """One order's verdict in the pair's labels, with what it cost."""

    verdict: Verdict | None
    seconds: float | None
    tokens: int | None

    @classmethod
    def stored(cls, row: StoredJudgment, order: Order) -> _Judged:
        """A stored judgment read by the slot shown in ``order`` (whoever wrote it, in whatever order:
        the same texts in the same positions)."""
        verdict = row.verdict if isinstance(row.verdict, Verdict) else None
        return cls(None if verdict is None else Shown(verdict, order).in_labels(), row.seconds, row.completion_tokens)

    @classmethod
    def called(cls, call: JudgeCall) -> _Judged:
        comp = call.completion
        return cls(call.pair, comp.seconds if comp else None, comp.completion_tokens if comp else None)


_Slot = tuple[GoldItem, Order]  # by the pair itself: ids name pairs, they do not tell them apart


def evaluate(judge: Judge, name: str, items: list[GoldItem], store: Store, progress: Progress | None = None,
             workers: int | None = None) -> list[dict[str, Any]]:
    """Judge every item in both orders (reusing stored judgments) and return the records in the
    ``analyze`` format with ``human`` = the gold label, plus what each cost. ``workers``: the
    most calls at once (default: the judge's concurrency)."""
    check_fits_gold(judge)
    results: dict[_Slot, _Judged] = {}
    auxiliary, version = StoredAuxiliary(store), template_version(judge)
    with Runner[_Slot](workers or judge.concurrency, progress=progress) as runner:
        runner.expect("judging", 2 * len(items))
        for it in items:
            for order in ORDERS:
                _look_up(store, runner, _job(judge, it, order, auxiliary), (it, order), results)
        for f in runner.finished():
            call = f.result
            assert isinstance(call, JudgeCall)
            save_judgment(store, f.job.key, "pairwise", name, call, None, version)
            results.update({slot: _Judged.called(call.as_slot(slot[1])) for slot in f.waiters})
    return [_record(it, results[(it, ORDERS[0])], results[(it, ORDERS[1])]) for it in items]


def check_fits_gold(judge: Judge) -> None:
    """Refuse, before any call, a judge whose protocol cannot judge a gold pair (pairwise, one turn,
    no reference)."""
    check_protocol(judge.setup, "pairwise")
    check_fits(judge.setup, [(1, False)])


def _job(judge: Judge, it: GoldItem, order: Order, auxiliary: StoredAuxiliary) -> JudgeOrder:
    answers = (it.output_1, it.output_2)
    key = judgment_key("pairwise", judge, it.input, list(in_order(answers, order)))
    return JudgeOrder(judge, it.input, answers, order, key, auxiliary=auxiliary)


def _look_up(store: Store, runner: Runner[_Slot], job: JudgeOrder, slot: _Slot, results: dict[_Slot, _Judged]) -> None:
    """The stored judgment of ``slot``, or its call submitted."""
    row = store.judgment(job.key)
    if row is None:
        return runner.submit(job, slot)
    results[slot] = _Judged.stored(row, slot[1])
    runner.count("judging")


def _record(it: GoldItem, ab: _Judged, ba: _Judged) -> dict[str, Any]:
    comb = V.combine(ab.verdict, ba.verdict)
    sampled = [None if x.verdict is None else x.verdict.winner for x in (ab, ba)]
    return {
        "id": it.id, "model_a": "output_1", "model_b": "output_2", "human": it.label,
        "verdict": sampled[0], "verdict_swapped": sampled[1],
        **({"category": it.category} if it.category else {}),
        "combined": V.combine_winners(*sampled), "weighted": V.calibrated_dict(comb.weighted),
        "orders": dict(zip(ORDERS, (ab.verdict, ba.verdict))),
        "lengths": [len(it.output_1), len(it.output_2)],
        "seconds": sum(x.seconds or 0 for x in (ab, ba)), "tokens": sum(x.tokens or 0 for x in (ab, ba))}


def records_jsonl(records: list[dict[str, Any]]) -> str:
    """Evaluated records as JSONL, each order's verdict in its JSON form (the store's), without
    the calibrated verdict."""
    return "".join(json.dumps({k: _jsonable(k, v) for k, v in r.items() if k != "weighted"}) + "\n" for r in records)


def _jsonable(key: str, value: Any) -> Any:
    if key != "orders":
        return value
    return {o: None if v is None else verdict_json(v) for o, v in value.items()}


def jury_records(members: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records a jury of these evaluated judges would give ({spec: evaluate()'s records, same
    items}): per order the jury's verdict (``judging.jury_verdict``), then both orders combined.
    A jury's card without calling its members again."""
    specs = list(members)
    out = []
    for rows in zip(*members.values()):
        orders = {o: jury_verdict([(spec, r["orders"][o], None) for spec, r in zip(specs, rows)]) for o in ORDERS}
        comb = V.combine(*orders.values())
        sampled = [None if v is None else v.winner for v in orders.values()]
        first = rows[0]
        out.append({**{k: first[k] for k in ("id", "model_a", "model_b", "human", "lengths") if k in first},
                    **({"category": first["category"]} if first.get("category") else {}),
                    "verdict": sampled[0], "verdict_swapped": sampled[1], "combined": V.combine_winners(*sampled),
                    "weighted": V.calibrated_dict(comb.weighted), "orders": orders,
                    "seconds": sum(r["seconds"] for r in rows), "tokens": sum(r["tokens"] for r in rows)})
    return out


def card(records: list[dict[str, Any]], judge: str, gold_set: str, setup: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A judge card from evaluated records (``evaluate``'s, or a verdict file's with ``human``).

    Accuracies divide by every item (an unscored verdict is wrong); shares of decisive verdicts
    say how position and length sway the judge (0.5: not at all); intervals are Wilson's.
    """
    n = len(records)
    if n == 0:
        raise LLMJudgeError("no items to score the judge on")
    agree = S.agreement(records)
    wt = agree["with_ties"]
    first, longer = [], []
    for r in records:
        for key, order in zip(("verdict", "verdict_swapped"), ORDERS):
            w = r.get(key)
            first.append(V.shown_first_won(w, order))
            if w in ("A", "B") and r.get("lengths") and r["lengths"][0] != r["lengths"][1]:
                longer.append((w == "A") == (r["lengths"][0] > r["lengths"][1]))
    combined = [r.get("combined", V.combine_winners(r.get("verdict"), r.get("verdict_swapped"))) for r in records]
    unscored = sum(r.get(k) is None for r in records for k in ("verdict", "verdict_swapped"))
    out = {
        "judge": judge, "set": gold_set, "items": n, **(setup or {}),
        "accuracy": {"AB": _acc(wt["verdict"]), "BA": _acc(wt["verdict_swapped"]),
                     "mean": (wt["verdict"]["accuracy"] + wt["verdict_swapped"]["accuracy"]) / 2,
                     "both_orders": _acc(wt["both_orders_correct"], "rate"),
                     "combined": S.proportion(sum(c == r["human"] for c, r in zip(combined, records)), n).to_dict()},
        "kappa": {o: S.kappa_ci([r[k] for r in records if r.get(k) is not None],
                                [r["human"] for r in records if r.get(k) is not None], 500).to_dict()
                  for o, k in (("AB", "verdict"), ("BA", "verdict_swapped"))},
        "position_consistency": S.position_consistency([(r.get("verdict"), r.get("verdict_swapped")) for r in records]),
        "first_shown_wins": S.first_position_rate(first),
        "longer_wins": S.proportion(sum(longer), len(longer)).to_dict() | {"decisive": len(longer)},
        "unscored": S.proportion(unscored, 2 * n).to_dict() | {"judgments": unscored},
        "by_category": {c: _acc(b["verdict"]) | {"BA": _acc(b["verdict_swapped"])}
                        for c, b in agree["by_category"].items()} if len(agree["by_category"]) > 1 else {},
        "published_gpt4": PUBLISHED_GPT4.get(gold_set),
    }
    weighted = [r["weighted"] for r in records if r.get("weighted") and r["weighted"].get("calibrated")]
    if weighted:
        rs = [r for r in records if r.get("weighted") and r["weighted"].get("calibrated")]
        out["weighted"] = {
            "items": len(weighted),
            "accuracy": S.proportion(sum(w["winner"] == r["human"] for w, r in zip(weighted, rs)), n).to_dict(),
            "p_correct": S.mean_ci([w["p"].get(r["human"], 0.0) for w, r in zip(weighted, rs)]).to_dict(),
            "position_bias": S.mean_ci([w["position_bias"] for w in weighted]).to_dict()}
    seconds = [r["seconds"] for r in records if r.get("seconds")]
    tokens = [r["tokens"] for r in records if r.get("tokens")]
    out["cost"] = {"seconds_per_item": sum(seconds) / len(seconds) if seconds else None,
                   "tokens_per_item": sum(tokens) / len(tokens) if tokens else None}
    return out


def _acc(block: Mapping[str, Any], key: str = "accuracy") -> dict[str, Any]:
    return {"value": block[key], "low": block["low"], "high": block["high"], "n": block["items"]}


def card_from_verdict_file(path: str) -> dict[str, Any]:
    """A card from a verdict file whose records carry ``human`` labels (no judge is run)."""
    records = [r for r in read_verdicts(path) if r.get("human") is not None]
    if not records:
        raise LLMJudgeError(f"{path} has no \"human\" labels to score its verdicts against")
    judge = records[0].get("judge") or Path(path).name
    return card(records, str(judge), Path(path).name)


def known_figures(store: Store, judge: str) -> list[str]:
    """One line per stored card of this judge (the latest per set and method), for notes beside
    its verdicts in ``compare`` and ``run``."""
    lines, seen = [], set()
    for c in store.cards(judge):
        tag = (c["set"], c.get("method"), c.get("format"))
        if tag in seen:
            continue
        seen.add(tag)
        acc, pc = c["accuracy"], c["position_consistency"]
        line = (f"judge card {c['set']} ({c['items']} pairs, {c.get('method', 'plain')}): accuracy "
                f"{acc['mean']:.2f} (mean of both orders), position consistency {pc['rate']:.2f}, "
                f"first shown wins {_share(c['first_shown_wins']['rate'])} of decisive verdicts")
        if c.get("weighted"):
            line += f"; weighted accuracy {c['weighted']['accuracy']['value']:.2f}"
        lines.append(line)
    return lines


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
