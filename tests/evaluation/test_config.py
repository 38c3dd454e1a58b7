"""A bad campaign file gets one UserError naming the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.errors import UserError
from llm_sched.evaluation.config import DIMENSIONS, campaign_path, load_campaign
from llm_sched.evaluation.design import configurations, seeds
from tests.conftest import Cli

SCENARIOS = PROJECT_ROOT / "scenarios"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        load_campaign(path)
    return str(info.value)


VALID = """\
name: t
repetitions: 5
dimensions:
  failure_pattern: [random, cascading]
"""


@pytest.mark.parametrize("name", ["full", "quick"])
def test_shipped_campaigns_have_the_34_configurations_of_issues_7_and_17(name: str) -> None:
    config = load_campaign(campaign_path(name, SCENARIOS))
    configs = configurations(config)
    assert len(configs) == 34
    counts = {d: sum(c.dimension == d for c in configs) for d in DIMENSIONS}
    assert counts == {"scale": 12, "failure_rate": 4, "failure_pattern": 3, "load_pattern": 3, "high_load": 4,
                      "byzantine": 3, "byzantine_behaviour": 5}
    liars = [(c.scenario.byzantine, c.scenario.behaviour) for c in configs if c.dimension.startswith("byzantine")]
    assert liars == [(0, "vote_flipping"), (1, "vote_flipping"), (3, "vote_flipping"), (1, "silent"),
                     (1, "vote_flipping"), (1, "equivocate"), (1, "forge"), (1, "inflated_scores")]
    assert all(c.scenario.byzantine == 0 for c in configs if not c.dimension.startswith("byzantine"))
    assert len({c.key for c in configs}) == 34
    assert config.policies == ("agents", "fcfs", "sjf", "easy", "conservative")
    assert config.base.failover == 120.0
    assert config.repetitions >= (30 if name == "full" else 3)
    assert config.deadline_factor is not None  # else completion rates are 100% by construction
    high = [c.scenario.workload for c in configs if c.dimension == "high_load"]
    assert [(w.jobs, w.arrival) for w in high] == [(50, "batch"), (100, "batch"), (200, "batch"), (400, "batch")]
    scale = {(c.scenario.workload.jobs, c.scenario.agents) for c in configs if c.dimension == "scale"}
    assert scale == {(j, a) for j in (50, 100, 250, 500) for a in (5, 10, 20)}


def test_more_byzantine_agents_than_f_are_refused(tmp_path: Path) -> None:
    text = """
    name: liars
    repetitions: 2
    base: {agents: 10}
    dimensions:
      byzantine: [0, 4]
    """
    message = error(write(tmp_path, text))
    assert "4 Byzantine agents among 10: at most f = 3 may be Byzantine" in message


def test_quick_is_smaller_than_full() -> None:
    full = load_campaign(campaign_path("full", SCENARIOS))
    quick = load_campaign(campaign_path("quick", SCENARIOS))
    assert quick.repetitions < full.repetitions
    assert quick.dimensions.present() == full.dimensions.present() == DIMENSIONS


def test_seeds_follow_the_repetition_and_the_seed_override(tmp_path: Path) -> None:
    config = load_campaign(write(tmp_path, VALID), seed=40)
    assert seeds(config) == [40, 41, 42, 43, 44]


def test_unknown_pattern_names_file_field_and_allowed_values(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("cascading", "meteor"))
    message = error(path)
    assert str(path) in message
    assert "dimensions.failure_pattern.1" in message
    assert "'random', 'cascading' or 'partition'" in message
    assert "meteor" in message


def test_unknown_field_lists_the_allowed_fields(tmp_path: Path) -> None:
    message = error(write(tmp_path, VALID + "base:\n  nodes: 4\n"))
    assert "base.nodes: unknown field" in message
    assert "nodes_per_agent" in message and "failure_rate" in message


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = """\
name: t
repetitions: 1
policies: [fcfs, easy]
deadline_factor: 0.5
base: {protocol: carrier-pigeon, arrival: sometimes}
dimensions:
  failure_rate: [15]
  scale: {jobs: [50, 50], agents: [5]}
"""
    message = error(write(tmp_path, text))
    assert "repetitions: Input should be greater than or equal to 2 (got 1; allowed: from 2 to 100,000)" in message
    assert "policies: the campaign compares agents with baselines: policies must include agents" in message
    assert "deadline_factor:" in message
    assert "base.protocol: unknown protocol 'carrier-pigeon'; allowed: pbft, tendermint" in message
    assert "base.arrival: Input should be 'constant', 'poisson', 'burst' or 'batch' (got 'sometimes')" in message
    assert "dimensions.failure_rate: failure rates are fractions in [0, 1] (0.15 for 15%), got 15.0" in message
    assert "dimensions.scale.jobs: 50 is listed twice" in message


def test_missing_fields_and_empty_dimensions(tmp_path: Path) -> None:
    message = error(write(tmp_path, "description: nothing\n"))
    for field in ("name", "repetitions", "dimensions"):
        assert f"{field}: required field is missing" in message
    message = error(write(tmp_path, "name: t\nrepetitions: 5\ndimensions: {}\n"))
    assert "dimensions: no dimension to run; give at least one of: scale, failure_rate" in message


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    assert "expected a mapping of campaign fields at the top level, found a list" in error(write(tmp_path, "- 1\n"))
    assert "not valid YAML" in error(write(tmp_path, "name: [unclosed\n"))


def test_unknown_campaign_name_lists_the_shipped_ones() -> None:
    with pytest.raises(UserError) as info:
        campaign_path("huge", SCENARIOS)
    assert "huge.yaml" in str(info.value) and "full, llm_agents, quick" in str(info.value)


def test_the_command_line_refuses_quick_with_a_config_file(cli: Cli) -> None:
    result = cli("--evaluate", "--quick", "--config", "scenarios/evaluation/full.yaml")
    assert result.code == 2 and "--quick" in result.err and "Traceback" not in result.text
