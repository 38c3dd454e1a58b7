"""Endpoints under a budget: a circuit breaker per provider and a per-run deadline for LLM calls."""

from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel

from llm_sched.config import load_settings
from llm_sched.core.records import CallContext, Message
from llm_sched.llm.client import Breaker, LLMClient, RetryPolicy
from llm_sched.llm.factory import build_transport
from tests.conftest import Cli
from tests.standin import Reply, StandIn

CONTEXT = CallContext(agent="a", step="proposal")
MESSAGES = [Message(role="user", content="pick")]


class Pick(BaseModel):
    choice: str


def _client(server: StandIn, **kwargs) -> LLMClient:  # type: ignore[no-untyped-def]
    settings = load_settings({"OLLAMA_HOST": server.url}, environ={})
    return LLMClient(build_transport("ollama", settings), RetryPolicy(attempts=1, timeout=2, backoff_initial=0), **kwargs)


async def _ask(client: LLMClient, times: int) -> list[str]:
    return [(await client.structured(MESSAGES, Pick, context=CONTEXT)).record.error or "" for _ in range(times)]


def test_after_k_failures_in_a_row_calls_are_not_sent_for_the_cooldown_then_one_is_tried(standin: StandIn) -> None:
    standin.default = Reply.status(503)
    errors = asyncio.run(_ask(_client(standin, breaker=Breaker(failures=3, cooldown=4)), 10))
    sent = [not e.startswith("not sent") for e in errors]
    assert sent == [True, True, True, False, False, False, False, True, False, False]
    assert len([r for r in standin.requests if r.path.endswith("/api/chat")]) == 4
    assert "circuit open after 3 failed calls in a row" in errors[3]


def test_a_success_closes_the_breaker_again(standin: StandIn) -> None:
    standin.script(Reply.status(503), Reply.status(503), Reply.json({"choice": "A"}), Reply.status(503),
                   Reply.status(503))
    errors = asyncio.run(_ask(_client(standin, breaker=Breaker(failures=3, cooldown=4)), 5))
    assert not any(e.startswith("not sent") for e in errors)  # never three failures in a row


def test_past_the_run_deadline_the_heuristics_answer(standin: StandIn) -> None:
    standin.default = Reply.json({"choice": "A"}).delayed(0.3)
    errors = asyncio.run(_ask(_client(standin, deadline_s=0.5), 5))
    assert errors[:2] == ["", ""] and all("deadline" in e for e in errors[2:])


def test_a_run_against_a_failing_endpoint_stops_asking_and_finishes_on_heuristics(cli: Cli, standin: StandIn) -> None:
    standin.default = Reply.status(503)
    cli.env.update(OLLAMA_HOST=standin.url, LLM_SCHED_MAX_ATTEMPTS="1", LLM_SCHED_BREAKER_FAILURES="3",
                   LLM_SCHED_BREAKER_COOLDOWN="10")
    result = cli("--scenario", "healthy", "--provider", "ollama")
    assert result.code == 0, result.text
    (run,) = [p for p in (cli.cwd / "runs").iterdir() if p.is_dir()]
    llm = json.loads((run / "summary.json").read_text())["llm"]
    chats = len([r for r in standin.requests if r.path.endswith("/api/chat")])
    assert llm["calls"] > chats and llm["fallbacks"] == llm["calls"]  # every answer fell back, few were sent
    assert "circuit open" in (run / "events.jsonl").read_text()
