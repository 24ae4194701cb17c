"""The web page (Gradio): Compare, Study and Vote, a thin layer over the library.

Each handler parses the visitor's input (``present.page``), calls the library (``compare``,
``run_study`` then ``summarize``, the vote functions) and formats what it returns.
Errors become messages in the page (``gr.Error``), never tracebacks. In-process models are
loaded once (a bounded cache) and used by one thread at a time (the backend's lock); requests
queue, and Gradio shows each visitor their place in the queue.

A comparison runs in a worker thread that stops when the visitor leaves (Gradio closes the
handler: the worker's next token or request raises ``Cancelled``) and holds one of the page's
``concurrency`` slots until it has really stopped. Every model a visitor names gets
``key_configured_only``: an API key goes only to the servers of the config file. A public page
lists, opens and takes votes on the runs the page started only (unless ``show_all_runs``), and
bounds a study (``StudyLimits``). A vote counts once per visitor (the login, else the session).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .cancel import Cancelled, carry
from .compare import Candidate, candidates_by_label, compare
from .config import Settings, load_config
from .criteria import DEFAULT_CRITERIA, parse_criteria
from .defaults import N_CTX, PAGE_CONCURRENCY
from .errors import LLMJudgeError
from .present import page as views
from .present.format import CARDS_TITLE, card_header, card_rows, html_table
from .present.report import charts, drilldown, drilldown_html, tables, write_report
from .prompts import BUILTIN, load_prompts
from .sampling import JUDGE_DEFAULT, PRESETS, make_sampling
from .store import Store
from .study import StudyConfig, run_study
from .study.export import export_rows, write_rows
from .study.loaded import load_run
from .study.summary import summarize_run
from .tune import profile_choice
from .votes import agreement, cast, next_item

log = logging.getLogger("llm_judge.ui")
PAGE_LOAD = {"key_configured_only": True}  # load options of every model a page names: see openai.py
HEARTBEAT = 0.5  # seconds a comparison's updates wait for news before yielding none


def user_errors(fn):
    """Our errors as page messages; anything else logged here and shown as one neutral line."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LLMJudgeError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error("internal error: the server log has the details", print_exception=False) from None
    return wrapper


def voter(request: gr.Request | None) -> str | None:
    """Who casts a vote: the logged-in user, else the visitor's page session (a reload is a new one)."""
    if request is None:
        return None
    if getattr(request, "username", None):
        return f"user:{request.username}"
    return f"session:{request.session_hash}" if getattr(request, "session_hash", None) else None


@dataclass(frozen=True)
class Asked:
    """How a page's judge is asked: a protocol (None: llm-judge's own), method and format, and a
    note where "auto" chose them."""

    protocol: str | None
    method: str = "plain"
    fmt: str = "full"
    note: str | None = None

    def options(self) -> dict[str, str]:
        """As ``compare``'s keywords (only those that differ from its defaults)."""
        return {**({"protocol": self.protocol} if self.protocol else {}),
                **({"judge_method": self.method} if self.method != "plain" else {}),
                **({"verdict_format": self.fmt} if self.fmt != "full" else {})}


def _noted(run, note: str):
    """``run`` (a comparison) with ``note`` first among its result's warnings."""
    def noted(**kwargs):
        result = run(**kwargs)
        result.warnings.insert(0, note)
        return result
    return noted


