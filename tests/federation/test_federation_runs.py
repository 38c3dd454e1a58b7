"""The supercomputer federation: bids, the weighted quorum, the liar from job 7, occupancy."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from llm_sched.config import PROJECT_ROOT, load_settings
from llm_sched.core import ClusterState, Placement, check_placement, commit
from llm_sched.orchestration.runner import run_scenario
from llm_sched.orchestration.scenarios import Scenario, load_scenario

SEEDS = range(1, 21)
VERIFIABLE = ("proposed an infeasible placement", "false capacity claim", "false load claim", "inflated bid",
              "accepted a candidate that fails the check", "no proposal in time", "no vote in time")


@cache
def federation() -> Scenario:
    return load_scenario("supercomputers", PROJECT_ROOT / "scenarios")


@cache
def heuristic_run(seed: int) -> list[dict[str, Any]]:
    settings = load_settings({"LLM_SCHED_PROVIDER": "heuristic"}, environ={})
    with tempfile.TemporaryDirectory() as runs:
        result = run_scenario(federation(), settings, seed=seed, runs_dir=Path(runs))
    return [e.model_dump(mode="json") for e in result.events]


def _of(events: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (e for e in events if e["kind"] == kind)


def _liar(events: list[dict[str, Any]]) -> str:
    (fault,) = [e for e in _of(events, "fault_changed") if e["active"]]
    return fault["agent"]


def _replay_allocations(events: list[dict[str, Any]], seed: int) -> int:
    """Re-apply every commit and release to a fresh state, checking each commit fits; returns commits."""
    state: ClusterState = federation().cluster.build_state(seed)
    jobs = {job.id: job for job in federation().jobs()}
    commits = 0
    for e in events:
        if e["kind"] == "decision" and e["decision"]["outcome"] == "commit":
            job = jobs[e["decision"]["job_id"]]
            placement = Placement.model_validate(e["decision"]["placement"])
            verdict = check_placement(state, job, placement)
            assert verdict.ok, f"seed {seed}: {job.id} over-allocates: {verdict.summary()}"
            commit(state, job, placement)
            commits += 1
        elif e["kind"] == "job_finished":
            state.release(e["job_id"])
    return commits


@pytest.mark.parametrize("seed", SEEDS)
def test_no_award_to_the_liar_after_detection_and_no_cluster_over_allocated(seed: int) -> None:
    events = heuristic_run(seed)
    liar = _liar(events)
    detected_at = next(i for i, e in enumerate(events) if e["kind"] == "agent_excluded" and e["agent"] == liar)
    awards_after = [e["decision"]["job_id"] for e in events[detected_at:]
                    if e["kind"] == "decision" and e["decision"]["proposer"] == liar]
    assert awards_after == []
    assert not [e for e in events[detected_at:] if e["kind"] == "proposal" and e["agent"] == liar], "excluded bidder"
    assert [e["agent"] for e in _of(events, "agent_excluded")] == [liar], "only the liar is ever excluded"
    assert _replay_allocations(events, seed) >= 7
    assert len(list(_of(events, "decision"))) == 8


def test_the_faulty_agent_is_drawn_from_the_seed_not_fixed_by_the_scenario() -> None:
    liars = {_liar(heuristic_run(seed)) for seed in SEEDS}
    assert len(liars) >= 3


def test_the_liar_is_detected_from_verifiable_facts_only_and_honest_agents_keep_their_reputation() -> None:
    for seed in SEEDS:
        events = heuristic_run(seed)
        liar = _liar(events)
        for change in _of(events, "reputation"):
            if change["new"] < change["old"]:
                assert change["agent"] == liar, f"seed {seed}: honest {change['agent']} lost reputation"
                assert change["reason"].startswith(VERIFIABLE), change["reason"]


def test_after_detection_the_liars_vote_weighs_its_reputation() -> None:
    events = heuristic_run(3)
    liar = _liar(events)
    status = next(_of(events, "network_status"))
    liar_reputation = next(a["reputation"] for a in status["agents"] if a["agent"] == liar)
    assert next(a["health"] for a in status["agents"] if a["agent"] == liar) == "excluded"
    last = list(_of(events, "tally"))[-1]
    assert last["total_weight"] == pytest.approx(5 + liar_reputation)
    assert last["needed_weight"] == pytest.approx(4 / 6 * last["total_weight"], abs=1e-3)
    assert last["passed"] == (last["accept_weight"] >= last["needed_weight"] - 1e-9)


def test_every_decision_is_followed_by_an_occupancy_view_consistent_with_the_commits() -> None:
    events = heuristic_run(2026)
    running: dict[str, set[str]] = {}
    views = 0
    for e in events:
        if e["kind"] == "decision" and e["decision"]["outcome"] == "commit":
            running.setdefault(e["decision"]["placement"]["pool"], set()).add(e["decision"]["job_id"])
        elif e["kind"] == "job_finished":
            for jobs in running.values():
                jobs.discard(e["job_id"])
        elif e["kind"] == "occupancy":
            views += 1
            for pool in e["pools"]:
                assert set(pool["running"]) == running.get(pool["pool"], set())
                assert pool["total"] == pytest.approx(min(1.0, pool["jobs"] + pool["background"]), abs=1e-3)
                assert 0 <= pool["job_nodes"] <= pool["nodes"]
    assert views == 8


def test_the_cluster_file_has_the_federation_resources() -> None:
    expected = {  # nodes, cores, memory GB, GPUs, interconnect, type
        "HPC_RESOURCE_00": (200, 8_800, 102_400, 1_200, "InfiniBand EDR", "hpc"),
        "HPC_RESOURCE_01": (320, 20_480, 163_840, 1_280, "Slingshot-11", "gpu"),
        "HPC_RESOURCE_02": (512, 24_576, 524_288, 0, "Tofu-D", "memory"),
        "HPC_RESOURCE_03": (328, 10_496, 83_968, 512, "InfiniBand HDR", "hybrid"),
        "HPC_RESOURCE_04": (353, 28_672, 90_368, 1_024, "InfiniBand HDR", "ai"),
        "HPC_RESOURCE_05": (280, 8_960, 143_360, 1_120, "Slingshot-10", "storage"),
    }
    state = federation().cluster.build_state(2026)
    for pool_id, (nodes, cores, memory, gpus, interconnect, label) in expected.items():
        pool = state.pools[pool_id]
        assert len(pool.nodes) == nodes
        assert sum(n.capacity.cores for n in pool.nodes) == cores
        assert sum(n.capacity.memory_gb for n in pool.nodes) == memory
        assert sum(n.capacity.gpus for n in pool.nodes) == gpus
        assert (pool.interconnect, pool.label) == (interconnect, label)
    jobs = federation().jobs()
    assert len(jobs) == 8 and all(30 <= j.nodes <= 60 for j in jobs)
