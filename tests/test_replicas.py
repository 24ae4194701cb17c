"""Replicas of one model (issue #21, section 1): the choice of a replica, taking one out and back
(an injected clock: no sleeping), one model's identity whatever replica answered, the key only to
configured replicas, and a study on three real loopback servers, one of them killed mid-study."""

import collections
import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from llm_judge import LLMJudgeError, make_sampling, parse_criteria
from llm_judge.backends import get_backend
from llm_judge.backends.openai import OpenAIBackend, identity_spec, parse_replicas
from llm_judge.backends.replicas import Replicas
from llm_judge.compare import Candidate
from llm_judge.config import Settings, parse_config
from llm_judge.judging import model_identity
from llm_judge.present import page as views
from llm_judge.prompts import PromptItem
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, summarize

from .conftest import free_port
from .test_public_page import Recorder

A, B, C = "http://a/v1", "http://b/v1", "http://c/v1"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pool(*urls, limit=4, backoff=2.0, cap=60.0):
    clock = Clock()
    return Replicas(urls or (A, B, C), limit, backoff=backoff, cap=cap, clock=clock), clock


# --- the choice --------------------------------------------------------------------------------------

def test_each_call_goes_to_the_replica_with_the_fewest_in_flight():
    replicas, _ = pool()
    a, b, c = (replicas.choose() for _ in range(3))
    assert [r.url for r in (a, b, c)] == [A, B, C]
    replicas.settle(b, "ok", 0.1)  # b is idle again, a and c still busy
    assert replicas.choose().url == B
    replicas.settle(a, "ok", 0.1)
    replicas.settle(c, "ok", 0.1)  # in flight now: a 0, b 1, c 0
    assert {replicas.choose().url, replicas.choose().url} == {A, C}


def test_equal_replicas_take_turns():
    replicas, _ = pool()
    order = []
    for _ in range(7):
        r = replicas.choose()
        order.append(r.url)
        replicas.settle(r, "ok", 0.01)
    assert order == [A, B, C, A, B, C, A]


def test_each_replica_keeps_its_own_limit_and_a_retry_goes_elsewhere():
    replicas, _ = pool(A, B, limit=2)
    taken = [replicas.choose() for _ in range(4)]
    assert sorted(r.url for r in taken) == [A, A, B, B]
    assert replicas.choose() is None  # every slot of both is busy
    replicas.settle(taken[0], "failed")
    replicas.settle(taken[1], "ok")
    # a and b now have one slot free each (and equal in flight): the call that failed on a goes to b
    assert replicas.choose(avoid=taken[0]).url == (B if taken[0].url == A else A)


# --- out and back ------------------------------------------------------------------------------------

def test_a_refused_connection_takes_a_replica_out_and_it_comes_back_on_probation():
    replicas, clock = pool(A, B)
    a = replicas.choose()
    replicas.settle(a, "refused")
    assert replicas.in_service() == [B]
    assert {replicas.choose().url for _ in range(3)} == {B}  # nothing goes to a while it is out
    clock.now = 1.99
    assert replicas.in_service() == [B]
    clock.now = 2.0  # the back-off is over: a takes one call (a probe) and no more
    probe = replicas.choose()
    assert probe.url == A and replicas.replicas[0].probing
    assert replicas.choose().url == B  # no second call for a while it is on probation
    replicas.settle(probe, "refused")  # the probe fails: out for twice as long
    clock.now = 5.99
    assert replicas.in_service() == [B]
    clock.now = 6.0
    probe = replicas.choose()
    assert probe.url == A
    replicas.settle(probe, "ok", 0.05)  # answered: back in full service, its failures forgotten
    assert replicas.replicas[0].in_flight == 0 and not replicas.replicas[0].probing
    assert replicas.replicas[0].outs == 0
    assert replicas.counts()[A] == {"calls": 3, "failures": 2, "mean_ms": 50.0, "taken_out": 2}


