import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llm_judge.backends import forget_backends
from llm_judge.testing import fake

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LLM_JUDGE_SHARED", ROOT.parent / "shared"))

# A suite started in the background (`pytest &`, or `( pytest & )` in a script) inherits Ctrl-C ignored
# from the shell, and so would every program the tests start: the tests that press Ctrl-C on llm-judge
# would then see it go on. A handler here (not an ignore) leaves the programs started by exec the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def shared_file(*parts: str) -> Path:
    """A file of the third-party data sets laid beside the checkout (as CI does)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing: set LLM_JUDGE_SHARED to the folder holding data/")
    return path


@pytest.fixture(scope="session", autouse=True)
def _free_models_before_exit():
    """Free loaded models while the interpreter is whole (llama.cpp's finaliser fails at shutdown)."""
    yield
    import gc

    forget_backends()
    gc.collect()


@pytest.fixture(autouse=True)
def _fresh_fakes():
    fake.reset()
    yield
    fake.reset()
    # keep real models loaded across tests (loading is the slow part); drop only fakes
    from llm_judge import backends
    for key in [k for k in backends._loaded if k[0].startswith("fake:")]:
        del backends._loaded[key]


# The prompt's version that stores, keys and run ids recorded by earlier code were made under. A new
# version (v4: the instructions before the answers) is a new judgment and a new run by design, so the
# tests that check keys and stores of before run under the version of before.
PROMPT_VERSION_BEFORE = "pairwise-v3/single-v3"


@pytest.fixture
def prompt_version_before(monkeypatch):
    import llm_judge.verdicts

    monkeypatch.setattr(llm_judge.verdicts, "TEMPLATE_VERSION", PROMPT_VERSION_BEFORE)
    return PROMPT_VERSION_BEFORE


def verdict_json(scores_a, scores_b, winner, names=("Relevance", "Coherence", "Completeness")):
    return json.dumps({"justification": f"{winner} is better", "winner": winner,
                       "scores": {n: {"A": a, "B": b} for n, a, b in zip(names, scores_a, scores_b)}})


def prefers(word: str):
    """A fake judge that prefers whichever shown answer contains ``word`` (content, not position)."""
    def respond(messages, sampling, schema):
        user = messages[-1]["content"]
        if schema is None:  # asked as a candidate, not as a judge
            return f"an answer without the {word[::-1]}"
        if "Answer (everything" in user:  # single grading
            score = 4 if word in user.split("Answer (everything")[1] else 2
            names = schema["properties"]["scores"]["properties"]
            return json.dumps({"justification": "ok", "scores": {k: score for k in names}})
        first = re.search(r"<<A-\w+>>\n(.*?)\n<</A-", user, re.S).group(1)
        win = "A" if word in first else "B"
        hi, lo = (4, 2) if win == "A" else (2, 4)
        names = list(schema["properties"]["scores"]["properties"])
        return verdict_json([hi] * len(names), [lo] * len(names), win, names)
    return respond


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server():
    """llama-cpp-python's real OpenAI-compatible server with the built-in model, on loopback."""
    from llm_judge.backends.llamacpp import embedded_model_path

    port = free_port()
    log = open(ROOT / "artifacts" / "llama-server.log", "w") if (ROOT / "artifacts").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()),
         "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    base = f"http://127.0.0.1:{port}/v1"
    wait_until_serving(proc, f"{base}/models", 120, "llama_cpp.server")
    yield base
    stop(proc)


def within(seconds: float, condition, poll: float = 0.05) -> bool:
    """Whether ``condition()`` comes true within ``seconds``: asked again every ``poll`` seconds, the last time
    once the time is up. The bound is against a hang (a generous one), never a measure of speed."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def wait_until_serving(proc: subprocess.Popen, url: str, seconds: float, what: str) -> None:
    """Poll ``url`` until it answers 200; fail (and kill ``proc``) if it exits or time runs out."""
    def serving() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    if within(seconds, lambda: proc.poll() is not None or serving(), poll=0.5) and proc.poll() is None:
        return
    proc.kill()
    raise RuntimeError(f"{what} did not start within {seconds:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def test_server():
    """Start llm-judge's fault-injecting OpenAI-compatible server: ``start(*args) -> base URL``."""
    procs = []

    def start(*args: str) -> str:
        proc = subprocess.Popen([sys.executable, "-m", "llm_judge.testing.server", "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"test server did not start: {line}")
        return line.split()[-1]

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def server_stats(base: str) -> dict:
    return httpx.get(base.rsplit("/v1", 1)[0] + "/stats", timeout=5).json()
