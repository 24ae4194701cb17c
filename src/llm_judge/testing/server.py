"""A small OpenAI-compatible server for tests and benchmarks, with fault injection.

    python -m llm_judge.testing.server --port 0 --fault-rate 0.3 --delay 0.2

It answers ``POST /v1/chat/completions`` deterministically: a candidate request (no
``response_format``) gets ``answer (T=<temperature>): <last user message>``; a judge request with a JSON schema
gets a verdict built from the schema by ``expected_content``, so a test can tell a correct result
from a corrupted one. At ``--fault-rate`` it instead serves one of these faults, chosen at random
(seeded): ``429`` (with ``Retry-After``), ``500``, ``timeout`` (hangs for ``--hang`` seconds),
``drop`` (closes the connection without an answer), ``malformed`` (invalid JSON) and ``schema``
(valid JSON that is not a chat completion), ``html`` (an HTML page where JSON belongs) and
``empty`` (a completion with no choices), ``echo`` (a 500 whose error message repeats the
request's headers and URL, as some proxies do: a client must not store the key it carries), and
three faults of one field in a correct reply, streamed or not: ``usage`` (``"n/a"``), ``content``
(the number 42) and ``logprobs`` (of the wrong shape: a client ignores them, the answer stands).
``--delay`` adds a fixed latency to every answer, with unlimited parallelism. ``--vary`` tags
every answer afresh and has each verdict name the tags it was shown (``varied``). ``GET /stats``
returns the counts of what was served.

It also serves the OpenAI Batch API (``/v1/files``, ``/v1/batches``; see ``batches.py``): batch
lines get the same answers, without the live faults; ``--batch-step`` seconds per state,
``--batch-rate`` lines per step, and ``--batch-fault-rate``, ``--batch-expire-after`` and
``--batch-fail-all`` for failures.

Written on raw asyncio streams so that faults such as a dropped connection are real.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import secrets
import sys
from collections import Counter

from llm_judge.testing.batches import BatchAPI, BatchSettings

# faults of one field in an otherwise correct reply (also in streamed chunks)
FIELD_FAULTS = ("usage", "content", "logprobs")
FAULTS = ("429", "500", "timeout", "drop", "malformed", "schema", "html", "empty", "echo", *FIELD_FAULTS)


def expected_content(body: dict) -> str:
    """The content a correct answer to this request carries."""
    messages = body.get("messages") or [{"content": ""}]
    last = str(messages[-1].get("content", ""))
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
    if not schema:
        return f"answer (T={body.get('temperature')}): {last[-200:]}"
    digest = int(hashlib.sha256(last.encode()).hexdigest(), 16)
    properties = schema["properties"]
    verdict: dict = {"justification": "scripted verdict"} if "justification" in properties else {}
    if "scores" in properties:  # a winner-only verdict has none
        verdict["scores"] = scripted_scores(properties["scores"]["properties"], digest)
    if "winner" in properties:
        verdict["winner"] = ("A", "B", "tie")[digest % 3]
    return json.dumps(verdict)


def scripted_scores(scores_schema: dict, digest: int) -> dict:
    """Scores within the schema's allowed values, picked by bits of ``digest``."""
    scores = {}
    for k, (name, sub) in enumerate(scores_schema.items()):
        if sub.get("type") == "object":
            values = sub["properties"]["A"]["enum"]
            scores[name] = {"A": values[(digest >> (2 * k)) % len(values)],
                            "B": values[(digest >> (2 * k + 1)) % len(values)]}
        else:
            values = sub["enum"]
            scores[name] = values[(digest >> k) % len(values)]
    return scores


VARY_TAG = re.compile(r"vary-[0-9a-f]{8}")


def varied(body: dict, content: str) -> str:
    """``--vary``: every candidate answer carries a fresh tag ``vary-<8 hex digits>`` (the same
    request answered twice differs, as from a sampling model), and a verdict's justification names
    the tags of the answers it was shown, in order, so a test can tell which answers it judged."""
    if content.startswith("answer ("):
        return f"answer vary-{secrets.token_hex(4)} {content[len('answer '):]}"
    verdict = json.loads(content)
    if "justification" in verdict:
        last = str((body.get("messages") or [{}])[-1].get("content", ""))
        verdict["justification"] = "saw " + " ".join(VARY_TAG.findall(last))
    return json.dumps(verdict)