def test_a_streak_of_failures_takes_a_replica_out_and_an_answer_breaks_the_streak():
    replicas, _ = pool(A, B)
    a = replicas.replicas[0]

    def attempt(outcome):
        a.in_flight += 1
        replicas.settle(a, outcome)

    for outcome in ("failed", "failed", "ok", "failed", "failed"):
        attempt(outcome)
    assert replicas.in_service() == [A, B]  # never three in a row
    attempt("failed")  # the third in a row
    assert replicas.in_service() == [B] and a.taken_out == 1


def test_the_time_out_doubles_up_to_its_cap():
    replicas, clock = pool(A, B, backoff=2.0, cap=10.0)
    a = replicas.replicas[0]
    outs = []
    for _ in range(5):
        a.in_flight += 1
        replicas.settle(a, "refused")
        outs.append(a.back_at - clock.now)
        clock.now = a.back_at  # back on probation; the probe fails again next time round
        assert replicas.in_service() == [A, B]
    assert outs == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_lone_replica_is_never_taken_out():
    replicas, _ = pool(A)
    for _ in range(10):
        replicas.settle(replicas.choose(), "refused")
    assert replicas.in_service() == [A] and replicas.counts()[A]["taken_out"] == 0


def test_an_attempt_stopped_before_its_end_counts_nothing():
    replicas, _ = pool(A, B)
    replicas.settle(replicas.choose(), "aborted")
    assert replicas.counts()[A] == {"calls": 0, "failures": 0, "mean_ms": None, "taken_out": 0}
    assert replicas.replicas[0].in_flight == 0


# --- one model, whatever replica answered -------------------------------------------------------------

