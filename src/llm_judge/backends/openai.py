"""Any OpenAI-compatible chat-completions server: ``openai:MODEL@BASE_URL``.

vLLM, Ollama, llama.cpp's server and OpenAI itself speak this protocol. The API key is read from
an environment variable (``OPENAI_API_KEY`` unless the spec or config names another with
``key_env``); it is sent in the Authorization header and never logged, stored or shown.

Structured verdicts: the backend tries OpenAI's ``json_schema`` response format, then the
``json_object`` + ``schema`` form that llama-cpp-python's server understands, then plain text
(the judge's text parser takes over); the first form the server accepts is remembered.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import urlparse

import httpx

from ..errors import LLMJudgeError
from ..redact import redact
from ..sampling import SamplingParams
from . import TOP_TOKENS, Completion, Messages, ReadAt, TokenCallback

PREFIXES = ("openai",)
OPTIONS = frozenset({"key_env", "timeout", "max_attempts", "schema_mode", "concurrency", "backoff_base"})
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Body fields beyond OpenAI's own that local servers (vLLM, llama.cpp, Ollama) accept.
EXTENSIONS = ("min_p", "top_k", "repeat_penalty", "repetition_penalty")
HOSTED_OPENAI = "api.openai.com"
SCHEMA_MODES = ("json_schema", "json_object", "none")


class RequestFailed(LLMJudgeError):
    """The server could not give an answer after the allowed attempts (or refused the request)."""

    def __init__(self, message: str, status: int | None = None, format_rejected: bool = False):
        super().__init__(message)
        self.status = status
        self.format_rejected = format_rejected
        self.fatal = status in {401, 403, 404}


def parse_openai_spec(rest: str) -> tuple[str, str]:
    """``MODEL@BASE_URL`` -> (model, base_url).

    >>> parse_openai_spec("gpt-4o-mini@https://api.openai.com/v1")
    ('gpt-4o-mini', 'https://api.openai.com/v1')
    """
    model, sep, url = rest.rpartition("@")
    if not sep or not model or not url:
        raise LLMJudgeError(
            f"bad spec 'openai:{rest}': write openai:MODEL@BASE_URL, "
            "e.g. openai:gpt-4o-mini@https://api.openai.com/v1"
        )
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise LLMJudgeError(f"bad server URL {url!r} in 'openai:{rest}': it must start with http:// or https://")
    return model, url.rstrip("/")


def backoff_seconds(attempt: int, retry_after: str | None, *, base: float = 0.5, cap: float = 30.0,
                    rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: Retry-After when given, else jittered 2^n.

    >>> backoff_seconds(0, "3")
    3.0
    >>> 0.0 <= backoff_seconds(2, None, rng=random.Random(1)) <= 2.0
    True
    """
    if retry_after:
        try:
            return min(max(float(retry_after), 0.0), cap)
        except ValueError:
            pass
    return (rng or random).uniform(0, min(cap, base * 2 ** attempt))


