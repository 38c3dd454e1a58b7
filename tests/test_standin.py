"""Drive the real provider clients against the stand-in server."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator

import httpx
import ollama
import pytest
from langchain_community.llms.sambanova import SambaStudio
from langchain_sambanova import ChatSambaNova
from pydantic import BaseModel

from tests.standin import Reply, RequestRecord, StandIn

SAMBA_MODEL = "Meta-Llama-3.3-70B-Instruct"


class Placement(BaseModel):
    job_id: str
    node: int


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(models=["llama3.1:8b", "qwen2.5:7b"]) as s:
        yield s


def samba(standin: StandIn, **kw: object) -> ChatSambaNova:
    return ChatSambaNova(
        api_key="test-key", base_url=standin.url + "/v1", model=SAMBA_MODEL,
        max_retries=kw.pop("max_retries", 0), **kw,
    )


# -- Ollama ------------------------------------------------------------------
async def test_ollama_async_chat_with_format(standin: StandIn) -> None:
    schema = Placement.model_json_schema()
    standin.script(Reply.json({"job_id": "j-7", "node": 3}))
    resp = await ollama.AsyncClient(host=standin.url).chat(
        model="llama3.1:8b", messages=[{"role": "user", "content": "place j-7"}], format=schema
    )
    assert Placement.model_validate_json(resp.message.content) == Placement(job_id="j-7", node=3)
    assert resp.done and resp.eval_count and resp.prompt_eval_count
    (req,) = standin.requests
    assert (req.method, req.path) == ("POST", "/api/chat")
    assert req.body["format"] == schema and req.body["stream"] is False


def test_ollama_list_and_stream(standin: StandIn) -> None:
    client = ollama.Client(host=standin.url)
    assert [m.model for m in client.list().models] == ["llama3.1:8b", "qwen2.5:7b"]
    text = "a fairly long reply that will be split into several chunks"
    standin.script(Reply.text(text))
    parts = list(client.chat(model="llama3.1:8b", messages=[], stream=True))
    assert len(parts) > 2 and parts[-1].done and not parts[0].done
    assert "".join(p.message.content or "" for p in parts) == text


def test_ollama_error_status(standin: StandIn) -> None:
    standin.script(Reply.status(404, body={"error": "model 'nope' not found"}))
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=standin.url).chat(model="nope", messages=[], stream=False)
    assert err.value.status_code == 404 and "not found" in err.value.error


# -- OpenAI-compatible (SambaNova) ------------------------------------------
def test_chat_sambanova_invoke(standin: StandIn) -> None:
    standin.script(Reply.text("```json\n{\"x\": 1}\n```"))
    msg = samba(standin).invoke("hello")
    assert msg.content == "```json\n{\"x\": 1}\n```"
    assert msg.usage_metadata and msg.usage_metadata["total_tokens"] > 0
    (req,) = standin.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer test-key"
    assert req.body["model"] == SAMBA_MODEL


def test_chat_sambanova_structured_output(standin: StandIn) -> None:
    standin.script(Reply.json({"job_id": "j-1", "node": 5}))
    out = samba(standin).with_structured_output(Placement, method="json_schema").invoke("place")
    assert out == Placement(job_id="j-1", node=5)
    fmt = standin.requests[-1].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Placement"


def test_chat_sambanova_stream(standin: StandIn) -> None:
    text = "streamed content across more than one SSE chunk"
    standin.script(Reply.text(text))
    assert "".join(c.content for c in samba(standin).stream("go")) == text
    assert standin.requests[-1].body["stream"] is True


def test_sdk_retries_honour_retry_after(standin: StandIn) -> None:
    # The sambanova SDK retries 429 itself and sleeps for Retry-After.
    standin.script(Reply.status(429, retry_after=0.2), Reply.text("second try"))
    assert samba(standin, max_retries=1).invoke("x").content == "second try"
    first, second = standin.requests
    assert second.at - first.at >= 0.2
    assert second.headers["x-stainless-retry-count"] == "1"


def test_raw_429_and_models(standin: StandIn) -> None:
    standin.script(Reply.status(429, retry_after=1))
    r = httpx.post(standin.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    models = httpx.get(standin.url + "/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["llama3.1:8b", "qwen2.5:7b"]


# -- SambaStudio -------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/api/v2/predict/generic/proj/endpoint",
    "/api/predict/generic/proj/endpoint",
    "/v1/chat/completions",  # SambaStudio's OpenAI-compatible URL form
])
def test_sambastudio(standin: StandIn, path: str) -> None:
    standin.script(Reply.json({"vote": "accept"}))
    llm = SambaStudio(sambastudio_url=standin.url + path, sambastudio_api_key="test-key")
    assert json.loads(llm.invoke("hi")) == {"vote": "accept"}
    (req,) = standin.requests
    assert req.path == path
    if "/v2/" in path:
        assert req.headers["key"] == "test-key"
        assert req.body["items"] == [{"id": "item0", "value": "hi"}]
    elif "generic" in path:
        assert req.headers["key"] == "test-key" and req.body["instances"] == ["hi"]
    else:
        assert req.headers["authorization"] == "Bearer test-key"
        assert req.body == {"messages": [{"role": "user", "content": "hi"}], "stream": False}


def test_sambastudio_stream_url_posts_non_stream_path(standin: StandIn) -> None:
    url = f"{standin.url}/api/v2/predict/generic/stream/proj/endpoint"
    assert SambaStudio(sambastudio_url=url, sambastudio_api_key="k").invoke("hi") == '{"ok": true}'
    assert standin.requests[-1].path == "/api/v2/predict/generic/proj/endpoint"


def test_sambastudio_generic_stream_shape(standin: StandIn) -> None:
    # The real client needs the (uninstalled) sseclient package to stream, so
    # check the NDJSON lines it would parse with a raw request instead.
    standin.script(Reply.text("tokens streamed one line each"))
    r = httpx.post(standin.url + "/api/v2/predict/generic/stream/p/e", json={"items": []})
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert "".join(x["result"]["items"][0]["value"]["stream_token"] for x in lines) == \
        "tokens streamed one line each"


# -- scripting ---------------------------------------------------------------
async def test_delayed_replies_are_served_in_parallel(standin: StandIn) -> None:
    standin.script(*[Reply.text(str(i)).delayed(1.0) for i in range(4)])
    client = ollama.AsyncClient(host=standin.url)
    t0 = time.monotonic()
    answers = await asyncio.gather(*[
        client.chat(model="llama3.1:8b", messages=[{"role": "user", "content": str(i)}],
                    stream=False)
        for i in range(4)
    ])
    assert time.monotonic() - t0 < 3  # one at a time would take 4 s
    assert sorted(a.message.content for a in answers) == ["0", "1", "2", "3"]


def test_dynamic_default_and_reset(standin: StandIn) -> None:
    def echo(req: RequestRecord) -> Reply:
        job = re.search(r"job-\d+", json.dumps(req.body["messages"]))
        return Reply.json({"job_id": job.group() if job else None})

    standin.script(Reply.dynamic(echo).delayed(0.01), Reply.text("second"))
    llm = samba(standin)
    assert json.loads(llm.invoke("schedule job-42").content) == {"job_id": "job-42"}
    assert llm.invoke("x").content == "second"
    assert llm.invoke("x").content == '{"ok": true}'  # queue empty -> default
    standin.default = Reply.status(503)
    with pytest.raises(Exception, match="503"):
        llm.invoke("x")
    standin.script(Reply.text("never used"))
    standin.reset()
    assert standin.requests == []
    standin.default = Reply.text("fresh")
    assert llm.invoke("x").content == "fresh"


# -- hostile answers ---------------------------------------------------------
@pytest.mark.parametrize("declare_length", [False, True])
def test_a_flood_sends_exactly_its_size_with_or_without_saying_so(standin: StandIn, declare_length: bool) -> None:
    standin.default = Reply.flood(3_000_000, declare_length=declare_length)
    with httpx.stream("POST", standin.url + "/api/chat", json={}) as r:
        assert r.headers.get("content-length") == ("3000000" if declare_length else None)
        assert sum(len(chunk) for chunk in r.iter_raw()) == 3_000_000


def test_a_listing_can_flood_too(standin: StandIn) -> None:
    standin.listing = Reply.flood(200_000)
    assert len(httpx.get(standin.url + "/api/tags").content) == 200_000


def test_a_drip_sends_the_headers_at_once_then_a_byte_at_a_time(standin: StandIn) -> None:
    standin.default = Reply.dripping(0.5)
    started = time.monotonic()
    with httpx.stream("POST", standin.url + "/v1/chat/completions", json={}) as r:
        assert r.status_code == 200 and time.monotonic() - started < 0.45  # before the first byte
        got = b""
        for chunk in r.iter_raw():
            got += chunk
            if len(got) >= 3:
                break
    assert got == b"   " and time.monotonic() - started >= 1.0