def test_the_model_is_one_model_whatever_the_order_of_its_replicas(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_JUDGE_CONFIG", str(tmp_path / "none.toml"))
    one = get_backend("openai:m@http://127.0.0.1:9/v1,http://127.0.0.1:8/v1/")
    other = get_backend("openai:m@http://127.0.0.1:8/v1,http://127.0.0.1:9/v1")
    assert model_identity(one) == model_identity(other) == {"spec": "openai:m@http://127.0.0.1:8/v1,http://127.0.0.1:9/v1"}
    assert one.concurrency == 32  # 16 slots each
    single = get_backend("openai:m@http://127.0.0.1:9/v1/")
    assert model_identity(single) == {"spec": "openai:m@http://127.0.0.1:9/v1/"}  # as written, as before
    assert "replicas" not in single.describe() and single.describe()["base_url"] == "http://127.0.0.1:9/v1"
    assert set(one.describe()["replicas"]) == {"http://127.0.0.1:8/v1", "http://127.0.0.1:9/v1"}


def test_replica_specs_are_checked_in_one_line():
    assert parse_replicas("m@http://a/v1,https://b:8/v1") == ("m", ("http://a/v1", "https://b:8/v1"))
    for rest, needle in (("m@http://a/v1,", "bad server URL ''"), ("m@http://a/v1,ftp://b", "bad server URL 'ftp://b'"),
                         ("m@http://a/v1,http://a/v1/", "names a server twice")):
        with pytest.raises(LLMJudgeError, match=needle) as info:
            parse_replicas(rest)
        assert "\n" not in str(info.value)
    assert identity_spec("m@http://b/v1,http://a/v1") == "openai:m@http://a/v1,http://b/v1"


def test_a_config_file_lists_a_models_replicas_in_base_url():
    entries = parse_config('[models.fleet]\nspec = "openai:m"\nbase_url = ["http://a/v1", "http://b/v1"]\n'
                           '[models.one]\nspec = "openai:m"\nbase_url = "http://a/v1"\n', "c.toml")
    assert entries["fleet"].spec == "openai:m@http://a/v1,http://b/v1"
    assert entries["one"].spec == "openai:m@http://a/v1"
    for table, needle in (('spec = "openai:m@http://a/v1"\nbase_url = ["http://b/v1"]', "names its server twice"),
                          ('spec = "openai:m"\nbase_url = []', "must be a URL or a list of URLs"),
                          ('spec = "openai:m"\nbase_url = [1]', "must be a URL or a list of URLs")):
        with pytest.raises(LLMJudgeError, match=needle):
            parse_config(f"[models.x]\n{table}\n", "c.toml")


# --- the key goes only where its operator configured it -----------------------------------------------

KEY = "sk-operator-replica-4242"


def test_the_key_is_decided_for_each_replica_url(tmp_path, monkeypatch):
    operator, visitor = Recorder(), Recorder()
    try:
        config = tmp_path / "config.toml"
        config.write_text(f'[models.judge]\nspec = "openai:m@{operator.url}"\n')
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        settings = Settings(config=config)
        spec = f"openai:m@{operator.url},{visitor.url}"  # a visitor lists the operator's server and their own
        backend = get_backend(spec, settings, key_configured_only=True)
        for i in range(6):
            backend.generate([{"role": "user", "content": f"q{i}"}], make_sampling("greedy"))
        assert len(operator.headers) == len(visitor.headers) == 3  # both were called
        assert operator.headers == [f"Bearer {KEY}"] * 3
        assert visitor.headers == [None] * 3  # the visitor's replica never saw the key
        assert any(f"is not sent to {visitor.url}" in w for w in backend.warnings)
        assert not backend.send_key
        # the operator's own command line sends it to both
        mine = OpenAIBackend("s", "m", [operator.url, visitor.url])
        assert mine.keyed == {operator.url: True, visitor.url: True}
    finally:
        operator.close()
        visitor.close()


def test_a_public_page_checks_every_replica_url():
    configured = {"openai:m@http://127.0.0.1:8/v1", "openai:m@http://127.0.0.1:7/v1,http://127.0.0.1:6/v1"}
    policy = dict(public=True, allowed_dirs=[], configured=configured)
    with pytest.raises(LLMJudgeError, match="server URLs are restricted"):
        views.check_spec_allowed("openai:m@http://127.0.0.1:8/v1,http://127.0.0.1:9/v1", **policy)
    with pytest.raises(LLMJudgeError, match="server URLs are restricted"):
        views.check_spec_allowed("openai:other@http://127.0.0.1:8/v1,http://127.0.0.1:7/v1", **policy)
    for spec in ("openai:m@http://127.0.0.1:8/v1,http://127.0.0.1:7/v1", "openai:m@http://127.0.0.1:6/v1/"):
        views.check_spec_allowed(spec, **policy)  # each URL is one the operator configured for m


# --- real servers ------------------------------------------------------------------------------------

def test_every_replica_out_is_one_error_naming_them():
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]  # nothing listens there
    backend = OpenAIBackend("openai:m@" + ",".join(urls), "m", urls, max_attempts=4, backoff_base=0.001)
    with pytest.raises(LLMJudgeError) as info:
        backend.generate([{"role": "user", "content": "x"}], make_sampling("greedy"))
    text = str(info.value)
    assert text.startswith(f"openai:m@{urls[0]},{urls[1]} gave no answer after 4 attempts on its replicas {urls[0]}, {urls[1]}: ")
    assert "every replica is out" in text and "\n" not in text
    counts = backend.describe()["replicas"]
    assert sum(c["calls"] for c in counts.values()) == 2 and all(c["taken_out"] == 1 for c in counts.values())


LOGGED_SERVER = """
import asyncio, hashlib, sys
from llm_judge.testing.server import TestServer, serve
log = open(sys.argv[1], "a", buffering=1)
class Logged(TestServer):
    async def respond(self, method, path, body, writer, headers=None):
        digest = hashlib.sha256(body).hexdigest()[:16] if method == "POST" else None
        if digest:
            log.write(f"got {digest}\\n")
        keep = await super().respond(method, path, body, writer, headers)
        if digest:
            log.write(f"sent {digest}\\n")
        return keep
asyncio.run(serve(Logged(delay=float(sys.argv[2])), "127.0.0.1", 0))
"""


