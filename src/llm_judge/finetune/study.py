"""Checkpoints compared with a judge: the question the seed's authors could not answer ("is the
model trained longer better, and how sure are we?").

The base model and each checkpoint (the base with its GGUF adapter) answer the same prompts with
one sampling preset and seed; the judge compares every pair in both orders (a normal study, stored
and resumable); the progression reads each checkpoint against the one before it: its win rate
(ties as half) with the Wilson interval and the two-sided sign test.
"""

from __future__ import annotations

from ..compare import Candidate
from ..config import Settings
from ..criteria import parse_criteria
from ..defaults import CRITERIA_TEXT, N_CTX
from ..prompts import load_prompts, select
from ..sampling import JUDGE_DEFAULT, make_sampling
from ..study import StudyConfig
from ..study.summary import Summary

BASE_LABEL = "base"
SEED_CRITERIA = CRITERIA_TEXT


def adapter_spec(base_spec: str, adapter: str) -> str:
    """The candidate spec of ``base_spec`` with a GGUF LoRA adapter.

    >>> adapter_spec("embedded", "/runs/a/step-0020.gguf"), adapter_spec("gguf:/m/b.gguf", "s.gguf")
    ('embedded+lora:/runs/a/step-0020.gguf', 'gguf:/m/b.gguf+lora:s.gguf')
    """
    return f"{base_spec}+lora:{adapter}"


def checkpoint_config(base_spec: str, checkpoints: dict[str, str], judge: str, *, prompts: str = "seed-10",
                      preset: str = "p1", max_tokens: int = 256, limit: int | None = None,
                      n_ctx: int = N_CTX, judge_method: str = "plain", verdict_format: str = "full",
                      settings: Settings | None = None) -> StudyConfig:
    """A pairwise study of the base model and its checkpoints (label -> GGUF adapter), both orders
    (``settings``: what its specs are resolved under)."""
    sampling = make_sampling(preset, max_tokens=max_tokens)
    candidates = {BASE_LABEL: Candidate(base_spec, sampling, BASE_LABEL)}
    candidates.update({name: Candidate(adapter_spec(base_spec, path), sampling, name) for name, path in checkpoints.items()})
    config = StudyConfig(prompts=select(load_prompts(prompts), limit=limit), candidates=candidates, judge=judge,
                         judge_sampling=make_sampling(None, **JUDGE_DEFAULT), criteria=parse_criteria(SEED_CRITERIA),
                         mode="pairwise", n_ctx=n_ctx, source=prompts, judge_method=judge_method,
                         verdict_format=verdict_format)
    config.validate(settings)
    return config


def progression(summary: Summary, order: list[str]) -> list[dict]:
    """For each label of ``order`` after the first: how it did against the one before it.
    {"earlier", "later", "wins", "losses", "ties", "unscored", "win_rate": Estimate (the later's,
    ties as half), "sign_test_p"}."""
    pairs = summary.pairwise.pairs if summary.pairwise else {}
    out = []
    for earlier, later in zip(order, order[1:]):
        stats = next((p for p in pairs.values() if set(p.sides) == {earlier, later}), None)
        if stats is None:
            continue
        out.append({"earlier": earlier, "later": later, "wins": stats.wins[later], "losses": stats.wins[earlier],
                    "ties": stats.ties, "unscored": stats.unscored, "win_rate": stats.win_rate[later],
                    "sign_test_p": stats.sign_test_p})
    return out
