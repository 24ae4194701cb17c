"""The cache keys of generations and judgments, and the one writer of a judge's call to the store.

A key holds everything that determines a result, so a stored result is reused exactly when the
same call would be made again: for a judgment, the judge's identity (a local model by its file's
hash), how it is asked (its ``JudgeSetup``), the prompt template's version and the texts in the
positions shown. The keys are those earlier versions wrote (old stores are reused as they are),
so a part that is at its default is left out of the key, as it always was: a published protocol
(``protocols``) is in the key by its name and digest (its files' hash, so an edited protocol makes
new keys), llm-judge's own is not.

A protocol's auxiliary texts (the judge's questions about the outputs, its own reference answer)
are kept like answers, in the generations table, under a key of the judge, the protocol, the text's
name, its sampling and messages (which hold the question only): one text serves both orders, every
pair on that question and later runs. ``StoredAuxiliary`` makes each at most once at a time.

Left out on purpose: the store's tables and the verdicts' JSON form (``store``), and calling a
judge (``judging``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from . import verdicts  # its TEMPLATE_VERSION read at each call: the one place it is set
from .backends import Backend
from .judging import AuxRequest, Conversation, Judge, JudgeCall, model_identity
from .records import Kind, Shown
from .sampling import SamplingParams, sampling_dict
from .store import ItemLink, Store, cache_key


def _setup_parts(kind: Kind, judge: Judge) -> dict[str, Any]:
    """The parts of a judgment's key that say how the judge is asked."""
    s = judge.setup
    return {"template": verdicts.TEMPLATE_VERSION, "sampling": sampling_dict(s.sampling),
            "criteria": [[c.name, c.rubric] for c in s.criteria], "scale": [s.scale.low, s.scale.high],
            **({"method": s.method} if s.method != "plain" else {}),
            **({"format": s.fmt} if kind == "pairwise" and s.fmt != "full" else {}),
            **({"protocol": {"name": s.own.name, "sha256": s.own.digest}} if s.own is not None else {}),
            **({"rubric": s.rubric} if s.own is not None and s.rubric else {})}


def template_version(judge: Judge) -> str:
    """What the store records as the prompt's version: llm-judge's template's, or the protocol's
    name and the start of its digest."""
    p = judge.setup.own
    return verdicts.TEMPLATE_VERSION if p is None else f"{p.name}@{p.digest[:12]}"


def judgment_key(kind: Kind, judge: Judge, prompt: str, shown: Sequence[str], reference: str | None = None,
                 repeat: int = 0, history: Sequence[Conversation] | Conversation | None = None,
                 earlier_references: Sequence[str | None] = ()) -> str:
    """The cache key of one judgment: everything that determines it, the texts in the positions
    shown included (``shown``), each shown answer's conversation before it (``history``, in the
    positions shown) and, where a protocol shows them, the earlier turns' references. The one
    definition for studies, comparisons and judge evaluations."""
    return cache_key(kind, judge=judge.identity(), **_setup_parts(kind, judge), prompt=prompt, reference=reference,
                     shown=list(shown), **({"repeat": repeat} if repeat else {}),
                     **({"history": history} if history and any(history) else {}),
                     **({"earlier_references": list(earlier_references)} if any(earlier_references) else {}))


def generation_key(backend: Backend, sampling: SamplingParams, messages: Sequence[Mapping[str, str]]) -> str:
    """The cache key of one candidate's answer: the model, its sampling and the messages it is sent."""
    return cache_key("gen", model=model_identity(backend), sampling=sampling_dict(sampling), messages=messages)


def save_judgment(store: Store, key: str, kind: Kind, judge_name: str, call: JudgeCall,
                  link: ItemLink | None = None, judge_version: str | None = None) -> None:
    """Store a judge's call under its cache key: a pairwise verdict as shown (A = the answer shown
    first), with its raw output, reason, cost and log probabilities, and linked to its run item
    unless it failed. The one writer for studies, comparisons and judge evaluations."""
    comp = call.completion
    verdict = call.result.verdict if isinstance(call.result, Shown) else call.result
    store.put_judgment(key, kind, judge_name, judge_version or verdicts.TEMPLATE_VERSION, call.order, status=call.status,
                       raw=call.raw, verdict=verdict, error=call.error,
                       completion_tokens=comp.completion_tokens if comp else None,
                       seconds=comp.seconds if comp else None, logprobs=comp.logprobs if comp else None,
                       link=None if call.status == "failed" else link)


def auxiliary_key(request: AuxRequest) -> str:
    """The cache key of one auxiliary text: the judge's model, the protocol, the text's name, its
    sampling and messages (the question only, never the answers)."""
    p = request.protocol
    return cache_key("aux", judge=model_identity(request.backend), protocol={"name": p.name, "sha256": p.digest},
                     aux=request.aux.name, sampling=request.sampling.model_dump(), messages=request.messages)


class MemoAuxiliary:
    """Auxiliary texts kept for the length of one comparison: each made once, however many calls
    need it at once (both orders ask together)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._texts: dict[str, str] = {}

    def __call__(self, request: AuxRequest) -> str:
        key = auxiliary_key(request)
        with self._lock:
            one = self._locks.setdefault(key, threading.Lock())
        with one:
            text = self._texts.get(key)
            if text is None:
                text = self._texts[key] = self._made(key, request)
            return text

    def _made(self, key: str, request: AuxRequest) -> str:
        return request.make()


class StoredAuxiliary(MemoAuxiliary):
    """Auxiliary texts kept in the store (the generations table), linked to a run's items of kind
    ``auxiliary`` where ``run_id`` is given, so the report shows them: a failed call is not kept
    (the judgment that needed it fails, and the next run asks again)."""

    def __init__(self, store: Store, run_id: str | None = None,
                 prompt_ids: Mapping[str, tuple[str, int]] | None = None) -> None:
        super().__init__()
        self.store, self.run_id, self.prompt_ids = store, run_id, dict(prompt_ids or {})

    def _made(self, key: str, request: AuxRequest) -> str:
        row = self.store.generation(key)
        if row is not None:
            text = str(row["text"])
        else:
            text = request.make()
            stored = self.store.put_generation(key, request.backend.spec, request.sampling.model_dump(),
                                               request.question, text=text)
            text = text if stored is None else stored
        where = self.prompt_ids.get(request.question)  # the run's prompt (and turn) that asks this question
        if self.run_id is not None and where is not None:
            pid, turn = where
            self.store.link(ItemLink(self.run_id, f"aux:{pid}:{turn}:{request.aux.name}:{request.backend.spec}", pid,
                                     "auxiliary", (request.backend.spec,), request.aux.name, 0, turn), result_key=key)
        return text
