"""Running a study (the writing side): a prompt set x candidates -> generations -> judgments,
stored, resumable, concurrent. Reading a run back is ``study.summary``; exporting it ``study.export``.

The run id is a hash of the configuration, so running the same command again continues the same
run: every finished generation and judgment is found by its cache key and reused, failed ones are
retried, and each result is linked to its run item once (primary key), so nothing is duplicated.
"""

from __future__ import annotations

import itertools
import platform
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from importlib.metadata import version

from .. import verdicts as V
from ..backends import get_backend, parse_spec
from ..compare import Candidate, check_judging, check_n_ctx
from ..criteria import Criterion, Scale
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
    n_ctx: int = 2048
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


def manifest(config: StudyConfig, backends: dict) -> dict:
    import llama_cpp

    return {"llm_judge": version("llm-judge"), "llama_cpp_python": llama_cpp.__version__, "python": platform.python_version(),
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
              concurrency: int | None = None) -> str:
    """Run (or continue) a study; returns its run id.

    Remote calls run concurrently up to each endpoint's limit (or ``concurrency``, which also
    overrides the endpoints' limits); results are written by this thread, one short transaction each.
    """
    config.validate()
    tell = progress or (lambda *_: None)
    specs = {c.spec for c in config.candidates.values()} | set(config.judges)
    if concurrency is not None and concurrency < 1:
        raise LLMJudgeError(f"concurrency {concurrency}: at least 1 request in flight")
    extra = {} if concurrency is None else {"concurrency": concurrency}
    backends = {s: get_backend(s, n_ctx=config.n_ctx, **extra) for s in specs}
    workers = pool_size(backends, concurrency)
    run_id = config.run_id()
    store.create_run(run_id, config.to_dict(), manifest(config, backends), config.prompts, config.candidates)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-judge")
    try:
        answers = _generate_all(config, store, run_id, backends, pool, tell)
        judge = backends[config.judges[0]] if len(config.judges) == 1 else Jury([backends[s] for s in config.judges])
        failed = _judge_all(config, store, run_id, judge, answers, pool, tell)
    except BaseException:
        # Ctrl-C, or an error no item can get past (a refused key): what finished is stored.
        pool.shutdown(wait=False, cancel_futures=True)
        store.finish_run(run_id, "interrupted")
        raise
    pool.shutdown()
    failed += sum(1 for v in answers.values() if v is None)
    warnings = [w for b in backends.values() for w in b.warnings]
    # what the calls settled (a server's structured-output mode is known only after the first)
    store.update_manifest(run_id, models={spec: b.describe() for spec, b in backends.items()}, warnings=warnings)
    store.finish_run(run_id, "done" if failed == 0 else "incomplete")
    return run_id


def _run_jobs(pool, jobs: list[list], call, write, stage: str, tell, done: int, total: int) -> None:
    """Run ``call(job)`` for every job on the pool; ``write(job, result or exception)`` in this thread.

    A job is the list of run items that share one call (one cache key); progress counts items.
    """
    futures = {pool.submit(call, job): job for job in jobs}
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for fut in finished:
            try:
                result = fut.result()
            except LLMJudgeError as exc:
                if exc.fatal:
                    raise
                result = exc
            write(futures[fut], result)
            done += len(futures[fut])
            tell(stage, done, total, len(pending))


