"""The ``openai`` provider (``OpenAITransport``, the official ``openai`` client) against the stand-in.

What goes on the wire (``response_format`` with the per-call schema), the switch to llama.cpp's
``json_object`` form when a server refuses ``json_schema``, which failures are retried, the API key,
and a whole scenario run with its ``llm`` summary.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_sched.agents.answers import VoteAnswer, proposal_answer
from llm_sched.config import load_settings
from llm_sched.llm import CallContext, LLMClient, Message, RetryPolicy
from llm_sched.llm.factory import build_transport
from llm_sched.llm.openai_transport import OpenAITransport
from tests.conftest import Cli
from tests.standin import LLAMA_CPP_REFUSAL, Reply, RequestRecord, StandIn, is_readiness_probe

MODEL = "standin-7b"
LETTERS = ("A", "B", "C")
MESSAGES = [Message(role="system", content="You place HPC jobs."), Message(role="user", content="Place job-1.")]
PROPOSAL = CallContext(agent="gpu-agent", step="proposal", job_id="job-1")
VOTE = CallContext(agent="gpu-agent", step="vote-r1", job_id="job-1")
LLM_KEYS = {"provider", "model", "calls", "valid_first_try", "repaired", "fallbacks", "prompt_tokens",
            "completion_tokens", "agreement_with_heuristic", "decision_latency_s"}


def fake_key() -> str:
    # Assembled at run time: a literal "sk-" + 20 alphanumerics would trip the repository's secret scan.
    return "sk" + "-" + "test" + "Q7" * 16


# -- a deterministic "model": answers whatever schema the request carries -----------------------------
def asked_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema in a chat request's ``response_format`` (either form)."""
    form = body.get("response_format") or {}
    if form.get("type") == "json_schema":
        return form["json_schema"]["schema"]
    return form["schema"]


def form_of(rec: RequestRecord) -> str | None:
    body = rec.body if isinstance(rec.body, dict) else {}
    return (body.get("response_format") or {}).get("type")


