"""Ollama through the official ``ollama.AsyncClient``, with ``format`` set to the answer's JSON schema."""

from __future__ import annotations

import httpx
import ollama
from pydantic import BaseModel

from llm_sched.core.records import Message
from llm_sched.llm.bounded_http import bounded_hooks
from llm_sched.llm.transport import RawReply, TransportError, status_error
from llm_sched.scrub import RAW_LIMIT


async def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    await response.aread()  # bounded: of an error body only its start is read (bounded_http)
    raise status_error(response.status_code, response.text[:RAW_LIMIT], response.headers.get("retry-after"))


class OllamaTransport:
    provider = "ollama"
    max_concurrency = None  # the server queues: as many calls as the client allows

    def __init__(self, host: str, model: str, timeout: float) -> None:
        self.model = model
        self.host = host
        self.endpoint = host
        # The client's own timeout bounds each HTTP request; the caller also bounds the whole attempt.
        # The response hook classifies HTTP errors here because ollama.ResponseError drops the
        # response headers, and with them Retry-After. The bounds come first: no answer is read whole.
        self._client = ollama.AsyncClient(host=host, timeout=timeout, event_hooks=bounded_hooks(_raise_for_status))

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        try:
            response = await self._client.chat(
                model=self.model,
                messages=[m.model_dump() for m in messages],
                format=schema.model_json_schema(),
                options={"temperature": 0},
                stream=False,
            )
        except ollama.ResponseError as exc:
            raise status_error(exc.status_code, str(exc.error)) from exc
        except httpx.TimeoutException as exc:
            raise TransportError("timeout", f"no answer from {self.host} within {timeout:g} s") from exc
        except (httpx.TransportError, ConnectionError) as exc:
            raise TransportError("connection", f"{self.host}: {exc}") from exc
        return RawReply(response.message.content or "", response.prompt_eval_count, response.eval_count)
