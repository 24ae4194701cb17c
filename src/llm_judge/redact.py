"""Secrets out of any text we store or show: API keys, bearer tokens, key parameters.

A server's error message can echo the request (its headers, its URL); that text is stored with a
failed result and printed. Every such text passes through ``redact`` first.

    >>> redact('500: {"headers": {"Authorization": "Bearer sk-abc123"}} ?api_key=xyz&x=1')
    '500: {"headers": {"Authorization": "[redacted]"}} ?api_key=[redacted]&x=1'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
_PATTERNS = [
    # Authorization: Bearer X / "authorization": "Basic X" / authorization=X
    re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}&]+"""),
    # a bearer token anywhere
    re.compile(r"""(?i)(\bbearer\s+)[^\s"',;}&]+"""),
    # api_key=X, "api-key": "X", x-api-key: X, apikey, access_token, ?key=X
    re.compile(r"""(?i)(\b(?:x-)?(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret[_-]?key)["']?\s*[:=]\s*["']?)"""
               r"""[^\s"',;}&]+"""),
    re.compile(r"""(?i)([?&]key=)[^\s"',;}&]+"""),
    # well-known key shapes, wherever they appear
    re.compile(r"""()\b(?:sk|rk|pk)-[A-Za-z0-9_-]{12,}"""),
]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every key-like value and every given secret replaced by ``[redacted]``."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text
