"""The local engine: llama.cpp's own ``llama-server`` running a local GGUF model with parallel slots.

One server per (model, adapter, context, slots, threads, flash attention) per process, started on demand on a
loopback port it binds itself (``--port 0``: the kernel's choice, read back from its log, so no other
process can be listening there first), health-checked, reused by every command and page request of
the process, and counted: it stops when the last loaded model using it leaves the model cache
(:func:`acquire`, :func:`release`). It must never outlive llm-judge: it runs in its own session (a
Ctrl-C in the terminal reaches llm-judge, which stops it), it is stopped at exit, and on Linux the
kernel kills it if llm-judge itself is killed (``PR_SET_PDEATHSIG``, set from a launcher thread that
lives as long as the process, since the signal follows the thread that started the child, and
checked against a parent that died before it took effect). Its log has no name in the file system,
so nothing is left behind however llm-judge ends. A child made by ``os.fork`` starts afresh: it
never stops or calls its parent's servers, and starts its own.

This module sends nothing to a server: the ``llamaserver`` backend does, without the operator's key.

The binary is built by ``scripts/setup.sh`` in the same build as the libraries the in-process
engine loads (``scripts/build-llama.sh``: one compilation of the llama.cpp source that
llama-cpp-python vendors) into the virtual environment's ``bin/``; ``LLM_JUDGE_LLAMA_SERVER`` names
another one. The build leaves a stamp beside the server's libraries and the binding's; a server
whose stamp differs from the binding's is refused in one line (:func:`check_same_build`).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from .config import check_engine
from .errors import LLMJudgeError

BINARY = "llama-server"
ENV_BINARY = "LLM_JUDGE_LLAMA_SERVER"
DEFAULT_PARALLEL = 8  # slots: the gain on this project's 2-core reference machine levels off at 8-16
# llama.cpp's flash attention, in both engines alike: off by default, so a local model's text stays the
# text earlier releases gave for the same seed (it sums in another order); on, studies run 10-15% faster
# on CPUs (docs/engine.md). Settings.flash_attention, or a model's ``flash_attention`` option, turn it on.
FLASH_ATTENTION = False
STARTUP_SECONDS = 180.0
LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")  # what the server logs once it serves
LOG_TAIL = 1 << 20  # bytes of a server's log read back (its port, its last error)


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


STAMP = "llama-build.txt"  # written by scripts/build-llama.sh: the llama.cpp source and flags of a build


def build_stamps(binary: Path) -> tuple[str | None, str | None]:
    """(the server's build stamp, the Python binding's): each None where that copy has none (a
    server named by ``LLM_JUDGE_LLAMA_SERVER``, a binding installed another way)."""
    import importlib.util

    def read(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            return None

    spec = importlib.util.find_spec("llama_cpp")  # found, not imported: the binding may be absent
    binding = Path(spec.origin).parent / "lib" / STAMP if spec and spec.origin else None
    return (read(binary.resolve().parent.parent / "lib" / "llama-cpp" / STAMP),
            read(binding) if binding else None)


@functools.lru_cache(maxsize=8)
def check_same_build(binary: Path) -> None:
    """Refuse a server built from another llama.cpp than the in-process engine's binding (both
    must run the same inference code); where either has no stamp there is nothing to compare."""
    server, binding = build_stamps(binary)
    if server and binding and server != binding:
        raise LLMJudgeError(f"{binary} was built from {server!r} but the Python binding from {binding!r}: "
                            "run scripts/setup.sh again so both come from one build")


def choose_engine(engine: str | None) -> tuple[str, str | None]:
    """(engine to use, notice or None) for ``engine`` (one of ``ENGINES``; None: auto). ``auto`` is
    the server where its binary is found, else in-process with a one-line notice; ``server``
    without a binary is an error. The choice is the caller's (a model's options, then its
    ``Settings``): nothing here holds a default for the process."""
    engine = check_engine(engine) or "auto"
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
    flash_attention: bool = FLASH_ATTENTION

    def command(self, binary: Path, port: int = 0) -> list[str]:
        """The server's command line; port 0: the server binds a free port of its own choosing."""
        cmd = [str(binary), "-m", self.model, "--host", "127.0.0.1", "--port", str(port),
               "-c", str(self.n_ctx * self.parallel), "-np", str(self.parallel), "--no-kv-unified",
               "--no-webui", "-ngl", "0", "--no-warmup", "-fa", "on" if self.flash_attention else "off"]
        if self.lora:
            cmd += ["--lora", self.lora]
        if self.threads:
            cmd += ["-t", str(self.threads)]
        return cmd