ALTERNATIVES = {"A": ("B", "tie"), "B": ("A", "tie"), "tie": ("A", "B")}


def scripted_logprobs(content: str) -> list[dict]:
    """OpenAI-style per-token log probabilities for ``content``: split into word, number and
    punctuation tokens; a token that is a verdict value (A, B, tie, a digit) gets probability 0.7
    and its alternatives share the rest, so a test can check where a client reads them."""
    import math
    import re

    out = []
    for token in re.findall(r"\w+|\s+|[^\w\s]", content):
        alts = ALTERNATIVES.get(token) or (tuple(str(d) for d in range(1, 5) if str(d) != token)
                                           if token.isdigit() and len(token) == 1 else ())
        top = [{"token": token, "logprob": math.log(0.7 if alts else 1.0)}]
        top += [{"token": a, "logprob": math.log(0.3 / len(alts))} for a in alts]
        out.append({"token": token, "logprob": top[0]["logprob"], "top_logprobs": top})
    return out


def completion_body(data: dict, content: str, fault: str | None = None) -> dict:
    """A chat completion carrying ``content``; one of ``FIELD_FAULTS`` gives one field the wrong type."""
    words = len(content.split())
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": 42 if fault == "content" else content},
                    "finish_reason": "stop"}
    if fault == "logprobs":
        choice["logprobs"] = {"content": "n/a"}
    elif data.get("logprobs") and data.get("top_logprobs"):
        choice["logprobs"] = {"content": scripted_logprobs(content)}
    usage = "n/a" if fault == "usage" else {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words}
    return {"object": "chat.completion", "model": data.get("model", "test"), "choices": [choice], "usage": usage}


def stream_body(content: str, fault: str | None = None) -> bytes:
    """The same as one streamed chunk and ``[DONE]``, with the same field faults."""
    choice: dict = {"index": 0, "delta": {"content": 42 if fault == "content" else content}, "finish_reason": "stop"}
    chunk: dict = {"object": "chat.completion.chunk", "choices": [choice]}
    if fault == "usage":
        chunk["usage"] = "n/a"
    if fault == "logprobs":
        choice["logprobs"] = {"content": "n/a"}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


