"""One secret scrubber for every text that is shown or stored, applied before any text is shortened.

A key that straddled a cut (a 401 body echoing the ``Authorization`` header, cut at 200 characters
and scrubbed after) used to leave its first characters in the log. Now texts are cut only after
scrubbing (:func:`clip`); upstream, texts are only bounded generously (:data:`RAW_LIMIT`) so that
memory stays bounded and the final cut removes anything near that bound.

What is scrubbed: every known secret value (the settings' keys), then anything that looks like a
credential whatever its value: ``Bearer`` and ``Basic`` credentials, ``Authorization``/``api-key`` header values, key
and token query parameters, and the password of a URL's userinfo.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
RAW_LIMIT = 65536  # how much of an error body is kept before scrubbing (bounded memory)
SHOWN_LIMIT = 500  # how much of a scrubbed error is kept

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}"),
    re.compile(r"(?i)((?:authorization|x-api-key|api-key|api_key)[\"']?\s*[:=]\s*[\"']?)(?!bearer\b)[^\s\"',}]{8,}"),
    re.compile(r"(?i)([?&](?:api_key|apikey|key|token|access_token)=)[^&\s\"']+"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)"),
)


class Scrubber:
    """Replaces known secrets and credential-shaped text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text


def clip(text: str, limit: int = SHOWN_LIMIT) -> str:
    """``text`` cut to ``limit`` characters: only ever after it was scrubbed."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
