"""SambaStudio through ``langchain_community.llms.sambanova.SambaStudio`` (text in, text out).

That client is synchronous ``requests`` code: it posts with no timeout, reads the whole answer
whatever its size, and turns any non-200 answer into a bare ``RuntimeError``, dropping the
``Retry-After`` header. So its module gets a ``requests.Session`` subclass that, only inside our calls
(a context variable says so), applies our timeout, reads the answer itself (bounded in size by the
client's limit and in time by the timeout, so that the worker thread ends however the server drips)
and raises a classified :class:`TransportError` that keeps the header. Outside our calls the session
behaves exactly like ``requests.Session``.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import types
from typing import Any

import requests
import urllib3
from pydantic import BaseModel, SecretStr

from llm_sched.core.records import Message
from llm_sched.llm.transport import (
    RESPONSE_LIMIT,
    RawReply,
    TransportError,
    check_answer_headers,
    read_bounded,
    schema_instruction,
    status_error,
)
from llm_sched.scrub import RAW_LIMIT

_CALL_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar("sambastudio_timeout", default=None)


class _BoundedSession(requests.Session):
    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        timeout = _CALL_TIMEOUT.get()
        if timeout is None:
            return super().request(method, url, *args, **kwargs)
        deadline = time.monotonic() + timeout
        kwargs.setdefault("timeout", timeout)
        kwargs["stream"] = True  # the body is read below, bounded; never whole by requests
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "Accept-Encoding": "identity"}
        response = super().request(method, url, *args, **kwargs)
        with response:  # releases the connection once the body is read (or refused)
            body = _read_body(response, deadline)
        if response.status_code != 200:
            raise status_error(response.status_code, body.decode("utf-8", "replace"),
                               response.headers.get("Retry-After"))
        # requests' own store for a body it has read: .text, .json() and iter_lines() serve it from here.
        response._content, response._content_consumed = body, True  # type: ignore[attr-defined]
        return response


def _read_body(response: requests.Response, deadline: float) -> bytes:
    """The body within the client's size limit and the call's time; of an error, only its start."""
    failed = response.status_code != 200
    limit = RAW_LIMIT if failed else RESPONSE_LIMIT.get()
    check_answer_headers(response.headers.get("Content-Encoding"),
                         None if failed else response.headers.get("Content-Length"), limit)
    try:
        return read_bounded(response.raw.read1, limit, deadline, cut=failed)
    except urllib3.exceptions.ReadTimeoutError as exc:  # read from urllib3 directly: its errors, as requests' own
        raise requests.ReadTimeout(str(exc)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(str(exc)) from exc


class _RequestsWithBoundedSession(types.ModuleType):
    """``requests`` as SambaStudio's module sees it: the same, but ``Session`` is bounded."""

    Session = _BoundedSession

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)


def _install() -> None:
    import langchain_community.llms.sambanova as studio_module

    if not isinstance(studio_module.requests, _RequestsWithBoundedSession):
        studio_module.requests = _RequestsWithBoundedSession("requests")  # type: ignore[assignment]


def render_prompt(messages: list[Message], schema: type[BaseModel]) -> str:
    """One text prompt: the conversation with role labels, then the JSON-schema instruction."""
    lines = [f"{m.role}: {m.content}" for m in messages]
    return "\n\n".join([*lines, schema_instruction(schema), "assistant:"])


class SambaStudioTransport:
    provider = "sambastudio"
    max_concurrency = None  # the server queues: as many calls as the client allows

    def __init__(self, url: str, api_key: SecretStr, timeout: float, model: str | None = None) -> None:
        from langchain_community.llms.sambanova import SambaStudio

        _install()
        self.url = url
        self.endpoint = url
        self.model = model or "sambastudio-endpoint"
        kwargs = {"select_expert": model} if model else {}
        self._llm = SambaStudio(sambastudio_url=url, sambastudio_api_key=api_key, model_kwargs=kwargs)

    def _invoke(self, prompt: str) -> str:
        return self._llm.invoke(prompt)

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        token = _CALL_TIMEOUT.set(timeout)
        try:
            # to_thread copies the context, so the worker thread sees the timeout set above.
            text = await asyncio.to_thread(self._invoke, render_prompt(messages, schema))
        except (requests.Timeout, TimeoutError) as exc:  # TimeoutError: an answer still coming at the deadline
            raise TransportError("timeout", f"no answer from {self.url} within {timeout:g} s") from exc
        except requests.RequestException as exc:
            raise TransportError("connection", f"{self.url}: {exc}") from exc
        except RuntimeError as exc:  # the client's own error for an unreadable answer
            raise TransportError("server", f"{self.url}: {exc}"[:RAW_LIMIT]) from exc
        finally:
            _CALL_TIMEOUT.reset(token)
        return RawReply(text)
