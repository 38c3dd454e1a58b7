"""SIGKILL a running scenario at random points, resume it each time, compare with an uninterrupted run.

The kills land wherever the seeded delays put them: before the first decision, inside the consensus
graph, inside a ledger transaction, between the ledger write and the checkpoint cleanup. See
``crash_driver`` for the checks (no decision lost or recorded twice, no over-allocation, the same
final decisions, events and summary). ``bench/bench_crash.py`` runs hundreds of kills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.config import load_settings
from llm_sched.orchestration.scenarios import load_scenario
from tests.store.crash_driver import crash_runs


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "kills", "seed"), [("byzantine", 12, 1), ("recovery", 10, 2)])
def test_sigkill_at_random_points_then_resume_reaches_the_uninterrupted_result(tmp_path: Path, scenario: str,
                                                                              kills: int, seed: int) -> None:
    spec = load_scenario(scenario, load_settings().scenarios_dir)
    report = crash_runs(scenario, tmp_path, kills=kills, seed=seed,
                        cluster=lambda: spec.cluster.build_state(spec.seed))
    assert report.problems == []
    assert report.kills == kills
    assert report.resumes > 0
    assert len(report.kills_by_progress) >= 3, report.kills_by_progress  # kills before, during and late in a run
