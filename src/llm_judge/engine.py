"""The local engine: llama.cpp's own ``llama-server`` running a local GGUF model with parallel slots.

One server per (model, adapter, context, slots, threads) per process, started on demand on a free
loopback port, health-checked, reused by every command and page request of the process and
stopped with it. It must never outlive llm-judge: it runs in its own session (a Ctrl-C in the
terminal reaches llm-judge, which stops it), it is stopped at exit, and on Linux the kernel kills it
if llm-judge itself is killed (``PR_SET_PDEATHSIG``, set from a launcher thread that lives as long
as the process, since the signal follows the thread that started the child).

The binary is built by ``scripts/setup.sh`` from the llama.cpp source that llama-cpp-python
vendors (the same inference code as the in-process engine) into the virtual environment's
``bin/``; ``LLM_JUDGE_LLAMA_SERVER`` names another one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import LLMJudgeError

BINARY = "llama-server"
ENV_BINARY = "LLM_JUDGE_LLAMA_SERVER"
ENGINES = ("auto", "server", "inprocess")
DEFAULT_PARALLEL = 8  # slots: the gain on this project's 2-core reference machine levels off at 8-16
STARTUP_SECONDS = 180.0


def find_binary(name: str = BINARY) -> Path | None:
    """``LLM_JUDGE_LLAMA_SERVER`` (for the server), else the virtual environment's ``bin/``, else PATH."""
    env = os.environ.get(ENV_BINARY) if name == BINARY else None
    if env:
        return Path(env) if os.access(env, os.X_OK) else None
    beside = Path(sys.executable).parent / name
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


_defaults: dict = {"engine": None, "parallel": None}


def set_defaults(*, engine: str | None = None, parallel: int | None = None) -> None:
    """The engine and slots local models get where their options do not say (the CLI's
    ``--engine``/``--parallel``, or ``LLM_JUDGE_ENGINE``/``LLM_JUDGE_PARALLEL``)."""
    _defaults.update(engine=engine, parallel=parallel)


def defaults_key() -> tuple:
    """What the process-wide defaults are now (part of a loaded backend's identity)."""
    return (_defaults["engine"] or os.environ.get("LLM_JUDGE_ENGINE"), default_parallel())


def default_parallel() -> int:
    return _defaults["parallel"] or int(os.environ.get("LLM_JUDGE_PARALLEL") or DEFAULT_PARALLEL)


def choose_engine(engine: str | None) -> tuple[str, str | None]:
    """(engine to use, notice or None). ``auto`` is the server where its binary is found, else
    in-process with a one-line notice; ``server`` without a binary is an error."""
    engine = engine or _defaults["engine"] or os.environ.get("LLM_JUDGE_ENGINE") or "auto"
    if engine not in ENGINES:
        raise LLMJudgeError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine == "inprocess":
        return engine, None
    if find_binary() is not None:
        return "server", None
    if engine == "server":
        raise LLMJudgeError(f"{BINARY} not found: run scripts/setup.sh (it builds it), set {ENV_BINARY} to "
                            "its path, or use --engine inprocess")
    return "inprocess", (f"notice: {BINARY} not found (scripts/setup.sh builds it); local models run in-process, "
                         "one request at a time")


_told: set[str] = set()


def notify(text: str) -> None:
    """Say ``text`` once per process on stderr (the fallback notice)."""
    if text not in _told:
        _told.add(text)
        print(text, file=sys.stderr)


@dataclass(frozen=True)
class ServerSpec:
    model: str
    lora: str | None
    n_ctx: int  # per slot
    parallel: int
    threads: int | None

    def command(self, binary: Path, port: int) -> list[str]:
        cmd = [str(binary), "-m", self.model, "--host", "127.0.0.1", "--port", str(port),
               "-c", str(self.n_ctx * self.parallel), "-np", str(self.parallel), "--no-kv-unified",
               "--no-webui", "-ngl", "0", "--no-warmup", "-fa", "off"]
        if self.lora:
            cmd += ["--lora", self.lora]
        if self.threads:
            cmd += ["-t", str(self.threads)]
        return cmd


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


try:
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None
# The thread that starts a server must live as long as the process (the death signal follows it).
_launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-judge-launcher")


class LocalServer:
    """One running ``llama-server``; ``url`` is its OpenAI-compatible root (``.../v1``)."""

    def __init__(self, spec: ServerSpec, binary: Path, *, startup_seconds: float = STARTUP_SECONDS):
        self.spec = spec
        self.log = tempfile.NamedTemporaryFile(prefix="llm-judge-server-", suffix=".log", delete=False)
        self.port = _free_port()
        cmd = spec.command(binary, self.port)
        popen = dict(stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                     preexec_fn=_die_with_parent if _prctl else None)
        self.proc = _launcher.submit(subprocess.Popen, cmd, **popen).result()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/v1"
        try:
            self._wait_healthy(startup_seconds)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LLMJudgeError(f"{BINARY} stopped while loading {Path(self.spec.model).name}: {self.last_log_line()}")
            try:
                if httpx.get(self.root + "/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise LLMJudgeError(f"{BINARY} did not become ready within {seconds:.0f} s: {self.last_log_line()}")

    def last_log_line(self) -> str:
        try:
            lines = [x for x in Path(self.log.name).read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return "no log"
        errors = [x for x in lines if "error" in x.lower()]
        return ((errors or lines or ["no output"])[-1]).strip()[:200]

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


_servers: dict[ServerSpec, LocalServer] = {}
_lock = threading.Lock()


def server_for(spec: ServerSpec) -> LocalServer:
    """The running server for ``spec``, started if there is none (or the last one died)."""
    binary = find_binary()
    if binary is None:
        choose_engine("server")  # raises the one-line error
    with _lock:
        server = _servers.get(spec)
        if server is None or not server.running:
            server = _servers[spec] = LocalServer(spec, binary)
        return server


def stop_all() -> None:
    """Stop every server this process started (at exit, and in tests)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


def running_pids() -> list[int]:
    with _lock:
        return [s.proc.pid for s in _servers.values() if s.running]


atexit.register(stop_all)
