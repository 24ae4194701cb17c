"""The calls to a judge through one interface, ``Judge``: a model judge (``ModelJudge``) and a jury
of several (``Jury``) alike judge a pair in one order (``judge_order``) or grade one answer alone
(``grade``), holding how they are asked (``JudgeSetup``: criteria, scale, sampling, format, method,
protocol).

Each call builds the prompt, asks the model, and reads the verdict: with llm-judge's own protocol
through ``verdicts`` (and ``weighting`` for ``method="weighted"``), with a published one through
``protocols`` (its templates, its verdict format, where its weighted decision lies). A protocol
whose judge first writes texts from the question alone (LLMBar's Metrics and Reference) gets them
from an ``AuxTexts`` source (``cache.StoredAuxiliary`` keeps them in the store) or, without one,
asks for them on each call. Arena-Hard's judge that gives no label is asked once more to finish,
within the same call. What the
judge wrote always ends as a verdict or as unscored with the reason; a failed request ends as
failed (``completion`` None); only a fatal error (a refused key) is raised. A pairwise call's
result is a ``records.Shown`` (the verdict as the judge gave it, with the order shown); its
``verdict`` is in the item's labels.

A ``Jury`` (Verga et al. 2024) asks every member in each order and decides by majority, or by the
members' mean probabilities where all give them; the members' verdicts are kept in ``jurors``.

Left out on purpose: caching and storing calls (``cache``), running many calls (``runner``), and
deciding across orders (``verdicts.combine``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from . import verdicts as V
from . import weighting as W
from .backends import Backend, Completion, ReadAt, get_backend
from .criteria import Criterion, Scale
from .errors import Deferred, LLMJudgeError
from .records import ORDERS, Grade, Juror, Order, Probabilities, Shown, Verdict, Winner, in_order, shown_first
from .sampling import SamplingParams

if TYPE_CHECKING:
    from . import protocols as P

Conversation = Sequence[Mapping[str, str]]  # the messages before a question
History = Sequence[Conversation]  # each answer's conversation before the question: [A's, B's]
Status = Literal["scored", "unscored", "failed"]
R = TypeVar("R")  # what a verdict is read as (a Verdict, a Grade, the text itself)


@dataclass(frozen=True)
class JudgeSetup:
    """How a judge is asked (the same in a study, a comparison and a judge evaluation)."""

    criteria: list[Criterion]
    scale: Scale
    sampling: SamplingParams
    fmt: str = "full"
    method: str = "plain"
    protocol: P.Protocol | None = None  # None (or the built-in one): llm-judge's own JSON prompt
    rubric: str | None = field(default=None, init=False)  # a protocol's score rubric (Prometheus 2), from the criteria

    def __post_init__(self) -> None:
        """A protocol with a score rubric builds it from the criteria given (``protocols.rubric_text``);
        a single protocol then rates on its own scale, under its own name for the score (so the key,
        the summary and the report say what the prompt asked)."""
        p = self.own
        if p is None:
            return
        from . import protocols as P

        object.__setattr__(self, "rubric", P.rubric_text(p, self.criteria))
        if p.kind == "single" and p.scale is not None:
            object.__setattr__(self, "criteria", [Criterion(p.criterion, "")])
            object.__setattr__(self, "scale", p.scale)

    @property
    def own(self) -> P.Protocol | None:
        """The published protocol the judge is asked with; None for llm-judge's own."""
        p = self.protocol
        return None if p is None or p.builtin else p


def check_protocol(setup: JudgeSetup, mode: str) -> None:
    """A protocol judges one way (pairwise or single) and has its own verdict format: refuse any
    other use before a call is made."""
    p = setup.own
    if p is None:
        return
    if mode != p.kind:
        raise LLMJudgeError(f"protocol {p.name} judges {'pairs' if p.kind == 'pairwise' else 'one answer at a time'}: "
                            f"use it with mode {p.kind}, or pick a {'single' if p.kind == 'pairwise' else 'pairwise'} "
                            "protocol (llm-judge judges protocols)")
    if setup.fmt != "full":
        raise LLMJudgeError(f"--verdict-format {setup.fmt} is llm-judge's own protocol's: protocol {p.name} has its own "
                            "verdict format (leave --verdict-format out)")