class OpenAIBackend:
    def __init__(self, spec: str, model: str, base_url: str, *, key_env: str = "OPENAI_API_KEY",
                 timeout: float = 120.0, max_attempts: int = 4, schema_mode: str | None = None,
                 concurrency: int = 16, backoff_base: float = 0.5, extra_body: dict | None = None,
                 explicit_sampling: bool = False, structure: Callable[[dict], dict] | None = None,
                 keep_logprobs: bool = True):
        self.spec, self.model, self.base_url = spec, model, base_url
        self.explicit_sampling = explicit_sampling
        # a known server's own way to constrain output to a schema (body fields), instead of negotiating
        self.structure = structure
        self.keep_logprobs = keep_logprobs  # False: only where a weighted verdict reads them (they cost time)
        self.extra_body = dict(extra_body or {})  # fields a known server takes on every request
        self.key_env = key_env
        self.max_attempts = max(1, max_attempts)
        self.schema_mode = schema_mode  # None: detect on first structured request
        self.concurrency = concurrency
        self.backoff_base = backoff_base
        self.slots = threading.BoundedSemaphore(max(1, concurrency))
        self.warnings: list[str] = []
        # fields this server refused (or is known not to take): never sent again
        self.dropped: set[str] = set(EXTENSIONS) if urlparse(base_url).hostname == HOSTED_OPENAI else set()
        self._warn_lock = threading.Lock()
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                   limits=httpx.Limits(max_connections=max(concurrency, 1) + 4))

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, messages: Messages, sampling: SamplingParams) -> dict:
        """The request body. Fields left at their neutral value are not sent (a hosted API may refuse
        them), except to a server whose own defaults differ (``explicit_sampling``: llama-server
        samples with top_k 40, top_p 0.95 and min_p 0.05 unless told otherwise)."""
        every = self.explicit_sampling
        body = {"model": self.model, "messages": messages, "temperature": sampling.temperature,
                "max_tokens": sampling.max_tokens, **self.extra_body}
        if sampling.top_p < 1.0 or every:
            body["top_p"] = sampling.top_p
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        # Extensions most local servers (vLLM, llama.cpp, Ollama) accept; sent only when in use.
        if sampling.min_p > 0 or every:
            body["min_p"] = sampling.min_p
        if sampling.top_k > 0 or every:
            body["top_k"] = sampling.top_k
        if sampling.repeat_penalty != 1.0 or every:
            body["repeat_penalty"] = sampling.repeat_penalty
            if not every:
                body["repetition_penalty"] = sampling.repeat_penalty
        return self._strip_dropped(body)

    def _strip_dropped(self, body: dict) -> dict:
        """Remove the fields this server does not take, saying so once for sampling fields."""
        for name in [f for f in body if f in self.dropped]:
            del body[name]
            if name not in ("logprobs", "top_logprobs"):
                self._warn(f"{self.base_url} does not take {name}: {self.model} sampled without it")
        return body

    def _warn(self, text: str) -> None:
        with self._warn_lock:
            if text not in self.warnings:
                self.warnings.append(text)

    @staticmethod
    def _response_format(mode: str, schema: dict) -> dict | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def generate(self, messages: Messages, sampling: SamplingParams, *, schema: dict | None = None,
                 on_token: TokenCallback | None = None, read_at: ReadAt | None = None) -> Completion:
        body = self._body(messages, sampling)
        if schema is None:
            return self._post(body, on_token)
        if "logprobs" not in self.dropped and (self.keep_logprobs or read_at is not None):
            body["logprobs"] = True  # kept with the verdict where the server gives them
        if read_at is not None and "top_logprobs" not in self.dropped:
            body["top_logprobs"] = min(TOP_TOKENS, 20)  # OpenAI's limit
        result = self._generate_structured(body, schema, on_token)
        if read_at is not None:
            result.decisions = decisions_from_logprobs(result.logprobs, result.text, read_at(result.text))
            if result.decisions is None:
                self._warn(f"{self.base_url} gives no token probabilities for {self.model}: its weighted verdicts "
                           "fall back to the sampled ones")
        return result

    def _generate_structured(self, body: dict, schema: dict, on_token: TokenCallback | None) -> Completion:
        if self.structure is not None:
            return self._post(dict(body, **self.structure(schema)), on_token)
        modes = [self.schema_mode] if self.schema_mode else list(SCHEMA_MODES)
        for i, mode in enumerate(modes):
            fmt = self._response_format(mode, schema)
            attempt_body = dict(body, response_format=fmt) if fmt else body
            try:
                result = self._post(attempt_body, on_token)
            except RequestFailed as exc:
                rejected_format = (exc.format_rejected or exc.status in {400, 422}) and i + 1 < len(modes)
                if rejected_format and not self.schema_mode:
                    continue
                raise
            if mode == "none" and not self.schema_mode:
                self._warn(f"{self.base_url} accepts neither structured-output form (json_schema, json_object with a "
                           f"schema): {self.model}'s verdicts are read from plain text, and an unreadable one is unscored")
            self.schema_mode = mode
            return result
        raise AssertionError("unreachable")

    def _post(self, body: dict, on_token: TokenCallback | None) -> Completion:
        """POST with retries; a field the server refuses (400/422 naming it) is dropped and re-sent."""
        while True:
            try:
                return self._post_once(body, on_token)
            except RequestFailed as exc:
                refused = [f for f in (*EXTENSIONS, "logprobs", "top_logprobs") if f in body and exc.status in {400, 422}
                           and f in str(exc)]
                if not refused:
                    raise
                self.dropped.update(refused)
                body = self._strip_dropped(dict(body))

    def _post_once(self, body: dict, on_token: TokenCallback | None) -> Completion:
        url = f"{self.base_url}/chat/completions"
        last_error = "no attempt made"
        for attempt in range(self.max_attempts):
            start = time.perf_counter()
            retry_after = None
            try:
                with self.slots:
                    if on_token is None:
                        resp = self.client.post(url, json=body, headers=self._headers())
                        if resp.status_code == 200:
                            return self._completion(resp, time.perf_counter() - start)
                    else:
                        with self.client.stream("POST", url, json=dict(body, stream=True),
                                                headers=self._headers()) as resp:
                            if resp.status_code == 200:
                                return self._read_stream(resp, on_token, start)
                            resp.read()
                status = resp.status_code
                detail = redact(_error_text(resp), [os.environ.get(self.key_env)])
                if "response_format" in body and "response_format" in detail.lower():
                    # The server does not take this structured-output form (llama-cpp-python's
                    # server says so with a 500): no retry, the caller tries the next form.
                    raise RequestFailed(f"{self.base_url} rejected the response format: {detail}", status, True)
                if status not in RETRY_STATUS:
                    raise RequestFailed(_status_message(status, detail, self), status)
                last_error = f"HTTP {status}: {detail}"
                retry_after = resp.headers.get("retry-after")
            except httpx.TimeoutException:
                last_error = "timed out"
            except (httpx.TransportError, httpx.StreamError) as exc:
                last_error = f"connection failed ({type(exc).__name__})"
            except MalformedResponse as exc:
                last_error = str(exc)
            if attempt + 1 < self.max_attempts:
                time.sleep(backoff_seconds(attempt, retry_after, base=self.backoff_base))
        raise RequestFailed(f"{self.spec} gave no answer after {self.max_attempts} attempts: {last_error}")

    def _completion(self, resp: httpx.Response, seconds: float) -> Completion:
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            text = redact(resp.text[:120], [os.environ.get(self.key_env)])
            raise MalformedResponse(f"malformed response from {self.base_url}: {text!r}") from None
        usage = data.get("usage") or {}
        return Completion(text=text, prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=usage.get("completion_tokens"), seconds=seconds,
                          finish_reason=choice.get("finish_reason"), logprobs=choice.get("logprobs") or None)

    def _read_stream(self, resp: httpx.Response, on_token: TokenCallback, start: float) -> Completion:
        pieces, finish, usage, chunks = [], None, {}, 0
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                data = json.loads(payload)
            except ValueError:
                raise MalformedResponse(f"malformed stream chunk from {self.base_url}: {payload[:80]!r}") from None
            usage = data.get("usage") or usage
            for choice in data.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    chunks += 1
                    pieces.append(piece)
                    on_token(piece)
                finish = choice.get("finish_reason") or finish
        return Completion(text="".join(pieces), prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=usage.get("completion_tokens") or chunks,
                          seconds=time.perf_counter() - start, finish_reason=finish)

    def special_tokens(self) -> frozenset[str]:
        """Unknown for this backend: the judge prompt breaks up the common template families' markers."""
        return frozenset()

    def describe(self) -> dict:
        return {"backend": "openai", "spec": self.spec, "model": self.model, "base_url": self.base_url,
                "schema_mode": self.schema_mode}


