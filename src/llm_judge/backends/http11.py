"""A lean HTTP/1.1 POST for plain-HTTP servers on the network path (a vLLM or llama.cpp fleet):
keep-alive connections of one thread, one per server, on the standard library's ``http.client``.

A study of many calls spends most of its CPU in the HTTP client: httpx costs ~0.7 ms of CPU a
request, ``http.client`` ~0.13 ms (bench/scale.py), and 64 worker threads on one shared pool
contend on its lock. So an ``OpenAIBackend`` sends a plain request (no stream) to an ``http://``
server that no proxy setting covers this way; TLS, proxies and streams stay with httpx. Failures
are raised as httpx's own exceptions (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``),
so that a caller tells them apart in one way whichever client sent the request.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True)
class Reply:
    """A response read whole: what the backend reads of an ``httpx.Response``."""

    status_code: int
    reason_phrase: str
    headers: dict[str, str]  # names in lower case
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def lean(url: str) -> bool:
    """Whether requests to ``url`` can go this way: plain HTTP, and no proxy setting covers the host.

    >>> lean("http://127.0.0.1:8000/v1"), lean("https://api.openai.com/v1")
    (True, False)
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username is not None:
        return False  # TLS, or credentials in the URL (httpx sends them as basic auth)
    proxies = urllib.request.getproxies()
    return not (proxies.get("http") or proxies.get("all")) or bool(urllib.request.proxy_bypass(parts.hostname))


class Connections:
    """One thread's keep-alive connections, one per (host, port)."""

    def __init__(self, timeout: float, connect: float) -> None:
        self.timeout, self.connect = timeout, connect
        self._open: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        """POST ``body`` (JSON) to ``url`` and read the reply whole. A request is sent once: an idle
        connection the server has closed is noticed before sending and opened again (as httpx does)."""
        parts = urlsplit(url)
        where = (parts.hostname or "", parts.port or 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        head = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        conn = self._connection(where)
        try:
            conn.request("POST", path, body=body, headers=head)
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        except httpx.HTTPError:
            self.close(where)
            raise
        except TimeoutError:
            self.close(where)
            raise httpx.ReadTimeout("timed out") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close(where)
            raise httpx.RemoteProtocolError(f"the connection failed ({type(exc).__name__})") from None
        if resp.will_close:
            self.close(where)
        return reply

    def _connection(self, where: tuple[str, int]) -> http.client.HTTPConnection:
        conn = self._open.get(where)
        if conn is not None and conn.sock is not None and _closed(conn.sock):
            self.close(where)
            conn = None
        if conn is None:
            conn = self._open[where] = _Connection(where[0], where[1], self.connect, self.timeout)
        return conn

    def close(self, where: tuple[str, int]) -> None:
        conn = self._open.pop(where, None)
        if conn is not None:
            conn.close()


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed an idle connection: readable with nothing asked means the end of
    the stream (or bytes that are not due). ``poll``, not ``select``: no limit on descriptor numbers."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


class _Connection(http.client.HTTPConnection):
    """A connection that connects within ``connect`` seconds and then reads within ``timeout``."""

    def __init__(self, host: str, port: int, connect: float, timeout: float) -> None:
        super().__init__(host, port, timeout=connect)
        self.read_timeout = timeout

    def connect(self) -> None:
        try:
            super().connect()
        except TimeoutError:
            raise httpx.ConnectTimeout("connection timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        assert self.sock is not None
        self.sock.settimeout(self.read_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
