"""The local engine's servers over their life: evicted with their model, safe after a fork, no leftovers.

Real parts only: the ``llama-server`` the set-up script builds, the built-in model at small settings,
real processes, signals and sockets. One test per point of issue #23 (points 9, 10, 11), each seen to
fail with its safeguard switched off:

- a server stops when its model leaves the model cache (and with ``forget_backends``), shared
  servers when the last model using them does, a call in flight first finishing;
- a program that forks after starting a server: the child starts and stops its own, never the parent's;
- no server log survives a ``kill -9``; the server binds its own port (nobody listening there first
  gets anything); the death signal's parent check; the operator's API key never goes to it.
"""

import contextlib
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llm_judge import engine
from llm_judge.backends import MAX_LOADED, forget_backends, get_backend, http11
from llm_judge.backends.llamacpp import embedded_model_path
from llm_judge.sampling import SamplingParams
from tests.conftest import within
from tests.test_engine import alive, gone_within, needs_server

HI = [{"role": "user", "content": "Say hi."}]
SMALL = {"engine": "server", "parallel": 1, "n_ctx": 256}  # about 130 MiB a server
HANG_GUARD = 300  # seconds: a bound against a hang, not a measure of speed


def servers_of(parent: int) -> list[int]:
    """The live (not zombie) llama-server processes whose parent is ``parent``, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if name == engine.BINARY and fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on 127.0.0.1:``port`` (/proc/net/tcp -> its fds)."""
    local = f"0100007F:{port:04X}"
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    inodes = {row[9] for row in rows if row[1] == local and row[3] == "0A"}
    fds = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    return any(f"socket:[{inode}]" in fds for inode in inodes)


@pytest.fixture
def no_models():
    forget_backends()
    yield
    forget_backends()


@needs_server
def test_a_server_stops_when_its_model_leaves_the_cache(no_models):
    assert servers_of(os.getpid()) == []
    for i in range(MAX_LOADED + 2):  # distinct contexts: a distinct server each
        get_backend("embedded", **{**SMALL, "n_ctx": 256 + 64 * i})
        assert len(servers_of(os.getpid())) <= MAX_LOADED
    assert len(servers_of(os.getpid())) == MAX_LOADED
    forget_backends()
    assert servers_of(os.getpid()) == []


@needs_server
def test_a_running_servers_log_is_readable_and_a_dead_ones_is_not_listed(no_models):
    backend = get_backend("embedded", **SMALL)
    backend.generate(HI, SamplingParams(max_tokens=4))
    # The server writes its log from a thread of its own, so the line for the finished request can
    # come a moment after the answer: read until it is there (the bound is against a hang).
    within(HANG_GUARD, lambda: "stop processing" in engine.server_logs()[0])
    (log,) = engine.server_logs()
    assert f"listening on http://127.0.0.1:{backend.server.port}" in log and "stop processing" in log
    backend.server.proc.kill()
    backend.server.proc.wait()
    assert engine.server_logs() == []  # still held by its model, but not running


@needs_server
def test_two_loaded_models_on_one_server_keep_it_until_the_last_one_leaves(no_models):
    first = get_backend("embedded", **SMALL)
    second = get_backend(f"gguf:{first.path}", **SMALL)  # another spec, the same file and settings
    assert second.server is first.server
    pid = first.server.proc.pid
    first.close()
    assert alive(pid) and second.generate(HI, SamplingParams(max_tokens=4)).text
    second.close()
    assert not alive(pid)


@needs_server
def test_a_call_in_flight_when_its_model_is_dropped_finishes_and_then_its_server_stops(no_models):
    backend = get_backend("embedded", **SMALL)
    pid = backend.server.proc.pid
    streaming, go_on = threading.Event(), threading.Event()

    def on_token(_text: str) -> None:
        streaming.set()
        go_on.wait(HANG_GUARD)

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(backend.generate, HI, SamplingParams(max_tokens=8), on_token=on_token)
        try:
            assert streaming.wait(HANG_GUARD)
            forget_backends()
            assert alive(pid)  # the answer being written keeps its server
        finally:
            go_on.set()
        assert call.result(HANG_GUARD).text
    assert not alive(pid) and servers_of(os.getpid()) == []


@needs_server
def test_a_model_dropped_from_the_cache_still_answers_on_a_server_held_for_the_call(no_models, monkeypatch):
    backend = get_backend("embedded", **SMALL)
    forget_backends()
    assert servers_of(os.getpid()) == []
    during = []
    post = http11.Connections.post
    monkeypatch.setattr(http11.Connections, "post",
                        lambda self, *a: during.append(servers_of(os.getpid())) or post(self, *a))
    assert backend.generate(HI, SamplingParams(max_tokens=4)).text
    assert during and len(during[0]) == 1  # what a study holding more models than the cache does
    assert servers_of(os.getpid()) == []