def answer_schema(rec: RequestRecord) -> Reply:
    """A valid answer: the first offered letter and a mid-range score, or an accepting vote."""
    props = asked_schema(rec.body)["properties"]
    if "option_id" in props:
        scores = props["score"]["enum"]
        return Reply.json({"option_id": props["option_id"]["enum"][0], "score": scores[len(scores) // 2],
                           "reasoning": "the first option fits best"})
    return Reply.json({"decision": "accept", "confidence": 0.8, "reasoning": "feasible and a good fit"})


def chat_requests(server: StandIn) -> list[RequestRecord]:
    """The run's chat requests: not the readiness probe sent before the run starts."""
    return [r for r in server.requests
            if r.method == "POST" and r.path.endswith("/chat/completions") and not is_readiness_probe(r.body)]


# -- fixtures and helpers ---------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[StandIn]:
    with StandIn(models=[MODEL, "other-model"]) as standin:
        standin.default = Reply.dynamic(answer_schema)
        yield standin


def make_client(server: StandIn, *, attempts: int = 3, api_key: str | None = None) -> LLMClient:
    env = {"LLM_SCHED_PROVIDER": "openai", "OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_MODEL": MODEL}
    if api_key:
        env["OPENAI_API_KEY"] = api_key
    transport = build_transport("openai", load_settings(env, environ={}))
    assert isinstance(transport, OpenAITransport)
    policy = RetryPolicy(attempts=attempts, timeout=5.0, backoff_initial=0.01, backoff_max=0.05)
    return LLMClient(transport, policy)


def use_openai(cli: Cli, server: StandIn, **extra: str) -> None:
    cli.env.update(OPENAI_BASE_URL=f"{server.url}/v1", OPENAI_MODEL=MODEL, LLM_SCHED_TIMEOUT="10", **extra)


def run_dir(cli: Cli) -> Path:
    (run,) = [p for p in (cli.cwd / "runs").iterdir() if p.is_dir()]
    return run


def summary_of(cli: Cli) -> dict[str, Any]:
    return json.loads((run_dir(cli) / "summary.json").read_text())


# -- the request ------------------------------------------------------------------------------------
async def test_openai_provider_asks_for_json_schema_with_the_offered_letters(server: StandIn) -> None:
    client = make_client(server)
    schema = proposal_answer(LETTERS)
    answer = await client.structured(MESSAGES, schema, context=PROPOSAL)
    assert answer.value is not None and answer.value.option_id == "A"
    assert (answer.record.provider, answer.record.model, answer.record.outcome) == ("openai", MODEL, "ok")
    (request,) = chat_requests(server)
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == MODEL
    form = request.body["response_format"]
    assert form["type"] == "json_schema"
    assert form["json_schema"]["strict"] is True
    assert form["json_schema"]["schema"] == schema.model_json_schema()
    assert form["json_schema"]["schema"]["properties"]["option_id"]["enum"] == list(LETTERS)
    assert client.transport.form == "json_schema"  # type: ignore[attr-defined]


async def test_each_call_carries_its_own_letters(server: StandIn) -> None:
    client = make_client(server)
    for letters in (("A",), ("A", "B"), LETTERS):
        answer = await client.structured(MESSAGES, proposal_answer(letters), context=PROPOSAL)
        assert answer.value is not None
    enums = [asked_schema(r.body)["properties"]["option_id"]["enum"] for r in chat_requests(server)]
    assert enums == [["A"], ["A", "B"], ["A", "B", "C"]]


# -- llama.cpp's server: json_schema refused, json_object + schema taken --------------------------------
@pytest.mark.parametrize("status", [400, 500])  # llama.cpp's server, llama-cpp-python's server
async def test_a_server_refusing_json_schema_gets_json_object_with_the_schema_once(server: StandIn, status: int) -> None:
    server.refuse_json_schema, server.refusal_status = True, status
    client = make_client(server)
    proposal = proposal_answer(LETTERS)
    first = await client.structured(MESSAGES, proposal, context=PROPOSAL)
    assert first.value is not None and first.value.option_id == "A"
    assert (first.record.outcome, first.record.attempts) == ("ok", 1)  # the switch is not a failed attempt
    assert client.transport.form == "json_object"  # type: ignore[attr-defined]
    later = [await client.structured(MESSAGES, VoteAnswer, context=VOTE),
             await client.structured(MESSAGES, proposal_answer(("A", "B")), context=PROPOSAL)]
    assert all(a.value is not None and a.record.outcome == "ok" for a in later)

    requests = chat_requests(server)
    assert [form_of(r) for r in requests] == ["json_schema", "json_object", "json_object", "json_object"]
    refused, retried = requests[0], requests[1]
    assert refused.body["messages"] == retried.body["messages"]
    assert retried.body["response_format"] == {"type": "json_object", "schema": proposal.model_json_schema()}
    assert requests[2].body["response_format"]["schema"] == VoteAnswer.model_json_schema()


def test_a_scenario_run_against_a_server_refusing_json_schema_is_refused_exactly_once(cli: Cli, server: StandIn) -> None:
    server.refuse_json_schema = True
    use_openai(cli, server, LLM_SCHED_CONCURRENCY="1")  # one call at a time: nothing in flight at the switch
    result = cli("--scenario", "healthy", "--provider", "openai")
    assert result.code == 0, result.text
    forms = [form_of(r) for r in chat_requests(server)]
    assert forms.count("json_schema") == 1 and forms[0] == "json_schema"
    assert set(forms[1:]) == {"json_object"}
    llm = summary_of(cli)["llm"]
    assert llm["calls"] == len(forms) - 1  # the refused request and its retry are one call
    assert (llm["valid_first_try"], llm["fallbacks"]) == (llm["calls"], 0)


async def test_calls_in_flight_when_json_schema_is_refused_all_get_their_answer(server: StandIn) -> None:
    refusal = Reply.status(400, body=LLAMA_CPP_REFUSAL).delayed(0.3)  # every in-flight request is refused

    def reply(rec: RequestRecord) -> Reply:
        return refusal if form_of(rec) == "json_schema" else answer_schema(rec)

    server.default = Reply.dynamic(reply)
    client = make_client(server)
    answers = await asyncio.gather(*(client.structured(MESSAGES, VoteAnswer, context=VOTE) for _ in range(4)))
    assert [a.record.outcome for a in answers] == ["ok"] * 4
    assert client.transport.form == "json_object"  # type: ignore[attr-defined]


# -- retries ----------------------------------------------------------------------------------------
async def test_429_with_retry_after_is_retried_after_the_wait_and_counted(server: StandIn) -> None:
    server.script(Reply.status(429, retry_after=0.4))
    client = make_client(server)
    started = time.monotonic()
    answer = await client.structured(MESSAGES, VoteAnswer, context=VOTE)
    assert answer.value is not None
    assert (answer.record.outcome, answer.record.attempts) == ("ok", 2)
    first, second = chat_requests(server)
    assert second.at - first.at >= 0.4  # Retry-After, not the 0.01 s backoff
    assert time.monotonic() - started < 10  # and not much longer: no backoff of its own on top


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retried_and_counted_as_an_attempt(server: StandIn, status: int) -> None:
    server.script(Reply.status(status))
    answer = await make_client(server).structured(MESSAGES, VoteAnswer, context=VOTE)
    assert answer.value is not None
    assert (answer.record.outcome, answer.record.attempts) == ("ok", 2)
    assert len(chat_requests(server)) == 2


@pytest.mark.parametrize(("status", "outcome"), [(503, "error"), (429, "rate_limited")])
async def test_retries_stop_at_the_attempt_limit(server: StandIn, status: int, outcome: str) -> None:
    server.script(*[Reply.status(status, retry_after=0.01)] * 3)
    answer = await make_client(server, attempts=3).structured(MESSAGES, VoteAnswer, context=VOTE)
    assert answer.value is None
    assert (answer.record.outcome, answer.record.attempts) == (outcome, 3)
    assert str(status) in (answer.record.error or "")
    assert len(chat_requests(server)) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_not_retried(server: StandIn, status: int) -> None:
    server.script(Reply.status(status))
    answer = await make_client(server).structured(MESSAGES, VoteAnswer, context=VOTE)
    assert answer.value is None
    assert (answer.record.outcome, answer.record.attempts) == ("error", 1)
    assert f"HTTP {status}" in (answer.record.error or "")
    assert [form_of(r) for r in chat_requests(server)] == ["json_schema"]  # not taken for a refusal of the form


# -- the API key ------------------------------------------------------------------------------------
async def test_api_key_is_sent_as_a_bearer_header(server: StandIn) -> None:
    key = fake_key()
    server.api_key = key  # anything else is answered 401
    answer = await make_client(server, api_key=key).structured(MESSAGES, VoteAnswer, context=VOTE)
    assert answer.value is not None
    (request,) = chat_requests(server)
    assert request.headers["authorization"] == f"Bearer {key}"
    assert key not in json.dumps(answer.record.model_dump(mode="json"))


def test_api_key_is_sent_as_bearer_and_never_written_or_printed(cli: Cli, server: StandIn) -> None:
    key = fake_key()
    assert len(key) >= 30
    server.api_key = key
    use_openai(cli, server, OPENAI_API_KEY=key)
    result = cli("--scenario", "healthy", "--provider", "openai")
    assert result.code == 0, result.text
    assert server.requests and all(r.headers.get("authorization") == f"Bearer {key}" for r in server.requests)
    assert {r.method for r in server.requests} == {"GET", "POST"}  # the probe's /models and the chat calls
    middle = key[3:-4]  # a redacted form may show the ends; the body of the key must never appear
    assert key not in result.text and middle not in result.text
    run = run_dir(cli)
    for name in ("events.jsonl", "summary.json"):
        text = (run / name).read_text()
        assert key not in text and middle not in text, name
    for path in cli.cwd.rglob("*"):  # nor in anything else the run wrote (the ledger, checkpoints)
        if path.is_file():
            assert middle.encode() not in path.read_bytes(), path


# -- a whole run ------------------------------------------------------------------------------------
def test_a_scenario_run_with_the_openai_provider_completes_with_the_llm_summary(cli: Cli, server: StandIn) -> None:
    use_openai(cli, server)
    result = cli("--scenario", "healthy", "--provider", "openai")
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    summary = summary_of(cli)
    llm = summary["llm"]
    assert set(llm) == LLM_KEYS
    assert (llm["provider"], llm["model"]) == ("openai", MODEL)
    assert llm["calls"] > 0 and llm["valid_first_try"] == llm["calls"] and llm["fallbacks"] == 0
    assert llm["prompt_tokens"] > 0 and llm["completion_tokens"] > 0
    assert summary["source"]["kind"] == "live" and summary["source"]["provider"] == "openai"
    assert summary["committed"] == summary["jobs"] > 0

    requests = chat_requests(server)
    assert len(requests) == llm["calls"]
    for request in requests:  # every call asks for json_schema with that call's letters
        assert form_of(request) == "json_schema"
        props = asked_schema(request.body)["properties"]
        if "option_id" in props:
            prompt = "\n".join(m["content"] for m in request.body["messages"])
            offered = re.findall(r"^([A-Z]): .*\(\d\.\d\d\)$", prompt, flags=re.MULTILINE)
            assert props["option_id"]["enum"] == offered
        else:
            assert set(props) == {"decision", "confidence", "reasoning"}
