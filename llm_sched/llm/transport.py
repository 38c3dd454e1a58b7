"""The one thing a provider does: send chat messages, return the model's text.

Each transport wraps a real client library and turns its failures into :class:`TransportError`
with a ``kind`` the retry policy understands, so retries, validation and repair live in one place
(:mod:`llm_sched.llm.client`) for every provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel

from llm_sched.config import DEFAULT_MAX_RESPONSE_BYTES
from llm_sched.core.records import Message
from llm_sched.safe_text import printable
from llm_sched.scrub import RAW_LIMIT

# "unreadable": an answer this side refused to read (too large, compressed); asking again would
# only bring the same answer, so it is not retried.
FailureKind = Literal["timeout", "connection", "rate_limited", "server", "client", "unreadable"]
RETRYABLE: frozenset[str] = frozenset({"timeout", "connection", "rate_limited", "server"})
E = TypeVar("E", bound=BaseException)

# The largest answer a transport reads, set by the client for each attempt (RetryPolicy) like the
# timeout. A context variable rather than an argument of ``complete``: it reaches the HTTP clients'
# hooks (and SambaStudio's worker thread, which asyncio.to_thread gives a copy of the context)
# without changing the Transport protocol that cassettes and the local model implement too.
RESPONSE_LIMIT: ContextVar[int] = ContextVar("llm_sched_response_limit", default=DEFAULT_MAX_RESPONSE_BYTES)
READ_CHUNK = 65536


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


class UnreadAnswer(TransportError):
    """An answer not read: larger than the limit, or compressed although an uncompressed one was
    asked for (a compressed body may expand to many times the limit before it could be counted)."""

    def __init__(self, detail: str) -> None:
        super().__init__("unreadable", detail)

    @classmethod
    def too_large(cls, limit: int) -> UnreadAnswer:
        return cls(f"answer larger than {human_size(limit)}, not read (LLM_SCHED_MAX_RESPONSE_BYTES)")

    @classmethod
    def compressed(cls, encoding: str) -> UnreadAnswer:
        return cls(f"answer compressed ({printable(encoding[:40])}) although an uncompressed one was asked for, "
                   "not read")


def human_size(size: int) -> str:
    """``1000000`` as ``1 MB``, ``2048`` as ``2.05 kB``: the limit as a user would write it."""
    if size >= 1_000_000:
        return f"{round(size / 1e6, 2):g} MB"
    return f"{round(size / 1e3, 2):g} kB" if size >= 1000 else f"{size} bytes"


def check_answer_headers(encoding: str | None, length: str | None, limit: int) -> None:
    """Refuse, before reading a byte, a compressed body or one that declares itself over ``limit``."""
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise UnreadAnswer.compressed(encoding)
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise UnreadAnswer.too_large(limit)


def read_bounded(read1: Callable[[int], bytes], limit: int, deadline: float | None = None, *,
                 cut: bool = False) -> bytes:
    """Read a body through ``read1`` (returns what has arrived, ``b""`` at the end) up to ``limit``
    bytes, and give up past ``deadline`` (``time.monotonic()``, raising ``TimeoutError``): a socket
    timeout bounds each read, not a server that sends one byte a second forever. A longer body is
    refused, or with ``cut`` its first ``limit`` bytes are returned (an error body: its start says
    what went wrong)."""
    chunks: list[bytes] = []
    seen = 0
    while chunk := read1(READ_CHUNK):
        seen += len(chunk)
        chunks.append(chunk)
        if seen > limit:
            if cut:
                break
            raise UnreadAnswer.too_large(limit)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the answer did not end in time")
    return b"".join(chunks)[:limit]


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


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` or the first exception of type ``kind`` in its cause chain, however deeply a client
    library wrapped it (the ``openai`` client reports any error in reading an answer as a
    connection error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        current = current.__cause__ or current.__context__
    return None


def unread_answer_in(exc: BaseException) -> UnreadAnswer | None:
    """A fresh :class:`UnreadAnswer` when one lies in ``exc``'s cause chain (fresh: raising the one
    found from ``exc`` would make the chain a loop)."""
    found = find_cause(exc, UnreadAnswer)
    return UnreadAnswer(str(found)) if found is not None else None


def is_replay_miss(exc: BaseException) -> bool:
    """True for a replay miss, however deeply a library wrapped it."""
    return find_cause(exc, ReplayMiss) is not None


def schema_instruction(schema: type[BaseModel]) -> str:
    """The text that asks a text-only model for one JSON object of ``schema``."""
    return (
        "Answer with exactly one JSON object and nothing else. It must validate against this JSON schema:\n"
        + json.dumps(schema.model_json_schema(), sort_keys=True)
    )