@needs_server
def test_the_operators_api_key_never_goes_to_the_local_server(no_models, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-secret")
    backend = get_backend("embedded", **SMALL)
    sent = []
    post = http11.Connections.post
    monkeypatch.setattr(http11.Connections, "post",
                        lambda self, url, body, headers: sent.append(dict(headers)) or post(self, url, body, headers))
    assert backend.generate(HI, SamplingParams(max_tokens=4)).text
    assert sent and not [h for h in sent if "authorization" in {k.lower() for k in h}]


class Recorder(http.server.BaseHTTPRequestHandler):
    """Another process's server: answers 200 to everything and notes what it was sent."""

    seen: list[str] = []

    def do_GET(self) -> None:
        Recorder.seen.append(f"{self.command} {self.path} {self.headers.get('Authorization')}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET

    def log_message(self, *_args) -> None:
        pass


@needs_server
def test_the_server_binds_its_own_port_so_one_already_listening_there_gets_nothing(monkeypatch):
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.seen = []
    threading.Thread(target=other.serve_forever, daemon=True).start()
    taken = other.server_address[1]
    # the race of a free-port check: the port it found is taken before the server binds it
    monkeypatch.setattr(engine, "_free_port", lambda: taken, raising=False)
    model = str(embedded_model_path())
    server = engine.LocalServer(engine.ServerSpec(model, None, 256, 1, None), engine.find_binary())
    try:
        assert server.port != taken and listens_on(server.proc.pid, server.port)
        assert httpx.get(server.root + "/health", timeout=30).status_code == 200
    finally:
        server.stop()
        other.shutdown()
        other.server_close()
    assert Recorder.seen == []


KILLED = textwrap.dedent("""
    import time
    from llm_judge.backends import get_backend
    backend = get_backend("embedded", engine="server", parallel=1, n_ctx=256)
    print(backend.server.proc.pid, flush=True)
    time.sleep(600)
""")


@needs_server
def test_a_killed_llm_judge_leaves_no_server_log_and_no_server_behind(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-c", KILLED], stdout=subprocess.PIPE, text=True, env=env,
                              start_new_session=True)
    pid = None
    try:
        pid = int(parent.stdout.readline())
        # the server writes its log to a file with no name: only it and llm-judge hold it
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        assert os.readlink(f"/proc/{pid}/fd/1").endswith("(deleted)")
        parent.kill()
        parent.wait(HANG_GUARD)
        assert gone_within(pid, 30), f"llama-server {pid} outlived its parent"
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        if parent.poll() is None:
            parent.kill()
        if pid and alive(pid):
            os.kill(pid, 9)


LATE = textwrap.dedent("""
    import os, sys, time
    from llm_judge import engine
    real, pidfile = engine._prctl, sys.argv[1]

    def late_prctl(*args):  # in the server's child, between fork and exec
        parent = os.getppid()
        with open(pidfile + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        while os.getppid() == parent:  # llm-judge dies before the death signal is asked for
            time.sleep(0.05)
        return real(*args)

    engine._prctl = late_prctl
    engine.server_for(engine.ServerSpec("/m.gguf", None, 256, 1, None))
""")


@pytest.mark.skipif(engine._prctl is None, reason="the death signal is Linux's")
def test_a_server_whose_parent_died_before_the_death_signal_was_set_does_not_start(tmp_path):
    fake = tmp_path / "llama-server"  # what runs does not matter: it must never run
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    pidfile = tmp_path / "child.pid"
    env = {**os.environ, engine.ENV_BINARY: str(fake)}
    parent = subprocess.Popen([sys.executable, "-c", LATE, str(pidfile)], env=env, start_new_session=True)
    child = None
    try:
        within(HANG_GUARD, lambda: pidfile.exists() or parent.poll() is not None)
        child = int(pidfile.read_text())
        parent.kill()
        parent.wait(HANG_GUARD)
        assert gone_within(child, 30), f"server process {child} started though llm-judge was dead"
    finally:
        if parent.poll() is None:
            parent.kill()
        if child and alive(child):
            os.kill(child, 9)


FORKS = textwrap.dedent("""
    import json, os, sys, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a process with threads
    from llm_judge.backends import get_backend
    from llm_judge.errors import LLMJudgeError
    from llm_judge.sampling import SamplingParams
    HI, FEW = [{"role": "user", "content": "Say hi."}], SamplingParams(max_tokens=4)
    options = dict(engine="server", parallel=1, n_ctx=256)
    parent = get_backend("embedded", **options)
    before = parent.server.proc.pid
    child = os.fork()
    if child == 0:
        try:
            parent.generate(HI, FEW)
            inherited = "answered"
        except LLMJudgeError as exc:
            inherited = str(exc)
        own = get_backend("embedded", **options)
        text = own.generate(HI, FEW).text
        print(json.dumps({"inherited": inherited, "server": own.server.proc.pid, "text": text}), flush=True)
        sys.exit(0)  # its exit hook stops its own server
    _, status = os.waitpid(child, 0)
    text = parent.generate(HI, FEW).text
    print(json.dumps({"status": status, "before": before, "after": parent.server.proc.pid, "text": text}))
""")


@needs_server
def test_a_program_that_forks_after_starting_a_server_gives_the_child_its_own():
    program = subprocess.Popen([sys.executable, "-c", FORKS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = program.communicate(timeout=HANG_GUARD)
    finally:  # a child left hanging is in the program's process group: end it too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(program.pid, 9)
    lines = out.splitlines()
    assert program.returncode == 0 and len(lines) == 2, err[-2000:]
    child, parent = (json.loads(line) for line in lines)
    assert "loaded before this process was forked" in child["inherited"]
    assert child["text"] and child["server"] != parent["before"]
    assert parent["status"] == 0 and parent["text"] and parent["after"] == parent["before"]
