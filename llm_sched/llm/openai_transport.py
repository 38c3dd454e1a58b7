"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, LM Studio, Ollama's /v1) through the
official ``openai`` client, asking for the answer's JSON schema.

Structured output is asked for as ``response_format={"type": "json_schema", ...}``. Some servers
refuse that form (llama.cpp's server takes only ``{"type": "json_object", "schema": ...}``): the first
refusal switches this transport to that form, once, and it is remembered for the rest of the run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from llm_sched.core.records import Message
from llm_sched.llm.transport import RawReply, TransportError, status_error, unread_answer_in

ResponseForm = Literal["json_schema", "json_object"]
NO_KEY = "not-needed"  # the client insists on a key; local servers ignore it


def response_format(schema: type[BaseModel], form: ResponseForm) -> dict[str, Any]:
    body = schema.model_json_schema()
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": body, "strict": True}}
    return {"type": "json_object", "schema": body}


def refuses_json_schema(status: int, message: str) -> bool:
    """An error that names the response format: the server does not take ``json_schema``. llama.cpp's
    server answers 400; llama-cpp-python's reports its request validation error as a 500 that names
    both ``response_format`` and ``json_schema``. (``--check``'s chat probe asks the same way.)"""
    text = message.lower()
    if status in (400, 422):
        return "response_format" in text or "json_schema" in text
    return status == 500 and "response_format" in text and "json_schema" in text


class OpenAITransport:
    provider = "openai"
    max_concurrency = None

    def __init__(self, base_url: str, model: str, api_key: SecretStr | None, timeout: float) -> None:
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        from llm_sched.llm.bounded_http import bounded_hooks

        self.model = model
        self.endpoint = base_url
        self.form: ResponseForm = "json_schema"
        # max_retries=0: tenacity in the client owns retries, so attempts are counted in one place.
        # The openai client's own httpx defaults (limits, redirects), with answers read in bounded size.
        http = DefaultAsyncHttpxClient(event_hooks=bounded_hooks())
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key.get_secret_value() if api_key else NO_KEY,
                                   max_retries=0, timeout=timeout, http_client=http)

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        import openai

        form = self.form  # the form this request is sent in: calls in flight may see the switch late
        try:
            return await self._ask(messages, schema, form)
        except openai.APIStatusError as exc:
            if form == "json_schema" and refuses_json_schema(exc.status_code, str(exc.message or exc)):
                self.form = "json_object"
                return await self.complete(messages, schema, timeout)
            raise status_error(exc.status_code, str(exc.message), exc.response.headers.get("retry-after")) from exc
        except openai.APITimeoutError as exc:
            raise TransportError("timeout", f"no answer from {self.endpoint} within {timeout:g} s") from exc
        except openai.APIConnectionError as exc:
            # The client reports any failure to read an answer as a connection error, ours included.
            raise unread_answer_in(exc) or TransportError("connection", f"{self.endpoint}: {exc}") from exc

    async def _ask(self, messages: list[Message], schema: type[BaseModel], form: ResponseForm) -> RawReply:
        response = await self._client.chat.completions.create(
            model=self.model,
            messages=[m.model_dump() for m in messages],  # type: ignore[misc]
            response_format=response_format(schema, form),  # type: ignore[arg-type]
            temperature=0,
        )
        usage = response.usage
        text = response.choices[0].message.content if response.choices else ""
        return RawReply(text or "", usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None)
