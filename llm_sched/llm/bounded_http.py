"""Answers read in bounded size from the httpx-based clients (Ollama, ``openai``, SambaNova).

Those libraries read a whole body before handing it over, and httpx decompresses without bound. So
each client gets event hooks: every request asks for an uncompressed answer, and every response
is refused when it is compressed or declares a length over the limit, and otherwise has its body
stream wrapped so that reading stops, with :class:`UnreadAnswer`, one chunk past the limit. Of an
error response only the start is read (:data:`RAW_LIMIT`), so that its status, and with it the
retry decision, survives a huge error body. Hooks (not a custom transport) keep httpx's own
transport and with it the proxy settings of the environment. Time is bounded by the caller: each
attempt runs under ``asyncio.wait_for``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from llm_sched.llm.transport import RESPONSE_LIMIT, UnreadAnswer, check_answer_headers
from llm_sched.scrub import RAW_LIMIT


class _CappedStream(httpx.AsyncByteStream):
    """A response body that raises :class:`UnreadAnswer` once more than ``limit`` bytes came, or
    with ``cut`` simply ends there."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int, cut: bool) -> None:
        self._stream = stream
        self._limit = limit
        self._cut = cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            if seen + len(chunk) > self._limit:
                if not self._cut:
                    raise UnreadAnswer.too_large(self._limit)
                yield chunk[: self._limit - seen]
                return
            seen += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _ask_uncompressed(request: httpx.Request) -> None:
    request.headers["Accept-Encoding"] = "identity"


async def _cap_response(response: httpx.Response) -> None:
    failed = not response.is_success
    limit = RAW_LIMIT if failed else RESPONSE_LIMIT.get()
    check_answer_headers(response.headers.get("content-encoding"),
                         None if failed else response.headers.get("content-length"), limit)
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)  # an async client's response
    response.stream = _CappedStream(stream, limit, cut=failed)


def bounded_hooks(*after: Callable[[httpx.Response], Awaitable[None]]) -> dict[str, list[Any]]:
    """``event_hooks`` for an ``httpx.AsyncClient``: the bounds first, then the response hooks ``after``."""
    return {"request": [_ask_uncompressed], "response": [_cap_response, *after]}

