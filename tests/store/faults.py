"""Shared by the storage-fault tests: isolated settings, runs that die at a chosen job, snapshots of
what a ledger and a run folder hold (to show a fault changed nothing that was stored)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_sched.config import ENV_VARS, Settings, load_settings
from llm_sched.core.events import comparable, read_jsonl
from llm_sched.orchestration.graph import ConsensusGraph
from llm_sched.orchestration.runner import run_scenario
from llm_sched.orchestration.scenarios import Scenario, load_scenario
from llm_sched.store.ledger import Ledger, RunInfo


class Died(BaseException):
    """Stands for the process dying: nothing in the run catches a BaseException."""


@dataclass
class Place:
    """An isolated working folder: no settings from the environment or a .env, runs in ``runs``."""

    root: Path
    runs: Path

    @property
    def ledger(self) -> Path:
        return self.runs / "llm_sched.db"

    def settings(self) -> Settings:
        return load_settings({"LLM_SCHED_PROVIDER": "heuristic", "LLM_SCHED_RUNS_DIR": str(self.runs)})

    def loader(self) -> Callable[[str], Scenario]:
        settings = self.settings()
        return lambda name: load_scenario(name, settings.scenarios_dir)

    def scenario(self, name: str = "byzantine") -> Scenario:
        return load_scenario(name, self.settings().scenarios_dir)

    def run(self, name: str = "healthy") -> str:
        """A completed run of ``name``; its id."""
        return run_scenario(self.scenario(name), self.settings()).run_dir.name

    def run_until(self, monkeypatch: pytest.MonkeyPatch, job_id: str, step: str = "_choose",
                  name: str = "byzantine") -> str:
        """A run of ``name`` that dies in ``step`` of ``job_id`` (its thread checkpointed up to there); its id."""
        before = {r.run_id for r in self.runs_stored()}
        original = getattr(ConsensusGraph, step)

        def dying(graph: ConsensusGraph, s: Any) -> Any:
            if s["job"].id == job_id:
                raise Died
            return original(graph, s)

        with monkeypatch.context() as patch:
            patch.setattr(ConsensusGraph, step, dying)
            with pytest.raises(Died):
                run_scenario(self.scenario(name), self.settings())
        (run_id,) = {r.run_id for r in self.runs_stored()} - before
        return run_id

    def runs_stored(self) -> list[RunInfo]:
        if not self.ledger.exists():
            return []
        with Ledger.open(self.ledger) as ledger:
            return ledger.runs()

    def info(self, run_id: str) -> RunInfo:
        with Ledger.open(self.ledger) as ledger:
            info = ledger.run(run_id)
        assert info is not None
        return info

    def events(self, run_id: str, folder: Path | None = None) -> list[dict[str, Any]]:
        """The run's events, comparable (timestamps, latencies and hashes left out)."""
        return [comparable(e) for e in read_jsonl((folder or self.runs / run_id) / "events.jsonl")]


def isolated_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    """``tmp_path`` as the working folder and home: no settings from the environment or a .env."""
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("LLM_SCHED_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return Place(tmp_path, tmp_path / "runs")


def reference_events(root: Path, name: str = "byzantine") -> list[dict[str, Any]]:
    """The comparable events of an uninterrupted run of ``name`` under ``root``."""
    settings = load_settings({"LLM_SCHED_PROVIDER": "heuristic", "LLM_SCHED_RUNS_DIR": str(root)})
    result = run_scenario(load_scenario(name, settings.scenarios_dir), settings)
    return [comparable(e) for e in result.events]


def stored_state(ledger: Path, run_id: str) -> tuple[Any, ...]:
    """Everything the ledger holds for ``run_id`` (read-only): its row and every row hanging off it."""
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        rows = [conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchall()]
        for table in ("jobs", "decisions", "placements", "votes", "reputation_changes", "certificates", "vote_keys",
                      "units"):
            rows.append(sorted(conn.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,)).fetchall()))
        return tuple(map(tuple, rows))
    finally:
        conn.close()


def folder_bytes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the run lock aside: it holds the pid of its last holder) by digest."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}