def _generate_all(config, store, run_id, backends, pool, tell) -> dict:
    """Every candidate's answer to every turn: {(prompt id, label, turn): text, None if it failed}.
    Turn by turn, because a candidate answers a later turn after its own earlier answers."""
    answers: dict[tuple[str, str, int], str | None] = {}
    total = sum(p.turns for p in config.prompts) * len(config.candidates)
    done = 0
    for turn in range(1, max(p.turns for p in config.prompts) + 1):
        todo: dict[str, list] = {}  # key -> the items waiting for that generation
        for p in (p for p in config.prompts if p.turns >= turn):
            for label, cand in config.candidates.items():
                earlier = [answers.get((p.id, label, k)) for k in range(1, turn)]
                if None in earlier:
                    answers[(p.id, label, turn)] = None  # an earlier turn failed: this one waits for a rerun
                    done += 1
                    continue
                messages = p.messages(earlier, turn)
                backend = backends[cand.spec]
                key = cache_key("gen", model=model_identity(backend), sampling=cand.sampling.model_dump(), messages=messages)
                link = (run_id, f"gen:{p.id}:{label}" + (f"@t{turn}" if turn > 1 else ""), p.id, "generation", [label],
                        "-", 0, turn)
                row = store.generation(key)
                if row is None:
                    todo.setdefault(key, []).append((p, label, cand, backend, messages, key, link))
                    continue
                store.link(*link, result_key=key)
                answers[(p.id, label, turn)] = row["text"]
                done += 1

        def call(items):
            _p, _label, cand, backend, messages, _key, _link = items[0]
            return backend.generate(messages, cand.sampling)

        def write(items, result, turn=turn):
            p, _label, cand, _backend, messages, key, _link = items[0]
            sampling = cand.sampling.model_dump()
            if isinstance(result, LLMJudgeError):
                store.put_generation(key, cand.spec, sampling, messages[-1]["content"], error=str(result))
            else:
                store.put_generation(key, cand.spec, sampling, messages[-1]["content"], text=result.text,
                                     prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                                     seconds=result.seconds, finish_reason=result.finish_reason)
            for p, label, *_rest, link in items:
                if not isinstance(result, LLMJudgeError):
                    store.link(*link, result_key=key)
                answers[(p.id, label, turn)] = None if isinstance(result, LLMJudgeError) else result.text

        tell("generating", done, total, 0)
        waiting = sum(len(v) for v in todo.values())
        _run_jobs(pool, list(todo.values()), call, write, "generating", tell, done, total)
        done += waiting
    return answers


def _judge_all(config, store, run_id, judge_backend, answers, pool, tell) -> int:
    jobs = []
    for r in range(config.repeat):
        for p in config.prompts:
            for t in range(1, p.turns + 1):
                if config.mode in ("single", "both"):
                    jobs += [("single", p, (lab,), lab, r, t) for lab in config.candidates]
                if config.mode in ("pairwise", "both"):
                    jobs += [("pairwise", p, pair, order, r, t) for pair in config.pairs() for order in ("AB", "BA")]
    setup = JudgeSetup(config.criteria, config.scale, config.judge_sampling, config.verdict_format, config.judge_method)
    todo: dict[str, list] = {}  # key -> the run items waiting for that judgment
    failed = 0
    for kind, p, labels, order, r, t in jobs:
        convo = [[answers.get((p.id, lab, k)) for k in range(1, t + 1)] for lab in labels]
        if any(a is None for answers_of in convo for a in answers_of):
            failed += 1  # a generation failed: judged on a later run
            continue
        texts = [c[-1] for c in convo]
        # what came before this turn, each candidate's own conversation (the shared context at turn 1)
        history = [p.messages(c[:-1], t)[:-1] for c in convo]
        shown, shown_history = (texts, history) if order != "BA" else (texts[::-1], history[::-1])
        key = judgment_key(kind, judge_backend, setup, p.question(t), shown, p.reference_at(t), r, shown_history)
        item = f"{kind}:{p.id}:{'|'.join(labels)}:{order}" + (f"@t{t}" if t > 1 else "") + (f"#{r}" if r else "")
        link = (run_id, item, p.id, kind, list(labels), order, r, t)
        if store.judgment(key) is not None:
            store.link(*link, result_key=key)
        else:
            todo.setdefault(key, []).append((kind, p, labels, order, texts, key, link, t, history))

    def call(items):
        kind, p, labels, order, texts, _key, _link, t, history = items[0]
        if kind == "single":
            return judge_single(judge_backend, p.question(t), texts[0], labels[0], config.criteria, config.scale,
                                config.judge_sampling, p.reference_at(t), method=config.judge_method, history=history[0])
        return judge_pairwise_order(judge_backend, p.question(t), texts[0], texts[1], order, config.criteria,
                                    config.scale, config.judge_sampling, p.reference_at(t), fmt=config.verdict_format,
                                    method=config.judge_method, history=history)

    def write(items, call_result):
        nonlocal failed
        kind, _p, _labels, _order, _texts, key, link, _t, _history = items[0]
        save_judgment(store, key, kind, config.judge_name, call_result, link)
        if call_result.status == "failed":
            failed += len(items)
            return
        for other in items[1:]:
            store.link(*other[6], result_key=key)

    waiting = sum(len(v) for v in todo.values())
    tell("judging", len(jobs) - waiting, len(jobs), 0)
    _run_jobs(pool, list(todo.values()), call, write, "judging", tell, len(jobs) - waiting, len(jobs))
    return failed
