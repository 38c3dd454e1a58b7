"""The one thing a provider does: send chat messages, return the model's text.

Each transport wraps a real client library and turns its failures into :class:`TransportError`
with a ``kind`` the retry policy understands, so retries, validation and repair live in one place
(:mod:`llm_sched.llm.client`) for every provider.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel

from llm_sched.llm.records import Message
from llm_sched.scrub import RAW_LIMIT

FailureKind = Literal["timeout", "connection", "rate_limited", "server", "client"]
RETRYABLE: frozenset[str] = frozenset({"timeout", "connection", "rate_limited", "server"})


@dataclass(frozen=True)
class RawReply:
    text: str
    tokens_in: int | None = None
    tokens_out: int | None = None


class TransportError(Exception):
    """A failed request, classified. ``retry_after`` is the server's ``Retry-After`` in seconds."""

    def __init__(self, kind: FailureKind, detail: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(detail)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class Transport(Protocol):
    provider: str
    model: str
    endpoint: str  # where the model runs: a base URL, a model file, a cassette
    max_concurrency: int | None  # calls it can serve at once (1: one in-process model); None: no limit

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        """Send ``messages``; ask for JSON matching ``schema``; raise ``TransportError`` on failure."""
        ...


def status_error(status: int, detail: str, retry_after: str | float | None = None) -> TransportError:
    """Classify an HTTP status: 429 rate limited, 5xx server (both retried), other 4xx client (not)."""
    kind: FailureKind = "rate_limited" if status == 429 else "server" if status >= 500 else "client"
    # Bounded, not cut short: the client scrubs secrets first and shortens after (llm_sched.scrub).
    return TransportError(kind, f"HTTP {status}: {detail}"[:RAW_LIMIT], status=status,
                          retry_after=parse_retry_after(retry_after))


def parse_retry_after(value: str | float | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form; HTTP dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


class ReplayMiss(Exception):
    """A cassette has no recorded answer for a request."""


def is_replay_miss(exc: BaseException) -> bool:
    """True for a replay miss, however deeply a library wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ReplayMiss):
            return True
        current = current.__cause__ or current.__context__
    return False


def schema_instruction(schema: type[BaseModel]) -> str:
    """The text that asks a text-only model for one JSON object of ``schema``."""
    return (
        "Answer with exactly one JSON object and nothing else. It must validate against this JSON schema:\n"
        + json.dumps(schema.model_json_schema(), sort_keys=True)
    )
