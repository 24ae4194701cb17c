"""The page's security, its runs, bounds, cancellation and votes (issue #23 points 1, 8 and the votes
of 5): decided on parsed specs, the operator's key only to configured servers, a public page's own
runs, bounded studies, comparisons that stop when their visitor leaves, one vote per visitor."""

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llm_judge import LLMJudgeError, make_sampling, parse_criteria
from llm_judge.backends import parse_spec
from llm_judge.compare import Candidate
from llm_judge.present import page as views
from llm_judge.prompts import load_prompts
from llm_judge.store import Store
from llm_judge.study import StudyConfig, export_run, run_study, verdict_records
from llm_judge.testing import fake

from .conftest import free_port, prefers, within

KEY = "sk-operator-secret-4242"
PUBLIC = dict(public=True, allowed_dirs=[], configured=set())


@pytest.fixture(autouse=True)
def _no_config(tmp_path, monkeypatch):
    """No config file unless a test writes one; the operator's key in the environment."""
    monkeypatch.setenv("LLM_JUDGE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def configure(tmp_path, **models: str) -> set[str]:
    """Write the operator's config file naming ``models`` (name -> spec); returns their specs."""
    (tmp_path / "config.toml").write_text("".join(f'[models.{n}]\nspec = "{s}"\n' for n, s in models.items()))
    return set(models.values())


class Recorder:
    """A loopback OpenAI-compatible server that records the Authorization header of every request
    and counts the requests in flight (each answered after ``delay`` seconds)."""

    def __init__(self, delay: float = 0.0):
        self.headers: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with recorder.lock:
                    recorder.headers.append(self.headers.get("authorization"))
                    recorder.in_flight += 1
                    recorder.max_in_flight = max(recorder.max_in_flight, recorder.in_flight)
                try:
                    time.sleep(delay)
                    self.answer(body)
                finally:
                    with recorder.lock:
                        recorder.in_flight -= 1

            def answer(self, body: dict):
                content = "an answer" if "response_format" not in body else '{"winner": "A"}'
                if body.get("stream"):
                    chunk = {"choices": [{"delta": {"content": content}, "finish_reason": "stop"}]}
                    data, kind = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(), "text/event-stream"
                else:
                    data = json.dumps({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}).encode()
                    kind = "application/json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    servers = []

    def start(delay: float = 0.0) -> Recorder:
        servers.append(Recorder(delay))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def compare_args(model_a, model_b, judge, prompt="Why is the sky blue?"):
    return [model_a, model_b, judge, "p1", "p2", "16", "", "", "", "", "", "", "", "", "0", ["Relevance"], "", prompt]


# --- 1. specs: add-ons, decided on the parsed spec ----------------------------------------------------

def test_a_backend_takes_only_the_add_ons_it_declares():
    assert parse_spec("embedded+lora:/runs/a.gguf") == ("embedded", "+lora:/runs/a.gguf")
    assert parse_spec("gguf:/m/base.gguf+lora:/runs/a.gguf") == ("gguf", "/m/base.gguf+lora:/runs/a.gguf")
    for spec, needle in (("openai+x:m@http://127.0.0.1:9/v1", "openai models take no add-on, not +x"),
                         ("openai:m@http://127.0.0.1:9/v1+lora:/a.gguf", "openai models take no add-on, not +lora"),
                         ("fake+y:x", "fake models take no add-on, not +y"),
                         ("gguf:/m/base.gguf+vision:/m/proj.gguf", "gguf models take +lora:, not +vision")):
        with pytest.raises(LLMJudgeError, match=needle.replace("+", r"\+")) as info:
            parse_spec(spec)
        assert "\n" not in str(info.value)


def test_a_public_page_decides_on_the_parsed_spec(tmp_path):
    allowed = tmp_path / "models"
    allowed.mkdir()
    cases = [("openai+x:m@http://127.0.0.1:9/v1", dict(PUBLIC), "take no add-on"),
             ("fake+y:x", dict(PUBLIC), "take no add-on"),
             (f"openai+lora:{allowed}/x.gguf@http://127.0.0.1:9/v1", dict(PUBLIC, allowed_dirs=[allowed]),
              "take no add-on"),
             (f"embedded+lora:{tmp_path}/outside.gguf", dict(PUBLIC, allowed_dirs=[allowed]),
              "local model files are restricted"),
             (f"gguf:{allowed}/a.gguf+lora:{tmp_path}/outside.gguf", dict(PUBLIC, allowed_dirs=[allowed]),
              "local model files are restricted"),
             ("openai:m@http://127.0.0.1:9/v1", dict(PUBLIC, configured={"openai:m@http://127.0.0.1:8/v1"}),
              "server URLs are restricted")]
    for spec, policy, needle in cases:
        with pytest.raises(LLMJudgeError, match=needle):
            views.check_spec_allowed(spec, **policy)
    views.check_spec_allowed(f"embedded+lora:{allowed}/a.gguf", **dict(PUBLIC, allowed_dirs=[allowed]))
    configured = configure(tmp_path, judge="openai:m@http://127.0.0.1:8/v1")
    for spec in ("judge", "openai:m@http://127.0.0.1:8/v1", "openai:m@http://127.0.0.1:8/v1/"):  # the same server
        views.check_spec_allowed(spec, **dict(PUBLIC, configured=configured))


def test_a_public_page_refuses_an_add_on_url_through_gradio(tmp_path, recorder):
    """The issue's reproduction: gradio_client at /compare, nothing configured, no --allow-dir."""
    from gradio_client import Client

    from llm_judge.ui import App

    visitor = recorder()
    with served(App(Store(tmp_path / "ui.db"), public=True)) as url:
        with pytest.raises(Exception, match="openai models take no add-on"):
            Client(url, verbose=False).predict(*compare_args(f"openai+x:m@{visitor.url}", "embedded", "embedded"),
                                               api_name="/compare")
    assert visitor.headers == []  # the visitor's server was never called


# --- 1. the key goes only to the servers the operator configured --------------------------------------

def test_the_visitors_server_never_receives_the_operators_key(tmp_path, recorder):
    from llm_judge.ui import App

    visitor, operator = recorder(), recorder()
    configure(tmp_path, judge=f"openai:m@{operator.url}")
    app = App(Store(tmp_path / "ui.db"))  # on localhost a visitor may name any server, but not get the key
    *_, (status, _a, _b, _rows, verdict, result) = app.compare(*compare_args(f"openai:m@{visitor.url}", "judge", "judge"))
    assert status == "Done (saved)."
    assert visitor.headers and all(h is None for h in visitor.headers), visitor.headers
    assert operator.headers and all(h == f"Bearer {KEY}" for h in operator.headers)
    assert any("is not sent to" in w for w in result["warnings"])


def test_the_key_decision_reads_the_url_as_the_client_sends_it(tmp_path):
    from llm_judge.backends.openai import OpenAIBackend, endpoint

    configure(tmp_path, judge="openai:m@http://127.0.0.1:8/v1")
    page = dict(key_configured_only=True)
    assert OpenAIBackend("s", "m", "http://127.0.0.1:8/v2", **page).send_key  # same scheme, host and port
    for url in ("http://127.0.0.1:9/v1", "https://127.0.0.1:8/v1", "http://127.0.0.1:8@10.0.0.1:8/v1",
                "http://10.0.0.1:8/v1#@127.0.0.1:8"):
        assert not OpenAIBackend("s", "m", url, **page).send_key, url
    assert OpenAIBackend("s", "m", "http://10.0.0.1:8/v1").send_key  # the operator's own command line
    assert endpoint("http://127.0.0.1:8@10.0.0.1:8/v1") == ("http", "10.0.0.1", 8)


# --- 1. a public page's runs, and its bounded studies -------------------------------------------------

def no_progress(*_args, **_kwargs):
    pass


def study_args(candidates="fake:good#good\nfake:bad#bad", source="seed-10", upload=None, limit="2"):
    return [source, upload, candidates, "fake:judge", "single", limit, "16"]


def scripted():
    fake.named("good").responder = lambda m, s, sch: "GOOD answer"
    fake.named("bad").responder = lambda m, s, sch: "meh"
    fake.named("judge").responder = prefers("GOOD")


def cli_run(store: Store) -> str:
    cfg = StudyConfig(prompts=load_prompts("seed-10", limit=2),
                      candidates={"good": Candidate("fake:good", make_sampling("p1")),
                                  "bad": Candidate("fake:bad", make_sampling("p2"))},
                      judge="fake:judge", judge_sampling=make_sampling("greedy"), criteria=parse_criteria(None),
                      mode="both")
    return run_study(cfg, store)


def test_a_public_page_lists_opens_and_votes_on_its_own_runs_only(tmp_path):
    from llm_judge.ui import App

    scripted()
    store = Store(tmp_path / "s.db")
    operators = cli_run(store)  # the operator's run, from the command line
    app = App(store, public=True, allow_fake=True)
    _head, *_rest, runs = app.study(*study_args(), progress=no_progress)
    page_run = runs["value"]
    assert [rid for _label, rid in app.run_choices()] == [page_run]
    for call in (lambda: app.open_run(operators), lambda: app.next_pair(operators), lambda: app.open_run(operators[:4]),
                 lambda: app.vote("left", {"run_id": operators})):
        with pytest.raises(LLMJudgeError, match=f"no run '{operators[:4]}.*' on this page"):
            call()
    assert app.open_run(page_run[:6])[0].startswith(f"Run **{page_run}**")
    for shown in (App(store, public=True, show_all_runs=True), App(store)):  # the operator says so; localhost
        assert {rid for _label, rid in shown.run_choices()} == {page_run, operators}


def test_a_page_study_is_bounded(tmp_path):
    from llm_judge.ui import App

    scripted()
    app = App(Store(tmp_path / "s.db"), public=True, allow_fake=True, limits=views.StudyLimits(200, 3, 2))
    big = tmp_path / "big.txt"
    big.write_text("".join(f"Question {i}?\n" for i in range(40)))
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's own file\n")
    size = big.stat().st_size
    cases = [(study_args(upload=str(big)), f"the uploaded file has {size} bytes: this page takes prompt files of up to 200"),
             (study_args(limit=""), "this page runs up to 3 prompts per study (10 given)"),
             (study_args(candidates="fake:good#a\nfake:bad#b\nfake:good#c"),
              "this page runs up to 2 candidates per study (3 given)"),
             (study_args(source=str(secret)), "is not offered here: choose seed-10 or upload a file")]
    for args, needle in cases:
        with pytest.raises(LLMJudgeError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            app.study(*args, progress=no_progress)
    assert app.store.runs() == []


# --- 8. a comparison stops when its visitor leaves ----------------------------------------------------

class served:
    """The page of ``app`` served by Gradio on a free loopback port, as ``launch`` serves it."""

    def __init__(self, app, concurrency: int = 8):
        self.app, self.concurrency = app, concurrency

    def __enter__(self) -> str:
        from llm_judge.ui import build

        port = free_port()
        self.demo = build(self.app).queue(default_concurrency_limit=self.concurrency, max_size=64)
        self.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                         show_error=False, ssr_mode=False)
        return f"http://127.0.0.1:{port}/"

    def __exit__(self, *_exc):
        self.demo.close()


def comparing() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llm-judge-compare"]


def wait_for(condition, seconds: float = 60.0, what=lambda: "") -> None:
    assert within(seconds, condition), f"gave up waiting {what()}"


def test_comparisons_stop_when_their_visitors_leave(tmp_path, recorder):
    from gradio_client import Client

    from llm_judge.ui import App

    server = recorder(delay=3.0)
    spec = f"openai:test@{server.url}"
    app = App(Store(tmp_path / "ui.db"))
    with served(app) as url:
        visitors = [Client(url, verbose=False) for _ in range(6)]
        jobs = [v.submit(*compare_args(spec, spec, spec, prompt=f"Question {i}?"), api_name="/compare")
                for i, v in enumerate(visitors)]
        wait_for(lambda: server.in_flight == 6, what=lambda: f"({len(server.headers)} requests)")  # six first answers
        leaving = [threading.Thread(target=job.cancel) for job in jobs]  # six visitors leave at once:
        for t in leaving:                                                 # Gradio closes their handlers
            t.start()
        for t in leaving:
            t.join()
        wait_for(lambda: not comparing())
        served_then = len(server.headers)
        time.sleep(4.0)  # longer than the next request of a comparison would take to arrive
    assert len(server.headers) == served_then == 6  # each one's first answer only, then nothing
    assert app.store.comparisons() == []


def test_the_concurrency_limit_holds_while_a_left_comparison_stops(tmp_path, recorder):
    from gradio_client import Client

    from llm_judge.ui import App

    server = recorder(delay=1.5)
    spec = f"openai:test@{server.url}"
    app = App(Store(tmp_path / "ui.db"), concurrency=1)
    with served(app, concurrency=1) as url:
        left = Client(url, verbose=False).submit(*compare_args(spec, spec, spec, prompt="First?"), api_name="/compare")
        wait_for(lambda: server.in_flight == 1)
        left.cancel()
        second = Client(url, verbose=False).submit(*compare_args(spec, spec, spec, prompt="Second?"),
                                                   api_name="/compare")
        status, *_rest = second.result(timeout=120)
    assert status == "Done (saved)."
    assert server.max_in_flight == 1  # the second never ran beside the first's last request


# --- 5. votes: one per visitor and pair, the majority exported with its counts ------------------------

def test_one_visitor_counts_once_per_pair_and_the_majority_is_exported(tmp_path):
    from llm_judge.votes import agreement

    scripted()
    store = Store(tmp_path / "s.db")
    run_id = cli_run(store)
    first, second = (p["prompt_id"] for p in store.prompts(run_id))
    a, b = (lambda r: (r["model_a"], r["model_b"]))(verdict_records(store, run_id)[0])  # the run's orientation
    vote = lambda pid, choice, who: store.add_vote(run_id, pid, a, b, a, choice, who)  # noqa: E731
    vote(first, "A", "alice")
    vote(first, "A", "bob")
    for _ in range(50):  # the last word, 50 times, from one visitor
        vote(first, "B", "mallory")
        vote(second, "B", "mallory")
    vote(second, "A", "alice")
    vote(second, "tie", "alice")  # alice changes her mind: her vote is replaced
    records = {r["id"]: r for r in verdict_records(store, run_id)}
    assert (records[first]["human"], records[first]["human_votes"]) == ("A", {"A": 2, "B": 1, "tie": 0})
    assert (records[second]["human"], records[second]["human_votes"]) == ("tie", {"A": 0, "B": 1, "tie": 1})
    export_run(store, run_id, tmp_path / "v.jsonl", "verdicts")
    exported = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert {r["id"]: r["human_votes"] for r in exported} == {first: {"A": 2, "B": 1, "tie": 0},
                                                              second: {"A": 0, "B": 1, "tie": 1}}
    assert agreement(store, run_id)["votes"] == 5


def test_votes_through_the_page_count_once_per_visitor(tmp_path):
    from gradio_client import Client

    from llm_judge.ui import App

    scripted()
    store = Store(tmp_path / "s.db")
    run_id = cli_run(store)
    with served(App(store)) as url:
        visitors = [Client(url, verbose=False), Client(url, verbose=False)]
        for client in visitors:
            for _ in range(4):  # two votes on each of the two pairs
                client.predict(run_id, api_name="/next_pair")
                *_rest, agreement_text = client.predict(api_name="/vote_tie")
    rows = store.votes(run_id)
    assert len(rows) == 8 and len({r["voter"] for r in rows}) == 2
    assert agreement_text.startswith("4 votes (one per visitor and pair) on 2 pairs")
    assert [r["human_votes"] for r in verdict_records(store, run_id)] == [{"A": 0, "B": 0, "tie": 2}] * 2


def test_old_votes_stay_readable_after_the_voter_migration(tmp_path):
    """A store written before votes had voters: its votes count as one unknown voter's, the latest."""
    scripted()
    path = tmp_path / "old.db"
    store = Store(path)
    run_id = cli_run(store)
    pid = store.prompts(run_id)[0]["prompt_id"]
    oriented = (lambda r: (r["model_a"], r["model_b"]))(verdict_records(store, run_id)[0])
    store.close()
    with sqlite3.connect(path) as db:  # back to the schema before m008
        db.executescript("DROP TABLE page_runs; ALTER TABLE votes DROP COLUMN voter;"
                         "DELETE FROM schema_migrations WHERE name='m008_page_runs_and_voters'")
        for choice in ("A", "B"):
            db.execute("INSERT INTO votes (run_id, prompt_id, label_a, label_b, shown_left, choice, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, 0)", (run_id, pid, *oriented, oriented[0], choice))
    store = Store(path)
    assert "m008_page_runs_and_voters" in {r[0] for r in store.db.execute("SELECT name FROM schema_migrations")}
    record = next(r for r in verdict_records(store, run_id) if r["id"] == pid)
    assert (record["human"], record["human_votes"]) == ("B", {"A": 0, "B": 1, "tie": 0})
    assert store.runs(page_only=True) == []
