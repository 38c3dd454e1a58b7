"""Scenario files: the shipped ones load; malformed ones get errors naming file, field and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.errors import UserError
from llm_sched.orchestration.scenarios import available_scenarios, load_scenario
from tests.conftest import Cli

SCENARIOS = PROJECT_ROOT / "scenarios"
GOOD = (SCENARIOS / "healthy.yaml").read_text()


def test_every_shipped_scenario_loads_and_has_a_cassette_recorded_from_the_real_local_model() -> None:
    from llm_sched.agents.prompts import template_hash
    from llm_sched.llm.cassettes import read_info

    for name in available_scenarios(SCENARIOS):
        scenario = load_scenario(name, SCENARIOS)
        assert scenario.jobs()
        info = read_info(SCENARIOS / "cassettes" / f"{name}-local.yaml")
        assert (info.provider, info.model, info.model_file) == (
            "local", "SmolLM2-135M-Instruct.Q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf")
        assert info.model_sha256 and len(info.model_sha256) == 64 and info.runtime.startswith("llama-cpp-python")
        assert info.scenario == name and info.seed == scenario.seed
        assert info.prompt_template_hash == template_hash()  # recorded from today's prompts: it replays


def test_fault_tolerance_is_the_three_scenarios_in_sequence() -> None:
    parts = [load_scenario(n, SCENARIOS) for n in ("healthy", "byzantine", "recovery")]
    whole = load_scenario("fault_tolerance", SCENARIOS)
    assert [p.name for p in whole.phases] == [p.name for part in parts for p in part.phases]


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "clusters").mkdir(exist_ok=True)
    (tmp_path / "clusters" / "specialists.yaml").write_text((SCENARIOS / "clusters" / "specialists.yaml").read_text())
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (("kind: ai", "kind: astrology"), ["phases.0.jobs.0.kind", "'ai'", "'climate'"]),
        (("nodes: 2, cores: 32, memory_gb: 256, gpus: 4", "nodes: 0, cores: 32, memory_gb: 256, gpus: 4"),
         ["phases.0.jobs.0.nodes", "greater than or equal to 1"]),
        (("seed: 11", "seed: eleven"), ["seed", "valid integer"]),
        (("cluster: clusters/specialists.yaml", "cluster: clusters/missing.yaml"), ["missing.yaml: no such cluster file"]),
        (("  - name: healthy", "  - name: healthy\n    faults: [{agent: nobody, behaviour: silent}]"),
         ["phases.0.faults.0.agent", "unknown agent 'nobody'", "gpu-agent"]),
        (("  - name: healthy", "  - name: healthy\n    faults: [{agent: gpu-agent, behaviour: lying}]"),
         ["phases.0.faults.0.behaviour", "'invalid_nodes'", "'silent'"]),
        (("description: Five", "descripton: Five"), ["descripton: unknown field; allowed fields: name, description"]),
        (("seed: 11", "seed: 11\nconsensus: {method: auction}"), ["consensus.method", "'placement'", "'bidding'"]),
        (("seed: 11", "seed: 11\nconsensus: {weighted: maybe}"), ["consensus.weighted", "valid boolean"]),
    ],
)
def test_malformed_scenario_names_file_field_and_expectation(
    tmp_path: Path, change: tuple[str, str], fragments: list[str]
) -> None:
    old, new = change
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(UserError) as info:
        load_scenario(str(path), SCENARIOS)
    message = str(info.value)
    assert str(path.parent) in message
    for fragment in fragments:
        assert fragment in message, message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("seed: 11", "seed: [11", 1))
    with pytest.raises(UserError, match=r"bad.yaml, line \d+, column \d+: not valid YAML"):
        load_scenario(str(path), SCENARIOS)


def test_unknown_scenario_lists_the_available_ones(cli: Cli) -> None:
    result = cli("--scenario", "nonesuch")
    assert result.code == 2
    assert "no scenario 'nonesuch'" in result.err and "fault_tolerance" in result.err and "healthy" in result.err
    assert "Traceback" not in result.text


def test_malformed_scenario_on_the_command_line_exits_cleanly(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("kind: ai", "kind: astrology", 1))
    result = cli("--scenario", str(path))
    assert result.code == 2 and "phases.0.jobs.0.kind" in result.err and "Traceback" not in result.text


def test_a_random_faulty_agent_is_drawn_from_the_seed(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("  - name: healthy", "  - name: healthy\n    faults: [{agent: random, "
                                                          "behaviour: silent}]", 1))
    scenario = load_scenario(str(path), SCENARIOS)
    agents = {a.id for a in scenario.cluster.agents}
    drawn = {scenario.random_agent(seed) for seed in range(30)}
    assert drawn <= agents and len(drawn) > 1
    assert scenario.random_agent(4) == scenario.random_agent(4)


def test_node_groups_of_one_pool_need_distinct_prefixes(tmp_path: Path) -> None:
    cluster = (SCENARIOS / "clusters" / "specialists.yaml").read_text()
    two_groups = cluster.replace(
        "nodes: {count: 6, prefix: gpu-, per_node: {cores: 64, memory_gb: 512, gpus: 4, storage_gb: 2000}, load: [0.05, 0.35]}",
        "nodes:\n      - {count: 2, prefix: gpu-, per_node: {cores: 64, memory_gb: 512}}\n"
        "      - {count: 2, prefix: gpu-, per_node: {cores: 32, memory_gb: 256}}")
    assert two_groups != cluster
    path = _write(tmp_path, GOOD)
    (tmp_path / "clusters" / "specialists.yaml").write_text(two_groups)
    with pytest.raises(UserError, match="node groups need distinct prefixes"):
        load_scenario(str(path), SCENARIOS)
