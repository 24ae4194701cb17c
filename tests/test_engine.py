"""The local engine: llama.cpp's own server with parallel slots behind ``embedded`` and ``gguf:``.

Real parts only: the ``llama-server`` the set-up script builds, the built-in model, real processes
and signals. Each safeguard has a test that fails without it: flash attention off and every sampling
field sent (identical text on both engines), flash attention turned on in both engines alike and
cached apart, the death signal and the exit hook (no orphans), the fallback notice.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llm_judge import engine
from llm_judge.backends import forget_backends, get_backend
from llm_judge.cli import main
from llm_judge.sampling import SamplingParams

from .conftest import within

pytestmark = pytest.mark.model

needs_server = pytest.mark.skipif(engine.find_binary() is None and not os.environ.get("CI"),
                                  reason="llama-server is not built (scripts/setup.sh builds it)")

PROMPTS = [f"Write one sentence about the number {i}." for i in range(8)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not a running server
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    return within(seconds, lambda: not alive(pid), poll=0.1)


@needs_server
def test_local_models_run_on_the_server_engine_with_parallel_slots_by_default():
    backend = get_backend("embedded")
    facts = backend.describe()
    assert facts["engine"] == "llama-server" and facts["parallel"] == engine.DEFAULT_PARALLEL == backend.concurrency
    assert facts["sha256"] and facts["n_ctx"] == 2048
    assert backend.server.running and backend.server.url.startswith("http://127.0.0.1:")
    out = backend.generate([{"role": "user", "content": "Say hello."}], SamplingParams(max_tokens=8))
    assert out.text and out.completion_tokens and out.completion_tokens <= 8


@needs_server
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_the_same_seed_gives_the_same_text_on_both_engines(temperature):
    # min_p 0 and top_k 0: the server's own defaults (min_p 0.05, top_k 40, top_p 0.95) would
    # change every sampled answer if a field were left out of the request
    sampling = SamplingParams(temperature=temperature, min_p=0.0, top_k=0, max_tokens=40, seed=11)
    inproc = get_backend("embedded", engine="inprocess")
    server = get_backend("embedded", engine="server", parallel=1)
    expected = [inproc.generate([{"role": "user", "content": p}], sampling).text for p in PROMPTS]
    with ThreadPoolExecutor(4) as pool:  # queued at the server's one slot
        got = list(pool.map(lambda p: server.generate([{"role": "user", "content": p}], sampling).text, PROMPTS))
    assert got == expected


@needs_server
def test_flash_attention_would_change_the_text_so_the_engine_turns_it_off():
    """The reason for ``-fa off`` by default: with llama.cpp's CPU flash attention the greedy answer differs."""
    import httpx

    messages = [{"role": "user", "content": "Write a short poem about the sea."}]
    inproc = get_backend("embedded", engine="inprocess")
    expected = inproc.generate(messages, SamplingParams(max_tokens=24)).text
    assert get_backend("embedded", engine="server").generate(messages, SamplingParams(max_tokens=24)).text == expected
    spec = engine.ServerSpec(str(inproc.path), None, 2048, 1, None, flash_attention=True)
    assert spec.command("llama-server")[-2:] == ["-fa", "on"]
    flash = engine.LocalServer(spec, engine.find_binary())
    try:
        body = {"prompt": inproc._formatter(messages=messages).prompt, "n_predict": 24, "temperature": 0,
                "cache_prompt": False}
        with_flash = httpx.post(flash.root + "/completion", json=body, timeout=60).json()["content"]
    finally:
        flash.stop()
    assert with_flash != expected


@needs_server
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_flash_attention_turned_on_reaches_both_engines_and_they_still_agree(temperature):
    """``flash_attention`` (``--flash-attention``): both engines sum the same way, so they give one text
    for one seed again, and it is another text than without (the option reached each engine)."""
    sampling = SamplingParams(temperature=temperature, min_p=0.0, top_k=0, max_tokens=40, seed=11)
    prompts = ["Write a short poem about the sea.", *PROMPTS[:4]]
    plain = [get_backend("embedded", engine="inprocess").generate([{"role": "user", "content": p}], sampling).text
             for p in prompts]
    inproc = get_backend("embedded", engine="inprocess", flash_attention=True)
    server = get_backend("embedded", engine="server", parallel=1, flash_attention=True)
    assert server.server_spec.flash_attention and inproc.describe()["flash_attention"] is True
    expected = [inproc.generate([{"role": "user", "content": p}], sampling).text for p in prompts]
    got = [server.generate([{"role": "user", "content": p}], sampling).text for p in prompts]
    assert got == expected
    assert expected != plain


