"""Checks of configured models: is the file there, does the endpoint answer?"""

from __future__ import annotations

import os

import httpx

from .backends import parse_spec
from .config import resolve
from .errors import LLMJudgeError


def check_model(name: str, timeout: float = 10.0) -> str:
    """'ok: ...' or a one-line reason the model cannot be used right now."""
    spec, options = resolve(name)
    try:
        prefix, rest = parse_spec(spec)
        if prefix == "openai":
            from .backends.openai import parse_openai_spec

            model, base = parse_openai_spec(rest)
            key = os.environ.get(options.get("key_env", "OPENAI_API_KEY"))
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            resp = httpx.get(f"{base}/models", headers=headers, timeout=timeout)
            if resp.status_code == 401:
                return f"refused the key (401): set {options.get('key_env', 'OPENAI_API_KEY')}"
            if resp.status_code != 200:
                return f"answered HTTP {resp.status_code}"
            try:
                ids = [m.get("id") for m in resp.json().get("data", [])]
            except (ValueError, AttributeError):
                return "answered, but not with a model list"
            return f"ok: {base} answers" + ("" if not ids or model in ids else f" (model {model!r} not listed)")
        if prefix in {"embedded", "gguf", "hf"}:
            from .backends.llamacpp import resolve_path

            return f"ok: {resolve_path(prefix, rest)}"
        return "ok"
    except LLMJudgeError as exc:
        return str(exc)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
