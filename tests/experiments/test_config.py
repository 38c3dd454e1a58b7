"""A bad experiment gets one clear UserError before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.errors import UserError
from llm_sched.experiments.config import ExperimentConfig, load_experiment
from llm_sched.protocols.registry import METHODS
from tests.conftest import Cli


def error(overrides: dict[str, object], path: str | None = None) -> str:
    with pytest.raises(UserError) as info:
        load_experiment(path, overrides)
    return str(info.value)


def test_defaults_are_the_shipped_default_file() -> None:
    built_in, shipped = load_experiment(None), load_experiment("default")
    assert built_in.model_dump(exclude={"description"}) == shipped.model_dump(exclude={"description"})
    assert (built_in.agents, built_in.byzantine, built_in.jobs, built_in.repetitions) == (7, 2, 5, 3)
    assert built_in.methods == ("pbft", "tendermint", "multi_paxos")


def test_flags_override_the_file_and_methods_are_canonical() -> None:
    config = load_experiment("default", {"methods": "PBFT, multipaxos,raft", "agents": 10, "seed": 4})
    assert config.methods == ("pbft", "multi_paxos", "raft")
    assert (config.agents, config.seed, config.byzantine) == (10, 4, 2)


def test_unknown_method_lists_the_valid_ones() -> None:
    message = error({"methods": "pbft,hotstuff"})
    assert "unknown method 'hotstuff'" in message
    for name in ("pbft", "tendermint", "multi_paxos", "raft"):
        assert name in message
    assert ", ".join(METHODS) in message


def test_bft_method_needs_3f_plus_1_agents_and_says_n_f_and_the_minimum() -> None:
    message = error({"methods": "pbft", "agents": 5, "byzantine": 2})
    assert "n >= 3f+1" in message and "n=5" in message and "f=2" in message
    assert "at least 7 agents" in message


def test_crashed_agents_count_against_f_for_a_bft_method() -> None:
    message = error({"methods": "tendermint", "agents": 7, "byzantine": 2, "crash": 1})
    assert "f=3" in message and "2 Byzantine + 1 crashed" in message and "at least 10" in message


def test_crash_method_needs_2f_plus_1_but_runs_with_byzantine_agents() -> None:
    message = error({"methods": "raft", "agents": 5, "byzantine": 0, "crash": 3})
    assert "n >= 2f+1" in message and "at least 7 agents" in message
    assert load_experiment(None, {"methods": "raft", "agents": 4, "byzantine": 3}).byzantine == 3


def test_beyond_tolerance_can_be_asked_for_explicitly(tmp_path: Path) -> None:
    file = tmp_path / "beyond.yaml"
    file.write_text("methods: [pbft]\nagents: 4\nbyzantine: 2\nallow_beyond_tolerance: true\n")
    assert load_experiment(str(file)).byzantine == 2


def test_more_faulty_agents_than_agents() -> None:
    message = error({"methods": "raft", "agents": 4, "byzantine": 3, "crash": 2})
    assert "3 Byzantine (--byzantine) + 2 crashed (--crash)" in message and "4 agents" in message


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("repetitions", 0, "repetitions (--repetitions): Input should be greater than or equal to 1"),
    ("jobs", 0, "jobs (--jobs): Input should be greater than or equal to 1"),
    ("agents", 1, "agents (--agents): Input should be greater than or equal to 2"),
    ("byzantine", -1, "byzantine (--byzantine): Input should be greater than or equal to 0"),
    ("intensity", "extreme", "intensity (--intensity): Input should be 'light', 'medium', 'heavy' or 'chaos'"),
    ("agent_mode", "oracle", "agent_mode (--agent-mode)"),
])
def test_field_errors_name_the_field_and_flag(field: str, value: object, expected: str) -> None:
    assert expected in error({field: value})


def test_unknown_field_and_behaviour_in_a_file(tmp_path: Path) -> None:
    file = tmp_path / "typo.yaml"
    file.write_text("methods: [pbft]\nrepetitons: 2\n")
    assert "repetitons: unknown field; allowed fields: name, description, methods" in error({}, str(file))
    file.write_text("byzantine_behaviours: [equivocate, lie]\n")
    message = error({}, str(file))
    assert "unknown behaviour 'lie'" in message and "vote-against" in message


def test_a_fault_with_no_target(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("faults:\n  - {type: crash, targets: [], start: 5}\n")
    message = error({"faults": str(plan)})
    assert str(plan) in message and "faults.0.targets" in message and "no target" in message


def test_a_fault_target_outside_the_agents(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("faults:\n  - {type: partition, targets: [0, 9], start: 5, duration: 10}\n")
    assert "agent 9 is outside 0..6" in error({"faults": str(plan)})


def test_missing_experiment_file_lists_the_shipped_ones() -> None:
    message = error({}, "no-such-experiment")
    assert "no experiment file" in message and "default" in message


def test_methods_field_accepts_a_list_or_a_comma_string() -> None:
    assert ExperimentConfig(methods="raft, pbft").methods == ("raft", "pbft")  # type: ignore[arg-type]


def test_cli_bad_config_exits_2_before_anything_runs(cli: Cli) -> None:
    result = cli("--experiment", "--agents", "5", "--byzantine", "2", "--methods", "pbft,tendermint")
    assert result.code == 2
    assert result.err.startswith("error: ") and "n >= 3f+1" in result.err and "Traceback" not in result.text
    assert not (cli.cwd / "runs").exists()


def test_cli_unknown_method(cli: Cli) -> None:
    result = cli("--experiment", "--methods", "pbft,paxos")
    assert result.code == 2 and "unknown method 'paxos'; methods are: pbft, tendermint, multi_paxos, raft" in result.err
