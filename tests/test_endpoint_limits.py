"""Hostile endpoints: answers too large to read, answers that never end, chat endpoints that hang.

Every provider that talks HTTP reads an answer only up to the limit (LLM_SCHED_MAX_RESPONSE_BYTES,
1 MB by default) and fails the call past it, fast and without the memory a whole answer would take;
an answer that drips forever is cut by the per-call timeout; ``--check`` calls a provider ready only
when its chat endpoint answers a constrained request, not when its model list does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel

from llm_sched.config import DEFAULT_MAX_RESPONSE_BYTES, Settings, load_settings
from llm_sched.core.records import Answer, CallContext, Message
from llm_sched.llm.bounded_http import bounded_hooks
from llm_sched.llm.client import LLMClient, RetryPolicy
from llm_sched.llm.factory import build_transport
from llm_sched.llm.transport import UnreadAnswer
from tests.conftest import REPO, Cli, CliResult
from tests.standin import Reply, StandIn

PROVIDERS = ("ollama", "openai", "sambanova", "sambastudio")
CHAT_PROBED = ("ollama", "openai", "sambanova")
MODEL = "llama3.1:8b"
KEY = "test-key-0123456789abcdef"
FLOOD = 200_000_000  # bytes: far past the limit, never held by the stand-in (made up as it is sent)
MEMORY_BUDGET_MB = 100  # peak RSS growth allowed for a call that meets a flood
CONTEXT = CallContext(agent="gpu", step="proposal", job_id="job-1")
MESSAGES = [Message(role="user", content="Pick one.")]


class Pick(BaseModel):
    choice: str


def env_for(provider: str, url: str) -> dict[str, str]:
    """The settings that point ``provider`` at the stand-in at ``url``."""
    return {
        "ollama": {"OLLAMA_HOST": url, "OLLAMA_MODEL": MODEL},
        "openai": {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_MODEL": MODEL},
        "sambanova": {"SAMBANOVA_API_KEY": KEY, "SAMBANOVA_API_BASE": f"{url}/v1", "SAMBANOVA_MODEL": MODEL},
        "sambastudio": {"SAMBASTUDIO_URL": f"{url}/api/v2/predict/generic/p/e", "SAMBASTUDIO_API_KEY": KEY},
    }[provider]


def settings_for(provider: str, url: str, **extra: str) -> Settings:
    return load_settings({**env_for(provider, url), "LLM_SCHED_PROVIDER": provider, **extra}, environ={})


def ask(settings: Settings, *, timeout: float = 5.0) -> tuple[Answer[Pick], float]:
    """One structured call, one attempt; the answer and the seconds it took (asyncio.run included:
    it waits for any worker thread a transport left behind)."""
    policy = dataclasses.replace(RetryPolicy.from_settings(settings), attempts=1, timeout=timeout)
    client = LLMClient(build_transport(settings.resolved_provider(), settings), policy)
    started = time.monotonic()
    answer = asyncio.run(client.structured(MESSAGES, Pick, context=CONTEXT))
    return answer, time.monotonic() - started


@pytest.fixture
def server() -> Iterator[StandIn]:
    with StandIn(models=[MODEL]) as standin:
        yield standin


# -- answers too large to read ---------------------------------------------------------------------
# Run in a fresh interpreter so that its peak RSS measures this call alone: a warm-up call (imports,
# first connection) sets the baseline, then one call meets the flood.
MEASURE = """
import json, resource, sys
from tests.test_endpoint_limits import ask, settings_for
settings = settings_for(sys.argv[1], sys.argv[2])
ask(settings)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
answer, took = ask(settings)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "took": took, "outcome": answer.record.outcome,
                  "attempts": answer.record.attempts, "error": answer.record.error}))
