"""Any OpenAI-compatible chat-completions server: ``openai:MODEL@BASE_URL``.

vLLM, Ollama, llama.cpp's server and OpenAI itself speak this protocol. The API key is read from
an environment variable (``OPENAI_API_KEY`` unless the spec or config names another with
``key_env``); it is sent in the Authorization header and never logged, stored or shown. For a
spec a page visitor typed (``key_configured_only``) the key goes only to a server the config file
names with that key variable: decided on the scheme, host and port the client sends to.

Structured verdicts: the backend tries OpenAI's ``json_schema`` response format, then the
``json_object`` + ``schema`` form that llama-cpp-python's server understands, then plain text
(the judge's text parser takes over); the first form the server accepts is remembered.

Replicas: ``openai:MODEL@URL1,URL2`` (or a config file's ``base_url = [...]``) names several servers
of one model; each attempt of a call goes to the one ``replicas`` chooses (the fewest calls in
flight, each server with ``concurrency`` slots of its own), a failing one is taken out for a while
and the call's next attempt goes to another, within the same ``max_attempts``. The model is one
model whatever server answered: its identity (``describe()``'s ``spec``, the cache's key) names the
URLs sorted, so ``@U1,U2`` and ``@U2,U1`` share their results, and a single URL keeps its spec as
written. The key decision above is made for each URL.

Batches (``run --batch``): ``batched`` makes a twin of the backend that sends nothing: each request
is answered from the study's batches (``batches.Book``) or waits for the next one; the answer is
read as a live reply is, so the structured-output form and the fields a server refuses are settled
as they are live, one batch later.

Replies: their shape is checked in one place (``parse_completion``, ``parse_chunk`` for a stream)
before anything reads them; one of another shape is a ``MalformedResponse``, retried like a 500
and then a failed call. ``logprobs`` of another shape than OpenAI's are ignored.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

import httpx
from pydantic import Field

from ..cancel import pause
from ..config import Settings
from ..errors import LLMJudgeError
from ..redact import redact
from ..sampling import SamplingParams
from .base import TOP_TOKENS, Completion, Messages, Parsed, PublicPolicy, ReadAt, TokenCallback
from .base import Options as BaseOptions
from .batches import RETRY_STATUS, Book, Endpoint
from .http11 import Connections, Reply, lean
from .replicas import BACKOFF, Outcome, Replica, Replicas

PREFIXES = ("openai",)
ADDONS = ()
# Body fields beyond OpenAI's own that local servers (vLLM, llama.cpp, Ollama) accept.
EXTENSIONS = ("min_p", "top_k", "repeat_penalty", "repetition_penalty")
HOSTED_OPENAI = "api.openai.com"
SCHEMA_MODES = ("json_schema", "json_object", "none")


class Options(BaseOptions):
    """A server's load options (the config file's ``[models.NAME]`` keys for it)."""

    key_env: str = "OPENAI_API_KEY"  # the variable holding the key
    timeout: float = 120.0  # seconds per request
    max_attempts: int = 4
    schema_mode: Literal["json_schema", "json_object", "none"] | None = None  # None: the first the server takes
    concurrency: int = Field(16, ge=1)  # requests in flight
    backoff_base: float = 0.5
    key_configured_only: bool = False  # a spec a page visitor typed: the key only to configured servers


class RequestFailed(LLMJudgeError):
    """The server could not give an answer after the allowed attempts (or refused the request)."""

    def __init__(self, message: str, status: int | None = None, format_rejected: bool = False):
        super().__init__(message)
        self.status = status
        self.format_rejected = format_rejected
        self.fatal = status in {401, 403, 404}


class MalformedResponse(LLMJudgeError):
    """A 200 reply that is no chat completion (or stream chunk) of the right shape: retried, then
    the call fails like any other that got no answer."""


def parse_replicas(rest: str) -> tuple[str, tuple[str, ...]]:
    """``MODEL@URL[,URL...]`` -> (model, its servers' base URLs, each without a final /).

    >>> parse_replicas("m@http://a:8000/v1,http://b:8000/v1/")
    ('m', ('http://a:8000/v1', 'http://b:8000/v1'))
    """
    model, sep, urls = rest.rpartition("@")
    if not sep or not model or not urls:
        raise LLMJudgeError(
            f"bad spec 'openai:{rest}': write openai:MODEL@BASE_URL (or MODEL@URL1,URL2 for replicas), "
            "e.g. openai:gpt-4o-mini@https://api.openai.com/v1"
        )
    found = tuple(_checked_url(url, rest) for url in urls.split(","))
    if len(set(found)) < len(found):
        raise LLMJudgeError(f"'openai:{rest}' names a server twice: list each replica's URL once")
    return model, found


def _checked_url(url: str, rest: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise LLMJudgeError(f"bad server URL {url!r} in 'openai:{rest}': it must start with http:// or https://")
    return url.rstrip("/")


def parse_openai_spec(rest: str) -> tuple[str, str]:
    """``MODEL@BASE_URL`` -> (model, base_url); the URLs of replicas joined by commas.

    >>> parse_openai_spec("gpt-4o-mini@https://api.openai.com/v1")
    ('gpt-4o-mini', 'https://api.openai.com/v1')
    """
    model, urls = parse_replicas(rest)
    return model, ",".join(urls)


def identity_spec(rest: str) -> str:
    """The spec that identifies the model (``describe()``'s, the cache's key): as written for one
    server, the URLs sorted for replicas (the same servers in any order are one model).

    >>> identity_spec("m@http://b/v1,http://a/v1/"), identity_spec("m@http://a/v1/")
    ('openai:m@http://a/v1,http://b/v1', 'openai:m@http://a/v1/')
    """
    model, urls = parse_replicas(rest)
    return f"openai:{rest}" if len(urls) == 1 else f"openai:{model}@{','.join(sorted(urls))}"


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


# --- the shape of a reply: checked here, once, before anything reads it ---------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class Chunk:
    """What one streamed chunk carries."""

    pieces: list[str]
    finish_reason: str | None
    tokens: tuple[int | None, int | None] | None  # (prompt, completion) where the chunk has usage


def _optional(value: object, kind: type[T], what: str) -> T | None:
    """``value`` where it is null or a ``kind`` (a bool is no number); else the reply is malformed."""
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise MalformedResponse(f"{what} is {type(value).__name__}, not {kind.__name__} or null")


def _token_counts(usage: object) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of a reply's ``usage``; absent or null counts are unknown."""
    counts = _optional(usage, dict, "usage") or {}
    return (_optional(counts.get("prompt_tokens"), int, "usage.prompt_tokens"),
            _optional(counts.get("completion_tokens"), int, "usage.completion_tokens"))


def cached_tokens(usage: object) -> int | None:
    """The prompt tokens a server read from its prompt cache (``usage.prompt_tokens_details.cached_tokens``,
    OpenAI's and llama-server's field); None where it does not say. Informational: another shape is read
    as not said, never as a malformed reply.

    >>> cached_tokens({"prompt_tokens_details": {"cached_tokens": 228}}), cached_tokens({"prompt_tokens": 3})
    (228, None)
    """
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    value = details.get("cached_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _is_top(entry: object) -> bool:
    logprob = entry.get("logprob") if isinstance(entry, dict) else None
    return (isinstance(entry, dict) and isinstance(entry.get("token"), str) and not isinstance(logprob, bool)
            and isinstance(logprob, int | float) and logprob <= 0)


def _is_token(entry: object) -> bool:
    top = entry.get("top_logprobs", []) if isinstance(entry, dict) else None
    return (isinstance(entry, dict) and isinstance(entry.get("token"), str) and isinstance(top, list)
            and all(_is_top(t) for t in top))


def logprobs_or_none(value: object) -> dict | None:
    """A choice's ``logprobs`` where it has OpenAI's shape (``content``: tokens, each with its
    ``top_logprobs``), else None: probabilities of another shape are ignored, never read.

    >>> logprobs_or_none({"content": [{"token": "A", "top_logprobs": [{"token": "A", "logprob": -0.1}]}]}) is None
    False
    >>> logprobs_or_none({"content": [{"token": "A", "top_logprobs": [{"token": "A", "logprob": "high"}]}]})
    """
    content = value.get("content") if isinstance(value, dict) else None
    if not isinstance(content, list) or not content or not all(_is_token(e) for e in content):
        return None
    return value if isinstance(value, dict) else None


def _first_choice(data: dict) -> dict:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("no choices[0] object")
    return choices[0]


def whole_text(text: str) -> str:
    """A reply's text as the store can keep it: JSON may carry UTF-16 surrogates, escaped, that
    Python does not join (a pair split across two stream chunks, or a lone one); pairs become
    their character and a lone one U+FFFD.

    >>> whole_text("ok " + chr(0xD83D) + chr(0xDE00) + " and " + chr(0xD800)) == "ok \U0001F600 and \uFFFD"
    True
    """
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def strict_schema(schema):
    """A verdict schema as OpenAI's strict structured outputs take it: without ``maxLength``, which
    they refuse (the prompt states the bound; local engines enforce it by grammar).

    >>> strict_schema({"type": "object", "properties": {"j": {"type": "string", "maxLength": 9}}})
    {'type': 'object', 'properties': {'j': {'type': 'string'}}}
    """
    if isinstance(schema, dict):  # a string's bound only: a criterion may be named "maxLength"
        return {k: strict_schema(v) for k, v in schema.items() if not (k == "maxLength" and schema.get("type") == "string")}
    return [strict_schema(v) for v in schema] if isinstance(schema, list) else schema


def parse_completion(data: object, seconds: float) -> Completion:
    """A chat-completion reply (parsed JSON) as a Completion; MalformedResponse where its shape is
    wrong: ``choices[0].message.content`` a string or null, ``usage`` an object of integers or absent.

    >>> c = parse_completion({"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 3}}, 0.5)
    >>> c.text, c.prompt_tokens, c.completion_tokens
    ('hi', 3, None)
    >>> parse_completion({"choices": [{"message": {"content": 42}}]}, 0.5)
    Traceback (most recent call last):
    llm_judge.backends.openai.MalformedResponse: choices[0].message.content is int, not str or null
    """
    if not isinstance(data, dict):
        raise MalformedResponse(f"the reply is {type(data).__name__}, not an object")
    choice = _first_choice(data)
    message = _optional(choice.get("message"), dict, "choices[0].message")
    if message is None:
        raise MalformedResponse("choices[0] has no message")
    text = whole_text(_optional(message.get("content"), str, "choices[0].message.content") or "")
    prompt_tokens, completion_tokens = _token_counts(data.get("usage"))
    return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, seconds=seconds,
                      cached_tokens=cached_tokens(data.get("usage")),
                      finish_reason=_optional(choice.get("finish_reason"), str, "choices[0].finish_reason"),
                      logprobs=logprobs_or_none(choice.get("logprobs")))


def parse_chunk(data: object) -> Chunk:
    """One streamed ``chat.completion.chunk`` (parsed JSON); MalformedResponse where its shape is wrong.

    >>> parse_chunk({"choices": [{"delta": {"content": "Hel"}}]}).pieces
    ['Hel']
    """
    if not isinstance(data, dict):
        raise MalformedResponse(f"a stream chunk is {type(data).__name__}, not an object")
    pieces, finish = [], None
    for choice in _optional(data.get("choices"), list, "choices") or []:
        if not isinstance(choice, dict):
            raise MalformedResponse(f"a stream choice is {type(choice).__name__}, not an object")
        delta = _optional(choice.get("delta"), dict, "choices[].delta") or {}
        piece = _optional(delta.get("content"), str, "choices[].delta.content")
        pieces += [piece] if piece else []
        finish = _optional(choice.get("finish_reason"), str, "choices[].finish_reason") or finish
    tokens = _token_counts(data["usage"]) if data.get("usage") is not None else None
    return Chunk(pieces, finish, tokens)


def endpoint(url: str) -> tuple[str, str, int | None] | None:
    """Where requests to ``url`` go, read by the client that sends them: (scheme, host, port);
    None for a URL it cannot read.

    >>> endpoint("https://API.openai.com/v1"), endpoint("http://x@127.0.0.1:8080/v1")
    (('https', 'api.openai.com', 443), ('http', '127.0.0.1', 8080))
    """
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    return u.scheme, u.host, u.port or {"https": 443, "http": 80}.get(u.scheme)


def configured_endpoints(settings: Settings | None = None) -> set[tuple[str, tuple]]:
    """(key variable, endpoint) of every ``openai:`` model in the config file (the settings', by
    default the environment's): where the operator sends each key."""
    from ..config import load_config
    from . import parse_spec

    found = set()
    for entry in load_config(settings=settings).values():
        try:
            prefix, rest = parse_spec(entry.spec, settings)
            urls = parse_replicas(rest)[1] if prefix in PREFIXES else ()
        except LLMJudgeError:
            continue
        key_env = entry.options.get("key_env", "OPENAI_API_KEY")
        found.update((key_env, where) for where in map(endpoint, urls) if where is not None)
    return found


class OpenAIBackend:
    def __init__(self, spec: str, model: str, base_url: str | Sequence[str], *, key_env: str = "OPENAI_API_KEY",
                 timeout: float = 120.0, max_attempts: int = 4, schema_mode: str | None = None,
                 concurrency: int = 16, backoff_base: float = 0.5, extra_body: dict | None = None,
                 verdict_body: dict | None = None, explicit_sampling: bool = False,
                 structure: Callable[[dict], dict] | None = None,
                 keep_logprobs: bool = True, key_configured_only: bool = False, replica_backoff: float = BACKOFF,
                 settings: Settings | None = None, clock: Callable[[], float] = time.monotonic):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.spec, self.model = spec, model
        self.explicit_sampling = explicit_sampling
        # a known server's own way to constrain output to a schema (body fields), instead of negotiating
        self.structure = structure
        self.keep_logprobs = keep_logprobs  # False: only where a weighted verdict reads them (they cost time)
        self.extra_body = dict(extra_body or {})  # fields a known server takes on every request
        self.verdict_body = dict(verdict_body or {})  # and those it takes on a judge's (constrained) requests
        self.key_env = key_env
        self.max_attempts = max(1, max_attempts)
        self.schema_mode = schema_mode  # None: detect on first structured request
        self.pool = Replicas(urls, concurrency, backoff=replica_backoff, clock=clock)
        self.concurrency = max(1, concurrency) * len(urls)  # each replica's slots, added up
        self.backoff_base = backoff_base
        self.warnings: list[str] = []
        self._key_configured_only, self._settings = key_configured_only, settings
        self.keyed = {url: self._sends_key(url) for url in urls}  # the key decision, per replica URL
        # fields this server refused (or is known not to take): never sent again
        hosted = any(urlparse(url).hostname == HOSTED_OPENAI for url in urls)
        self.dropped: set[str] = set(EXTENSIONS) if hosted else set()
        self._warn_lock = threading.Lock()
        self.book: Book | None = None  # set on a batched twin (``batched``): answers come from batches
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._threads = threading.local()  # each thread's own client (``client``)
        self._lean: dict[str, bool] = {}  # whether a URL takes the lean path (``http11.lean``)

    @property
    def client(self) -> httpx.Client:
        """This thread's HTTP client, with a connection to each replica: a study's workers each keep
        their own (one pool shared by 64 threads spends their time on the pool's lock)."""
        client = getattr(self._threads, "client", None)
        if client is None:
            limits = httpx.Limits(max_connections=len(self.pool.replicas) + 2)
            client = self._threads.client = httpx.Client(timeout=self._timeout, limits=limits, verify=_tls())
        return client

    def _sends_key(self, url: str) -> bool:
        """Whether the key goes to ``url``: always from the operator's own command line; for a spec a
        page visitor typed, only where the config file sends this key variable (scheme, host, port)."""
        send = not self._key_configured_only or (self.key_env, endpoint(url)) in configured_endpoints(self._settings)
        if not send and os.environ.get(self.key_env):
            self.warnings.append(f"the key in {self.key_env} is not sent to {url}: a page sends it only to the "
                                 "servers named in the config file")
        return send

    @property
    def send_key(self) -> bool:
        """Whether the key goes to every replica."""
        return all(self.keyed.values())

    @property
    def base_url(self) -> str:
        """The server's base URL; the replicas' joined by commas."""
        return ",".join(self.pool.urls)

    @base_url.setter
    def base_url(self, url: str) -> None:
        """Point a one-server client elsewhere (a local server started again on another port)."""
        if len(self.pool.replicas) != 1:
            raise LLMJudgeError(f"{self.spec} has replicas: its servers are named by its spec")
        self.pool.replicas[0].url = url
        self.keyed = {url: self._sends_key(url)}

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def headers_for(self, url: str) -> dict[str, str]:
        """The headers of a request to ``url``: the key only where it is decided to go."""
        return self._headers() if self.keyed.get(url, False) else {}

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
            return {"type": "json_schema", "json_schema": {"name": "verdict", "schema": strict_schema(schema),
                                                           "strict": True}}
        if mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def generate(self, messages: Messages, sampling: SamplingParams, *, schema: dict | None = None,
                 on_token: TokenCallback | None = None, read_at: ReadAt | None = None,
                 grammar: str | None = None) -> Completion:
        body = self._body(messages, sampling)
        if schema is None and read_at is None and grammar is None:
            return self._post(body, on_token)
        body.update(self.verdict_body)
        if "logprobs" not in self.dropped and (self.keep_logprobs or read_at is not None):
            body["logprobs"] = True  # kept with the verdict where the server gives them
        if read_at is not None and "top_logprobs" not in self.dropped:
            body["top_logprobs"] = min(TOP_TOKENS, 20)  # OpenAI's limit
        if schema is not None:
            result = self._generate_structured(body, schema, on_token)
        else:  # a protocol's own verdict format: a llama.cpp server takes its grammar, others the prompt's words
            result = self._post(dict(body, grammar=grammar) if grammar and self.structure else body, on_token)
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

    def batched(self, book: Book) -> OpenAIBackend:
        """A twin of this backend whose calls go into batches (``run --batch``): each request is
        looked up in ``book`` instead of sent, and is pending there until a batch answers it."""
        twin = copy.copy(self)
        twin.book = book
        return twin

    @property
    def endpoint(self) -> Endpoint:
        """Where this model's batches go: its first server in the order of its identity (the URLs
        sorted), so that the same replicas listed in another order find the same batches."""
        return Endpoint(self.spec, self.model, sorted(self.pool.urls)[0])

    def _from_batch(self, book: Book, body: dict) -> Completion:
        """The answer a batch gave to ``body`` (``Deferred`` until one has), read as a reply is."""
        url = self.endpoint.base_url
        answer = book.answer(self.endpoint, self, body)
        if answer.status == 200:
            try:
                return parse_completion(answer.body, 0.0)
            except MalformedResponse as exc:
                raise RequestFailed(str(self._malformed(str(exc), json.dumps(answer.body), url))) from None
        detail = redact(_detail(answer.body) or answer.error, [os.environ.get(self.key_env)])
        if answer.final:
            raise RequestFailed(f"{self.spec} got no answer from its batches: {detail}")
        refusal = None if answer.status is None else self._refusal(url, body, answer.status, detail)
        if refusal is not None:
            raise refusal
        raise RequestFailed(f"{self.spec} gave no answer in {book.attempts} batches: "
                            + (f"HTTP {answer.status}: {detail}" if answer.status else detail))

    def _post_once(self, body: dict, on_token: TokenCallback | None) -> Completion:
        """Up to ``max_attempts`` attempts, each on the replica the pool chooses (another after a failure,
        where one is in service: then without waiting); every replica out is a failed attempt."""
        if self.book is not None:
            return self._from_batch(self.book, body)
        last_error, failed_on = "no attempt made", None
        seen: dict[str, str] = {}  # the last error of each replica tried
        for attempt in range(self.max_attempts):
            retry_after = None
            replica = self._replica(failed_on)
            if replica is None:
                last_error = "every replica is out" + (f" ({'; '.join(seen.values())})" if seen else "")
            else:
                completion, last_error, retry_after = self._attempt(replica, body, on_token)
                if completion is not None:
                    return completion
                failed_on, seen[replica.url] = replica, last_error
            if attempt + 1 < self.max_attempts and not self.pool.others_in_service(failed_on):
                pause(backoff_seconds(attempt, retry_after, base=self.backoff_base))  # ends when the run stops
        raise RequestFailed(f"{self.spec} gave no answer after {self.max_attempts} attempts{self._where()}: {last_error}")

    def _where(self) -> str:
        return "" if len(self.pool.replicas) == 1 else f" on its replicas {', '.join(self.pool.urls)}"

    def _replica(self, avoid: Replica | None) -> Replica | None:
        """A replica with a free slot, waiting for one while some are in service and all busy; None
        when every replica is out."""
        while True:
            pause(0)  # a stopped run (a page the visitor left) sends no new request
            replica = self.pool.choose(avoid)
            if replica is not None or self.pool.all_out():
                return replica
            self.pool.wait(0.25)  # woken as soon as an attempt settles; the stop is checked again

    def _attempt(self, replica: Replica, body: dict[str, Any], on_token: TokenCallback | None
                 ) -> tuple[Completion | None, str, str | None]:
        """One request to ``replica``: (the completion or None, why not, the server's Retry-After).
        A refusal that no retry changes is raised; the replica's counts are settled either way."""
        start = time.perf_counter()
        outcome: Outcome = "aborted"  # stopped by something no attempt catches
        try:
            completion, error, retry_after = self._send(replica.url, body, on_token, start)
            outcome = "ok" if completion is not None else "failed"  # a status worth retrying: a failure
            return completion, error, retry_after
        except RequestFailed:
            outcome = "ok"  # the server answered: it refused this request, not every request
            raise
        except httpx.ConnectError as exc:
            outcome = "refused"
            return None, self._located(replica.url, f"connection failed ({type(exc).__name__})"), None
        except httpx.TimeoutException:
            outcome = "failed"
            return None, self._located(replica.url, "timed out"), None
        except (httpx.TransportError, httpx.StreamError) as exc:
            outcome = "failed"
            return None, self._located(replica.url, f"connection failed ({type(exc).__name__})"), None
        except MalformedResponse as exc:
            outcome = "failed"
            return None, str(exc), None
        finally:
            self.pool.settle(replica, outcome, time.perf_counter() - start)

    def _plain_post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response | Reply:
        """A request without a stream: on this thread's lean connection to a plain-HTTP server
        (``http11``), else on httpx."""
        plain = self._lean.get(url)
        if plain is None:
            plain = self._lean[url] = lean(url)
        if not plain:
            return self.client.post(url, json=body, headers=headers)
        conns = getattr(self._threads, "lean", None)
        if conns is None:
            conns = self._threads.lean = Connections(self._timeout.read or 120.0, self._timeout.connect or 10.0)
        return conns.post(url, json.dumps(body, ensure_ascii=False).encode(), headers)

    def _located(self, url: str, error: str) -> str:
        """An attempt's error, naming the replica where there are several (one server: as before)."""
        return error if len(self.pool.replicas) == 1 else f"{url}: {error}"

    def _send(self, base_url: str, body: dict[str, Any], on_token: TokenCallback | None, start: float
              ) -> tuple[Completion | None, str, str | None]:
        """POST one request; (the completion, "", None) on 200, else (None, the error, Retry-After)."""
        url, headers = f"{base_url}/chat/completions", self.headers_for(base_url)
        if on_token is None:
            resp = self._plain_post(url, body, headers)
            if resp.status_code == 200:
                return self._completion(resp, time.perf_counter() - start, base_url), "", None
        else:
            with self.client.stream("POST", url, json=dict(body, stream=True), headers=headers) as resp:
                if resp.status_code == 200:
                    return self._read_stream(resp, on_token, start, base_url), "", None
                resp.read()
        status = resp.status_code
        detail = redact(_error_text(resp), [os.environ.get(self.key_env)])
        refusal = self._refusal(base_url, body, status, detail)
        if refusal is not None:
            raise refusal
        return None, self._located(base_url, f"HTTP {status}: {detail}"), resp.headers.get("retry-after")

    def _refusal(self, base_url: str, body: dict[str, Any], status: int, detail: str) -> RequestFailed | None:
        """A reply no retry changes, live or in a batch: the structured-output form refused (the
        caller tries the next form; llama-cpp-python's server says so with a 500), or a status not
        worth retrying. None for a failure worth retrying."""
        if "response_format" in body and "response_format" in detail.lower():
            return RequestFailed(f"{base_url} rejected the response format: {detail}", status, True)
        if status not in RETRY_STATUS:
            return RequestFailed(_status_message(status, detail, self, base_url), status)
        return None

    def _completion(self, resp: httpx.Response | Reply, seconds: float, url: str) -> Completion:
        try:
            return parse_completion(resp.json(), seconds)
        except (ValueError, RecursionError):  # not JSON at all: an HTML page, a body cut off, nested past reading
            raise self._malformed("not JSON", resp.text, url) from None
        except MalformedResponse as exc:
            raise self._malformed(str(exc), resp.text, url) from None

    def _read_stream(self, resp: httpx.Response, on_token: TokenCallback, start: float, url: str) -> Completion:
        pieces: list[str] = []
        finish, tokens, chunks = None, (None, None), 0
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = self._chunk(payload, url)
            chunks += 1
            for piece in chunk.pieces:
                pieces.append(piece)
                on_token(piece)
            finish, tokens = chunk.finish_reason or finish, chunk.tokens or tokens
        if not chunks:
            raise self._malformed("no stream chunk", "", url)
        return Completion(text=whole_text("".join(pieces)), prompt_tokens=tokens[0], completion_tokens=tokens[1] or len(pieces),
                          seconds=time.perf_counter() - start, finish_reason=finish)

    def _chunk(self, payload: str, url: str) -> Chunk:
        try:
            return parse_chunk(json.loads(payload))
        except (ValueError, RecursionError):
            raise self._malformed("a stream chunk is not JSON", payload, url) from None
        except MalformedResponse as exc:
            raise self._malformed(str(exc), payload, url) from None

    def _malformed(self, what: str, body: str, url: str) -> MalformedResponse:
        """The one-line error of a reply that is no chat completion: what is wrong, and how it began."""
        start = redact(body[:120], [os.environ.get(self.key_env)])
        return MalformedResponse(f"malformed response from {url} ({what})" + (f": {start!r}" if start else ""))

    def special_tokens(self) -> frozenset[str]:
        """Unknown for this backend: the judge prompt breaks up the common template families' markers."""
        return frozenset()

    def describe(self) -> dict[str, Any]:
        """What identifies the model (its ``spec``: the same whatever replica answered), with each
        replica's counts where there are several (``replicas``: calls, failures, mean_ms, taken_out)."""
        facts = {"backend": "openai", "spec": self.spec, "model": self.model, "base_url": self.base_url,
                 "schema_mode": self.schema_mode}
        return facts if len(self.pool.replicas) == 1 else {**facts, "replicas": self.pool.counts()}


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS settings every client shares (httpx's default: certifi's roots), made once."""
    return httpx.create_ssl_context()


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


def _error_text(resp: httpx.Response | Reply) -> str:
    try:
        text = _detail(resp.json())
    except (ValueError, RecursionError):
        text = " ".join(resp.text.split())[:200]
    return text or resp.reason_phrase


def _detail(data: object) -> str:
    """The message of an error reply's JSON, on one line.

    >>> _detail({"error": {"message": "no  such model"}}), _detail(None)
    ('no such model', '')
    """
    if data is None:
        return ""
    err = data.get("error", data) if isinstance(data, dict) else data
    msg = err.get("message", err) if isinstance(err, dict) else err
    text = msg if isinstance(msg, str) else json.dumps(msg)
    return " ".join(text.split())[:200]


def _status_message(status: int, detail: str, backend: OpenAIBackend, url: str) -> str:
    if status == 401:
        return (f"{url} refused the API key (401: {detail}): set the right key in "
                f"the environment variable {backend.key_env}")
    if status == 404:
        return (f"{url} answered 404 for model {backend.model!r} ({detail}): "
                "check the model name and that the URL ends in the API root, e.g. .../v1")
    return f"{url} refused the request (HTTP {status}: {detail})"


def from_spec(prefix: str, rest: str, options: Options, settings: Settings) -> OpenAIBackend:
    model, urls = parse_replicas(rest)
    taken = options.model_dump(include=set(options.taken()))
    return OpenAIBackend(identity_spec(rest), model, urls, **taken, settings=settings)


def check(prefix: str, rest: str, options: Options, settings: Settings) -> str:
    """Does each server answer its model list with this key, and does it list the model?"""
    model, urls = parse_replicas(rest)
    found = [(url, _check_server(model, url, options)) for url in urls]
    if len(found) == 1:
        return found[0][1]
    if all(said.startswith("ok") for _url, said in found):
        return f"ok: {len(found)} replicas answer ({'; '.join(said[4:] for _url, said in found)})"
    return "; ".join(f"{url}: {said}" for url, said in found)


def _check_server(model: str, base: str, options: Options) -> str:
    key_env, timeout = options.key_env, options.timeout
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


def public_check(parsed: Parsed, policy: PublicPolicy) -> str | None:
    """A visitor's servers: only the config file's (the same model at the same URL, each replica's
    URL checked), so that no visitor can make the page call an address of their choice."""
    model, urls = parse_replicas(parsed.base)
    if not {(model, url) for url in urls} <= _configured_servers(policy.configured):
        return "server URLs are restricted on this server: use a model name the operator configured"
    return None


def _configured_servers(configured: frozenset[str]) -> set[tuple[str, str]]:
    """(model, base URL) of each server of each configured ``openai:`` spec."""
    out: set[tuple[str, str]] = set()
    for spec in configured:
        prefix, _, rest = spec.partition(":")
        if prefix in PREFIXES:
            try:
                model, urls = parse_replicas(rest)
            except LLMJudgeError:
                continue
            out.update((model, url) for url in urls)
    return out
