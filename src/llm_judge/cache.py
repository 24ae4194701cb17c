"""The cache keys of generations and judgments, and the one writer of a judge's call to the store.

A key holds everything that determines a result, so a stored result is reused exactly when the
same call would be made again: for a judgment, the judge's identity (a local model by its file's
hash), how it is asked (its ``JudgeSetup``), the prompt template's version and the texts in the
positions shown. The keys are those earlier versions wrote (old stores are reused as they are),
so a part that is at its default is left out of the key, as it always was.

Left out on purpose: the store's tables and the verdicts' JSON form (``store``), and calling a
judge (``judging``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .backends import Backend
from .judging import Conversation, Judge, JudgeCall, model_identity
from .records import Kind, Shown
from .sampling import SamplingParams
from .store import ItemLink, Store, cache_key
from .verdicts import TEMPLATE_VERSION


def _setup_parts(kind: Kind, judge: Judge) -> dict[str, Any]:
    """The parts of a judgment's key that say how the judge is asked."""
    s = judge.setup
    return {"template": TEMPLATE_VERSION, "sampling": s.sampling.model_dump(),
            "criteria": [[c.name, c.rubric] for c in s.criteria], "scale": [s.scale.low, s.scale.high],
            **({"method": s.method} if s.method != "plain" else {}),
            **({"format": s.fmt} if kind == "pairwise" and s.fmt != "full" else {})}


def judgment_key(kind: Kind, judge: Judge, prompt: str, shown: Sequence[str], reference: str | None = None,
                 repeat: int = 0, history: Sequence[Conversation] | Conversation | None = None) -> str:
    """The cache key of one judgment: everything that determines it, the texts in the positions
    shown included (``shown``), and each shown answer's conversation before it (``history``, in
    the positions shown). The one definition for studies, comparisons and judge evaluations."""
    return cache_key(kind, judge=judge.identity(), **_setup_parts(kind, judge), prompt=prompt, reference=reference,
                     shown=list(shown), **({"repeat": repeat} if repeat else {}),
                     **({"history": history} if history and any(history) else {}))


def generation_key(backend: Backend, sampling: SamplingParams, messages: Sequence[Mapping[str, str]]) -> str:
    """The cache key of one candidate's answer: the model, its sampling and the messages it is sent."""
    return cache_key("gen", model=model_identity(backend), sampling=sampling.model_dump(), messages=messages)


def save_judgment(store: Store, key: str, kind: Kind, judge_name: str, call: JudgeCall,
                  link: ItemLink | None = None) -> None:
    """Store a judge's call under its cache key: a pairwise verdict as shown (A = the answer shown
    first), with its raw output, reason, cost and log probabilities, and linked to its run item
    unless it failed. The one writer for studies, comparisons and judge evaluations."""
    comp = call.completion
    verdict = call.result.verdict if isinstance(call.result, Shown) else call.result
    store.put_judgment(key, kind, judge_name, TEMPLATE_VERSION, call.order, status=call.status,
                       raw=call.raw, verdict=verdict, error=call.error,
                       completion_tokens=comp.completion_tokens if comp else None,
                       seconds=comp.seconds if comp else None, logprobs=comp.logprobs if comp else None,
                       link=None if call.status == "failed" else link)