def check_fits(setup: JudgeSetup, cases: Iterable[tuple[int, bool]]) -> None:
    """Refuse, before any call, a protocol that cannot judge some of the items: ``cases`` are the
    items' (turn, has a reference) pairs (a family picks its template per case)."""
    p = setup.own
    if p is None:
        return
    from . import protocols as P

    for turn, reference in sorted(set(cases)):
        P.resolve(p, turn=turn, reference=reference)


@dataclass(frozen=True)
class AuxRequest:
    """A text a protocol's judge writes first, from the question alone (LLMBar's questions about
    the outputs, its own reference answer): the judge's model, the protocol, which text, the
    messages and sampling of the call."""

    backend: Backend
    protocol: P.Protocol
    aux: P.Auxiliary
    question: str
    messages: V.Messages
    sampling: SamplingParams

    def make(self) -> str:
        """Ask the model for the text (stripped, as LLMBar uses it)."""
        return self.backend.generate(self.messages, self.sampling).text.strip()


class AuxTexts(Protocol):
    """Where a judge gets its auxiliary texts: made once per judge and question, kept by the caller."""

    def __call__(self, request: AuxRequest) -> str: ...


def ask_auxiliary(request: AuxRequest) -> str:
    """No store: the text is asked for on each call."""
    return request.make()


@dataclass
class JudgeCall:
    """One call of the judge: what it saw, what it said, what was read from it.

    ``order``: "AB" (A shown first) or "BA" for a pairwise call; for grading one answer, its label
    (the item's "A"/"B" in a comparison, the candidate's own label in a study).
    ``result``: the pairwise verdict as shown (``Shown``), a single ``Grade``, or None (unscored
    or failed, ``error`` says why)."""

    order: Order | str
    raw: str
    result: Shown | Grade | None
    error: str | None
    completion: Completion | None = None

    @property
    def verdict(self) -> Verdict | Grade | None:
        """The result in the item's labels (A = its first label)."""
        return self.result.in_labels() if isinstance(self.result, Shown) else self.result

    @property
    def pair(self) -> Verdict | None:
        """A pairwise call's verdict in the item's labels (None for a grade or no verdict)."""
        return self.result.in_labels() if isinstance(self.result, Shown) else None

    @property
    def grade(self) -> Grade | None:
        """A single call's grade (None for a pairwise verdict or no verdict)."""
        return self.result if isinstance(self.result, Grade) else None

    @property
    def status(self) -> Status:
        """scored, unscored (the judge answered, nothing readable) or failed (no answer)."""
        return "scored" if self.result is not None else ("failed" if self.completion is None else "unscored")

    def as_slot(self, slot: Order | str) -> JudgeCall:
        """This call as the call of ``slot``, which shows the same texts in the same positions (the
        two share a cache key, so one call serves both; for instance both orders of two identical
        answers): the same output, its verdict read in ``slot``'s labels."""
        if slot == self.order:
            return self
        result = self.result
        if isinstance(result, Shown):
            result = Shown(result.verdict, slot)  # type: ignore[arg-type]  # a pairwise slot is an Order
        return replace(self, order=slot, result=result)

    def to_dict(self) -> dict[str, Any]:
        """The call as the outputs print it, its verdict in the item's labels."""
        from .store import verdict_json  # the store's codec: the one JSON form of a verdict

        verdict = self.verdict
        out: dict[str, Any] = {"order": self.order, "raw": self.raw,
                               "verdict": None if verdict is None else verdict_json(verdict), "error": self.error}
        if self.completion is not None:
            out["completion_tokens"] = self.completion.completion_tokens
            out["seconds"] = round(self.completion.seconds, 3)
        return out


