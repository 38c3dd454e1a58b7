"""SambaNova Cloud through ``langchain_sambanova.ChatSambaNova`` with ``json_schema`` structured output."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from llm_sched.core.records import Message
from llm_sched.llm.transport import RawReply, TransportError, status_error, unread_answer_in


class SambaNovaTransport:
    provider = "sambanova"
    max_concurrency = None  # the server queues: as many calls as the client allows

    def __init__(self, api_key: SecretStr, api_base: str, model: str, timeout: float) -> None:
        from langchain_sambanova import ChatSambaNova
        from sambanova import DefaultAsyncHttpxClient

        from llm_sched.llm.bounded_http import bounded_hooks

        self.model = model
        self.api_base = api_base
        self.endpoint = api_base
        # retries=0: tenacity in the client owns retries, so attempts are counted in one place. Calls are
        # async (ainvoke), so the async HTTP client is the one whose answers are read in bounded size.
        self._chat = ChatSambaNova(
            api_key=api_key, base_url=api_base, model=model, temperature=0.0, max_retries=0, timeout=timeout,
            http_async_client=DefaultAsyncHttpxClient(event_hooks=bounded_hooks()),
        )
        self._structured: dict[type[BaseModel], Any] = {}

    def _runnable(self, schema: type[BaseModel]) -> Any:
        # include_raw keeps the raw message: we validate its text ourselves, with the caller's context.
        if schema not in self._structured:
            self._structured[schema] = self._chat.with_structured_output(schema, method="json_schema", include_raw=True)
        return self._structured[schema]

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        import sambanova

        try:
            result = await self._runnable(schema).ainvoke([(m.role, m.content) for m in messages])
        except sambanova.APIStatusError as exc:
            raise status_error(exc.status_code, str(exc.message), exc.response.headers.get("retry-after")) from exc
        except sambanova.APITimeoutError as exc:
            raise TransportError("timeout", f"no answer from {self.api_base} within {timeout:g} s") from exc
        except sambanova.APIConnectionError as exc:
            # The client reports any failure to read an answer as a connection error, ours included.
            raise unread_answer_in(exc) or TransportError("connection", f"{self.api_base}: {exc}") from exc
        raw = result["raw"]
        usage = getattr(raw, "usage_metadata", None) or {}
        text = raw.content if isinstance(raw.content, str) else str(raw.content)
        return RawReply(text, usage.get("input_tokens"), usage.get("output_tokens"))