def _die_with_parent(parent: int) -> None:  # runs in the child between fork and exec
    """SIGKILL when the parent dies; and if it died before the kernel took the request, exit now."""
    _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # adopted already: no death signal would ever come
        os._exit(1)


try:
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def _new_launcher() -> ThreadPoolExecutor:
    """The thread that starts servers: it must live as long as the process (the death signal follows it)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-judge-launcher")


_launcher = _new_launcher()


class LocalServer:
    """One running ``llama-server``; ``url`` is its OpenAI-compatible root (``.../v1``).

    The port is the one the server bound itself and named in its own log (a file only this process
    and the server hold, unlinked from the start), so what answers there is this server."""

    def __init__(self, spec: ServerSpec, binary: Path, *, startup_seconds: float = STARTUP_SECONDS):
        self.spec = spec
        self.log = tempfile.TemporaryFile(prefix="llm-judge-server-", suffix=".log")
        popen = dict(stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                     preexec_fn=functools.partial(_die_with_parent, os.getpid()) if _prctl else None)
        self.proc = _launcher.submit(subprocess.Popen, spec.command(binary, 0), **popen).result()
        try:
            self.port = self._wait_healthy(startup_seconds)
        except BaseException:
            self.stop()
            raise
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/v1"

    def _wait_healthy(self, seconds: float) -> int:
        """The port the server listens on, once its health check answers there."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LLMJudgeError(f"{BINARY} stopped while loading {Path(self.spec.model).name}: {self.last_log_line()}")
            port = self.listening_port()
            if port is not None and _healthy(port):
                return port
            time.sleep(0.1)
        raise LLMJudgeError(f"{BINARY} did not become ready within {seconds:.0f} s: {self.last_log_line()}")

    def listening_port(self) -> int | None:
        """The port the server says it bound, or None while it has not said so."""
        found = LISTENING.search(self._read_log())
        return int(found.group(1)) if found else None

    def _read_log(self) -> bytes:
        """The log's last ``LOG_TAIL`` bytes, read without moving the offset the server writes at."""
        if self.log.closed:
            return b""
        fd = self.log.fileno()
        return os.pread(fd, LOG_TAIL, max(0, os.fstat(fd).st_size - LOG_TAIL))

    def log_text(self) -> str:
        """The server's log so far (its last ``LOG_TAIL`` bytes): for diagnostics, such as the
        per-request timeline ``bench/study.py --timeline`` prints."""
        return self._read_log().decode(errors="replace")

    def last_log_line(self) -> str:
        lines = [x for x in self.log_text().splitlines() if x.strip()]
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


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


_servers: dict[ServerSpec, LocalServer] = {}
_users: dict[ServerSpec, int] = {}  # loaded models (and calls of unloaded ones) using each server
_lock = threading.Lock()


def acquire(spec: ServerSpec) -> LocalServer:
    """The running server for ``spec``, counted as used until :func:`release` (started if need be)."""
    with _lock:
        _users[spec] = _users.get(spec, 0) + 1
    try:
        return server_for(spec)
    except BaseException:
        release(spec)
        raise


def release(spec: ServerSpec) -> None:
    """One user of ``spec``'s server fewer; the server stops when none is left."""
    with _lock:
        left = _users.pop(spec, 0) - 1
        if left > 0:
            _users[spec] = left
            return
        server = _servers.pop(spec, None)
    if server is not None:
        server.stop()


def server_for(spec: ServerSpec) -> LocalServer:
    """The running server for ``spec``, started if there is none (or the last one died); callers
    hold it through :func:`acquire`."""
    binary = find_binary()
    if binary is None:
        choose_engine("server")  # raises the one-line error
    check_same_build(binary)
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
        _users.clear()
    for server in servers:
        server.stop()


def _running() -> list[LocalServer]:
    """The servers this process runs now (their logs are read outside the lock)."""
    with _lock:
        return [s for s in _servers.values() if s.running]


def server_logs() -> list[str]:
    """The logs of the servers this process runs now, one per server."""
    return [s.log_text() for s in _running()]


def running_pids() -> list[int]:
    return [s.proc.pid for s in _running()]


def _forget_parents_servers() -> None:
    """In a child made by ``os.fork``: the servers, the lock and the launcher thread were the
    parent's (the thread does not exist here, the lock may be held for good). Start afresh."""
    global _servers, _users, _lock, _launcher
    _servers, _users, _lock, _launcher = {}, {}, threading.Lock(), _new_launcher()


atexit.register(stop_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_servers)
