"""One scrubber, before any shortening: a key is never shown or stored, whatever its offset or length."""

from __future__ import annotations

import asyncio
import json
import string

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llm_sched.core.events import EventBus, JsonlSink, LLMCallEvent
from llm_sched.core.records import CallContext, Message
from llm_sched.llm.client import LLMClient, RetryPolicy
from llm_sched.llm.transport import RawReply, status_error
from llm_sched.scrub import REDACTED, SHOWN_LIMIT, Scrubber, clip

# Text around a key is drawn from characters a key never has, so that finding a piece of the key in
# what is shown can only mean the key leaked.
ALPHABET = " ,.:;{}\"'/()[]<>|"
KEYS = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=12, max_size=80)


class Pick(BaseModel):
    choice: str


class EchoingServer:
    """A provider whose 401 body echoes the request, key included, at a chosen offset."""

    provider, model, endpoint, max_concurrency = "stand-in", "m", "http://127.0.0.1", None

    def __init__(self, body: str) -> None:
        self.body = body

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        raise status_error(401, self.body)


def _windows(key: str, size: int = 8) -> list[str]:
    return [key[i:i + size] for i in range(len(key) - size + 1)]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(key=KEYS, before=st.integers(0, 1200), after=st.integers(0, 300), filler=st.sampled_from(ALPHABET))
def test_a_key_echoed_in_an_error_body_never_survives_whatever_its_offset_and_length(
        key: str, before: int, after: int, filler: str) -> None:
    body = filler * before + key + filler * after
    client = LLMClient(EchoingServer(body), RetryPolicy(attempts=1, timeout=5), scrub=Scrubber([key]))
    answer = asyncio.run(client.structured([Message(role="user", content="hi")], Pick,
                                           context=CallContext(agent="a", step="s")))
    error = answer.record.error or ""
    assert len(error) <= SHOWN_LIMIT
    assert not any(w in error for w in _windows(key)), (before, len(key), error[-60:])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(key=KEYS, prefix=st.text(alphabet=ALPHABET, max_size=300), suffix=st.text(alphabet=ALPHABET, max_size=300))
def test_scrub_then_clip_leaves_no_part_of_a_known_key(key: str, prefix: str, suffix: str) -> None:
    shown = clip(Scrubber([key])(prefix + key + suffix), 200)
    assert not any(w in shown for w in _windows(key))


def test_credentials_are_scrubbed_whatever_their_value() -> None:
    scrub = Scrubber()
    for text, secret in [("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
                         ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
                         ('{"x-api-key": "k-0123456789abcdef"}', "k-0123456789abcdef"),
                         ("GET /v1/models?api_key=QUERYSECRET123&x=1", "QUERYSECRET123"),
                         ("http://user:PASSWORD123@host:8080/v1", "PASSWORD123")]:
        shown = scrub(text)
        assert secret not in shown and REDACTED in shown, shown
    assert scrub("option A: gpu-pool gpu-01 (0.84)") == "option A: gpu-pool gpu-01 (0.84)"


def test_the_event_log_is_scrubbed_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = "sk" + "-" + "z" * 30
    client = LLMClient(EchoingServer(f"echo: {key}"), RetryPolicy(attempts=1, timeout=5), scrub=Scrubber([key]))
    sink = JsonlSink(tmp_path / "events.jsonl", secrets=[key])
    client.bus = EventBus([sink])
    asyncio.run(client.structured([Message(role="user", content=f"my key is {key}")], Pick,
                                  context=CallContext(agent="a", step="s")))
    sink.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert key not in text and json.loads(text.splitlines()[0])["kind"] == "llm_call"
    assert isinstance(client.bus.events[0], LLMCallEvent) and key not in client.bus.events[0].record.messages[0].content