def decisions_from_logprobs(logprobs, text: str, offsets: list[int]) -> list[dict] | None:
    """``Completion.decisions`` from an OpenAI ``logprobs`` object: at each offset, the token that
    holds it and its ``top_logprobs`` as probabilities. None when the server gave none.

    >>> lp = {"content": [{"token": '{"winner": "', "top_logprobs": []},
    ...                   {"token": "A", "top_logprobs": [{"token": "A", "logprob": -0.1}, {"token": "B", "logprob": -2.4}]},
    ...                   {"token": '"}', "top_logprobs": []}]}
    >>> d = decisions_from_logprobs(lp, '{"winner": "A"}', [12])[0]
    >>> d["start"], d["token"], round(d["top"]["A"], 3)
    (12, 'A', 0.905)
    >>> lp["content"].insert(0, {"token": "\\n", "top_logprobs": []})  # returned text trimmed, tokens not
    >>> d = decisions_from_logprobs(lp, '{"winner": "A"}', [12])[0]
    >>> d["start"], d["token"]
    (12, 'A')
    """
    import math

    content = (logprobs or {}).get("content") if isinstance(logprobs, dict) else None
    if not content or not offsets:
        return None
    out, pos = [], 0
    spans = []
    for entry in content:
        token = entry.get("token") or ""
        spans.append((pos, pos + len(token), entry))
        pos += len(token)
    # Some servers trim the text they return (llama-server strips surrounding whitespace from the
    # message) while the tokens keep it: offsets in the text are shifted to where it lies in the tokens.
    joined = "".join(e.get("token") or "" for e in content)
    shift = joined.find(text) if text else 0
    if shift < 0:
        return None  # the tokens are not the text: no offset can be trusted
    for offset in sorted(set(offsets)):
        hit = next(((a, e) for a, b, e in spans if a <= offset + shift < b), None)
        if hit is None or not hit[1].get("top_logprobs"):
            continue
        start, entry = hit
        top = {t["token"]: math.exp(t["logprob"]) for t in entry["top_logprobs"] if "token" in t and "logprob" in t}
        out.append({"offset": offset, "start": start - shift, "token": entry.get("token"), "top": top})
    return out or None


