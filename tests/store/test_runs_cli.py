"""``--runs``, ``--show RUN_ID`` and ``--resume RUN_ID`` read and continue what the ledger holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.cli import main
from llm_sched.config import load_settings
from llm_sched.runner import run_scenario
from llm_sched.scenarios import load_scenario


@pytest.fixture
def stored_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LLM_SCHED_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    settings = load_settings({"LLM_SCHED_PROVIDER": "heuristic"})
    return run_scenario(load_scenario("byzantine", settings.scenarios_dir), settings).run_dir.name


def test_runs_lists_the_stored_run_with_its_decisions(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if stored_run in line)
    assert all(cell in row for cell in ("byzantine", "heuristic", "12", "7", "completed"))


def test_show_prints_each_decision_with_the_dissenting_votes(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--show", stored_run]) == 0
    out = capsys.readouterr().out
    assert [f"b-0{i}" in out for i in range(1, 8)] == [True] * 7
    assert "4 accept, 1 reject (storage-agent)" in out  # the Byzantine agent of this scenario
    assert "storage-agent 1.00->0.70" in out


def test_resume_of_a_completed_run_prints_its_summary(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--resume", stored_run]) == 0
    assert "decisions committed" in capsys.readouterr().out


def test_resume_refuses_flags_that_would_change_the_run(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--resume", stored_run, "--seed", "3"]) == 2
    assert "give no --seed, --provider, --record or --allow-fallback" in capsys.readouterr().err
    assert main(["--scenario", "healthy", "--resume", stored_run]) == 2
    assert f"run {stored_run} is a run of scenario byzantine, not healthy" in capsys.readouterr().err
    assert main(["--scenario", "byzantine", "--resume", stored_run]) == 0