def test_flash_attention_is_part_of_a_local_models_identity_only_where_it_is_on():
    """Answers made with flash attention are cached apart; with it off (the default) the keys are
    those of earlier releases, so a store's answers stay found."""
    from llm_judge.cache import generation_key
    from llm_judge.judging import model_identity

    sampling, messages = SamplingParams(max_tokens=8), [{"role": "user", "content": "Hi."}]
    default = get_backend("embedded", engine="inprocess")
    off = get_backend("embedded", engine="inprocess", flash_attention=False)
    on = get_backend("embedded", engine="inprocess", flash_attention=True)
    assert set(model_identity(default)) == {"sha256", "n_ctx"} and "flash_attention" not in default.describe()
    assert generation_key(off, sampling, messages) == generation_key(default, sampling, messages)
    assert generation_key(on, sampling, messages) != generation_key(default, sampling, messages)
    assert model_identity(on) == {**model_identity(default), "flash_attention": True}


@needs_server
def test_a_judge_on_the_server_engine_gives_structured_verdicts_with_probabilities(tmp_path, capsys):
    rc = main(["compare", "Name a fruit.", "--judge-method", "weighted", "--json", "--max-tokens", "24",
               "--judge-max-tokens", "200"])
    out = capsys.readouterr().out
    assert rc == 0
    result = json.loads(out)
    assert result["judge"]["spec"] == "embedded" and result["winner"] in ("A", "B", "tie", None)
    # the server's top log probabilities reach the weighted verdict (no fallback to sampled verdicts)
    assert result["method"] == "weighted" and result["weighted"] is not None
    assert not [w for w in result["warnings"] if "probabilities" in w]


@needs_server
def test_a_judge_writes_the_same_verdicts_on_both_engines(tmp_path, capsys):
    """Both engines constrain a judge with the same grammar (llama-cpp-python's converter): with the
    server's own, the built-in judge writes about twice as many tokens and other verdicts."""
    import sqlite3

    raws = {}
    for name in ("inprocess", "server"):
        db = tmp_path / f"{name}.db"
        assert main(["--engine", name, "--parallel", "1", "judges", "eval", "--judge", "embedded", "--set",
                     "llmbar-natural", "--limit", "2", "--shortest", "--db", str(db), "--quiet", "--json"]) == 0
        raws[name] = sorted(sqlite3.connect(db).execute("SELECT key, raw FROM judgments").fetchall())
    capsys.readouterr()
    assert len(raws["server"]) == 4 and raws["inprocess"] == raws["server"]


@needs_server
def test_structured_requests_to_the_local_server_carry_the_in_process_grammar(monkeypatch):
    """Measured on the seed-10 study: with the server's own schema converter the built-in judge wrote
    4,094 tokens instead of 1,925 (and other verdicts); so the grammar is sent, not the schema."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    backend = get_backend("embedded")
    sent = []
    post = backend.client._post
    monkeypatch.setattr(backend.client, "_post", lambda body, on_token: sent.append(body) or post(body, on_token))
    schema = {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}},
              "required": ["winner"]}
    out = backend.generate([{"role": "user", "content": "A or B?"}], SamplingParams(max_tokens=20), schema=schema)
    assert json.loads(out.text)["winner"] in ("A", "B", "tie")
    assert sent[-1]["grammar"] == json_schema_to_gbnf(json.dumps(schema)) and "response_format" not in sent[-1]
    assert "logprobs" not in sent[-1]  # only a weighted verdict asks for them (they cost time)


@needs_server
def test_two_page_visitors_are_answered_at_once_in_the_servers_slots():
    """What the page does for each visitor (``compare`` in a thread); the server's /slots shows
    both visitors' answers being written at the same time."""
    import threading

    import httpx

    from llm_judge.compare import compare

    backend = get_backend("embedded")
    busy, done = [], threading.Event()

    def watch():
        while not done.is_set():
            slots = httpx.get(backend.server.root + "/slots", timeout=5).json()
            busy.append(sum(1 for s in slots if s.get("is_processing")))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda q: compare(q, sampling_a=SamplingParams(max_tokens=48),
                                                      sampling_b=SamplingParams(max_tokens=48, seed=1),
                                                      verdict_format="winner"),
                                    ["Describe the sea.", "Describe a forest."]))
    finally:
        done.set()
        watcher.join()
    assert all(r.answers["A"].text for r in results)
    assert max(busy) >= 2


