"""The seven scenarios of the peer comparison (llm_sched.sim.peer_workloads): each has the property its
name promises, the same seed gives the same jobs; and Jain's fairness index (llm_sched.sim.metrics)."""

from __future__ import annotations

import math
import statistics

import pytest

from llm_sched.sim.metrics import jain_index, peak_usage
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.peer_workloads import BLOCKER_EVERY, FOLLOWER_DELAY, SCENARIO_KINDS, peer_workload
from llm_sched.sim.workload import KINDS, WorkloadSpec, synthetic

SEEDS = (1, 2, 3, 4, 5)
NODES = 40


@pytest.mark.parametrize("kind", SCENARIO_KINDS)
def test_same_seed_gives_the_same_jobs_and_another_seed_other_jobs(kind: str) -> None:
    assert peer_workload(kind, 30, NODES, 7) == peer_workload(kind, 30, NODES, 7)
    assert peer_workload(kind, 30, NODES, 7) != peer_workload(kind, 30, NODES, 8)


@pytest.mark.parametrize("kind", SCENARIO_KINDS)
@pytest.mark.parametrize("jobs", [0, 1, 7, 50])
def test_every_job_fits_the_machine_asks_no_less_than_it_runs_and_comes_in_submission_order(
        kind: str, jobs: int) -> None:
    for seed in SEEDS:
        drawn = peer_workload(kind, jobs, NODES, seed)
        assert [j.job_id for j in drawn] == list(range(1, jobs + 1))
        assert all(1 <= j.nodes <= NODES and j.run > 0 and j.estimate >= j.run and j.kind in KINDS for j in drawn)
        submits = [j.submit for j in drawn]
        assert submits == sorted(submits) and all(s >= 0 and s == int(s) for s in submits)


def test_homogeneous_short_jobs_are_all_narrow_and_short() -> None:
    for seed in SEEDS:
        jobs = peer_workload("homogeneous_short", 50, NODES, seed)
        assert all(j.nodes <= 2 and 60 <= j.run <= 300 for j in jobs)


def test_long_jobs_run_far_longer_than_homogeneous_short_jobs_at_the_median() -> None:
    for seed in SEEDS:
        long_runs = [j.run for j in peer_workload("long_jobs", 50, NODES, seed)]
        short_runs = [j.run for j in peer_workload("homogeneous_short", 50, NODES, seed)]
        assert min(long_runs) >= 2 * 3600
        assert statistics.median(long_runs) > 10 * statistics.median(short_runs)


def test_heterogeneous_mix_is_the_simulators_own_poisson_workload() -> None:
    jobs = peer_workload("heterogeneous_mix", 40, NODES, 3)
    assert jobs == synthetic(WorkloadSpec(40, "poisson", 0.8), NODES, 3)
    assert len({j.nodes for j in jobs}) > 2 and len({j.kind for j in jobs}) > 2


@pytest.mark.parametrize("jobs", [2, 5, 13, 50])
def test_bursty_jobs_arrive_in_groups_at_the_same_instant(jobs: int) -> None:
    for seed in SEEDS:
        drawn = peer_workload("bursty", jobs, NODES, seed)
        counts = {s: sum(j.submit == s for j in drawn) for s in {j.submit for j in drawn}}
        assert min(counts.values()) >= 2, counts  # no instant with a lone job
        assert len(counts) <= jobs // 2


def test_high_parallelism_has_most_jobs_wider_than_half_the_machine() -> None:
    for seed in SEEDS:
        for jobs in (1, 3, 10, 50):
            drawn = peer_workload("high_parallelism", jobs, NODES, seed)
            assert sum(j.nodes > NODES / 2 for j in drawn) > jobs / 2


@pytest.mark.parametrize("jobs", [5, 10, 50])
def test_resource_sparse_needs_more_nodes_than_the_machine_has_unless_jobs_queue(jobs: int) -> None:
    for seed in SEEDS:
        drawn = peer_workload("resource_sparse", jobs, NODES, seed)
        zero_wait = [JobOutcome(j.job_id, j.submit, j.submit, j.submit + j.run, j.nodes, "") for j in drawn]
        assert peak_usage(zero_wait) > NODES  # started at submission, they would not fit: some must wait
        if jobs >= 10:  # and the arrivals come far faster than the machine can serve them
            work = math.fsum(j.nodes * j.run for j in drawn)
            arrivals = drawn[-1].submit - drawn[0].submit
            assert work > 2 * NODES * arrivals


def test_adversarial_whole_machine_blockers_are_followed_at_once_by_short_jobs_overstating_their_time() -> None:
    for seed in SEEDS:
        drawn = peer_workload("adversarial", 50, NODES, seed)
        blockers = [j for j in drawn if j.nodes == NODES]
        others = [j for j in drawn if j.nodes != NODES]
        assert len(blockers) == 50 // BLOCKER_EVERY
        assert all(j.run >= 3600 for j in blockers) and all(j.nodes <= 2 and j.run <= 300 for j in others)
        assert all(j.estimate >= 10 * j.run for j in others)  # backfilling cannot trust them
        assert all(j.estimate <= 1.1 * j.run + 60 for j in blockers)
        for k in range(0, 50, BLOCKER_EVERY):  # each blocker, then its followers within a minute
            blocker, followers = drawn[k], drawn[k + 1:k + BLOCKER_EVERY]
            assert blocker.nodes == NODES
            assert all(FOLLOWER_DELAY[0] <= f.submit - blocker.submit <= FOLLOWER_DELAY[1] for f in followers)


def test_an_unknown_scenario_or_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        peer_workload("steady", 10)
    with pytest.raises(ValueError):
        peer_workload("bursty", -1)
    with pytest.raises(ValueError):
        peer_workload("bursty", 10, nodes=0)


# -- Jain's fairness index (llm_sched.sim.metrics.jain_index) ---------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_jain_index_of_equal_values_is_one(n: int) -> None:
    assert jain_index([3.5] * n) == pytest.approx(1.0)
    assert jain_index([0.0] * n) == 1.0  # all equal, even at 0


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_jain_index_of_one_nonzero_value_among_n_is_one_over_n(n: int) -> None:
    assert jain_index([0.0] * (n - 1) + [4.0]) == pytest.approx(1.0 / n)


def test_jain_index_lies_between_one_over_n_and_one_and_is_undefined_without_values() -> None:
    values = [1.0, 2.0, 3.0, 10.0]
    j = jain_index(values)
    assert 1 / len(values) < j < 1
    assert j == pytest.approx(sum(values) ** 2 / (len(values) * sum(v * v for v in values)))
    assert math.isnan(jain_index([]))
    with pytest.raises(ValueError):
        jain_index([1.0, -1.0])
    with pytest.raises(ValueError):
        jain_index([1.0, math.nan])
