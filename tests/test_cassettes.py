"""Record at the transport, replay by request hash with the server stopped: the same validated
answers, misses named, secrets scrubbed, existing files never overwritten, metadata that says what
recorded the cassette."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from llm_sched.config import load_settings
from llm_sched.core.events import EventBus
from llm_sched.errors import UserError
from llm_sched.llm import CallContext, Message, ReplayMissError, llm_session
from llm_sched.llm.cassettes import read_info
from tests.standin import Reply, StandIn
from tests.test_llm_client import CONTEXT, PROVIDERS, Pick, settings_for

FAKE_KEY = "sk-FAKE-cassette-key-0123456789-abcdef"
AGENTS = ("gpu", "memory", "storage")
METADATA = {"prompt_template_hash": "0" * 64}


def questions() -> list[tuple[list[Message], CallContext]]:
    out = []
    for agent in AGENTS:
        messages = [Message(role="system", content=f"You are the {agent} agent."),
                    Message(role="user", content=f"Place job-7 on a node (asked by {agent}); key {FAKE_KEY}.")]
        out.append((messages, CONTEXT.model_copy(update={"agent": agent})))
    return out


async def ask_all(client) -> list[Pick | None]:  # type: ignore[no-untyped-def]
    answers = await asyncio.gather(*(client.structured(m, Pick, context=c) for m, c in questions()))
    return [a.value for a in answers]


def record(provider: str, path: Path, *, force: bool = False) -> list[Pick | None]:
    with StandIn() as server:
        server.script(
            Reply.json({"node_id": "gpu-01", "score": 0.9, "reasoning": "a"}),
            Reply.status(429, retry_after=0),  # recorded too: replay serves it and the client retries
            Reply.json({"node_id": "gpu-02", "score": 0.4, "reasoning": "b"}),
            Reply.text("garbage"),  # then repaired: the repair exchange is in the cassette as well
            Reply.json({"node_id": "gpu-01", "score": 0.7, "reasoning": "c"}),
        )
        # A fake key to search for afterwards; one call at a time so the script order is the call order.
        key_field = {"sambanova": "sambanova_api_key", "sambastudio": "sambastudio_api_key"}.get(provider, "openai_api_key")
        update = {"llm_backoff_initial": 0.0, "llm_concurrency": 1, key_field: SecretStr(FAKE_KEY)}
        settings = settings_for(provider, server.url).model_copy(update=update)
        with llm_session(settings, scenario="unit", seed=3, record_to=path, force=force,
                         recording_metadata=METADATA) as session:
            return asyncio.run(ask_all(session.client))


def replay_settings() -> object:
    return load_settings({"LLM_SCHED_PROVIDER": "replay"}, environ={})


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


def test_replay_with_the_server_stopped_gives_the_same_answers(provider: str, tmp_path: Path) -> None:
    path = tmp_path / "unit.yaml"
    recorded = record(provider, path)
    assert all(v is not None for v in recorded)
    info = read_info(path)
    assert info.provider == provider and info.scenario == "unit" and info.seed == 3 and info.model
    assert info.prompt_template_hash == "0" * 64 and info.recorded_with.startswith("llm-sched")

    bus = EventBus()
    with llm_session(replay_settings(), scenario="unit", bus=bus, cassette=path) as session:  # type: ignore[arg-type]
        assert session.source.kind == "replay" and session.source.provider == provider
        assert "replaying unit.yaml" in session.source.detail
        replayed = asyncio.run(ask_all(session.client))
    assert replayed == recorded
    outcomes = [e.record.outcome for e in bus.events]  # type: ignore[attr-defined]
    assert outcomes.count("repaired") == 1 and outcomes.count("ok") == 2
    assert {e.record.provider for e in bus.events} == {"replay"}  # type: ignore[attr-defined]


def test_a_request_missing_from_the_cassette_names_scenario_agent_and_step(tmp_path: Path) -> None:
    path = tmp_path / "unit.yaml"
    record("ollama", path)
    other = [Message(role="user", content="A prompt that was never recorded.")]
    context = CallContext(agent="compute", step="vote", scenario="unit", job_id="job-9")
    with llm_session(replay_settings(), scenario="unit", cassette=path) as session:  # type: ignore[arg-type]
        with pytest.raises(ReplayMissError) as info:
            asyncio.run(session.client.structured(other, Pick, context=context))  # type: ignore[union-attr]
    message = str(info.value)
    assert "scenario unit" in message and "agent compute" in message and "step vote" in message
    assert "unit.yaml" in message


def test_no_secret_in_any_cassette(provider: str, tmp_path: Path) -> None:
    path = tmp_path / "unit.yaml"
    record(provider, path)
    text = path.read_text()
    assert FAKE_KEY not in text and "[redacted]" in text  # the key was in a prompt: scrubbed
    assert "test-key-0123456789" not in text  # the settings' own key, for sambanova
    assert "authorization" not in text.lower()


def test_recording_never_overwrites_an_existing_file_without_force(tmp_path: Path) -> None:
    path = tmp_path / "unit.yaml"
    path.write_text("precious\n")
    with pytest.raises(UserError, match="unit.yaml exists.*--force"):
        record("ollama", path)
    assert path.read_text() == "precious\n"
    record("ollama", path, force=True)
    assert read_info(path).provider == "ollama"
    assert not list(tmp_path.glob(".*partial"))  # replaced atomically, nothing left behind


def test_missing_or_foreign_cassette_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no cassette at .*nothing.yaml"):
        with llm_session(replay_settings(), scenario="nothing", cassette=tmp_path / "nothing.yaml"):  # type: ignore[arg-type]
            pass
    old = tmp_path / "old.yaml"
    old.write_text("interactions: []\nversion: 1\n")  # an older cassette format, not ours
    with pytest.raises(UserError, match="not an llm-sched cassette"):
        read_info(old)
    broken = tmp_path / "broken.yaml"
    broken.write_bytes(b"\xff\xfe: [")
    with pytest.raises(UserError, match="broken.yaml: not UTF-8 text"):
        read_info(broken)


class _SlowThenQuick:
    """A live model that does not answer its first request in time, then answers at once."""

    provider, model, endpoint, max_concurrency = "scripted", "slow-then-quick", "memory", None

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, messages, schema, timeout):  # type: ignore[no-untyped-def]
        from llm_sched.llm.transport import RawReply

        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(10)  # cancelled by the client's timeout
        return RawReply('{"node_id": "gpu-01", "score": 0.5, "reasoning": "in time"}', 5, 5)


def test_a_call_that_timed_out_is_recorded_and_replays_as_the_same_timeout(tmp_path: Path) -> None:
    from llm_sched.llm.cassettes import CassetteInfo, RecordingTransport, open_replay
    from llm_sched.llm.client import LLMClient, RetryPolicy

    async def ask(transport) -> tuple[list[str], Pick | None]:  # type: ignore[no-untyped-def]
        client = LLMClient(transport, RetryPolicy(attempts=2, timeout=0.2, backoff_initial=0.0, backoff_max=0.0))
        answer = await client.structured(questions()[0][0], Pick, context=CONTEXT)
        return [answer.record.outcome, str(answer.record.attempts)], answer.value

    recorder = RecordingTransport(_SlowThenQuick())
    live = asyncio.run(ask(recorder))
    info = CassetteInfo(provider="scripted", model="slow-then-quick", runtime="test", recorded_at="2026-12-03",
                        scenario="timeouts", seed=0, prompt_template_hash="0" * 64)
    path = tmp_path / "timeouts.yaml"
    recorder.save(path, info)
    assert [e.get("error", {}).get("kind") for e in recorder.interactions] == ["timeout", None]
    assert asyncio.run(ask(open_replay(path))) == live == (["ok", "2"], Pick(node_id="gpu-01", score=0.5, reasoning="in time"))
