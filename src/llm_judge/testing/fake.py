"""``fake:NAME``: a scripted model for tests and dry runs (no model, no network): queue its
outputs or give it a responder, and read back what it was asked. Registered as a backend through
the entry-point group ``llm_judge.backends``, like any plugin; a public page refuses it unless
the operator allows it (``llm-judge ui --allow-fake``).

    >>> fake = FakeBackend(["first", "second"])
    >>> fake.generate([{"role": "user", "content": "hi"}], SamplingParams()).text
    'first'
    >>> fake.calls[0].messages[0]["content"]
    'hi'

``fake:NAME`` specs resolve to one shared instance per NAME, so a test can script it by name.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..backends import Completion, Messages, Parsed, PublicPolicy, ReadAt, Settings, TokenCallback
from ..backends import Options as BaseOptions
from ..sampling import SamplingParams

PREFIXES = ("fake",)
ADDONS = ()


class Options(BaseOptions):
    """No option of its own: those every caller may pass are ignored, any other is refused."""


Responder = Callable[[Messages, SamplingParams, dict | None], str]
# (messages, output text, offset) -> {token text: probability} at that offset of the output
Probabilities = Callable[[Messages, str, int], dict[str, float]]


@dataclass
class Call:
    messages: Messages
    sampling: SamplingParams
    schema: dict | None
    grammar: str | None = None


class FakeBackend:
    concurrency = 1

    def __init__(self, outputs: Iterable[str] = (), *, responder: Responder | None = None,
                 spec: str = "fake:default", probabilities: Probabilities | None = None):
        self.spec = spec
        self.outputs: deque[str] = deque(outputs)
        self.responder = responder
        self.probabilities = probabilities
        self.calls: list[Call] = []
        self.warnings: list[str] = []

    def queue(self, *outputs: str) -> FakeBackend:
        self.outputs.extend(outputs)
        return self

    def generate(self, messages, sampling, *, schema=None, on_token: TokenCallback | None = None,
                 read_at: ReadAt | None = None, grammar: str | None = None):
        self.calls.append(Call(messages, sampling, schema, grammar))
        if self.outputs:
            text = self.outputs.popleft()
        elif self.responder is not None:
            text = self.responder(messages, sampling, schema)
        else:
            text = f"fake answer {len(self.calls)}"
        if on_token:
            for word in text.split(" "):
                on_token(word + " ")
        words = len(text.split())
        decisions = None
        if read_at is not None and self.probabilities is not None:
            decisions = [{"offset": o, "start": o, "token": text[o:o + 1], "top": self.probabilities(messages, text, o)}
                         for o in read_at(text)] or None
        return Completion(text=text, prompt_tokens=sum(len(m["content"].split()) for m in messages),
                          completion_tokens=words, seconds=0.001 * max(words, 1),
                          finish_reason="stop", decisions=decisions)

    def special_tokens(self) -> frozenset[str]:
        """Unknown for this backend: the judge prompt breaks up the common template families' markers."""
        return frozenset()

    def describe(self):
        return {"backend": "fake", "spec": self.spec}


_instances: dict[str, FakeBackend] = {}


def named(name: str = "default") -> FakeBackend:
    """The shared instance behind the spec ``fake:NAME``."""
    return _instances.setdefault(name, FakeBackend(spec=f"fake:{name}"))


def reset() -> None:
    _instances.clear()


def from_spec(prefix: str, rest: str, options: Options, settings: Settings) -> FakeBackend:
    return named(rest or "default")


def check(prefix: str, rest: str, options: Options, settings: Settings) -> str:
    return f"ok: the scripted model fake:{rest or 'default'} (for tests and dry runs)"


def public_check(parsed: Parsed, policy: PublicPolicy) -> str | None:
    """No real answers: off on a public page unless the operator allows it."""
    if policy.allow_fake:
        return None
    return "scripted fake: models are off on this server (the operator can allow them with --allow-fake)"
