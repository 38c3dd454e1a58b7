"""The offline optimum (OR-Tools CP-SAT): a feasible schedule, never worse than the online policies."""

from __future__ import annotations

import pytest

from llm_sched.sim.failures import FailureSchedule
from llm_sched.sim.metrics import peak_usage, schedule_metrics
from llm_sched.sim.resilience import PoolSplit, SimConfig, simulate
from llm_sched.sim.simulate import SyntheticSetup, prepare
from llm_sched.sim.workload import SimJob, WorkloadSpec

pytest.importorskip("ortools", reason="the optimum extra (OR-Tools) is not installed")

from llm_sched.sim.optimum import optimum  # noqa: E402


def test_a_small_instance_by_hand() -> None:
    # 2 nodes. A (2 nodes, 10 s) at 0; B and C (1 node, 5 s each) at 1. Starting A at once makes B
    # and C wait 9 s each (mean wait 6 s); holding A back until B and C end at 6 makes only A wait,
    # 6 s (mean 2 s): the optimum, which only a scheduler that knows B and C are coming can find.
    jobs = [SimJob(1, 0.0, 10.0, 10.0, 2, ""), SimJob(2, 1.0, 5.0, 5.0, 1, ""), SimJob(3, 1.0, 5.0, 5.0, 1, "")]
    best = optimum(jobs, 2, "wait_mean", 5.0)
    assert best.proven and best.value == pytest.approx(2.0)
    assert {o.job_id: o.start for o in best.outcomes} == {1: 6.0, 2: 1.0, 3: 1.0}


def test_a_fifty_job_instance_gets_a_feasible_schedule_no_worse_than_easy() -> None:
    setup = SyntheticSetup(agents=5, workload=WorkloadSpec(jobs=50))
    jobs, cluster, _ = prepare(setup, 1)
    best = optimum(jobs, cluster.nodes, "wait_mean", 5.0)
    assert best.status in ("OPTIMAL", "FEASIBLE") and len(best.outcomes) == 50
    assert peak_usage(best.outcomes) <= cluster.nodes
    assert all(o.start >= o.submit for o in best.outcomes)
    found = schedule_metrics(best.outcomes, cluster.nodes).wait_mean
    assert found == pytest.approx(best.value, abs=1.0) and best.bound <= best.value + 1e-6
    for policy in ("fcfs", "easy"):
        online = simulate(jobs, PoolSplit(cluster.nodes, cluster.agents), SimConfig(policy), FailureSchedule())
        assert found <= schedule_metrics(online.outcomes, cluster.nodes).wait_mean + 1.0, policy


def test_the_makespan_objective() -> None:
    jobs = [SimJob(i, 0.0, 10.0, 10.0, 1, "") for i in range(4)]
    best = optimum(jobs, 2, "makespan", 5.0)
    assert best.proven and best.value == 20.0
