"""Synthetic workloads and failure schedules: seeded, documented shapes, policy-independent."""

from __future__ import annotations

from itertools import pairwise

import pytest

from llm_sched.sim.failures import (
    FailureSchedule,
    FailureSpec,
    draw_schedule,
    failure_horizon,
)
from llm_sched.sim.workload import (
    KIND_SPECS,
    KINDS,
    WorkloadSpec,
    arrival_times,
    synthetic,
)


def test_synthetic_jobs_are_seeded_and_follow_the_kind_table() -> None:
    spec = WorkloadSpec(jobs=400, arrival="poisson")
    jobs = synthetic(spec, 40, seed=3)
    assert jobs == synthetic(spec, 40, seed=3)
    assert jobs != synthetic(spec, 40, seed=4)
    assert {j.kind for j in jobs} == set(KINDS)
    for j in jobs:
        ks = KIND_SPECS[j.kind]
        assert j.nodes in ks.sizes
        assert ks.min_run <= j.run <= ks.max_run
        assert j.run <= j.estimate <= 3.0 * j.run + 60
    submits = [j.submit for j in jobs]
    assert submits == sorted(submits) and submits[0] == 0


def test_sizes_are_capped_at_the_machine() -> None:
    assert max(j.nodes for j in synthetic(WorkloadSpec(jobs=300), 4, seed=1)) == 4


@pytest.mark.parametrize("arrival", ["constant", "poisson", "burst"])
def test_arrivals_hit_the_offered_load(arrival: str) -> None:
    jobs = synthetic(WorkloadSpec(jobs=2000, arrival=arrival, load=0.5), 64, seed=2)  # type: ignore[arg-type]
    work = sum(j.nodes * j.run for j in jobs)
    span = jobs[-1].submit - jobs[0].submit
    # Offered load = work / (nodes x span); Poisson within sampling error.
    assert work / (64 * span) == pytest.approx(0.5, rel=0.08)


def test_burst_and_batch_arrivals() -> None:
    spec = WorkloadSpec(jobs=50, arrival="burst", burst_size=10)
    import random

    times = arrival_times(spec, [3600.0] * 50, 10, random.Random(1))
    assert len(set(times)) == 5 and times.count(times[0]) == 10
    batch = synthetic(WorkloadSpec(jobs=200, arrival="batch"), 40, seed=1)
    assert {j.submit for j in batch} == {0.0}  # "high load": every job at once


def test_invalid_workloads_are_refused() -> None:
    with pytest.raises(ValueError, match="arrival"):
        WorkloadSpec(arrival="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        WorkloadSpec(load=0)


def test_failure_schedule_is_seeded_and_ordered() -> None:
    spec = FailureSpec(rate=0.5, node_rate=0.1)
    a = draw_schedule(spec, 10, 80, 0.0, 100_000.0, seed=1)
    assert a == draw_schedule(spec, 10, 80, 0.0, 100_000.0, seed=1)
    assert a != draw_schedule(spec, 10, 80, 0.0, 100_000.0, seed=2)
    assert [o.cause for o in a.outages] == list(range(len(a.outages)))
    assert [o.start for o in a.outages] == sorted(o.start for o in a.outages)
    for o in a.outages:
        assert 0.0 <= o.start <= o.detect <= o.end
        assert o.detect - o.start < 2.0 or o.detect == o.end  # phi-accrual, 1 s heartbeats
    assert a.count("agent") >= 1 and a.count("node") >= 1


def test_lower_rates_give_a_subset_of_the_failures() -> None:
    # Common random numbers: each agent draws the same numbers whatever the rate.
    low = draw_schedule(FailureSpec(rate=0.05), 20, 160, 0.0, 1e5, seed=9)
    high = draw_schedule(FailureSpec(rate=0.35), 20, 160, 0.0, 1e5, seed=9)
    key = {(o.members, o.start, o.end) for o in high.outages}
    assert {(o.members, o.start, o.end) for o in low.outages} <= key
    assert len(high.outages) > len(low.outages)


def test_cascading_failures_hit_ring_neighbours() -> None:
    random_ = draw_schedule(FailureSpec(rate=0.3, pattern="random"), 10, 0, 0.0, 1e5, seed=4)
    cascade = draw_schedule(FailureSpec(rate=0.3, pattern="cascading", cascade_prob=1.0), 10, 0, 0.0, 1e5, seed=4)
    first = {(o.members, o.start) for o in random_.outages}
    extra = [o for o in cascade.outages if (o.members, o.start) not in first]
    assert first <= {(o.members, o.start) for o in cascade.outages}
    assert extra  # with certainty of spreading, something spread
    for o in extra:  # each follows a failure of a ring neighbour within the window
        (b,) = o.members
        assert any(
            p.kind == "agent" and p.members[0] in ((b - 1) % 10, (b + 1) % 10) and 0 <= o.start - p.start <= 600
            for p in cascade.outages
        )
    for agent in range(10):  # an agent is never down twice at once
        spans = sorted((o.start, o.end) for o in cascade.outages if o.members == (agent,))
        assert all(e <= s for (_, e), (s, _) in pairwise(spans))


def test_partitions_cut_contiguous_groups() -> None:
    sched = draw_schedule(FailureSpec(rate=0.5, pattern="partition", partition_fraction=0.3), 10, 0, 0.0, 1e5, seed=5)
    assert sched.outages and all(o.kind == "partition" for o in sched.outages)
    for o in sched.outages:
        assert len(o.members) == 3


def test_horizon_depends_on_the_workload_only() -> None:
    assert failure_horizon([10.0, 20.0, 50.0], work=1000.0, nodes=10) == (10.0, 100.0)
    assert failure_horizon([0.0, 500.0], work=1000.0, nodes=10) == (0.0, 500.0)
    assert failure_horizon([], 0.0, 1) == (0.0, 0.0)


def test_hand_made_schedules_are_checked() -> None:
    sched = FailureSchedule.build([("node", (3,), 50, 51, 90), ("agent", (1,), 10, 11, 40)])
    assert [o.kind for o in sched.outages] == ["agent", "node"] and sched.outages[1].cause == 1
    with pytest.raises(ValueError, match="start <= detect <= end"):
        FailureSchedule.build([("agent", (0,), 10, 5, 40)])
    with pytest.raises(ValueError, match="pattern"):
        FailureSpec(pattern="meteor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        FailureSpec(rate=1.5)