class TestServer:
    vary = False  # --vary (varied)

    def __init__(self, fault_rate=0.0, faults=FAULTS, delay=0.0, hang=5.0, retry_after="1", seed=0,
                 require_key: str | None = None, reject_fields=(), batch_settings: BatchSettings | None = None):
        self.fault_rate, self.faults, self.delay, self.hang = fault_rate, tuple(faults), delay, hang
        self.retry_after = retry_after
        self.rng = random.Random(seed)
        self.stats: Counter = Counter()
        self.require_key = require_key
        self.reject_fields = tuple(reject_fields)
        self.in_flight = 0
        self.batches = BatchAPI(batch_settings or BatchSettings(), self.answer_line, self.stats, seed)

    def refused_field(self, data: dict) -> str | None:
        """The first body field named in ``reject_fields`` (answered 400), or None."""
        return next((name for name in self.reject_fields if name in data), None)

    def content(self, data: dict) -> str:
        return varied(data, expected_content(data)) if self.vary else expected_content(data)

    def answer_line(self, data: dict) -> tuple[int, dict]:
        """A batch line's (status, body): the live endpoint's answer, without its faults."""
        refused = self.refused_field(data)
        if refused:
            return 400, refusal(refused)
        return 200, completion_body(data, self.content(data))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                if self.require_key and headers.get("authorization") != f"Bearer {self.require_key}":
                    await _send(writer, 401, {"error": {"message": "Incorrect API key provided"}})
                    continue
                self.in_flight += 1
                self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.in_flight)
                try:
                    keep = await self.respond(method, path, body, writer, headers)
                finally:
                    self.in_flight -= 1
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def respond(self, method: str, path: str, body: bytes, writer, headers: dict | None = None) -> bool:
        """Serve one request; False when the connection must be closed."""
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            return await _send(writer, 200, {"object": "list", "data": [{"id": "test", "object": "model"}]})
        if path.startswith(("/v1/files", "/v1/batches")):
            return await _send(writer, *self.batches.handle(method, path, headers or {}, body))
        if method == "GET" and path == "/stats":
            self.batches.advance_all()
            return await _send(writer, 200, dict(self.stats))
        if method != "POST" or path != "/v1/chat/completions":
            return await _send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
        try:
            data = json.loads(body)
        except ValueError:
            return await _send(writer, 400, {"error": {"message": "request body is not JSON"}})
        refused = self.refused_field(data)
        if refused:
            return await _send(writer, 400, refusal(refused))
        fault = self.rng.choice(self.faults) if self.faults and self.rng.random() < self.fault_rate else None
        self.stats[fault or "ok"] += 1
        if fault == "429":
            return await _send(writer, 429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
        if fault == "500":
            return await _send(writer, 500, {"error": {"message": "injected server error"}})
        if fault == "timeout":
            await asyncio.sleep(self.hang)
            return False
        if fault == "drop":
            return False
        if fault == "malformed":
            return await _send(writer, 200, b'{"choices": [ {"message": ')
        if fault == "schema":
            return await _send(writer, 200, {"object": "chat.completion", "choices": "none"})
        if fault == "html":
            return await _send(writer, 200, b"<html><body><h1>Welcome to nginx!</h1></body></html>",
                               {"Content-Type": "text/html"})
        if fault == "echo":
            return await _send(writer, 500, {"error": {"message": f"upstream failed for {path}?api_key=from-url "
                                                                  f"with headers {json.dumps(headers or {})}"}})
        if fault == "empty":
            return await _send(writer, 200, {"object": "chat.completion", "choices": []})
        if self.delay:
            await asyncio.sleep(self.delay)
        content = self.content(data)
        if data.get("stream"):  # here fault is None or one of FIELD_FAULTS
            return await _send(writer, 200, stream_body(content, fault), {"Content-Type": "text/event-stream"})
        return await _send(writer, 200, completion_body(data, content, fault))


def refusal(name: str) -> dict:
    return {"error": {"message": f"Unrecognized request argument supplied: {name}", "type": "invalid_request_error"}}


async def _read_request(reader: asyncio.StreamReader):
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


async def _send(writer, status: int, payload, headers: dict | None = None) -> bool:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
              500: "Internal Server Error"}
    head = [f"HTTP/1.1 {status} {reason.get(status, 'Status')}", f"Content-Length: {len(body)}",
            "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items() if k != "Content-Type"]
    if headers and "Content-Type" in headers:
        head[2] = f"Content-Type: {headers['Content-Type']}"
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    return True


async def serve(server: TestServer, host: str, port: int) -> None:
    srv = await asyncio.start_server(server.handle, host, port, backlog=1024)
    port = srv.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{port}/v1", flush=True)
    async with srv:
        await srv.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of " + ",".join(FAULTS))
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before every correct answer")
    ap.add_argument("--hang", type=float, default=5.0, help="seconds a 'timeout' fault hangs")
    ap.add_argument("--retry-after", default="1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--require-key", default=None, help="answer 401 unless this key is sent")
    ap.add_argument("--reject-fields", default="", help="answer 400 to requests carrying these body fields")
    ap.add_argument("--vary", action="store_true", help="tag every answer afresh; verdicts name the tags they saw")
    ap.add_argument("--batch-step", type=float, default=0.05, help="seconds per state of a batch")
    ap.add_argument("--batch-rate", type=int, default=None, help="lines a batch runs per step (default: all)")
    ap.add_argument("--batch-fault-rate", type=float, default=0.0, help="chance that a batch line fails with a 500")
    ap.add_argument("--batch-expire-after", type=int, default=None, help="expire every batch after this many lines")
    ap.add_argument("--batch-fail-all", action="store_true", help="every batch fails validation")
    args = ap.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        sys.exit(f"unknown faults: {', '.join(sorted(unknown))}")
    try:
        batch = BatchSettings(args.batch_step, args.batch_rate, args.batch_expire_after, args.batch_fail_all,
                              args.batch_fault_rate)
    except ValueError as e:
        sys.exit(str(e))
    server = TestServer(args.fault_rate, faults, args.delay, args.hang, args.retry_after, args.seed,
                        args.require_key, [f for f in args.reject_fields.split(",") if f], batch)
    server.vary = args.vary
    try:
        asyncio.run(serve(server, args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