class App:
    def __init__(self, store: Store, *, public: bool = False, allowed_dirs: list[Path] | None = None,
                 max_criteria: int = 3, n_ctx: int = N_CTX, allow_fake: bool = False, allow_downloads: bool = False,
                 show_all_runs: bool = False, limits: views.StudyLimits | None = None, concurrency: int = PAGE_CONCURRENCY,
                 settings: Settings | None = None):
        self.store, self.public, self.allowed_dirs = store, public, list(allowed_dirs or [])
        self.settings = settings  # the engine and config file models load under (None: the environment's)
        self.allow_fake, self.allow_downloads = allow_fake, allow_downloads
        self.max_criteria, self.n_ctx = max_criteria, n_ctx
        self.own_runs_only = public and not show_all_runs
        self.limits = limits or views.StudyLimits()
        self.slots = threading.BoundedSemaphore(max(1, concurrency))  # comparisons at work, until each really stops
        self.files = Path(tempfile.mkdtemp(prefix="llm-judge-ui-"))
        self.rng = random.Random()

    def spec(self, text: str) -> str:
        spec = views.normalise_spec(text)
        views.check_spec_allowed(spec, public=self.public, allowed_dirs=self.allowed_dirs,
                                 configured={e.spec for e in load_config(settings=self.settings).values()},
                                 allow_fake=self.allow_fake, allow_downloads=self.allow_downloads, settings=self.settings)
        return spec

    # --- Compare -------------------------------------------------------------------------------
    def compare(self, model_a, model_b, judge, preset_a, preset_b, max_tokens, temp_a, min_p_a, top_p_a, top_k_a,
                temp_b, min_p_b, top_p_b, top_k_b, seed, chosen, custom, prompt, protocol=views.OWN_PROTOCOL):
        """Stream both answers as they are written, then the verdict; the result is stored."""
        try:
            specs = [self.spec(x) for x in (model_a, model_b, judge)]
            asked = self.asked(views.chosen_protocol(protocol, public=self.public), specs[2])
            criteria = views.selected_criteria(chosen, custom, self.max_criteria)
            parse_criteria(criteria)
            num = views.optional_number
            common = {"max_tokens": num(max_tokens, "max tokens", int), "seed": num(seed, "seed", int)}
            sa = make_sampling(preset_a, temperature=num(temp_a, "temperature A"), min_p=num(min_p_a, "min_p A"),
                               top_p=num(top_p_a, "top_p A"), top_k=num(top_k_a, "top_k A", int), **common)
            sb = make_sampling(preset_b, temperature=num(temp_b, "temperature B"), min_p=num(min_p_b, "min_p B"),
                               top_p=num(top_p_b, "top_p B"), top_k=num(top_k_b, "top_k B", int), **common)
        except LLMJudgeError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        run = functools.partial(compare, prompt, model_a=specs[0], model_b=specs[1], judge=specs[2], sampling_a=sa,
                                sampling_b=sb, criteria=criteria, n_ctx=self.n_ctx,
                                judge_sampling=make_sampling(None, **JUDGE_DEFAULT), load_options=PAGE_LOAD,
                                settings=self.settings, **asked.options(),
                                concurrency=1)  # one request per visitor at a time: the slots share the endpoints
        if asked.note:
            run = _noted(run, asked.note)
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        self.slots.acquire()  # released by the worker when it has stopped, not when the visitor left
        threading.Thread(target=self._compare_work, args=(run, events, stop), daemon=True,
                         name="llm-judge-compare").start()
        try:
            yield from self._compare_updates(events, criteria)
        finally:  # done, failed, or the visitor left (Gradio closed this generator)
            stop.set()

    def asked(self, named: str | None, judge: str) -> Asked:
        """How the judge is asked: the chosen protocol, or under "auto" the judge's tuned profile
        (from this page's store), with the line that says where it came from."""
        if named != views.AUTO_PROTOCOL:
            return Asked(named)
        choice = profile_choice(judge, self.store.profile(judge))
        return Asked(choice.protocol, choice.method, choice.fmt, choice.note)

    def _compare_work(self, run, events: queue.Queue, stop: threading.Event) -> None:
        """Run one comparison, telling ``events``; stop at the next token or request once ``stop``
        is set; save a finished one (even if its visitor has just left)."""
        carry(stop)  # the backends' retries and new requests end with it (``cancel``)

        def check():
            if stop.is_set():
                raise Cancelled("the visitor left the page: the comparison stopped")

        try:
            result = run(on_token=lambda label, piece: (check(), events.put(("token", label, piece))),
                         on_stage=lambda text: (check(), events.put(("stage", text, None)))).to_dict()
            self.store.save_comparison(result)
            events.put(("done", result, None))
        except Cancelled:
            log.info("a comparison stopped: its visitor left")
        except LLMJudgeError as exc:
            events.put(("error", str(exc), None))
        except Exception:
            log.exception("comparison failed")
            events.put(("error", "internal error: the server log has the details", None))
        finally:
            self.slots.release()

    def _compare_updates(self, events: queue.Queue, criteria: list[str]):
        """The page's updates from the worker's events: the answers as they grow, then the verdict.
        While nothing happens it still yields (no change) twice a second: Gradio can close a
        generator only between two updates, and closing it is how the worker learns to stop."""
        texts, status, last = {"A": "", "B": ""}, "Loading models…", 0.0
        empty_rows = [[c, "", ""] for c in criteria]
        while True:
            try:
                kind, a, b = events.get(timeout=HEARTBEAT)
            except queue.Empty:
                yield gr.skip()
                continue
            if kind == "token":
                texts[a] += b
                if time.monotonic() - last < 0.1:
                    continue
            elif kind == "stage":
                status = f"Working: {a}…"
            elif kind == "error":
                raise gr.Error(a, print_exception=False)
            elif kind == "done":
                yield ("Done (saved).", a["candidates"]["A"]["text"], a["candidates"]["B"]["text"],
                       views.verdict_rows(a), views.verdict_markdown(a), a)
                return
            last = time.monotonic()
            yield status, texts["A"], texts["B"], empty_rows, "", None

    # --- Study ---------------------------------------------------------------------------------
    def run_choices(self) -> list[tuple[str, str]]:
        return [views.run_choice(r) for r in self.store.runs(page_only=self.own_runs_only)]

    def shown_run(self, run_id: str) -> str:
        """The full id of a run this page shows: on a public page only a run the page started
        (unless the operator shows all), else any stored run."""
        if not self.own_runs_only:
            return self.store.run(run_id)["id"]
        ids = [r["id"] for r in self.store.runs(page_only=True)]
        found = [i for i in ids if i == run_id] or [i for i in ids if i.startswith(run_id)]
        if len(found) != 1:
            raise LLMJudgeError(f"no run {run_id!r} on this page: choose one from the list")
        return found[0]

    def study(self, source, upload, candidates, judge, mode, limit, max_tokens, protocol=views.OWN_PROTOCOL,
              progress=gr.Progress()):
        path = upload if isinstance(upload, str) else getattr(upload, "name", None)
        asked = self.asked(views.chosen_protocol(protocol, public=self.public), self.spec(judge))
        if self.public and not path and source not in BUILTIN:  # never a file of the server's
            raise LLMJudgeError(f"prompt set {source!r} is not offered here: choose {', '.join(BUILTIN)} or upload a file")
        self.limits.check_upload(path)
        prompts = load_prompts(path or source, limit=views.optional_number(limit, "the number of prompts", int))
        overrides = {"max_tokens": views.optional_number(max_tokens, "max tokens", int)}
        parsed = [Candidate.parse(line.strip(), overrides) for line in (candidates or "").splitlines() if line.strip()]
        self.limits.check_counts(len(prompts), len(parsed))
        cands = candidates_by_label(Candidate(self.spec(c.spec), c.sampling, c.label) for c in parsed)
        config = StudyConfig(prompts=prompts, candidates=cands, judge=self.spec(judge),
                             judge_sampling=make_sampling(None, **JUDGE_DEFAULT),
                             criteria=parse_criteria(None), mode=mode, n_ctx=self.n_ctx, source=path or source,
                             protocol=asked.protocol, judge_method=asked.method, verdict_format=asked.fmt)

        stages: dict[str, tuple[int, int]] = {}  # judging runs alongside the last answers: one bar for both

        def tell(stage, done, total, in_flight=0):
            stages[stage] = (done, total)
            progress((sum(d for d, _ in stages.values()), sum(t for _, t in stages.values())),
                     desc=", ".join(f"{name} {d}/{t}" for name, (d, t) in stages.items()))

        try:
            run_id = run_study(config, self.store, tell, load_options=PAGE_LOAD, settings=self.settings)
        finally:
            self.store.mark_page_run(config.run_id())  # also a run stopped half-way: it can be continued
        return self.open_run(run_id) + (gr.update(choices=self.run_choices(), value=run_id),)

    def open_run(self, run_id):
        if not run_id:
            raise LLMJudgeError("choose a run first")
        run = load_run(self.store, self.shown_run(run_id))
        summary = summarize_run(run)
        rid = summary.run_id
        files = []
        for name, fmt in ((f"{rid}.csv", "csv"), (f"{rid}.jsonl", "jsonl")):
            write_rows(export_rows(run, fmt), self.files / name, fmt)
            files.append(str(self.files / name))
        files.append(str(write_report(run, summary, self.files / f"{rid}.html")))
        head = (f"Run **{rid}** ({summary.status}): {summary.prompts} prompts, judge `{summary.judge}`, "
                f"mode {summary.mode}.\n\n" + "\n\n".join(f"> warning: {w}" for w in summary.warnings))
        conversations = ("<h3>Prompts, turn by turn</h3>" + drilldown_html(drilldown(run, 30))
                         if summary.turns > 1 else "")
        return head, views.tables_html(tables(summary)) + conversations, "".join(charts(run, summary)), files

    # --- Judges -------------------------------------------------------------------------------
    def judge_cards(self) -> str:
        cards = self.store.cards()[:12]
        if not cards:
            return "<p>No judge cards yet: make one with <code>llm-judge judges eval --judge SPEC</code>.</p>"
        return html_table(CARDS_TITLE, card_header(cards), card_rows(cards), level=3)

    # --- Vote ----------------------------------------------------------------------------------
    def next_pair(self, run_id):
        if not run_id:
            raise LLMJudgeError("choose a run to vote on")
        item = next_item(self.store, self.shown_run(run_id), self.rng)
        return (item, f"**Prompt:** {item['prompt']}", item["left_text"], item["right_text"], "",
                views.agreement_markdown(agreement(self.store, item["run_id"])))

    def vote(self, side: str, item: dict | None, request: gr.Request | None = None):
        """Record the visitor's vote (it replaces their earlier one on the pair)."""
        if not item:
            raise LLMJudgeError("press “Next pair” first")
        self.shown_run(item["run_id"])
        cast(self.store, item, side, voter(request))
        reveal = f"Left was **{item['left']}**, right was **{item['right']}**. Press “Next pair” for another."
        return None, reveal, views.agreement_markdown(agreement(self.store, item["run_id"]))