class Judge(Protocol):
    """A judge: one model or a jury, asked the same way (its ``setup``) on every call."""

    setup: JudgeSetup

    @property
    def name(self) -> str:
        """Its spec (a jury: ``jury(a, b)``), as runs, cards and reports name it."""
        ...

    @property
    def concurrency(self) -> int:
        """Calls it serves at once."""
        ...

    @property
    def warnings(self) -> list[str]:
        """What its models noticed while serving."""
        ...

    def identity(self) -> dict[str, Any]:
        """What identifies it for caching (``cache.judgment_key``)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts about its models, for the store."""
        ...

    def judge_order(self, question: str, answers: tuple[str, str], order: Order, *, reference: str | None = None,
                    history: History | None = None, auxiliary: AuxTexts | None = None,
                    earlier_references: Sequence[str | None] = ()) -> JudgeCall:
        """One order of a pairwise judgment; ``answers`` and ``history`` in the item's labels;
        ``auxiliary``: where a protocol's auxiliary texts come from (default: asked for here);
        ``earlier_references``: the reference answers of the earlier turns (a protocol may show them)."""
        ...

    def grade(self, question: str, answer: str, label: str, *, reference: str | None = None,
              history: Conversation | None = None, auxiliary: AuxTexts | None = None,
              earlier_references: Sequence[str | None] = ()) -> JudgeCall:
        """One answer graded alone (``label``: which answer it is, kept as the call's ``order``)."""
        ...


def model_identity(backend: Backend) -> dict[str, Any]:
    """What identifies one model for caching: the file hash for local models, the spec otherwise."""
    d = backend.describe()
    if "sha256" not in d:
        return {"spec": d["spec"]}
    return {"sha256": d["sha256"], "n_ctx": d.get("n_ctx"), **({"lora": d["lora_sha256"]} if d.get("lora_sha256") else {}),
            **({"flash_attention": True} if d.get("flash_attention") else {})}  # other arithmetic: other answers


def _reader(method: str, criteria: list[Criterion], scale: Scale, mode: str) -> ReadAt | None:
    """What the backend should report probabilities for: the offsets of the decisions in its output."""
    if method not in W.METHODS:
        raise LLMJudgeError(f"unknown judge method {method!r}: use {' or '.join(W.METHODS)}")
    if method != "weighted":
        return None
    return lambda text: list(W.decision_offsets(text, criteria, scale, mode).values())


def _ask(backend: Backend, messages: V.Messages, schema: dict[str, Any] | None, sampling: SamplingParams,
         parse: Callable[[str], R], read_at: ReadAt | None,
         grammar: str | None = None) -> tuple[str, R | None, str | None, Completion | None]:
    """One request and its verdict: (raw, verdict or None, error, completion or None if it failed)."""
    try:
        if grammar is None:  # a backend of a plugin may not take one
            completion = backend.generate(messages, sampling, schema=schema, read_at=read_at)
        else:
            completion = backend.generate(messages, sampling, schema=schema, read_at=read_at, grammar=grammar)
    except LLMJudgeError as exc:
        if exc.fatal:
            raise
        return "", None, f"judge call failed: {exc}", None
    try:
        return completion.text, parse(completion.text), None, completion
    except V.VerdictError as exc:
        return completion.text, None, str(exc), completion


def _shown_history(history: History | None, order: Order) -> list[Conversation] | None:
    """Each answer's conversation in the positions shown."""
    if not history:
        return None
    return list(history) if shown_first(order) == "A" else list(history)[::-1]