class MalformedResponse(Exception):
    pass


def _error_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message", err) if isinstance(err, dict) else err
        text = msg if isinstance(msg, str) else json.dumps(msg)
    except ValueError:
        text = resp.text
    return " ".join(text.split())[:200] or resp.reason_phrase


def _status_message(status: int, detail: str, backend: OpenAIBackend) -> str:
    if status == 401:
        return (f"{backend.base_url} refused the API key (401: {detail}): set the right key in "
                f"the environment variable {backend.key_env}")
    if status == 404:
        return (f"{backend.base_url} answered 404 for model {backend.model!r} ({detail}): "
                "check the model name and that the URL ends in the API root, e.g. .../v1")
    return f"{backend.base_url} refused the request (HTTP {status}: {detail})"


def from_spec(prefix: str, rest: str, **options) -> OpenAIBackend:
    model, base_url = parse_openai_spec(rest)
    return OpenAIBackend(f"openai:{rest}", model, base_url, **options)


def check(prefix: str, rest: str, *, key_env: str = "OPENAI_API_KEY", timeout: float = 10.0, **_options) -> str:
    """Does the endpoint answer its model list with this key, and does it list the model?"""
    model, base = parse_openai_spec(rest)
    key = os.environ.get(key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        resp = httpx.get(f"{base}/models", headers=headers, timeout=min(timeout, 10.0))
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    if resp.status_code == 401:
        return f"refused the key (401): set {key_env}"
    if resp.status_code != 200:
        return f"answered HTTP {resp.status_code}"
    try:
        ids = [m.get("id") for m in resp.json().get("data", [])]
    except (ValueError, AttributeError):
        return "answered, but not with a model list"
    return f"ok: {base} answers" + ("" if not ids or model in ids else f" (model {model!r} not listed)")
