"""Names that become paths are identifiers: a hostile scenario or run name writes nothing outside runs/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.errors import UserError
from llm_sched.llm.cassettes import cassette_path
from llm_sched.names import check_name, inside
from tests.conftest import Cli

HOSTILE = ["../../x", "..", ".hidden", "a/b", "/etc/passwd", "", "x" * 65, "name with space", "-flag", "a\\b",
           "ok\nnewline", "é"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_that_is_not_an_identifier_is_refused(name: str) -> None:
    with pytest.raises(UserError, match="is not allowed: use 1 to 64 letters"):
        check_name("scenario", name)


@pytest.mark.parametrize("name", ["healthy", "fault_tolerance", "run-2.v1", "20261203T083705Z-fault_tolerance", "x" * 64])
def test_identifiers_pass(name: str) -> None:
    assert check_name("run", name) == name


def test_a_path_outside_its_folder_is_refused(tmp_path: Path) -> None:
    assert inside(tmp_path, tmp_path / "a" / "b.yaml") == (tmp_path / "a" / "b.yaml").resolve()
    with pytest.raises(UserError, match="outside"):
        inside(tmp_path / "cassettes", tmp_path / "cassettes" / ".." / "x.yaml")
    with pytest.raises(UserError):
        cassette_path(tmp_path, "../../x", "local")


def test_a_scenario_named_like_a_path_is_refused_and_nothing_is_written(cli: Cli, tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    shutil.copytree(PROJECT_ROOT / "scenarios", scenarios, ignore=shutil.ignore_patterns("cassettes"))
    text = (scenarios / "healthy.yaml").read_text().replace("name: healthy", "name: ../../escaped", 1)
    (scenarios / "evil.yaml").write_text(text)
    cli.env.update(LLM_SCHED_SCENARIOS_DIR=str(scenarios))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("--scenario", "evil", "--provider", "heuristic")
    assert result.code == 2 and "Traceback" not in result.text
    assert "evil.yaml" in result.err and "name" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing escaped next to the scenarios
    assert not (cli.cwd / "runs").exists() or not any((cli.cwd / "runs").iterdir())


@pytest.mark.parametrize("flag", ["--show", "--resume"])
def test_a_run_id_that_is_a_path_is_refused(cli: Cli, flag: str) -> None:
    result = cli(flag, "../../etc")
    assert result.code == 2 and "run name '../../etc' is not allowed" in result.err and "Traceback" not in result.text