def logged_server(log, delay: float) -> tuple[subprocess.Popen, str]:
    """The fault-injecting test server, logging each request it gets and each answer it sends."""
    proc = subprocess.Popen([sys.executable, "-c", LOGGED_SERVER, str(log), str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc, line.split()[-1]


def read_log(path) -> collections.Counter:
    return collections.Counter(tuple(line.split()) for line in path.read_text().splitlines())


def kill_after(proc: subprocess.Popen, log, requests: int) -> threading.Thread:
    """Kill -9 ``proc`` once it has received ``requests`` requests (with some still unanswered)."""
    def watch():
        while sum(1 for line in log.read_text().splitlines() if line.startswith("got")) < requests:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_study_on_three_replicas_completes_when_one_is_killed_mid_study(tmp_path):
    logs = [tmp_path / f"server{i}.log" for i in range(3)]
    servers = [logged_server(log, 0.1) for log in logs]
    try:
        spec = "openai:test@" + ",".join(url for _proc, url in servers)
        n = 30
        config = StudyConfig(
            prompts=[PromptItem(str(i), f"Question number {i}?") for i in range(n)],
            candidates={"x": Candidate(spec, make_sampling("p1")), "y": Candidate(spec, make_sampling("p2", seed=1))},
            judge=spec, judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None), mode="pairwise")
        store = Store(tmp_path / "replicas.db")
        watcher = kill_after(servers[0][0], logs[0], 8)
        run_id = run_study(config, store, load_options={"concurrency": 3, "timeout": 10.0, "backoff_base": 0.01})
        watcher.join(5)
        assert servers[0][0].poll() is not None, "the first replica was not killed during the study"
        summary = summarize(store, run_id).to_dict()
        assert summary["status"] == "done"
        judged = store.db.execute("SELECT COUNT(*) FROM run_items i JOIN judgments j ON i.result_key=j.key "
                                  "WHERE i.run_id=? AND i.kind='pairwise' AND j.status='scored'", (run_id,)).fetchone()[0]
        assert judged == 2 * n  # every pair in both orders
        events = [read_log(log) for log in logs]
        calls = set().union(*({d for _e, d in e} for e in events))
        assert len(calls) == 2 * n + 2 * n  # every answer and every judgment, each its own request
        killed_unanswered = {d: events[0][("got", d)] - events[0][("sent", d)] for d in calls}
        for d in calls:  # answered once; sent again only where the killed replica did not answer
            assert sum(e[("sent", d)] for e in events) == 1, d
            assert sum(e[("got", d)] for e in events) - killed_unanswered[d] == 1, d
        assert sum(killed_unanswered.values()) >= 1  # the kill cut calls off (they went to the others)
        for e in events[1:]:  # the survivors answered all they got
            assert all(e[("sent", d)] == e[("got", d)] for d in calls)
        replicas = json.loads(store.run(run_id)["manifest"])["models"][spec]["replicas"]
        killed, *alive = (replicas[url] for _proc, url in servers)
        assert killed["taken_out"] >= 1 and killed["failures"] >= 1
        assert sum(r["calls"] - r["failures"] for r in replicas.values()) == len(calls)  # one answer each
        # every request a server got was counted (and the attempts the killed one refused besides)
        assert sum(r["calls"] for r in replicas.values()) >= sum(e[("got", d)] for e in events for d in calls)
        assert all(r["failures"] == 0 and r["mean_ms"] >= 100 for r in alive)
        assert summary["replicas"] == {spec: replicas}  # run --json shows each replica's counts
    finally:
        for proc, _url in servers:
            proc.kill()
            proc.wait(10)


def test_compare_json_shows_each_replicas_counts(test_server):
    from llm_judge import compare

    urls = [test_server(), test_server()]
    spec = "openai:test@" + ",".join(urls)
    result = compare("Why is the sky blue?", candidates={"A": Candidate(spec, make_sampling("p1")),
                                                         "B": Candidate(spec, make_sampling("p2"))},
                     judge=spec).to_dict()
    counts = result["replicas"][identity_spec(spec.partition(":")[2])]
    assert set(counts) == set(urls)
    assert sum(c["calls"] for c in counts.values()) == 4 and all(c["calls"] == 2 for c in counts.values())
    single = compare("Why?", candidates={"A": Candidate(f"openai:test@{urls[0]}", make_sampling("p1")),
                                         "B": Candidate(f"openai:test@{urls[0]}", make_sampling("p2"))},
                     judge=f"openai:test@{urls[0]}").to_dict()
    assert "replicas" not in single  # one server: the output of before


@pytest.mark.model
def test_a_study_completes_when_a_real_llama_server_replica_is_killed_mid_study(tmp_path):
    """A real llama-server on the built-in model beside two test servers as one model's replicas;
    llama-server is killed -9 once the study has written some results: the study completes, and
    every call is answered once (the test servers' logs and the replicas' counts say so)."""
    from llm_judge import engine
    from llm_judge.backends.llamacpp import embedded_model_path

    binary = engine.find_binary()
    if binary is None:
        pytest.skip("llama-server is not built here (scripts/setup.sh builds it)")
    real = engine.LocalServer(engine.ServerSpec(str(embedded_model_path()), None, 1024, 2, None), binary)
    logs = [tmp_path / f"server{i}.log" for i in range(2)]
    servers = [logged_server(log, 0.2) for log in logs]
    try:
        spec = "openai:smollm2@" + ",".join([real.url] + [url for _proc, url in servers])
        n = 12
        config = StudyConfig(
            prompts=[PromptItem(str(i), f"Name a colour, number {i}.") for i in range(n)],
            candidates={"x": Candidate(spec, make_sampling("p1", max_tokens=12)),
                        "y": Candidate(spec, make_sampling("p2", max_tokens=12, seed=1))},
            judge=spec, judge_sampling=make_sampling(None, temperature=0, max_tokens=48),
            criteria=parse_criteria(None), mode="pairwise")
        db = tmp_path / "replicas.db"
        store = Store(db)
        killed = threading.Event()

        def kill_when_some_are_written():
            watcher = Store(db)
            while watcher.db.execute("SELECT COUNT(*) FROM run_items").fetchone()[0] < 8:
                time.sleep(0.02)
            real.proc.send_signal(signal.SIGKILL)
            killed.set()

        threading.Thread(target=kill_when_some_are_written, daemon=True).start()
        run_id = run_study(config, store, load_options={"concurrency": 2, "timeout": 60.0, "backoff_base": 0.01})
        assert killed.is_set() and real.proc.wait(10) == -signal.SIGKILL
        summary = summarize(store, run_id).to_dict()
        assert summary["status"] == "done"
        answered = store.db.execute("SELECT COUNT(*) FROM run_items i JOIN judgments j ON i.result_key=j.key "
                                    "WHERE i.run_id=? AND i.kind='pairwise' AND j.status!='failed'",
                                    (run_id,)).fetchone()[0]
        assert answered == 2 * n  # every pair in both orders (a short verdict may be unscored: it was answered)
        events = [read_log(log) for log in logs]
        for d in set().union(*({d for _e, d in e} for e in events)):  # a test server answered each call once
            assert sum(e[("sent", d)] for e in events) <= 1, d
        counts = summary["replicas"][spec]
        assert counts[real.url]["failures"] >= 1 and counts[real.url]["taken_out"] >= 1  # out, its calls elsewhere
        assert sum(r["calls"] - r["failures"] for r in counts.values()) == 4 * n  # one answer per call
    finally:
        real.stop()
        for proc, _url in servers:
            proc.kill()
            proc.wait(10)
