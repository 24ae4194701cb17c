"""Figures comparable with the leaderboards people know, computed as their own code computes them:

- **MT-Bench** (FastChat ``show_result.py``, ``display_result_single``): the mean 1-10 rating per
  model on turn 1, turn 2 and both (the mean of every rating, not of the two turns' means),
  unreadable ratings left out, models sorted by score; with a 95% bootstrap interval over
  questions, which FastChat does not print.
- **Arena-Hard** (arena-hard-auto ``show_result.py``): two games per question (the baseline shown
  first, then the model), five-level labels in the frame shown, a strong label counted three
  times, a Bradley-Terry fit anchored on the baseline, and each model's score = its predicted win
  rate against the baseline, with the bootstrap interval of its rating (resampling counted games,
  as ``get_bootstrap_result`` does; our own seeded draws, so the interval is close to the
  reference's, not equal).
- **AlpacaEval** soft preferences (``metrics.pairwise_to_winrate``, ``glm_winrate``): the adapters
  between llm-judge's records and AlpacaEval's 1-2 preference scale, and the soft win rates with
  the length-controlled forms named for what they are.

Every statistic is ``stats``'s; this module turns rows into its inputs and its results into the
leaderboards' tables. Pure: it reads no store and no file and calls no model (the callers,
``study.summary`` and ``analyze``, hand rows over). Left out: MT-Bench's pairwise modes (llm-judge's
own pairwise figures are those), Arena-Hard's style control (``stats.bradley_terry_style``),
AlpacaEval's gamed-baseline regularisation of ``length_controlled_v1`` (it needs AlpacaEval's own
annotations of gamed baselines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from . import stats as S
from .records import Verdict, Winner

# ------------------------------------------------------------------------------------------ MT-Bench
ScoreRow = tuple[str, str, int, float | None]  # (model, question id, turn, rating; None: unreadable)
TURN_TITLES = {1: "First turn", 2: "Second turn"}


@dataclass(frozen=True)
class MTBench:
    """Each model's mean rating per turn and over both (``overall``), rows left out as unreadable."""

    by_turn: dict[int, dict[str, S.Estimate]]
    overall: dict[str, S.Estimate]
    dropped: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _readable(score: float | None) -> bool:
    """FastChat's files write -1 for a judgment it could not read; llm-judge's rows write None."""
    return score is not None and score != -1