"""


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_huge_answer_fails_the_call_fast_and_without_reading_it(server: StandIn, provider: str) -> None:
    server.script(Reply.json({"choice": "a"}), Reply.flood(FLOOD))
    proc = subprocess.run([sys.executable, "-c", MEASURE, provider, server.url], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "error" and result["attempts"] == 1  # failed, and not retried
    assert result["error"] == "unreadable: answer larger than 1 MB, not read (LLM_SCHED_MAX_RESPONSE_BYTES)"
    assert result["took"] < 5
    assert result["growth_mb"] < MEMORY_BUDGET_MB


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_declaring_a_length_over_the_limit_is_refused_unread(server: StandIn, provider: str) -> None:
    server.default = Reply.flood(FLOOD, declare_length=True)
    answer, took = ask(settings_for(provider, server.url))
    assert answer.record.error is not None and "answer larger than 1 MB, not read" in answer.record.error
    assert took < 5


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_limit_is_the_setting_and_answers_within_it_are_read(server: StandIn, provider: str) -> None:
    settings = settings_for(provider, server.url, LLM_SCHED_MAX_RESPONSE_BYTES="4000")
    server.script(Reply.json({"choice": "x" * 1000}), Reply.json({"choice": "x" * 5000}))
    small, _ = ask(settings)
    assert small.record.outcome == "ok" and small.value == Pick(choice="x" * 1000)
    large, _ = ask(settings)
    assert large.value is None
    assert large.record.error == "unreadable: answer larger than 4 kB, not read (LLM_SCHED_MAX_RESPONSE_BYTES)"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_of_a_huge_error_body_only_the_start_is_read_and_the_status_kept(server: StandIn, provider: str) -> None:
    server.default = Reply.flood(FLOOD, code=503)
    answer, took = ask(settings_for(provider, server.url))
    assert answer.record.outcome == "error" and took < 5
    assert (answer.record.error or "").startswith('server: HTTP 503: {"padding": "xxx')  # a 503: retried as one


def test_the_default_limit_is_one_megabyte() -> None:
    assert load_settings({}, environ={}).llm_max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 1_000_000


async def test_a_compressed_answer_is_refused_because_it_could_expand_past_any_limit() -> None:
    # httpx would inflate a gzip body whole before anything could count it: 1 MB of gzip is 1 GB.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=gzip.compress(b"0" * 10_000_000))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), event_hooks=bounded_hooks()) as client:
        with pytest.raises(UnreadAnswer, match="compressed"):
            await client.get("http://model.test/v1/models")
    assert seen[0].headers["accept-encoding"] == "identity"  # and none was asked for


def test_a_flooding_endpoint_leaves_the_run_to_the_heuristics(cli: Cli, server: StandIn) -> None:
    server.default = Reply.flood(50_000_000)
    cli.env.update(OLLAMA_HOST=server.url, OLLAMA_MODEL=MODEL, LLM_SCHED_TIMEOUT="5")
    started = time.monotonic()
    result = cli("--scenario", "healthy", "--provider", "ollama", timeout=120)
    assert result.code == 0, result.text
    assert time.monotonic() - started < 60
    (run,) = [p for p in (cli.cwd / "runs").iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["committed"] == summary["jobs"] > 0
    assert summary["fallbacks"] > 0
    records = [json.loads(line)["record"] for line in (run / "events.jsonl").read_text().splitlines()
               if json.loads(line).get("kind") == "llm_call"]
    sent = [r for r in records if not (r["error"] or "").startswith("not sent")]
    assert sent and all(r["error"].startswith("unreadable: answer larger than 1 MB") for r in sent)


# -- answers that never end ------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_dripping_a_byte_a_second_is_cut_by_the_per_call_timeout(server: StandIn, provider: str) -> None:
    server.default = Reply.dripping(1.0)
    answer, took = ask(settings_for(provider, server.url), timeout=2)
    assert answer.record.outcome == "timeout"
    assert took < 2 * 2 + 1  # SambaStudio's worker thread may wait one more read timeout; none waits longer


# -- --check asks the chat endpoint ------------------------------------------------------------------
def configure_check(cli: Cli, server: StandIn, provider: str) -> None:
    cli.env.update(env_for(provider, server.url), LLM_SCHED_PROVIDER=provider, LLM_SCHED_TIMEOUT="2")
    if provider == "sambanova":
        server.api_key = KEY


def verdict(result: CliResult) -> str:
    """The verdict after ``--check``'s table, its wrapped lines joined."""
    return " ".join(result.out.rsplit("┘", 1)[-1].split())


def chat_posts(server: StandIn) -> list[dict[str, object]]:
    return [r.body for r in server.requests if r.method == "POST"]


@pytest.mark.parametrize("provider", CHAT_PROBED)
def test_check_is_not_ready_when_the_model_list_answers_but_the_chat_endpoint_hangs(
        cli: Cli, server: StandIn, provider: str) -> None:
    configure_check(cli, server, provider)
    server.answer_probes = False  # the probe meets the hanging endpoint like any request
    server.default = Reply.json({"ready": "yes"}).delayed(30)
    started = time.monotonic()
    result = cli("--check")
    assert time.monotonic() - started < 15
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert verdict(result).startswith(f"A run would use {provider}")
    assert "not ready" in verdict(result) and "the chat endpoint did not answer within 2 s" in verdict(result)


@pytest.mark.parametrize("provider", CHAT_PROBED)
def test_check_is_ready_when_the_chat_endpoint_answers_the_constrained_request(
        cli: Cli, server: StandIn, provider: str) -> None:
    configure_check(cli, server, provider)
    server.default = Reply.json({"ready": "yes"})
    result = cli("--check")
    assert result.code == 0, result.text
    assert verdict(result) == f"A run would use {provider} (chosen by LLM_SCHED_PROVIDER)."
    (body,) = chat_posts(server)
    schema = body["format"] if provider == "ollama" else body["response_format"]["json_schema"]["schema"]  # type: ignore[index]
    assert schema["properties"]["ready"]["enum"] == ["yes", "no"]  # type: ignore[index]


@pytest.mark.parametrize("provider", CHAT_PROBED)
def test_check_is_not_ready_when_the_chat_answer_is_not_the_json_asked_for(
        cli: Cli, server: StandIn, provider: str) -> None:
    configure_check(cli, server, provider)
    server.answer_probes = False
    server.default = Reply.text("Sure! I am ready.")
    result = cli("--check")
    assert result.code == 1, result.text
    assert "the chat endpoint answered, but not with the JSON asked for" in verdict(result)


def test_check_asks_a_server_refusing_json_schema_in_the_json_object_form(cli: Cli, server: StandIn) -> None:
    configure_check(cli, server, "openai")
    server.refuse_json_schema = True
    server.default = Reply.json({"ready": "yes"})
    result = cli("--check")
    assert result.code == 0, result.text
    forms = [body["response_format"]["type"] for body in chat_posts(server)]  # type: ignore[index]
    assert forms == ["json_schema", "json_object"]


def test_check_with_a_flooding_model_list_is_not_ready_and_fast(cli: Cli, server: StandIn) -> None:
    configure_check(cli, server, "ollama")
    server.listing = Reply.flood(FLOOD)
    started = time.monotonic()
    result = cli("--check")
    assert result.code == 1
    assert time.monotonic() - started < 15
    assert "answer larger than 1 MB, not read" in verdict(result)


def test_check_with_a_dripping_model_list_gives_up_in_bounded_time(cli: Cli, server: StandIn) -> None:
    configure_check(cli, server, "ollama")
    server.listing = Reply.dripping(0.5)
    started = time.monotonic()
    result = cli("--check")
    assert result.code == 1
    assert time.monotonic() - started < 15
    assert "no answer within 2 s" in verdict(result)
