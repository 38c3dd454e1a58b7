"""Bad numbers and conflicting flags are refused with one clear message (exit 2), never silently taken."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from tests.conftest import Cli


@pytest.mark.parametrize(("flag", "args"), [
    ("--agents", ("--simulate", "--trace", "x.swf", "--policy", "fcfs", "--agents", "0")),
    ("--agents", ("--experiment", "--agents", "0")),
    ("--jobs", ("--experiment", "--jobs", "-3")),
    ("--repetitions", ("--experiment", "--repetitions", "0")),
    ("--byzantine", ("--experiment", "--byzantine", "-1")),
    ("--workers", ("--evaluate", "--workers", "0")),
    ("--seed", ("--scenario", "healthy", "--seed", "-5")),
    ("--seed", ("--scenario", "healthy", "--seed", "seven")),
])
def test_a_number_out_of_range_is_an_error_naming_the_flag(cli: Cli, flag: str, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.code == 2 and f"argument {flag}" in result.err and "Traceback" not in result.text


@pytest.mark.parametrize("args", [("--check", "--interactive"), ("--experiment", "--simulate"), ("--runs", "--evaluate"),
                                  ("--setup-env", "--check")])
def test_two_modes_at_once_are_refused(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.code == 2 and "not allowed with argument" in result.err and "Traceback" not in result.text


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("cores: 32", "cores: true", "cores"),
    ("nodes: 2", "nodes: 123456789012345678901234", "nodes"),
    ("runtime_s: 7200", "runtime_s: .nan", "runtime_s"),
    ("runtime_s: 7200", "runtime_s: .inf", "runtime_s"),
    ("nodes: 2", "nodes: '2'", "nodes"),
])
def test_a_job_field_of_the_wrong_type_or_range_is_refused(cli: Cli, tmp_path: Path, field: str, value: str,
                                                           fragment: str) -> None:
    scenarios = tmp_path / "scenarios"
    shutil.copytree(PROJECT_ROOT / "scenarios", scenarios, ignore=shutil.ignore_patterns("cassettes"))
    path = scenarios / "healthy.yaml"
    path.write_text(path.read_text().replace(field, value, 1))
    cli.env.update(LLM_SCHED_SCENARIOS_DIR=str(scenarios))
    result = cli("--scenario", "healthy", "--provider", "heuristic")
    assert result.code == 2 and "Traceback" not in result.text, result.text
    assert "healthy.yaml" in result.err and fragment in result.err


def test_a_seed_beyond_64_bits_in_a_scenario_is_refused(cli: Cli, tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    shutil.copytree(PROJECT_ROOT / "scenarios", scenarios, ignore=shutil.ignore_patterns("cassettes"))
    path = scenarios / "healthy.yaml"
    path.write_text(path.read_text().replace("seed: 11", "seed: 99999999999999999999999", 1))
    cli.env.update(LLM_SCHED_SCENARIOS_DIR=str(scenarios))
    result = cli("--scenario", "healthy", "--provider", "heuristic")
    assert result.code == 2 and "seed" in result.err and "Traceback" not in result.text