def mt_bench(rows: Sequence[ScoreRow], n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> MTBench:
    """MT-Bench's single-grading table from (model, question id, turn, rating) rows."""
    kept = [r for r in rows if _readable(r[3])]
    models = sorted({r[0] for r in kept})
    turns = sorted({r[2] for r in kept})
    by_turn = {t: _sorted({m: S.mean_ci([r[3] for r in kept if r[0] == m and r[2] == t], n_boot, seed)
                           for m in models}) for t in turns}
    overall = _sorted({m: S.pooled_mean_ci(_by_question(kept, m), n_boot, seed) for m in models})
    return MTBench(by_turn, overall, len(rows) - len(kept))


def _by_question(rows: Sequence[ScoreRow], model: str) -> list[list[float]]:
    """A model's ratings grouped by question (its turns together), questions in first-seen order."""
    out: dict[str, list[float]] = {}
    for m, q, _t, score in rows:
        if m == model and score is not None:
            out.setdefault(q, []).append(float(score))
    return list(out.values())


def _sorted(figures: dict[str, S.Estimate]) -> dict[str, S.Estimate]:
    """Highest score first (``sort_values(by="score", ascending=False)``), then by name."""
    return dict(sorted(figures.items(), key=lambda kv: (-(kv[1].value if kv[1].value is not None else -1e9), kv[0])))


def mt_bench_lines(result: MTBench) -> list[str]:
    """The table as show_result.py prints it (a block per turn, then the average), with intervals."""
    blocks = [(TURN_TITLES.get(t, f"Turn {t}"), figs) for t, figs in result.by_turn.items()]
    if len(result.by_turn) > 1:
        blocks.append(("Average", result.overall))
    width = max([len(m) for _t, figs in blocks for m in figs] + [5])
    lines: list[str] = []
    for title, figs in blocks:
        lines += ["", f"########## {title} ##########", f"{'model':<{width}}  {'score':>8}  95% CI"]
        lines += [f"{m:<{width}}  {_num(e.value, 6):>8}  {_interval(e, 2)}" for m, e in figs.items()]
    if result.dropped:
        lines.append(f"({result.dropped} unreadable ratings left out)")
    return lines


def _num(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _interval(e: S.Estimate, digits: int) -> str:
    if e.low is None or e.high is None:
        return f"- ({e.reason})" if e.reason else "-"
    return f"[{e.low:.{digits}f}, {e.high:.{digits}f}]"


# ---------------------------------------------------------------------------------------- Arena-Hard
ArenaLabel = Literal["A>>B", "A>B", "A=B", "B>A", "B>>A"]
ARENA_LABELS: tuple[ArenaLabel, ...] = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
STRONG_WEIGHT = 3  # show_result.py's --weight: a strong verdict counts three times
Game = Literal[1, 2]  # 1: the baseline shown first (as A); 2: the model shown first
ArenaRow = tuple[str, str, int, str | None]  # (question id, model, game, label in the frame shown; None: unreadable)
# a label in the frame shown -> (the answer shown first's points, weight)
_SHOWN_FIRST: dict[str, tuple[float, int]] = {"A>>B": (1.0, STRONG_WEIGHT), "A>B": (1.0, 1), "A=B": (0.5, 1),
                                              "B>A": (0.0, 1), "B>>A": (0.0, STRONG_WEIGHT)}


def arena_label(winner: Winner, strong: bool) -> ArenaLabel:
    """A verdict's five-level label (both in the frame shown): ``Verdict.strong`` is ``>>``.

    >>> arena_label("A", True), arena_label("B", False), arena_label("tie", False)
    ('A>>B', 'B>A', 'A=B')
    """
    if winner == "tie":
        return "A=B"
    return ("A>>B" if strong else "A>B") if winner == "A" else ("B>>A" if strong else "B>A")


def verdict_label(verdict: Verdict | None) -> ArenaLabel | None:
    """The label of a verdict as the judge gave it (``Shown.verdict``); None when unscored."""
    return None if verdict is None else arena_label(verdict.winner, verdict.strong)


@dataclass(frozen=True)
class ArenaHard:
    """Each model's Arena-Hard score (win rate against ``baseline``, 0-100, interval from its
    rating's bootstrap), its rating (Elo scale, the baseline at 1000), the games counted (strong
    ones three times) and the judgments left out as unreadable."""

    baseline: str
    scores: dict[str, S.Estimate]
    ratings: dict[str, S.Estimate]
    games: int
    unreadable: int
    weight: int = STRONG_WEIGHT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def arena_games(rows: Sequence[ArenaRow], baseline: str) -> list[S.WeightedGame]:
    """``get_battles_from_row``: each readable judgment as a game of the baseline against the
    model, s = the baseline's points (1 won, 0.5 tie, 0 lost), weight 3 for a strong label."""
    games: list[S.WeightedGame] = []
    for _q, model, game, label in rows:
        if label is None or label not in _SHOWN_FIRST:
            continue
        first, weight = _SHOWN_FIRST[label]
        games.append((baseline, model, first if game == 1 else 1 - first, float(weight)))
    return games


def arena_hard(rows: Sequence[ArenaRow], baseline: str, n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> ArenaHard:
    """The Arena-Hard scores of every model against ``baseline`` from (question, model, game, label) rows."""
    games = arena_games(rows, baseline)
    ratings = S.bradley_terry_anchored(games, baseline, n_boot, seed)
    scores = _sorted({m: _as_score(e) for m, e in ratings.items()})
    return ArenaHard(baseline, scores, ratings, int(round(sum(g[3] for g in games))),
                     sum(1 for r in rows if r[3] not in _SHOWN_FIRST))


def _as_score(rating: S.Estimate) -> S.Estimate:
    """A rating as its win rate against the anchor (1000), in percent, interval mapped alike."""
    def pct(x: float | None) -> float | None:
        return None if x is None else 100 * S.elo_win_rate(x, 1000.0)
    return S.Estimate(pct(rating.value), pct(rating.low), pct(rating.high), rating.n, rating.reason)


def arena_hard_lines(result: ArenaHard, tokens: Mapping[str, float] | None = None) -> list[str]:
    """show_result.py's lines: ``model | score: 80.0 | 95% CI: (-7.4, 6.7)`` (interval as offsets)."""
    lines = [f"Arena-Hard score against {result.baseline} ({result.games} games counted, strong verdicts "
             f"x{result.weight}; {result.unreadable} unreadable judgments left out)"]
    for m, e in result.scores.items():
        if e.value is None:
            lines.append(f"{m : <30} | score:   -   | {e.reason}")
            continue
        ci = "(0.0, 0.0)" if e.low is None or e.high is None else str((round(e.low - e.value, 1), round(e.high - e.value, 1)))
        line = f"{m : <30} | score: {round(e.value, 1) : ^5} | 95% CI: {ci : ^12}"
        lines.append(line + (f" | average #tokens: {int(tokens[m])}" if tokens and m in tokens else ""))
    return lines


# --------------------------------------------------------------------------------------- AlpacaEval
LC_MINIMAL = "LC (minimal: no instruction term)"
LC_FULL = "LC (AlpacaEval 2 full)"


def preference_of(p_b: float) -> float:
    """AlpacaEval's preference (1: the first side, model_a/output_1, better; 2: the second; 1.5 a
    draw) from the probability that the second side is better.

    >>> preference_of(0.25), preference_of(0.5)
    (1.25, 1.5)
    """
    return 1.0 + p_b


def soft_preference(p: Mapping[Winner, float]) -> float:
    """The preference of a weighted verdict (``Calibrated.p``, in the item's labels): a tie's
    probability split half and half (AlpacaEval's judges have none: there it is 2 - P(A))."""
    return preference_of(p.get("B", 0.0) + 0.5 * p.get("tie", 0.0))


def discrete_winner(preference: float) -> Winner:
    """A preference rounded as ``discrete_win_rate`` rounds it (1.5 exactly: a draw).

    >>> discrete_winner(1.49), discrete_winner(1.5), discrete_winner(1.7)
    ('A', 'tie', 'B')
    """
    return "tie" if preference == 1.5 else "A" if preference < 1.5 else "B"


@dataclass(frozen=True)
class SoftPair:
    """One pair's AlpacaEval figures, for its second side (``model``) against the first
    (``baseline``): the soft win rates, and the length-controlled ones where lengths are known
    (``lc``: form name -> estimate, named as printed)."""

    baseline: str
    model: str
    items: int
    win_rates: S.SoftWinRate
    lc: dict[str, S.Estimate]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def soft_pair(baseline: str, model: str, preferences: Sequence[float], lengths: Sequence[tuple[int, int]] | None = None,
              difficulty: Sequence[float] | None = None, n_boot: int = S.DEFAULT_BOOT, seed: int = 0) -> SoftPair:
    """The pair's figures from its items' preferences (and each item's (first, second) answer
    lengths; with the instructions' difficulty also the full LC form)."""
    lc: dict[str, S.Estimate] = {}
    y = [p - 1 for p in preferences]
    if lengths:
        len_model, len_base = [ln[1] for ln in lengths], [ln[0] for ln in lengths]
        lc[LC_MINIMAL] = S.length_controlled_ci(y, len_model, len_base, n_boot, seed)
        if difficulty is not None:
            lc[LC_FULL] = S.length_controlled_full_ci(y, len_model, len_base, difficulty, n_boot, seed)
    return SoftPair(baseline, model, len(y), S.soft_win_rate(preferences, n_boot, seed), lc)


def soft_lines(pair: SoftPair, indent: str = "") -> list[str]:
    """A pair's soft figures in AlpacaEval's terms, percent, each LC figure with its form."""
    w = pair.win_rates
    se = "" if w.standard_error is None else f" (standard error {100 * w.standard_error:.2f})"
    lines = [f"{indent}{pair.model} vs {pair.baseline} (AlpacaEval preferences, {pair.items} items: {w.wins} wins, "
             f"{w.draws} draws, {w.losses} losses): win_rate {_pct(w.win_rate)}{se}; "
             f"discrete_win_rate {_pct(w.discrete_win_rate)}"]
    lines += [f"{indent}  {form} {_pct(e)}" for form, e in pair.lc.items()]
    return lines


def _pct(e: S.Estimate) -> str:
    if e.value is None:
        return f"- ({e.reason})" if e.reason else "-"
    ci = f" [{100 * e.low:.1f}, {100 * e.high:.1f}]" if e.low is not None and e.high is not None else ""
    return f"{100 * e.value:.1f}%{ci}" + (f" ({e.reason})" if e.reason and not ci else "")
