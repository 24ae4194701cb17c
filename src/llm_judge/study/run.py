"""Running a study (the writing side): a prompt set x candidates -> generations -> judgments,
stored, resumable, concurrent. Reading a run back is ``study.summary``; exporting it ``study.export``.

The run id is a hash of the configuration, so running the same command again continues the same
run: every finished generation and judgment is found by its cache key and reused, failed ones are
retried, and each result is linked to its run item once (primary key), so nothing is duplicated.
A run has one writer at a time (a second process on it is refused), judgments are made of the
answers as stored, and Ctrl-C stops a run at once: the calls in flight are dropped, what finished
stays stored, and the run is ``interrupted``, to be continued by the same command.
"""

from __future__ import annotations

import itertools
import platform
import queue
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from .. import cancel
from .. import verdicts as V
from ..backends import get_backend, parse_spec
from ..compare import Candidate, check_judging, check_n_ctx
from ..config import Settings
from ..criteria import Criterion, Scale
from ..defaults import N_CTX
from ..errors import LLMJudgeError
from ..judging import JudgeSetup, Jury, judge_pairwise_order, judge_single, judgment_key, jury_name, model_identity, save_judgment
from ..prompts import PromptItem
from ..sampling import SamplingParams
from ..store import Store, cache_key

MODES = ("single", "pairwise", "both")


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

    @property
    def judges(self) -> list[str]:
        return [self.judge] if isinstance(self.judge, str) else list(self.judge)

    @property
    def judge_name(self) -> str:
        return jury_name(self.judges)

    def validate(self) -> None:
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
        if len(set(self.judges)) != len(self.judges):
            raise LLMJudgeError("a jury names the same judge twice: name each member once")
        twice = next((pid for pid, n in Counter(p.id for p in self.prompts).items() if n > 1), None)
        if twice is not None:  # a run keys answers and verdicts by prompt id
            raise LLMJudgeError(f"prompt id {twice!r} is given twice: give every prompt its own id")
        for spec in [c.spec for c in self.candidates.values()] + self.judges:
            parse_spec(spec)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "prompts": [[p.id, p.prompt, p.reference] + ([p.conversation()] if p.turns > 1 or p.context else [])
                        for p in self.prompts],
            "candidates": {lab: {"spec": c.spec, "sampling": c.sampling.model_dump()} for lab, c in self.candidates.items()},
            "judge": self.judge, "judge_sampling": self.judge_sampling.model_dump(),
            "criteria": [[c.name, c.rubric] for c in self.criteria], "scale": [self.scale.low, self.scale.high],
            "mode": self.mode, "baseline": self.baseline, "n_ctx": self.n_ctx,
            "template_version": V.TEMPLATE_VERSION,
            **({"repeat": self.repeat} if self.repeat > 1 else {}),
            **({"judge_method": self.judge_method} if self.judge_method != "plain" else {}),
            **({"verdict_format": self.verdict_format} if self.verdict_format != "full" else {}),
        }

    def run_id(self) -> str:
        return cache_key("run", **self.to_dict())[:12]

    def pairs(self) -> list[tuple[str, str]]:
        return run_pairs(self.candidates, self.baseline)


def run_pairs(labels, baseline: str | None = None) -> list[tuple[str, str]]:
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


def manifest(config: StudyConfig, backends: dict) -> dict:
    return {"llm_judge": version("llm-judge"), "llama_cpp_python": installed_version("llama-cpp-python"),
            "python": platform.python_version(),
            "models": {spec: b.describe() for spec, b in backends.items()},
            "template_version": V.TEMPLATE_VERSION,
            "candidates": {lab: {"spec": c.spec, "sampling": c.sampling.model_dump()} for lab, c in config.candidates.items()},
            "judge_sampling": config.judge_sampling.model_dump(), "repeat": config.repeat,
            "judge_method": config.judge_method, "verdict_format": config.verdict_format,
            "orders": "every pairwise item is judged in both orders: AB shows the first label first, BA the "
                      "second; each run item records its order (run_items.display_order)"}