SCRIPT = textwrap.dedent("""
    import sys, time
    from llm_judge.backends import get_backend
    b = get_backend("embedded", engine="server", parallel=2)
    print(b.server.proc.pid, flush=True)
    if sys.argv[1] == "exit":
        sys.stdin.readline()  # the test has seen the server alive: now exit normally
        sys.exit(0)
    time.sleep(600)
""")


@needs_server
@pytest.mark.parametrize("how", ["exit", "ctrl-c", "kill-9", "sigterm"])
def test_no_server_outlives_llm_judge(how):
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, how], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    pid = None
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
        if how == "exit":
            parent.stdin.write("go\n")
            parent.stdin.flush()
        elif how == "ctrl-c":  # what a terminal sends: SIGINT to the foreground process group
            os.killpg(parent.pid, signal.SIGINT)
        elif how == "kill-9":
            parent.kill()
        elif how == "sigterm":
            parent.terminate()
        parent.wait(30)
        assert gone_within(pid, 15), f"llama-server {pid} outlived its parent ({how})"
    finally:
        if parent.poll() is None:
            parent.kill()
        if pid and alive(pid):  # do not leave one behind when the test fails
            os.kill(pid, signal.SIGKILL)


@needs_server
def test_a_server_that_died_is_started_again_on_the_next_request():
    backend = get_backend("embedded")
    old = backend.server.proc.pid
    backend.server.proc.kill()
    backend.server.proc.wait()
    out = backend.generate([{"role": "user", "content": "Say hi."}], SamplingParams(max_tokens=4))
    assert out.text and backend.server.proc.pid != old and backend.server.running


def test_without_the_server_binary_local_models_run_in_process_with_one_notice(monkeypatch, capsys):
    monkeypatch.setenv(engine.ENV_BINARY, "/nonexistent/llama-server")
    monkeypatch.setattr(engine, "_told", set())
    forget_backends()
    try:
        assert engine.choose_engine("auto") == ("inprocess", engine.choose_engine("auto")[1])
        backend = get_backend("embedded")
        assert backend.engine == "inprocess" and backend.concurrency == 1
        get_backend("embedded", n_ctx=1024)
        err = capsys.readouterr().err
        assert err.count("notice: llama-server not found") == 1
        rc = main(["--engine", "server", "compare", "hi", "--max-tokens", "4"])
        lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
        assert rc == 2 and len(lines) == 1 and "llama-server not found" in lines[0] and "--engine inprocess" in lines[0]
    finally:
        forget_backends()


def test_the_engine_and_slots_are_chosen_by_the_settings_passed():
    from llm_judge.config import Settings

    assert engine.choose_engine("inprocess") == ("inprocess", None)
    settings = Settings.from_env({}, engine="inprocess", parallel=3)
    assert engine.choose_engine(settings.engine) == ("inprocess", None) and settings.parallel == 3
    with pytest.raises(Exception, match="unknown engine 'gpu'"):
        engine.choose_engine("gpu")
    spec = engine.ServerSpec("/m.gguf", "/a.gguf", 2048, 4, 2)
    cmd = spec.command(engine.Path("/bin/llama-server"), 1234)
    assert cmd[cmd.index("-c") + 1] == str(2048 * 4) and cmd[cmd.index("-np") + 1] == "4"
    assert cmd[cmd.index("--lora") + 1] == "/a.gguf" and cmd[cmd.index("-t") + 1] == "2"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