def build(app: App) -> gr.Blocks:
    with gr.Blocks(title="LLM as a Judge", analytics_enabled=False) as demo:
        gr.Markdown("# LLM as a Judge\nTwo models answer, a third judges both answers in both orders.")
        with gr.Tab("Compare"):
            with gr.Row():
                model_a = gr.Textbox("embedded", label="Model A (spec, or repo and file name)", elem_id="model-a")
                model_b = gr.Textbox("embedded", label="Model B", elem_id="model-b")
                judge = gr.Textbox("embedded", label="Judge", elem_id="judge")
            with gr.Row():
                preset_a = gr.Dropdown(list(PRESETS), value="p1", label="Sampling A")
                preset_b = gr.Dropdown(list(PRESETS), value="p2", label="Sampling B")
                max_tokens = gr.Textbox("256", label="Max tokens per answer", elem_id="max-tokens")
            with gr.Accordion("Sampling details (blank: from the preset)", open=False):
                sampling_boxes = {}
                for side in ("A", "B"):
                    with gr.Row():
                        for field in ("Temperature", "min_p", "top_p", "top_k"):
                            sampling_boxes[field, side] = gr.Textbox("", label=f"{field} {side}",
                                                                     placeholder="from the preset")
                seed = gr.Textbox("0", label="Seed (both)")
            chosen = gr.CheckboxGroup(views.CRITERIA_CHOICES, value=list(DEFAULT_CRITERIA),
                                      label=f"Select up to {app.max_criteria} evaluation criteria")
            custom = gr.Textbox(label="Custom criteria (one name=description per line)", lines=1)
            protocol = gr.Dropdown(views.protocol_choices(), value=views.OWN_PROTOCOL, allow_custom_value=not app.public,
                                   label="Judge protocol (how the judge is asked; llm-judge judges protocols)",
                                   elem_id="protocol")
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt")
            evaluate = gr.Button("Evaluate Models", variant="primary", elem_id="evaluate")
            status = gr.Markdown(elem_id="status")
            with gr.Row():
                answer_a = gr.Textbox(label="Response A", lines=12, elem_id="answer-a")
                answer_b = gr.Textbox(label="Response B", lines=12, elem_id="answer-b")
            table = gr.Dataframe(headers=["Criterion", "A", "B"], interactive=False, elem_id="verdict-table")
            verdict = gr.Markdown(elem_id="verdict")
            result_json = gr.JSON(visible=False)
            per_side = [sampling_boxes[f, side] for side in ("A", "B") for f in ("Temperature", "min_p", "top_p", "top_k")]
            evaluate.click(app.compare, [model_a, model_b, judge, preset_a, preset_b, max_tokens, *per_side, seed, chosen,
                                         custom, prompt, protocol],
                           [status, answer_a, answer_b, table, verdict, result_json], api_name="compare")
        with gr.Tab("Study"):
            with gr.Row():
                source = gr.Dropdown(["seed-10"], value="seed-10", label="Prompt set")
                upload = gr.File(label="…or upload prompts (.jsonl, .csv, .txt)", file_types=[".jsonl", ".json",
                                                                                             ".csv", ".txt"])
            candidates = gr.Textbox("embedded@p1\nembedded@p2", lines=3,
                                    label="Candidates, one per line: SPEC@PRESET#LABEL")
            with gr.Row():
                study_judge = gr.Textbox("embedded", label="Judge")
                mode = gr.Radio(["single", "pairwise", "both"], value="single", label="Judging")
                limit = gr.Textbox("", label="Only the first N prompts", placeholder="all")
                study_tokens = gr.Textbox("128", label="Max tokens per answer")
                study_protocol = gr.Dropdown(views.protocol_choices(), value=views.OWN_PROTOCOL,
                                             allow_custom_value=not app.public, label="Judge protocol")
            run_btn = gr.Button("Run study", variant="primary", elem_id="run-study")
            with gr.Row():
                runs = gr.Dropdown(app.run_choices(), label="Stored runs", elem_id="runs")
                refresh = gr.Button("Refresh list")
                open_btn = gr.Button("Open run", elem_id="open-run")
            study_head = gr.Markdown(elem_id="study-head")
            study_tables = gr.HTML(elem_id="study-tables")
            study_charts = gr.HTML(elem_id="study-charts")
            downloads = gr.File(label="Downloads: CSV, JSONL, HTML report", file_count="multiple")
            outputs = [study_head, study_tables, study_charts, downloads]
            run_btn.click(user_errors(app.study), [source, upload, candidates, study_judge, mode, limit, study_tokens,
                                                   study_protocol],
                          outputs + [runs], api_name="study")
            open_btn.click(user_errors(app.open_run), [runs], outputs, api_name="open_run")
            refresh.click(lambda: gr.update(choices=app.run_choices()), None, [runs])
        with gr.Tab("Judges"):
            gr.Markdown("How good is a judge? Its cards on gold-labelled pairs, newest first "
                        "(`llm-judge judges eval --judge SPEC --set llmbar-natural`).")
            cards_html = gr.HTML(app.judge_cards(), elem_id="judge-cards")
            gr.Button("Refresh", elem_id="refresh-cards").click(user_errors(app.judge_cards), None, [cards_html])
        with gr.Tab("Vote"):
            gr.Markdown("Blind voting: which answer is better? The models' names show after your vote.")
            with gr.Row():
                vote_run = gr.Dropdown(app.run_choices(), label="Run", elem_id="vote-run")
                vote_refresh = gr.Button("Refresh list")
                next_btn = gr.Button("Next pair", variant="primary", elem_id="next-pair")
            item = gr.State(None)
            vote_prompt = gr.Markdown(elem_id="vote-prompt")
            with gr.Row():
                left = gr.Textbox(label="Left answer", lines=10, elem_id="left")
                right = gr.Textbox(label="Right answer", lines=10, elem_id="right")
            with gr.Row():
                left_btn = gr.Button("Left is better", elem_id="vote-left")
                tie_btn = gr.Button("Tie", elem_id="vote-tie")
                right_btn = gr.Button("Right is better", elem_id="vote-right")
            reveal = gr.Markdown(elem_id="reveal")
            agreement_md = gr.Markdown(elem_id="agreement")
            next_btn.click(user_errors(app.next_pair), [vote_run], [item, vote_prompt, left, right, reveal, agreement_md],
                           api_name="next_pair")
            vote_refresh.click(lambda: gr.update(choices=app.run_choices()), None, [vote_run])
            for button, side in ((left_btn, "left"), (tie_btn, "tie"), (right_btn, "right")):
                button.click(vote_handler(app, side), [item], [item, reveal, agreement_md], api_name=f"vote_{side}")
    return demo


