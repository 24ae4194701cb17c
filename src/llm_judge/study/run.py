"""Running a study (the writing side): a prompt set x candidates -> generations -> judgments,
stored, resumable, concurrent. Reading a run back is ``study.summary``; exporting it ``study.export``.

The run id is a hash of the configuration, so running the same command again continues the same
run: every finished generation and judgment is found by its cache key and reused, failed ones are
retried, and each result is linked to its run item once (primary key), so nothing is duplicated.
A run has one writer at a time (a second process on it is refused), judgments are made of the
answers as stored, and Ctrl-C stops a run at once: the calls in flight are dropped, what finished
stays stored, and the run is ``interrupted``, to be continued by the same command. A shard
(``study.shard``) makes the calls of its slice of the prompts only, into the study's own run.

Left out: running the calls (``runner``: workers, limits, sharing, stopping), the cache keys and
the writing of a judgment (``cache``), and asking the judge (``judging``).
"""

from __future__ import annotations

import itertools
import platform
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

from .. import verdicts as V
from ..backends import Backend, Completion, get_backend, parse_spec
from ..backends.batches import Book
from ..cache import StoredAuxiliary, generation_key, judgment_key, save_judgment, template_version
from ..compare import Candidate, check_judging, check_n_ctx
from ..config import Settings
from ..criteria import Criterion, Scale
from ..defaults import N_CTX
from ..errors import Deferred, LLMJudgeError
from ..judging import Judge, JudgeCall, JudgeSetup, check_fits, check_protocol, jury_name, make_judge
from ..prompts import PromptItem
from ..records import ORDERS, Kind, Order, in_order
from ..runner import Finished, Generate, GradeOne, JudgeOrder, Progress, Runner
from ..sampling import SamplingParams, sampling_dict
from ..store import ItemLink, Store, cache_key
from . import shard as _shards
from .batched import BatchOptions, Incomplete, Rounds, batched_backends
from .shard import Shard

MODES = ("single", "pairwise", "both")
WINDOW = 256  # calls a study keeps under way at most (or 4 per worker, where that is more)


