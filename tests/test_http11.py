"""The lean HTTP/1.1 path of plain-HTTP servers (``backends.http11``): one request is sent once,
an idle connection the server closed is opened again before sending, failures come as httpx's
exceptions, and a proxy setting sends the request through httpx (and so through the proxy)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from llm_judge.backends import get_backend
from llm_judge.backends.http11 import Connections, lean
from llm_judge.errors import LLMJudgeError
from llm_judge.sampling import SamplingParams

BODY = b'{"choices": [{"message": {"content": "ok!"}}]}'
REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class RawServer:
    """A loopback server that serves each connection as ``behaviour`` says, counting the requests read."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour, self.requests, self.connections = behaviour, 0, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1/chat/completions"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(x.split(b":")[1] for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")))
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1
            if self.behaviour == "drop":
                return  # closed with no answer
            if self.behaviour == "nested":  # JSON nested past what Python's parser reads
                deep = b"[" * 100_000
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(deep), deep))
                return
            if self.behaviour == "hang":
                time.sleep(3)
                return
            conn.sendall(REPLY)
            if self.behaviour == "keep-alive":  # answer every request on the one connection
                return self._one(conn)
            # "answer-then-close": keep-alive said, then closed while idle

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw():
    servers = []

    def start(behaviour: str) -> RawServer:
        servers.append(RawServer(behaviour))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_an_idle_connection_the_server_closed_is_opened_again_and_each_request_is_sent_once(raw):
    server, conns = raw("answer-then-close"), Connections(5.0, 5.0)
    for _ in range(3):
        assert conns.post(server.url, b"{}", {}).json()["choices"][0]["message"]["content"] == "ok!"
        time.sleep(0.05)  # the server's close reaches the client
    assert server.requests == 3 and server.connections == 3


def test_an_open_idle_connection_is_used_again_at_once(raw):
    """The check of an idle connection does not wait for it (a blocking check waits out the read
    timeout, finds no byte and opens a new connection)."""
    server, conns = raw("keep-alive"), Connections(1.0, 5.0)
    for _ in range(3):
        assert conns.post(server.url, b"{}", {}).status_code == 200
    assert server.requests == 3 and server.connections == 1


def test_a_dropped_request_is_a_protocol_error_and_is_not_sent_again(raw):
    server = raw("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        Connections(5.0, 5.0).post(server.url, b"{}", {})
    assert server.requests == 1


def test_a_reply_that_does_not_come_is_a_read_timeout(raw):
    server = raw("hang")
    with pytest.raises(httpx.ReadTimeout):
        Connections(0.3, 5.0).post(server.url, b"{}", {})


def test_a_reply_nested_past_reading_is_a_malformed_response_in_one_line(raw):
    server = raw("nested")
    backend = get_backend(f"openai:m@{server.url.removesuffix('/chat/completions')}", max_attempts=1)
    with pytest.raises(LLMJudgeError, match="malformed response .*not JSON") as info:
        backend.generate([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=4))
    assert "\n" not in str(info.value)


def test_a_refused_connection_is_a_connect_error():
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        Connections(5.0, 5.0).post(f"http://127.0.0.1:{port}/v1", b"{}", {})


def test_a_proxy_setting_sends_plain_http_through_httpx_and_the_proxy(test_server, monkeypatch):
    base = test_server()
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead_proxy = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert not lean(base)
    backend = get_backend(f"openai:m@{base}", max_attempts=1)
    with pytest.raises(LLMJudgeError, match="connection failed"):
        backend.generate([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=4))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert lean(base)
    direct = get_backend(f"openai:m@{base}", max_attempts=1, timeout=30.0)
    assert direct.generate([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=4)).text
