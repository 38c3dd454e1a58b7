"""A scenario can give agents their own models: each agent is answered by its model, every call record
and the run's source say which, an unavailable one stops the run naming the agent, and a recording
with several models replays with each agent's model named."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.core.events import comparable, read_jsonl
from llm_sched.errors import UserError
from llm_sched.llm.cassettes import read_info
from llm_sched.orchestration.scenarios import load_scenario
from tests.conftest import Cli
from tests.fake_model import answer
from tests.standin import Reply, StandIn

DEFAULT, OTHER = "llama3.1:8b", "other-model:1b"


def _scenarios(tmp_path: Path, agent_line: str, replacement: str) -> Path:
    """A copy of the shipped scenarios (no cassettes) whose cluster gives one agent its own model."""
    scenarios = tmp_path / "scenarios"
    shutil.copytree(PROJECT_ROOT / "scenarios", scenarios, ignore=shutil.ignore_patterns("cassettes"))
    cluster = scenarios / "clusters" / "specialists.yaml"
    text = cluster.read_text()
    assert agent_line in text
    cluster.write_text(text.replace(agent_line, replacement))
    return scenarios


GPU = "{id: gpu-agent, specialty: gpu, pool: gpu-pool}"
MEMORY = "{id: memory-agent, specialty: memory, pool: mem-pool}"


def _run(cli: Cli, scenarios: Path, *args: str) -> tuple[int, str, list[dict], Path | None]:  # type: ignore[type-arg]
    cli.env.update(LLM_SCHED_SCENARIOS_DIR=str(scenarios))
    result = cli("--scenario", "healthy", *args)
    runs = sorted(p for p in (cli.cwd / "runs").iterdir() if p.is_dir()) if (cli.cwd / "runs").is_dir() else []
    run = runs[-1] if runs and result.code == 0 else None
    return result.code, result.text, read_jsonl(run / "events.jsonl") if run else [], run


def _asker(body: dict) -> str | None:  # type: ignore[type-arg]
    """The agent a request came from, by its prompt's "You are <agent>" (repairs included); None for
    a request no agent made (the start-up check's question)."""
    prompt = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
    return prompt.split("You are ", 1)[1].split(",", 1)[0] if "You are " in prompt else None


def _agent_requests(server: StandIn) -> list[dict]:  # type: ignore[type-arg]
    bodies = [(r.body or {}) for r in server.requests if r.path == "/api/chat"]
    return [b for b in bodies if _asker(b) is not None]


def _calls(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [e["record"] for e in events if e["kind"] == "llm_call"]


def test_an_agent_given_its_own_model_is_answered_by_it_and_every_record_says_so(cli: Cli, tmp_path: Path) -> None:
    scenarios = _scenarios(tmp_path, GPU, GPU.replace("}", f", model: '{OTHER}'}}"))
    with StandIn(models=(DEFAULT, OTHER)) as server:
        server.default = Reply.dynamic(answer)
        cli.env.update(OLLAMA_HOST=server.url)
        code, text, events, run = _run(cli, scenarios, "--provider", "ollama")
        asked = _agent_requests(server)
    assert code == 0, text
    by_model = {m: [b for b in asked if b["model"] == m] for m in (DEFAULT, OTHER)}
    assert by_model[OTHER] and by_model[DEFAULT] and len(asked) == len(by_model[OTHER]) + len(by_model[DEFAULT])
    assert all(_asker(b) == "gpu-agent" for b in by_model[OTHER])
    assert not any(_asker(b) == "gpu-agent" for b in by_model[DEFAULT])
    calls = _calls(events)
    assert {c["model"] for c in calls if c["agent"] == "gpu-agent"} == {OTHER}
    assert {c["model"] for c in calls if c["agent"] != "gpu-agent"} == {DEFAULT}
    summary = json.loads((run / "summary.json").read_text())  # type: ignore[operator]
    assert list(summary["source"]["agents"]) == ["gpu-agent"]
    assert summary["source"]["agents"]["gpu-agent"].startswith(f"live ollama model {OTHER} (http://127.0.0.1:")
    assert f"gpu-agent: live ollama model {OTHER}" in text  # the banner


def test_an_agent_on_heuristic_asks_no_model_and_the_run_says_so(cli: Cli, tmp_path: Path) -> None:
    scenarios = _scenarios(tmp_path, MEMORY, MEMORY.replace("}", ", provider: heuristic}"))
    with StandIn() as server:
        server.default = Reply.dynamic(answer)
        cli.env.update(OLLAMA_HOST=server.url)
        code, text, events, _ = _run(cli, scenarios, "--provider", "ollama")
        asked = _agent_requests(server)
    assert code == 0, text
    assert asked and not any(_asker(b) == "memory-agent" for b in asked)
    assert not any(c["agent"] == "memory-agent" for c in _calls(events))
    proposals = [e["proposal"] for e in events if e["kind"] == "proposal" and e["agent"] == "memory-agent"]
    assert proposals and {p["via"] for p in proposals} == {"heuristic"}
    assert "memory-agent: heuristic (the scenario gives this agent no model)" in text


@pytest.mark.parametrize(("replacement", "named"), [
    (GPU.replace("}", ", model: 'missing:7b'}"), "model missing:7b is not pulled"),
    (GPU.replace("}", ", provider: openai}"), "the openai provider cannot be reached: not configured"),
])
def test_an_agents_unavailable_model_stops_the_run_before_it_starts_naming_the_agent(
        cli: Cli, tmp_path: Path, replacement: str, named: str) -> None:
    scenarios = _scenarios(tmp_path, GPU, replacement)
    with StandIn() as server:
        server.default = Reply.dynamic(answer)
        cli.env.update(OLLAMA_HOST=server.url)
        code, text, _, _ = _run(cli, scenarios, "--provider", "ollama")
        chats = _agent_requests(server)
    assert code == 2 and "agent gpu-agent: " in text and named in text, text
    assert "Traceback" not in text and not chats  # no agent asked a question


def test_with_allow_fallback_an_agents_unavailable_model_leaves_that_agent_to_its_heuristic(
        cli: Cli, tmp_path: Path) -> None:
    scenarios = _scenarios(tmp_path, GPU, GPU.replace("}", ", model: 'missing:7b'}"))
    with StandIn() as server:
        server.default = Reply.dynamic(answer)
        cli.env.update(OLLAMA_HOST=server.url)
        code, text, events, run = _run(cli, scenarios, "--provider", "ollama", "--allow-fallback")
    assert code == 0, text
    assert not any(c["agent"] == "gpu-agent" for c in _calls(events)) and _calls(events)
    summary = json.loads((run / "summary.json").read_text())  # type: ignore[operator]
    why = summary["source"]["agents"]["gpu-agent"]
    assert why.startswith("heuristic (fallback to heuristics (--allow-fallback)") and "missing:7b" in why


def test_a_recording_with_two_models_replays_with_each_agents_model_named(cli: Cli, tmp_path: Path) -> None:
    scenarios = _scenarios(tmp_path, GPU, GPU.replace("}", f", model: '{OTHER}'}}"))
    with StandIn(models=(DEFAULT, OTHER)) as server:
        server.default = Reply.dynamic(answer)
        cli.env.update(OLLAMA_HOST=server.url)
        code, text, live, run = _run(cli, scenarios, "--provider", "ollama", "--record")
    assert code == 0, text
    cassette = run / "healthy-ollama.yaml"  # type: ignore[operator]
    assert read_info(cassette).model_extra["agent_models"] == {"gpu-agent": {"provider": "ollama", "model": OTHER}}
    (scenarios / "cassettes").mkdir()
    shutil.copy(cassette, scenarios / "cassettes" / "healthy-ollama.yaml")
    del cli.env["OLLAMA_HOST"]  # the server is gone: only the cassette can answer
    cli.env.update(LLM_SCHED_REPLAY_PROVIDER="ollama")
    code, text, replayed, _ = _run(cli, scenarios, "--provider", "replay")
    assert code == 0, text
    assert {(c["provider"], c["model"]) for c in _calls(replayed) if c["agent"] == "gpu-agent"} == {("replay", OTHER)}
    assert {(c["provider"], c["model"]) for c in _calls(replayed) if c["agent"] != "gpu-agent"} == {("replay", DEFAULT)}
    assert f"gpu-agent: recorded from ollama {OTHER}" in text

    def decisions(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        # comparable(): without timings and signatures (each run signs with fresh keys)
        return [comparable(e)["decision"] for e in events if e["kind"] == "decision"]

    assert decisions(replayed) == decisions(live)


@pytest.mark.parametrize(("extra", "field"), [
    (", provider: heuristic, model: x", "agents.2"),
    (", model: 'two words'", "agents.2.model"),
    (", provider: sambastudio, model: x", "agents.2"),
    (", provider: chatgpt", "agents.2.provider"),
])
def test_a_bad_agent_model_is_a_clear_scenario_error(tmp_path: Path, extra: str, field: str) -> None:
    scenarios = _scenarios(tmp_path, GPU, GPU.replace("}", extra + "}"))
    with pytest.raises(UserError) as caught:
        load_scenario("healthy", scenarios)
    assert "specialists.yaml" in str(caught.value) and re.search(rf"\b{re.escape(field)}\b", str(caught.value))