Progress = Callable[..., None]  # (stage, done, total, in_flight)


def pool_size(backends: dict, concurrency: int | None) -> int:
    """Workers for a run: ``concurrency`` when given, else the endpoints' own limits added up
    (an in-process model counts 1: it runs one call at a time behind its lock)."""
    return concurrency or max(1, sum(b.concurrency for b in backends.values()))


def run_study(config: StudyConfig, store: Store, progress: Progress | None = None,
              concurrency: int | None = None, *, generate_only: bool = False,
              load_options: dict | None = None, settings: Settings | None = None) -> str:
    """Run (or continue) a study; returns its run id.

    Remote calls run concurrently up to each endpoint's limit (or ``concurrency``, which also
    overrides the endpoints' limits); results are written by this thread, one short transaction each.
    ``generate_only`` writes the answers and leaves the judging to a later run of the same study
    (the run is then ``incomplete``). Raises ``LLMJudgeError`` at once when another process (or
    thread) is writing the same run. ``load_options``: more load options for every model (the
    page's ``key_configured_only``).
    """
    config.validate()
    tell = progress or (lambda *_: None)
    specs = {c.spec for c in config.candidates.values()} | (set() if generate_only else set(config.judges))
    if concurrency is not None and concurrency < 1:
        raise LLMJudgeError(f"concurrency {concurrency}: at least 1 request in flight")
    extra = {} if concurrency is None else {"concurrency": concurrency}
    backends = {s: get_backend(s, settings, n_ctx=config.n_ctx, **extra, **(load_options or {})) for s in specs}
    run_id = config.run_id()
    with store.run_writer(run_id):  # one writer per run: another process on it is refused in one line
        store.create_run(run_id, config.to_dict(), manifest(config, backends), config.prompts, config.candidates)
        judge = None
        if not generate_only:
            judge = backends[config.judges[0]] if len(config.judges) == 1 else Jury([backends[s] for s in config.judges])
        pool = _Workers(pool_size(backends, concurrency))
        try:
            failed = _Pipeline(config, store, run_id, backends, judge, pool, tell).run()
        except BaseException:
            # Ctrl-C, or an error no item can get past (a refused key): what finished is stored,
            # the calls in flight are dropped unwaited and the run is left to be continued.
            pool.stop()
            store.finish_run(run_id, "interrupted")
            raise
        pool.close()
        _finish(store, run_id, backends, failed, generate_only)
    return run_id


def _finish(store: Store, run_id: str, backends: dict, failed: int, generate_only: bool) -> None:
    warnings = [w for b in backends.values() for w in b.warnings]
    # what the calls settled (a server's structured-output mode is known only after the first)
    store.update_manifest(run_id, models={spec: b.describe() for spec, b in backends.items()}, warnings=warnings)
    store.finish_run(run_id, "done" if failed == 0 and not generate_only else "incomplete")


class _Workers:
    """A run's worker threads. Unlike a ThreadPoolExecutor's, which the interpreter joins at exit
    (waiting out every call in flight and its retries), they are daemons: ``stop`` drops the calls
    not yet started, ends the retries' waits (``cancel.pause``) and returns at once, leaving the
    calls in flight unwaited, so Ctrl-C ends a study within a moment whatever its endpoints do."""

    def __init__(self, workers: int):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._work, name=f"llm-judge-worker-{i}", daemon=True)
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def submit(self, fn: Callable, *args) -> Future:
        fut: Future = Future()
        self.jobs.put((fut, fn, args))
        return fut

    def _work(self) -> None:
        cancel.carry(self.stopped)
        while (job := self.jobs.get()) is not None:
            fut, fn, args = job
            if self.stopped.is_set() or not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

    def close(self) -> None:
        """Let the threads end once their queue is empty (every call has returned by then)."""
        for _ in self.threads:
            self.jobs.put(None)

    def stop(self) -> None:
        self.stopped.set()
        self.close()


