"""Resuming scenario runs from bad or damaged state: clear messages, nothing committed lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_sched.config import PROJECT_ROOT, Settings, load_settings
from llm_sched.core.events import EventLogError, JsonlSink, comparable
from llm_sched.errors import UserError
from llm_sched.orchestration.graph import ConsensusGraph
from llm_sched.orchestration.runner import resume_scenario, run_scenario
from llm_sched.orchestration.scenarios import Scenario, load_scenario
from llm_sched.store.ledger import Ledger


class Died(BaseException):
    """Stands for the process dying."""


def _settings(root: Path) -> Settings:
    return load_settings({"LLM_SCHED_PROVIDER": "heuristic", "LLM_SCHED_RUNS_DIR": str(root)})


def _load(settings: Settings) -> Any:
    return lambda name: load_scenario(name, settings.scenarios_dir)


def _die_at(monkeypatch: pytest.MonkeyPatch, job_id: str) -> None:
    original = ConsensusGraph._choose

    def dying(self: ConsensusGraph, s: Any) -> Any:
        if s["job"].id == job_id:
            raise Died
        return original(self, s)

    monkeypatch.setattr(ConsensusGraph, "_choose", dying)


def _run_until(monkeypatch: pytest.MonkeyPatch, settings: Settings, job_id: str) -> tuple[str, Scenario]:
    """A byzantine run that dies while deciding ``job_id``; returns its id."""
    scenario = load_scenario("byzantine", settings.scenarios_dir)
    with monkeypatch.context() as patch:
        _die_at(patch, job_id)
        with pytest.raises(Died):
            run_scenario(scenario, settings)
    with Ledger.open(settings.ledger_path) as ledger:
        (run,) = ledger.runs()
    return run.run_id, scenario


def test_a_truncated_event_log_stops_the_resume_and_the_ledger_keeps_every_decision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    run_id, _ = _run_until(monkeypatch, settings, "b-05")
    with Ledger.open(settings.ledger_path) as ledger:
        before = ledger.decisions(run_id)
    assert [d.job_id for d in before] == ["b-01", "b-02", "b-03", "b-04"]
    log = tmp_path / run_id / "events.jsonl"
    log.write_bytes(log.read_bytes()[:200])
    with pytest.raises(EventLogError, match=f"events.jsonl is truncated: 200 bytes, but the last committed decision "
                                            f"of run {run_id} \\(job b-04\\) ends at byte .*--show {run_id}"):
        resume_scenario(run_id, settings, _load(settings))
    with Ledger.open(settings.ledger_path) as ledger:
        assert ledger.decisions(run_id) == before


def test_a_full_disk_mid_run_fails_cleanly_and_the_run_resumes_to_the_same_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    reference = run_scenario(load_scenario("byzantine", _settings(tmp_path / "ref").scenarios_dir),
                             _settings(tmp_path / "ref"))
    settings = _settings(tmp_path / "full")
    written = {"n": 0}
    original = JsonlSink.__call__

    def filling(self: JsonlSink, event: Any) -> None:
        written["n"] += 1
        if written["n"] == 60:  # the disk fills up in the middle of the run
            self._handle = open("/dev/full", "a", encoding="utf-8")  # noqa: SIM115 - the sink closes it
        original(self, event)

    with monkeypatch.context() as patch:
        patch.setattr(JsonlSink, "__call__", filling)
        with pytest.raises(EventLogError, match="could not write the event log .*No space left on device.*--resume"):
            run_scenario(load_scenario("byzantine", settings.scenarios_dir), settings)
    with Ledger.open(settings.ledger_path) as ledger:
        (run,) = ledger.runs()
        assert run.status == "failed" and 0 < run.decisions < 7
    resumed = resume_scenario(run.run_id, settings, _load(settings))
    assert [comparable(e) for e in resumed.events] == [comparable(e) for e in reference.events]


def test_resuming_a_completed_run_changes_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = run_scenario(load_scenario("healthy", settings.scenarios_dir), settings)
    log = (first.run_dir / "events.jsonl").read_bytes()
    again = resume_scenario(first.run_dir.name, settings, _load(settings))
    assert (first.run_dir / "events.jsonl").read_bytes() == log
    assert again.summary == first.summary


def test_a_run_of_a_scenario_that_changed_since_is_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    run_id, scenario = _run_until(monkeypatch, settings, "b-03")
    changed = scenario.model_copy(update={"seed": scenario.seed + 1})
    with pytest.raises(UserError, match=f"scenario byzantine has changed since run {run_id} started"):
        resume_scenario(run_id, settings, lambda _: changed)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "main.py"), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=PROJECT_ROOT, timeout=120)


def test_the_command_line_names_bad_state_without_a_traceback(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    env = {"LLM_SCHED_LEDGER": str(ledger), "LLM_SCHED_RUNS_DIR": str(tmp_path)}
    missing = _cli("--resume", "20990101T000000Z-nothing", env=env)
    assert missing.returncode == 2
    assert "no run 20990101T000000Z-nothing in the ledger" in missing.stderr and "Traceback" not in missing.stderr
    with sqlite3.connect(ledger) as conn:
        conn.execute("PRAGMA user_version = 99")
    newer = _cli("--runs", env=env)
    assert newer.returncode == 2
    assert "schema version 99" in newer.stderr and "Traceback" not in newer.stderr