def vote_handler(app: App, side: str):
    """The handler of one vote button; Gradio passes the request (who votes) by its annotation."""
    def handler(item, request: gr.Request):
        return app.vote(side, item, request)
    handler.__name__ = f"vote_{side}"
    return user_errors(handler)


def launch(*, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           allowed_dirs: list[Path] | None = None, max_criteria: int = 3, db: str | None = None,
           n_ctx: int = N_CTX, concurrency: int = PAGE_CONCURRENCY, block: bool = True, allow_fake: bool = False,
           allow_downloads: bool = False, show_all_runs: bool = False, limits: views.StudyLimits | None = None,
           settings: Settings | None = None):
    """Start the page; returns the Gradio app (``block=False`` for tests and benchmarks)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    public = host not in {"127.0.0.1", "localhost", "::1"}
    app = App(Store(db), public=public, allowed_dirs=allowed_dirs, max_criteria=max_criteria, n_ctx=n_ctx,
              allow_fake=allow_fake, allow_downloads=allow_downloads, show_all_runs=show_all_runs, limits=limits,
              concurrency=concurrency, settings=settings)
    demo = build(app).queue(default_concurrency_limit=concurrency, max_size=64)
    demo.launch(server_name=host, server_port=port, auth=auth, show_error=False, ssr_mode=False, quiet=True,
                prevent_thread_lock=not block, allowed_paths=[str(app.files)], max_file_size=app.limits.upload_bytes)
    return demo