@dataclass
class StudyConfig:
    prompts: list[PromptItem]
    candidates: dict[str, Candidate]
    judge: str | list[str]  # one spec, or several: a jury
    judge_sampling: SamplingParams
    criteria: list[Criterion]
    scale: Scale = field(default_factory=Scale)
    mode: str = "single"
    baseline: str | None = None  # pairwise against one candidate instead of every pair
    n_ctx: int = N_CTX
    source: str = ""
    repeat: int = 1  # judge each item this many times (temperature 0 is not deterministic on every server)
    judge_method: str = "plain"  # or "weighted": the judge's probabilities, calibrated over both orders
    verdict_format: str = "full"  # or "winner": pairwise verdicts without reasons or scores
    protocol: str | None = None  # a published judging protocol by name or path (None: llm-judge's own)

    @property
    def judges(self) -> list[str]:
        return [self.judge] if isinstance(self.judge, str) else list(self.judge)

    @property
    def judge_name(self) -> str:
        return jury_name(self.judges)

    @property
    def setup(self) -> JudgeSetup:
        """How the judge is asked in this study."""
        protocol = None
        if self.protocol is not None:
            from ..protocols import load_protocol

            protocol = load_protocol(self.protocol)
        return JudgeSetup(self.criteria, self.scale, self.judge_sampling, self.verdict_format, self.judge_method,
                          protocol)

    def validate(self, settings: Settings | None = None) -> None:
        """The study's configuration, or the error; specs are resolved under ``settings`` (the
        engine and config file the models will load under; by default the environment's)."""
        if self.mode not in MODES:
            raise LLMJudgeError(f"unknown mode {self.mode!r}: use {', '.join(MODES)}")
        if not self.candidates:
            raise LLMJudgeError("no candidates: add at least one candidate (SPEC[@PRESET][#LABEL])")
        check_n_ctx(self.n_ctx)
        if self.mode != "single" and len(self.candidates) < 2:
            raise LLMJudgeError("pairwise judging needs at least two candidates")
        if not 1 <= self.repeat <= 100:
            raise LLMJudgeError(f"repeat {self.repeat}: judge each item 1 to 100 times")
        if self.baseline is not None and self.baseline not in self.candidates:
            raise LLMJudgeError(f"baseline {self.baseline!r} is not a candidate label ({', '.join(self.candidates)})")
        check_judging(self.judge_method, self.verdict_format, self.mode)
        if self.protocol is not None:
            if self.mode == "both":
                raise LLMJudgeError("a protocol judges one way: use mode pairwise or single with --protocol")
            check_protocol(self.setup, self.mode)
            check_fits(self.setup, ((t, bool(p.reference_at(t))) for p in self.prompts
                                    for t in range(1, p.turns + 1)))
        if len(set(self.judges)) != len(self.judges):
            raise LLMJudgeError("a jury names the same judge twice: name each member once")
        twice = next((pid for pid, n in Counter(p.id for p in self.prompts).items() if n > 1), None)
        if twice is not None:  # a run keys answers and verdicts by prompt id
            raise LLMJudgeError(f"prompt id {twice!r} is given twice: give every prompt its own id")
        for spec in [c.spec for c in self.candidates.values()] + self.judges:
            parse_spec(spec, settings)

    def to_dict(self) -> dict[str, Any]:
        """The stored configuration (its hash is the run id). Under a protocol, the criteria and
        scale are those the judge is asked with (a single protocol's own score and scale: the summary
        and report read them from here) and its score rubric, where it has one."""
        setup = self.setup if self.protocol is not None else None
        criteria, scale = (self.criteria, self.scale) if setup is None else (setup.criteria, setup.scale)
        return {
            "source": self.source,
            "prompts": [[p.id, p.prompt, p.reference] + ([p.conversation()] if p.turns > 1 or p.context else [])
                        for p in self.prompts],
            "candidates": {lab: {"spec": c.spec, "sampling": c.sampling.model_dump()} for lab, c in self.candidates.items()},
            "judge": self.judge, "judge_sampling": self.judge_sampling.model_dump(),
            "criteria": [[c.name, c.rubric] for c in criteria], "scale": [scale.low, scale.high],
            "mode": self.mode, "baseline": self.baseline, "n_ctx": self.n_ctx,
            "template_version": V.TEMPLATE_VERSION,
            **({"repeat": self.repeat} if self.repeat > 1 else {}),
            **({"judge_method": self.judge_method} if self.judge_method != "plain" else {}),
            **({"verdict_format": self.verdict_format} if self.verdict_format != "full" else {}),
            **({"protocol": self.protocol} if self.protocol is not None else {}),
            **({"rubric": setup.rubric} if setup is not None and setup.rubric else {}),
        }

    def run_id(self) -> str:
        return cache_key("run", **self.to_dict())[:12]

    def pairs(self) -> list[tuple[str, str]]:
        return run_pairs(self.candidates, self.baseline)


def run_pairs(labels: Iterable[str], baseline: str | None = None) -> list[tuple[str, str]]:
    """The pairs a pairwise run judges, each oriented by ``orient``: every pair against the
    baseline when there is one, else every pair. The order candidates are listed in never changes
    a pair (the run id does not depend on it either)."""
    labels = sorted(labels)
    if baseline:
        return [orient(baseline, lab, baseline) for lab in labels if lab != baseline]
    return [orient(a, b) for a, b in itertools.combinations(labels, 2)]


def orient(a: str, b: str, baseline: str | None = None) -> tuple[str, str]:
    """The one orientation of a pair: the baseline first when there is one, else the labels in
    alphabetical order. Reports show both sides' win rates whatever the orientation.

    >>> orient("y", "x"), orient("model", "base", "base")
    (('x', 'y'), ('base', 'model'))
    """
    if baseline in (a, b):
        return (a, b) if a == baseline else (b, a)
    return (a, b) if a <= b else (b, a)