class _Pipeline:
    """A study's calls as one stream: each call is submitted as soon as what it needs is there (a
    candidate's later turn after its earlier answer, a judgment after the answers it compares), so
    judging starts while the last answers are still being written and no slot waits for a stage to
    drain. Calls that share a cache key are made once; results are written by the calling thread.

    Answers are ``{(prompt id, label, turn): text}``, None where the generation failed (or an earlier
    turn did): the judgments that need it count as failed, to be made by a later run.
    """

    def __init__(self, config: StudyConfig, store: Store, run_id: str, backends: dict, judge, pool, tell):
        self.config, self.store, self.run_id, self.backends, self.judge = config, store, run_id, backends, judge
        self.pool, self.tell = pool, tell
        self.setup = JudgeSetup(config.criteria, config.scale, config.judge_sampling, config.verdict_format,
                                config.judge_method)
        self.answers: dict[tuple[str, str, int], str | None] = {}
        self.futures: dict = {}  # future -> (stage, cache key)
        self.sharing: dict[tuple[str, str], list] = {}  # (stage, key) -> the run items waiting for that call
        self.done = {"generating": 0, "judging": 0}
        self.in_flight = {"generating": 0, "judging": 0}  # calls under way, kept as they start and end
        self.total = {"generating": sum(p.turns for p in config.prompts) * len(config.candidates), "judging": 0}
        self.needs: dict[tuple[str, str, int], list[list]] = {}  # answer -> the judgments waiting for it
        self.failed = 0

    def run(self) -> int:
        self.tell("generating", 0, self.total["generating"], 0)
        if self.judge is not None:
            self._plan_judgments()
        for p in self.config.prompts:
            for label in self.config.candidates:
                self._generation_ready(p, label, 1)
        while self.futures:
            finished, _ = wait(self.futures, return_when=FIRST_COMPLETED)
            for fut in finished:
                stage, key = self.futures.pop(fut)
                self.in_flight[stage] -= 1
                try:
                    result = fut.result()
                except LLMJudgeError as exc:
                    if exc.fatal:
                        raise
                    result = exc
                items = self.sharing.pop((stage, key))
                (self._write_generation if stage == "generating" else self._write_judgment)(items, result)
        return self.failed

    def _submit(self, stage: str, key: str, item, call) -> None:
        if (stage, key) in self.sharing:  # the same call is under way: this item shares its result
            self.sharing[(stage, key)].append(item)
            return
        self.sharing[(stage, key)] = [item]
        self.futures[self.pool.submit(call, item)] = (stage, key)
        self.in_flight[stage] += 1

    def _progress(self, stage: str, items: int = 1) -> None:
        self.done[stage] += items
        self.tell(stage, self.done[stage], self.total[stage], self.in_flight[stage])

    # generations

    def _generation_ready(self, p: PromptItem, label: str, turn: int) -> None:
        earlier = [self.answers[(p.id, label, k)] for k in range(1, turn)]
        if None in earlier:  # an earlier turn failed: this one waits for a rerun
            return self._answered(p, label, turn, None)
        cand = self.config.candidates[label]
        backend = self.backends[cand.spec]
        messages = p.messages(earlier, turn)
        key = cache_key("gen", model=model_identity(backend), sampling=cand.sampling.model_dump(), messages=messages)
        link = (self.run_id, f"gen:{p.id}:{label}" + (f"@t{turn}" if turn > 1 else ""), p.id, "generation", [label],
                "-", 0, turn)
        row = self.store.generation(key)
        if row is not None:
            self.store.link(*link, result_key=key)
            return self._answered(p, label, turn, row["text"])
        self._submit("generating", key, (p, label, turn, cand, backend, messages, key, link), _generate)

    def _write_generation(self, items: list, result) -> None:
        _p, _label, _turn, cand, _backend, messages, key, _link = items[0]
        sampling = cand.sampling.model_dump()
        if not isinstance(result, LLMJudgeError):
            stored = self.store.put_generation(
                key, cand.spec, sampling, messages[-1]["content"], text=result.text,
                prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                seconds=result.seconds, finish_reason=result.finish_reason)
        else:
            stored = self.store.put_generation(key, cand.spec, sampling, messages[-1]["content"], error=str(result))
        # the answer stored under the key (another process's, written first, wins): it is the one judged
        for p, label, turn, *_rest, link in items:
            if stored is not None:
                self.store.link(*link, result_key=key)
            self._answered(p, label, turn, stored)

    def _answered(self, p: PromptItem, label: str, turn: int, text: str | None) -> None:
        """An answer is settled (None: failed): count it, then start what was waiting for it."""
        self.answers[(p.id, label, turn)] = text
        if text is None:
            self.failed += 1
        self._progress("generating")
        if turn < p.turns:
            self._generation_ready(p, label, turn + 1)
        for job in self.needs.pop((p.id, label, turn), []):
            job[0] -= 1
            if job[0] == 0:
                self._judgment_ready(*job[1:])

    # judgments

    def _plan_judgments(self) -> None:
        """Every judgment the study makes, each waiting for the answers it needs."""
        config = self.config
        jobs = []
        for r in range(config.repeat):
            for p in config.prompts:
                for t in range(1, p.turns + 1):
                    if config.mode in ("single", "both"):
                        jobs += [("single", p, (lab,), lab, r, t) for lab in config.candidates]
                    if config.mode in ("pairwise", "both"):
                        jobs += [("pairwise", p, pair, order, r, t) for pair in config.pairs() for order in ("AB", "BA")]
        self.total["judging"] = len(jobs)
        self.tell("judging", 0, len(jobs), 0)
        for kind, p, labels, order, r, t in jobs:
            needed = {(p.id, lab, k) for lab in labels for k in range(1, t + 1)}
            job = [len(needed), kind, p, labels, order, r, t]
            for answer in needed:
                self.needs.setdefault(answer, []).append(job)

    def _judgment_ready(self, kind: str, p: PromptItem, labels: tuple, order: str, r: int, t: int) -> None:
        convo = [[self.answers[(p.id, lab, k)] for k in range(1, t + 1)] for lab in labels]
        if any(a is None for answers_of in convo for a in answers_of):
            self.failed += 1  # a generation failed: judged on a later run
            return self._progress("judging")
        texts = [c[-1] for c in convo]
        # what came before this turn, each candidate's own conversation (the shared context at turn 1)
        history = [p.messages(c[:-1], t)[:-1] for c in convo]
        shown, shown_history = (texts, history) if order != "BA" else (texts[::-1], history[::-1])
        key = judgment_key(kind, self.judge, self.setup, p.question(t), shown, p.reference_at(t), r, shown_history)
        item = f"{kind}:{p.id}:{'|'.join(labels)}:{order}" + (f"@t{t}" if t > 1 else "") + (f"#{r}" if r else "")
        link = (self.run_id, item, p.id, kind, list(labels), order, r, t)
        if self.store.judgment(key) is not None:
            self.store.link(*link, result_key=key)
            return self._progress("judging")
        self._submit("judging", key, (kind, p, labels, order, texts, key, link, t, history), self._judge)

    def _judge(self, item):
        kind, p, labels, order, texts, _key, _link, t, history = item
        c = self.config
        if kind == "single":
            return judge_single(self.judge, p.question(t), texts[0], labels[0], c.criteria, c.scale, c.judge_sampling,
                                p.reference_at(t), method=c.judge_method, history=history[0])
        return judge_pairwise_order(self.judge, p.question(t), texts[0], texts[1], order, c.criteria, c.scale,
                                    c.judge_sampling, p.reference_at(t), fmt=c.verdict_format, method=c.judge_method,
                                    history=history)

    def _write_judgment(self, items: list, call) -> None:
        kind, *_rest, key, link, _t, _history = items[0]
        save_judgment(self.store, key, kind, self.config.judge_name, call, link)
        if call.status == "failed":
            self.failed += len(items)
        else:
            for other in items[1:]:
                self.store.link(*other[6], result_key=key)
        self._progress("judging", len(items))


def _generate(item):
    _p, _label, _turn, cand, backend, messages, _key, _link = item
    return backend.generate(messages, cand.sampling)