class ModelJudge:
    """One model as a judge."""

    def __init__(self, backend: Backend, setup: JudgeSetup) -> None:
        self.backend = backend
        self.setup = setup

    @property
    def name(self) -> str:
        return self.backend.spec

    @property
    def concurrency(self) -> int:
        return self.backend.concurrency

    @property
    def warnings(self) -> list[str]:
        return self.backend.warnings

    def identity(self) -> dict[str, Any]:
        return model_identity(self.backend)

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def _probabilities(self, completion: Completion | None, mode: str) -> Probabilities | None:
        """The judge's probabilities at its decisions (weighted judging only)."""
        s = self.setup
        if s.method != "weighted" or completion is None:
            return None
        offsets = W.decision_offsets(completion.text, s.criteria, s.scale, mode)
        return W.read_weighted(completion.decisions, completion.text, offsets, s.scale, mode)

    def judge_order(self, question: str, answers: tuple[str, str], order: Order, *, reference: str | None = None,
                    history: History | None = None, auxiliary: AuxTexts | None = None,
                    earlier_references: Sequence[str | None] = ()) -> JudgeCall:
        s = self.setup
        if s.own is not None:
            return self._by_protocol(s.own, order, question, in_order(answers, order), reference,
                                     _shown_history(history, order), auxiliary, earlier_references)
        first, second = in_order(answers, order)
        messages = V.pairwise_messages(question, first, second, s.criteria, s.scale, reference,
                                       self.backend.special_tokens(), s.fmt, _shown_history(history, order))
        raw, verdict, error, completion = _ask(
            self.backend, messages, V.pairwise_schema(s.criteria, s.scale, s.fmt), s.sampling,
            lambda text: V.parse_pair(text, s.criteria, s.scale, s.fmt), _reader(s.method, s.criteria, s.scale, "pairwise"))
        if verdict is not None and (probabilities := self._probabilities(completion, "pairwise")):
            verdict = replace(verdict, probabilities=probabilities)
        return JudgeCall(order, raw, None if verdict is None else Shown(verdict, order), error, completion)

    def grade(self, question: str, answer: str, label: str, *, reference: str | None = None,
              history: Conversation | None = None, auxiliary: AuxTexts | None = None,
              earlier_references: Sequence[str | None] = ()) -> JudgeCall:
        s = self.setup
        if s.own is not None:
            return self._by_protocol(s.own, label, question, (answer,), reference, [history] if history else None,
                                     auxiliary, earlier_references)
        messages = V.single_messages(question, answer, s.criteria, s.scale, reference, self.backend.special_tokens(),
                                     history)
        raw, grade, error, completion = _ask(
            self.backend, messages, V.single_schema(s.criteria, s.scale), s.sampling,
            lambda text: V.parse_grade(text, s.criteria, s.scale), _reader(s.method, s.criteria, s.scale, "single"))
        if grade is not None and (probabilities := self._probabilities(completion, "single")):
            grade = replace(grade, probabilities=probabilities)
        return JudgeCall(label, raw, grade, error, completion)

    # --- a published protocol (``protocols``) ------------------------------------------------------

    def _by_protocol(self, protocol: P.Protocol, slot: Order | str, question: str, shown: tuple[str, ...],
                     reference: str | None, history: Sequence[Conversation] | None,
                     auxiliary: AuxTexts | None, earlier_references: Sequence[str | None] = ()) -> JudgeCall:
        """One call under a published protocol: a pair in the positions of ``slot`` (an order), or
        one answer (``shown`` holds one text) graded under its label."""
        from . import protocols as P

        turn = 1 + (len(history[0]) // 2 if history and history[0] else 0)
        special = self.backend.special_tokens()
        try:  # an item the protocol does not fit (checked before a run: ``check_fits``) fails, with the reason
            p = P.resolve(protocol, turn=turn, reference=bool(reference))
            texts = self._auxiliary(p, question, special, auxiliary)
            values = self._values(p, question, shown, reference, history, texts,
                                  earlier_references[0] if earlier_references else None)
            messages = P.messages(p, values, special)
        except LLMJudgeError as exc:
            if exc.fatal:
                raise
            return JudgeCall(slot, "", None, f"judge call failed: {exc}", None)
        raw, verdict, error, completion = self._ask_protocol(p, messages)
        result: Shown | Grade | None = None
        if isinstance(verdict, Verdict):
            result = Shown(verdict, slot)  # type: ignore[arg-type]  # a pairwise slot is an order
        elif isinstance(verdict, Grade):
            result = verdict
        return JudgeCall(slot, raw, result, error, completion)

    def _values(self, p: P.Protocol, question: str, shown: tuple[str, ...], reference: str | None,
                history: Sequence[Conversation] | None, texts: Mapping[str, str],
                reference_1: str | None) -> dict[str, str]:
        """The texts that fill the protocol's templates: the question, the answers as shown, the rest."""
        from . import protocols as P

        rubric = self.setup.rubric
        if len(shown) == 2:
            return P.pair_values(question, shown[0], shown[1], reference=reference, history=history,
                                 auxiliary=texts, rubric=rubric, reference_1=reference_1)
        return P.single_values(question, shown[0], reference=reference, history=history[0] if history else None,
                               auxiliary=texts, rubric=rubric, reference_1=reference_1)

    def _auxiliary(self, p: P.Protocol, question: str, special: frozenset[str],
                   source: AuxTexts | None) -> dict[str, str]:
        """The protocol's auxiliary texts for this question, by the slot each fills."""
        from . import protocols as P

        get = source or ask_auxiliary
        texts = {}
        for aux in p.auxiliary:
            sampling = self.setup.sampling.model_copy(update={"temperature": aux.temperature,
                                                             "max_tokens": aux.max_tokens})
            try:
                texts[aux.fills] = get(AuxRequest(self.backend, p, aux, question,
                                                  P.auxiliary_messages(p, aux, question, special), sampling))
            except LLMJudgeError as exc:
                if exc.fatal:
                    raise
                raise LLMJudgeError(f"its auxiliary text ({aux.name}) could not be written: {exc}") from None
        return texts

    def _ask_protocol(self, p: P.Protocol, messages: V.Messages
                      ) -> tuple[str, Verdict | Grade | None, str | None, Completion | None]:
        """Ask, read the verdict in the protocol's format and, weighted, its probabilities; a judge
        that gave no label where the protocol allows a second attempt is asked to finish."""
        from . import protocols as P

        sampling = self.setup.sampling
        if p.max_tokens is not None and p.max_tokens < sampling.max_tokens:
            sampling = sampling.model_copy(update={"max_tokens": p.max_tokens})
        read_at = (lambda text: P.decision_offsets(p, text)) if self.setup.method == "weighted" else None
        grammar = P.grammar(p)
        raw, verdict, error, completion = _ask(self.backend, messages, None, sampling, lambda t: P.parse(p, t),
                                               read_at, grammar)
        if verdict is None and completion is not None and (more := P.continuation(p, raw)) is not None:
            again = [*messages, {"role": "assistant", "content": raw}, {"role": "user", "content": more}]
            raw, verdict, error, completion = self._second_attempt(p, again, raw, completion, sampling, read_at)
        if verdict is not None and self.setup.method == "weighted" and completion is not None:
            probabilities = P.read_probabilities(p, completion.decisions, completion.text)
            if probabilities is not None:
                verdict = replace(verdict, probabilities=probabilities)
        return raw, verdict, error, completion

    def _second_attempt(self, p: P.Protocol, messages: V.Messages, first: str, done: Completion,
                        sampling: SamplingParams, read_at: ReadAt | None
                        ) -> tuple[str, Verdict | Grade | None, str | None, Completion | None]:
        """Arena-Hard's second attempt: the two replies read as one text (joined by a newline), the
        cost of both calls in one completion, the decisions at their place in the joined text."""
        from . import protocols as P

        raw, _, error, completion = _ask(self.backend, messages, None, sampling, lambda t: t, read_at)
        if completion is None:  # the request failed: the judgment fails, and the next run asks again
            return first, None, error, None
        joined = first + "\n" + completion.text
        shift = len(first) + 1
        decisions = None if completion.decisions is None else [
            {**d, "offset": d["offset"] + shift, "start": d["start"] + shift} for d in completion.decisions]
        both = Completion(text=joined, prompt_tokens=(done.prompt_tokens or 0) + (completion.prompt_tokens or 0),
                          completion_tokens=(done.completion_tokens or 0) + (completion.completion_tokens or 0),
                          seconds=done.seconds + completion.seconds, finish_reason=completion.finish_reason,
                          decisions=decisions)
        try:
            return joined, P.parse(p, joined), None, both
        except V.VerdictError as exc:
            return joined, None, f"{exc} (after a second attempt)", both


def majority(winners: Sequence[Winner | None]) -> Winner | None:
    """The jury's winner: the one more than half the members who gave a verdict name; no
    majority is a tie; no member's verdict, none.

    >>> majority(["A", "A", "B"]), majority(["A", "B", "tie"]), majority(["A", None, None]), majority([None])
    ('A', 'tie', 'A', None)
    """
    scored = [w for w in winners if w is not None]
    return _most(scored) if scored else None


def _most(winners: Sequence[Winner]) -> Winner:
    """The winner more than half of ``winners`` name, else a tie."""
    winner, count = Counter(winners).most_common(1)[0]
    return winner if count * 2 > len(winners) else "tie"


def _mean(values: Sequence[Any]) -> Any:
    """The mean of numbers, or of nested mappings of numbers with the first one's keys."""
    first = values[0]
    if isinstance(first, Mapping):
        return {k: _mean([v[k] for v in values]) for k in first}
    return sum(values) / len(values)


def _mean_probabilities(scored: Sequence[Verdict | Grade]) -> Probabilities | None:
    """The members' mean probabilities, where every scored member gave them."""
    given = [v.probabilities for v in scored if v.probabilities is not None]
    if not given or len(given) != len(scored):
        return None
    winners = [p.winner for p in given if p.winner is not None]
    scores = [p.scores for p in given if p.scores is not None]
    return Probabilities(_mean(winners) if given[0].winner is not None else None,
                         _mean(scores) if given[0].scores is not None else None)


def _jurors(members: Sequence[tuple[str, Verdict | Grade | None, str | None]]) -> tuple[Juror, ...]:
    """Each member's verdict as a juror: its winner (pairwise) or total (single), error and probabilities."""
    return tuple(Juror(spec, v.winner if isinstance(v, Verdict) else None, err,
                       v.total if isinstance(v, Grade) else None, None if v is None else v.probabilities)
                 for spec, v, err in members)


def _tally(jurors: Sequence[Juror]) -> str:
    """The jury's justification: what each member decided."""
    return "; ".join(f"{j.judge}: {j.winner or j.total or 'unscored'}" for j in jurors)


def jury_verdict(members: Sequence[tuple[str, Verdict | None, str | None]]) -> Verdict | None:
    """The jury's pairwise verdict in one order from its members' (spec, verdict or None, error),
    all in one frame: the majority winner, the mean scores, the mean probabilities where every
    scored member gives them, and each member's verdict in ``jurors``. None when no member scored."""
    scored = [v for _, v, _ in members if v is not None]
    if not scored:
        return None
    jurors = _jurors(members)
    return Verdict(_most([v.winner for v in scored]), _mean([v.scores for v in scored]) if scored[0].scores else {},
                   _tally(jurors), _mean_probabilities(scored), jurors)


def jury_grade(members: Sequence[tuple[str, Grade | None, str | None]]) -> Grade | None:
    """The jury's grade of one answer from its members': the mean scores and their sum, the
    mean expected scores where every scored member gives them, each member's total in ``jurors``."""
    scored = [g for _, g, _ in members if g is not None]
    if not scored:
        return None
    jurors = _jurors(members)
    scores: dict[str, float] = _mean([g.scores for g in scored]) if scored[0].scores else {}
    return Grade(scores, sum(scores.values()), _tally(jurors), _mean_probabilities(scored), jurors)


def jury_name(specs: Sequence[str]) -> str:
    """How a judge (one spec) or a jury (several) is named in runs, cards and reports.

    >>> jury_name(["embedded"]), jury_name(["a", "b", "c"])
    ('embedded', 'jury(a, b, c)')
    """
    return specs[0] if len(specs) == 1 else f"jury({', '.join(specs)})"


class Jury:
    """Several judges deciding together, one order at a time (each member asked in turn)."""

    def __init__(self, members: Sequence[Backend], setup: JudgeSetup) -> None:
        self.members = list(members)
        self.setup = setup
        self.judges = [ModelJudge(m, setup) for m in self.members]

    @property
    def name(self) -> str:
        return jury_name([m.spec for m in self.members])

    @property
    def concurrency(self) -> int:
        return max(1, min(m.concurrency for m in self.members))

    @property
    def warnings(self) -> list[str]:
        return [w for m in self.members for w in m.warnings]

    def identity(self) -> dict[str, Any]:
        return {"jury": [model_identity(m) for m in self.members]}

    def describe(self) -> dict[str, Any]:
        return {"jury": [m.describe() for m in self.members]}

    def judge_order(self, question: str, answers: tuple[str, str], order: Order, *, reference: str | None = None,
                    history: History | None = None, auxiliary: AuxTexts | None = None,
                    earlier_references: Sequence[str | None] = ()) -> JudgeCall:
        calls = every_member(lambda j: j.judge_order(question, answers, order, reference=reference, history=history,
                                                     auxiliary=auxiliary, earlier_references=earlier_references),
                             self.judges)
        verdict = jury_verdict([(j.name, c.pair, c.error) for j, c in zip(self.judges, calls)])  # in the item's labels
        return self._call(order, calls, None if verdict is None else Shown.from_labels(verdict, order))

    def grade(self, question: str, answer: str, label: str, *, reference: str | None = None,
              history: Conversation | None = None, auxiliary: AuxTexts | None = None,
              earlier_references: Sequence[str | None] = ()) -> JudgeCall:
        calls = every_member(lambda j: j.grade(question, answer, label, reference=reference, history=history,
                                               auxiliary=auxiliary, earlier_references=earlier_references), self.judges)
        return self._call(label, calls, jury_grade([(j.name, c.grade, c.error) for j, c in zip(self.judges, calls)]))

    def _call(self, order: Order | str, calls: list[JudgeCall], result: Shown | Grade | None) -> JudgeCall:
        """The members' calls in one order as the jury's call."""
        raw = json.dumps({j.name: c.raw for j, c in zip(self.judges, calls)}, ensure_ascii=False)
        done = [c.completion for c in calls if c.completion is not None]
        completion = None if not done else Completion(
            text=raw, prompt_tokens=sum(c.prompt_tokens or 0 for c in done),
            completion_tokens=sum(c.completion_tokens or 0 for c in done), seconds=sum(c.seconds for c in done))
        if result is None:
            errors = "; ".join(f"{j.name}: {c.error}" for j, c in zip(self.judges, calls))
            return JudgeCall(order, raw, None, f"no juror gave a readable verdict ({errors})", completion)
        return JudgeCall(order, raw, result, None, completion)


def every_member(ask: Callable[[ModelJudge], JudgeCall], judges: Sequence[ModelJudge]) -> list[JudgeCall]:
    """Each member's call; where some are put in a batch (``Deferred``), every member is asked all
    the same, so that the whole jury's requests go in one batch, and then the first is raised."""
    calls, deferred = [], None
    for j in judges:
        try:
            calls.append(ask(j))
        except Deferred as later:
            deferred = deferred or later
    if deferred is not None:
        raise deferred
    return calls


def make_judge(backends: Sequence[Backend], setup: JudgeSetup) -> Judge:
    """A model judge from one loaded model, a jury from several."""
    if not backends:
        raise LLMJudgeError("no judge: name one (a spec), or several for a jury")
    return ModelJudge(backends[0], setup) if len(backends) == 1 else Jury(backends, setup)


def load_judge(specs: str | Sequence[str], setup: JudgeSetup, **load_options: Any) -> Judge:
    """One judge from a spec, a jury from several (each member loaded once)."""
    names = [specs] if isinstance(specs, str) else list(specs)
    if not names:
        raise LLMJudgeError("no judge: name one (a spec), or several for a jury")
    if len(set(names)) != len(names):
        raise LLMJudgeError("a jury names the same judge twice: name each member once")
    return make_judge([get_backend(s, **load_options) for s in names], setup)


def combine_calls(calls: Sequence[JudgeCall]) -> V.Combined:
    """The two orders' calls (AB, BA) as one verdict, their probabilities included."""
    return V.combine(calls[0].pair, calls[1].pair)


def judge_pairwise(judge: Judge, question: str, answers: tuple[str, str], *,
                   reference: str | None = None) -> tuple[list[JudgeCall], V.Combined]:
    """Ask the judge in both orders and combine (see ``verdicts.combine`` for the rule)."""
    calls = [judge.judge_order(question, answers, order, reference=reference) for order in ORDERS]
    return calls, combine_calls(calls)