def installed_version(distribution: str) -> str | None:
    """A package's installed version, read without importing it; None where it is not installed
    (llama-cpp-python is needed only by local models)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def manifest(config: StudyConfig, backends: Mapping[str, Backend]) -> dict[str, Any]:
    return {"llm_judge": version("llm-judge"), "llama_cpp_python": installed_version("llama-cpp-python"),
            "python": platform.python_version(),
            "models": {spec: b.describe() for spec, b in backends.items()},
            "template_version": V.TEMPLATE_VERSION,
            "candidates": {lab: {"spec": c.spec, "sampling": c.sampling.model_dump()} for lab, c in config.candidates.items()},
            "judge_sampling": config.judge_sampling.model_dump(), "repeat": config.repeat,
            "judge_method": config.judge_method, "verdict_format": config.verdict_format,
            "orders": "every pairwise item is judged in both orders: AB shows the first label first, BA the "
                      "second; each run item records its order (run_items.display_order)"}


def pool_size(backends: Mapping[str, Backend], concurrency: int | None) -> int:
    """Workers for a run: ``concurrency`` when given, else the endpoints' own limits added up
    (an in-process model counts 1: it runs one call at a time behind its lock)."""
    return concurrency or max(1, sum(b.concurrency for b in backends.values()))


def run_study(config: StudyConfig, store: Store, progress: Progress | None = None,
              concurrency: int | None = None, *, generate_only: bool = False,
              load_options: Mapping[str, Any] | None = None, settings: Settings | None = None,
              shard: Shard | None = None, batch: BatchOptions | None = None) -> str:
    """Run (or continue) a study; returns its run id.

    Remote calls run concurrently up to each endpoint's limit (or ``concurrency``, which also
    overrides the endpoints' limits); results are written by this thread, one short transaction each.
    ``generate_only`` writes the answers and leaves the judging to a later run of the same study
    (the run is then ``incomplete``). Raises ``LLMJudgeError`` at once when another process (or
    thread) is writing the same run. ``load_options``: more load options for every model (the
    page's ``key_configured_only``); ``settings``: the engine and config file the models load under.
    ``shard``: only this shard's prompts (``study.shard``), into the study's run, whose manifest
    records the shards done. ``batch``: the OpenAI-compatible models' calls go in batches
    (``study.batched``); with a folder the run may stop ``incomplete``, raising ``batched.Incomplete``
    with the request files to answer.
    """
    config.validate(settings)
    if concurrency is not None and concurrency < 1:
        raise LLMJudgeError(f"concurrency {concurrency}: at least 1 request in flight")
    backends = _load(config, generate_only, concurrency, load_options or {}, settings)
    book = Book() if batch is not None else None
    if book is not None:
        backends = batched_backends(backends, book)
    judge = None if generate_only else make_judge([backends[s] for s in config.judges], config.setup)
    run_id = config.run_id()
    with store.run_writer(run_id):  # one writer per run: another process on it is refused in one line
        store.set_manifest_entry(run_id, "shards", lambda m, status: _shards.started(m, status, shard))
        store.create_run(run_id, config.to_dict(), manifest(config, backends) | _shards_entry(shard), config.prompts,
                         config.candidates)
        prompts = config.prompts if shard is None else shard.select(config.prompts)
        def one_pass() -> int:
            with Runner[_Waiter](pool_size(backends, concurrency), _limits(backends, judge), progress) as runner:
                return _Pipeline(config, store, run_id, backends, judge, runner, prompts).run()

        try:
            if batch is None or book is None:
                failed = one_pass()
            else:
                failed = Rounds(batch, book, store, run_id, backends, progress).run(one_pass)
        except Incomplete:  # request files written, their answers not there yet: the same command goes on
            _finish(store, run_id, backends, 1, generate_only, shard)
            raise
        except BaseException:
            # Ctrl-C, or an error no item can get past (a refused key): what finished is stored,
            # the calls in flight are dropped unwaited (the runner stopped) and the run is left to be continued.
            store.finish_run(run_id, "interrupted")
            raise
        _finish(store, run_id, backends, failed, generate_only, shard)
    return run_id


def _shards_entry(shard: Shard | None) -> dict[str, Any]:
    """A new sharded run's manifest entry: none of its shards done yet."""
    return {} if shard is None else {"shards": {"of": shard.count, "done": []}}


def _load(config: StudyConfig, generate_only: bool, concurrency: int | None,
          load_options: Mapping[str, Any], settings: Settings | None) -> dict[str, Backend]:
    """Every model the study calls, loaded once per spec."""
    specs = {c.spec for c in config.candidates.values()} | (set() if generate_only else set(config.judges))
    extra = {} if concurrency is None else {"concurrency": concurrency}
    return {s: get_backend(s, settings, n_ctx=config.n_ctx, **extra, **load_options) for s in specs}


def _limits(backends: Mapping[str, Backend], judge: Judge | None) -> dict[str, int]:
    """The calls each endpoint takes at once: a model's own limit, the judge's (a jury's) as a whole."""
    limits = {b.spec: b.concurrency for b in backends.values()}
    return limits | ({judge.name: judge.concurrency} if judge is not None else {})


def _finish(store: Store, run_id: str, backends: Mapping[str, Backend], failed: int, generate_only: bool,
            shard: Shard | None = None) -> None:
    warnings = [w for b in backends.values() for w in b.warnings]
    # what the calls settled (a server's structured-output mode is known only after the first)
    store.update_manifest(run_id, models={spec: b.describe() for spec, b in backends.items()}, warnings=warnings)
    done = failed == 0 and not generate_only
    if done:  # the shard (or, run whole, every shard) is done on this store
        store.set_manifest_entry(run_id, "shards", lambda m, _status: _shards.finished(m, shard))
    store.finish_run(run_id, "done" if done else "incomplete")


@dataclass(frozen=True)
class _Answer:
    """A run item waiting for a generation: the candidate's answer to one turn of a prompt."""

    prompt: PromptItem
    label: str
    turn: int
    link: ItemLink


@dataclass(frozen=True, eq=False)  # each planned judgment is its own (a key of ``waiting``)
class _Planned:
    """A judgment the study makes once the answers it compares are there."""

    kind: Kind
    prompt: PromptItem
    labels: tuple[str, ...]
    order: str  # pairwise: AB or BA; single: the label graded
    repeat: int
    turn: int

    def needs(self) -> set[tuple[str, str, int]]:
        """The answers it compares, every earlier turn included."""
        return {(self.prompt.id, lab, k) for lab in self.labels for k in range(1, self.turn + 1)}

    def link(self, run_id: str) -> ItemLink:
        name = (f"{self.kind}:{self.prompt.id}:{'|'.join(self.labels)}:{self.order}"
                + (f"@t{self.turn}" if self.turn > 1 else "") + (f"#{self.repeat}" if self.repeat else ""))
        return ItemLink(run_id, name, self.prompt.id, self.kind, self.labels, self.order, self.repeat, self.turn)


_Waiter = _Answer | ItemLink  # what a call's result goes to: an answer's item, or a judgment's


class _Pipeline:
    """A study's calls as one stream: each call is submitted as soon as what it needs is there (a
    candidate's later turn after its earlier answer, a judgment after the answers it compares), so
    judging starts while the last answers are still being written and no slot waits for a stage to
    drain. Prompts are started in order while fewer than ``window`` calls are under way, and what is
    held of a prompt is let go once its items are settled, so a study's memory does not grow with its
    size. The runner makes the calls that share a cache key once; results are written here, by the
    calling thread.

    Answers are ``{prompt id: {(label, turn): text}}``, None where the generation failed (or an earlier
    turn did): the judgments that need it count as failed, to be made by a later run.
    """

    def __init__(self, config: StudyConfig, store: Store, run_id: str, backends: Mapping[str, Backend],
                 judge: Judge | None, runner: Runner[_Waiter], prompts: list[PromptItem] | None = None) -> None:
        self.config, self.store, self.run_id, self.backends, self.judge = config, store, run_id, backends, judge
        self.runner = runner
        self.prompts = config.prompts if prompts is None else prompts  # a shard's, or every prompt
        self.answers: dict[str, dict[tuple[str, int], str | None]] = {}  # prompt id -> (label, turn) -> text
        self.waiting: dict[_Planned, int] = {}  # a judgment -> how many of its answers are not there yet
        self.needs: dict[tuple[str, str, int], list[_Planned]] = {}  # an answer -> the judgments waiting for it
        self.failed = 0
        self.open: dict[str, int] = {}  # a prompt started -> its items not settled yet
        self.window = max(WINDOW, 4 * runner.workers)
        self.pairs = config.pairs()
        # a protocol's texts from the question alone, linked to the prompt that asks it
        aux = judge is not None and judge.setup.protocol is not None and bool(judge.setup.protocol.auxiliary)
        questions = {p.question(t): (p.id, t) for p in self.prompts for t in range(1, p.turns + 1)} if aux else {}
        self.auxiliary = StoredAuxiliary(store, run_id, questions)
        self.version = "" if judge is None else template_version(judge)

    def run(self) -> int:
        self.runner.expect("generating", sum(p.turns for p in self.prompts) * len(self.config.candidates))
        if self.judge is not None:
            self.runner.expect("judging", sum(1 for p in self.prompts for _ in self._judgments(p)))
        left = iter(self.prompts)
        self._admit(left)
        for finished in self.runner.finished():
            if isinstance(finished.job, Generate):
                self._write_generation(finished)
            else:
                self._write_judgment(finished)
            self._admit(left)
        return self.failed

    def _admit(self, left: Iterator[PromptItem]) -> None:
        """Start the next prompts while fewer than ``window`` calls are under way: the study's calls
        in flight, and what it holds of them, stay bounded however many prompts it has."""
        while self.runner.outstanding < self.window:
            p = next(left, None)
            if p is None:
                return
            self.open[p.id] = sum(p.turns for _ in self.config.candidates)
            if self.judge is not None:
                self._plan_judgments(p)
            for label in self.config.candidates:
                self._generation_ready(p, label, 1)

    def _settled(self, prompt_id: str) -> None:
        """An item of a prompt settled: once all are, what the study held of the prompt is let go."""
        self.open[prompt_id] -= 1
        if self.open[prompt_id] == 0:
            del self.open[prompt_id]
            self.answers.pop(prompt_id, None)

    # generations

    def _generation_ready(self, p: PromptItem, label: str, turn: int) -> None:
        earlier = [self.answers[p.id][(label, k)] for k in range(1, turn)]
        if None in earlier:  # an earlier turn failed: this one waits for a rerun
            self.runner.count("generating")
            return self._answered(p, label, turn, None)
        cand = self.config.candidates[label]
        backend = self.backends[cand.spec]
        messages = p.messages([a for a in earlier if a is not None], turn)
        key = generation_key(backend, cand.sampling, messages)
        link = ItemLink(self.run_id, f"gen:{p.id}:{label}" + (f"@t{turn}" if turn > 1 else ""), p.id, "generation",
                        (label,), "-", 0, turn)
        row = self.store.generation(key)
        if row is not None:
            self.store.link(link, result_key=key)
            self.runner.count("generating")
            return self._answered(p, label, turn, row["text"])
        self.runner.submit(Generate(backend, messages, cand.sampling, key), _Answer(p, label, turn, link))

    def _write_generation(self, finished: Finished[_Waiter]) -> None:
        job = finished.job
        assert isinstance(job, Generate)
        answers = [w for w in finished.waiters if isinstance(w, _Answer)]
        if isinstance(finished.result, Deferred):  # in a batch: written once it has answered
            for a in answers:
                self._answered(a.prompt, a.label, a.turn, None)
            return
        stored = self._put_generation(job, self.config.candidates[answers[0].label], finished.result, finished.error,
                                      answers[0].link)
        # the answer stored under the key (another process's, written first, wins): it is the one judged
        for a in answers:
            if stored is not None and a is not answers[0]:
                self.store.link(a.link, result_key=job.key)
            self._answered(a.prompt, a.label, a.turn, stored)

    def _put_generation(self, job: Generate, cand: Candidate, comp: Completion | None,
                        error: LLMJudgeError | None, link: ItemLink) -> str | None:
        """Store an answer (or its failure) and, where an answer is stored, link its item, in one transaction."""
        sampling, prompt = sampling_dict(cand.sampling), job.messages[-1]["content"]
        if comp is None:
            return self.store.put_generation(job.key, cand.spec, sampling, prompt, error=str(error), link=link)
        return self.store.put_generation(job.key, cand.spec, sampling, prompt, text=comp.text,
                                         prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens,
                                         seconds=comp.seconds, finish_reason=comp.finish_reason, link=link)

    def _answered(self, p: PromptItem, label: str, turn: int, text: str | None) -> None:
        """An answer is settled (None: failed): note it, then start what was waiting for it."""
        self.answers.setdefault(p.id, {})[(label, turn)] = text
        if text is None:
            self.failed += 1
        if turn < p.turns:
            self._generation_ready(p, label, turn + 1)
        for planned in self.needs.pop((p.id, label, turn), []):
            self.waiting[planned] -= 1
            if self.waiting[planned] == 0:
                del self.waiting[planned]
                self._judgment_ready(planned)
        self._settled(p.id)

    # judgments

    def _plan_judgments(self, p: PromptItem) -> None:
        """Every judgment of a prompt, each waiting for the answers it needs."""
        for job in self._judgments(p):
            self.open[p.id] += 1
            self.waiting[job] = len(job.needs())
            for answer in job.needs():
                self.needs.setdefault(answer, []).append(job)

    def _judgments(self, p: PromptItem) -> Iterable[_Planned]:
        c = self.config
        for r in range(c.repeat):
            for t in range(1, p.turns + 1):
                if c.mode in ("single", "both"):
                    yield from (_Planned("single", p, (lab,), lab, r, t) for lab in c.candidates)
                if c.mode in ("pairwise", "both"):
                    yield from (_Planned("pairwise", p, pair, order, r, t) for pair in self.pairs for order in ORDERS)

    def _judgment_ready(self, planned: _Planned) -> None:
        p, t = planned.prompt, planned.turn
        answers = [[self.answers[p.id][(lab, k)] for k in range(1, t + 1)] for lab in planned.labels]
        convo = [[a for a in answers_of if a is not None] for answers_of in answers]
        if any(len(c) < t for c in convo):
            self.failed += 1  # a generation failed: judged on a later run
            self.runner.count("judging")
            return self._settled(p.id)
        # what came before this turn, each candidate's own conversation (the shared context at turn 1)
        history = [p.messages(c[:-1], t)[:-1] for c in convo]
        job = self._job(planned, [c[-1] for c in convo], history)
        link = planned.link(self.run_id)
        if self.store.judgment(job.key) is not None:
            self.store.link(link, result_key=job.key)
            self.runner.count("judging")
            return self._settled(p.id)
        self.runner.submit(job, link)

    def _job(self, planned: _Planned, texts: list[str], history: list[list[dict[str, str]]]) -> JudgeOrder | GradeOne:
        """The call of one judgment, with its cache key (the texts and histories as shown)."""
        assert self.judge is not None
        p, t = planned.prompt, planned.turn
        question, reference = p.question(t), p.reference_at(t)
        # a protocol may show the earlier turns' references (MT-Bench's math prompts); today's prompt does not
        earlier = tuple(p.reference_at(k) for k in range(1, t)) if self.judge.setup.own is not None else ()
        if planned.kind == "single":
            key = judgment_key("single", self.judge, question, texts, reference, planned.repeat, history, earlier)
            return GradeOne(self.judge, question, texts[0], planned.order, key, reference=reference,
                            history=history[0], auxiliary=self.auxiliary, earlier_references=earlier,
                            repeat=planned.repeat)
        order = cast(Order, planned.order)
        shown, shown_history = in_order((texts[0], texts[1]), order), in_order((history[0], history[1]), order)
        key = judgment_key("pairwise", self.judge, question, list(shown), reference, planned.repeat,
                           list(shown_history), earlier)
        return JudgeOrder(self.judge, question, (texts[0], texts[1]), order, key, reference=reference,
                          history=(history[0], history[1]), auxiliary=self.auxiliary, earlier_references=earlier,
                          repeat=planned.repeat)

    def _write_judgment(self, finished: Finished[_Waiter]) -> None:
        job, call = finished.job, finished.result
        links = [w for w in finished.waiters if isinstance(w, ItemLink)]
        for link in links:
            self._settled(link.prompt_id)
        if isinstance(call, Deferred):  # in a batch: made again once it has answered
            self.failed += len(links)
            return
        assert isinstance(job, JudgeOrder | GradeOne) and isinstance(call, JudgeCall)
        kind: Kind = "pairwise" if isinstance(job, JudgeOrder) else "single"
        save_judgment(self.store, job.key, kind, self.config.judge_name, call, links[0], self.version)
        if call.status == "failed":
            self.failed += len(links)
        else:
            for other in links[1:]:
                self.store.link(other, result_key=job.key)
