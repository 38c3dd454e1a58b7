"""Record from the stand-in, replay with it stopped: same validated answers, misses named, no secrets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from llm_sched.config import load_settings
from llm_sched.events import EventBus
from llm_sched.llm import CallContext, Message, ReplayMissError, llm_session
from llm_sched.llm.cassettes import read_metadata
from tests.standin import Reply, StandIn
from tests.test_llm_client import CONTEXT, PROVIDERS, Pick, settings_for

FAKE_KEY = "sk-FAKE-cassette-key-0123456789-abcdef"
AGENTS = ("gpu", "memory", "storage")


def questions() -> list[tuple[list[Message], CallContext]]:
    out = []
    for agent in AGENTS:
        messages = [Message(role="system", content=f"You are the {agent} agent."),
                    Message(role="user", content=f"Place job-7 on a node (asked by {agent}).")]
        out.append((messages, CONTEXT.model_copy(update={"agent": agent})))
    return out


async def ask_all(client) -> list[Pick | None]:  # type: ignore[no-untyped-def]
    answers = await asyncio.gather(*(client.structured(m, Pick, context=c) for m, c in questions()))
    return [a.value for a in answers]


def record(provider: str, folder: Path) -> list[Pick | None]:
    with StandIn() as server:
        server.script(
            Reply.json({"node_id": "gpu-01", "score": 0.9, "reasoning": "a"}),
            Reply.status(429, retry_after=0),  # recorded too: replay serves it and the client retries
            Reply.json({"node_id": "gpu-02", "score": 0.4, "reasoning": "b"}),
            Reply.text("garbage"),  # then repaired: the repair exchange is in the cassette as well
            Reply.json({"node_id": "gpu-01", "score": 0.7, "reasoning": "c"}),
        )
        # A fake key to search for afterwards; one call at a time so the script order is the call order.
        key_field = {"sambanova": "sambanova_api_key", "sambastudio": "sambastudio_api_key"}.get(provider)
        update = {"llm_backoff_initial": 0.0, "llm_concurrency": 1} | ({key_field: SecretStr(FAKE_KEY)} if key_field else {})
        settings = settings_for(provider, server.url).model_copy(update=update)
        with llm_session(settings, scenario="unit", record=True, recorded_how="stand-in server (test)",
                         cassettes_dir=folder) as client:
            return asyncio.run(ask_all(client))


def replay_settings(provider: str, folder: Path):  # type: ignore[no-untyped-def]
    return load_settings({"LLM_SCHED_PROVIDER": "replay", "LLM_SCHED_REPLAY_PROVIDER": provider,
                          "LLM_SCHED_SCENARIOS_DIR": str(folder.parent)}, environ={})


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


def test_replay_with_the_server_stopped_gives_the_same_answers(provider: str, tmp_path: Path) -> None:
    folder = tmp_path / "cassettes"
    recorded = record(provider, folder)
    assert all(v is not None for v in recorded)
    path = folder / f"unit-{provider}.yaml"
    metadata = read_metadata(path)
    assert metadata["how"] == "stand-in server (test)" and metadata["provider"] == provider
    assert metadata["scenario"] == "unit" and metadata["model"]

    bus = EventBus()
    with llm_session(replay_settings(provider, folder), scenario="unit", bus=bus) as client:
        replayed = asyncio.run(ask_all(client))
    assert replayed == recorded
    outcomes = sorted((e.record.agent, e.record.outcome, e.record.attempts) for e in bus.events)  # type: ignore[attr-defined]
    assert [o[1] for o in outcomes].count("repaired") == 1


def test_a_request_missing_from_the_cassette_names_scenario_agent_and_step(provider: str, tmp_path: Path) -> None:
    folder = tmp_path / "cassettes"
    record(provider, folder)
    other = [Message(role="user", content="A prompt that was never recorded.")]
    context = CallContext(agent="compute", step="vote", scenario="unit", job_id="job-9")
    with llm_session(replay_settings(provider, folder), scenario="unit") as client:
        with pytest.raises(ReplayMissError) as info:
            asyncio.run(client.structured(other, Pick, context=context))
    message = str(info.value)
    assert "scenario unit" in message and "agent compute" in message and "step vote" in message
    assert f"unit-{provider}.yaml" in message


def test_no_secret_in_any_cassette(provider: str, tmp_path: Path) -> None:
    folder = tmp_path / "cassettes"
    record(provider, folder)
    text = (folder / f"unit-{provider}.yaml").read_text()
    assert FAKE_KEY not in text and FAKE_KEY[3:-3] not in text
    assert "test-key-0123456789" not in text  # the settings' own key, for sambanova
    assert "authorization" not in text.lower()


def test_missing_cassette_file_is_a_clear_error(tmp_path: Path) -> None:
    from llm_sched.errors import UserError

    with pytest.raises(UserError, match="no cassette at .*nothing-ollama.yaml"):
        with llm_session(replay_settings("ollama", tmp_path / "cassettes"), scenario="nothing"):
            pass
