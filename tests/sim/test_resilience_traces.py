"""The failure-aware simulator over a whole real trace (KTH, ../shared/traces): capacity and exactness.

Skipped, with the reason, when the shared trace folder is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from llm_sched.sim.baselines import ReplayResult
from llm_sched.sim.failures import FailureSchedule, FailureSpec
from llm_sched.sim.metrics import peak_usage
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.resilience import POLICIES, PoolSplit, SimConfig, SimRun, simulate
from llm_sched.sim.resilience_metrics import attempts, measure
from llm_sched.sim.simulate import _schedule
from llm_sched.sim.swf import Trace
from llm_sched.sim.workload import SimJob, from_trace

KTH = "KTH-SP2-1996-2.1-cln.swf.gz"
# Heavy on purpose, so that a whole-trace run meets many kills: cascading agent failures, node
# failures and partitions, drawn separately and merged into one schedule.
MIXED = (
    FailureSpec(rate=0.6, pattern="cascading", node_rate=0.2, repair_mean=86400),
    FailureSpec(rate=0.6, pattern="partition", repair_mean=86400),
)
_JOBS: dict[str, tuple[SimJob, ...]] = {}
AGENT_JOBS = 2_000


def _kth_jobs(load: Callable[..., Trace]) -> tuple[SimJob, ...]:
    if KTH not in _JOBS:
        _JOBS[KTH] = tuple(from_trace(load(KTH).jobs))
    return _JOBS[KTH]


@cache
def _run(jobs: tuple[SimJob, ...], policy: str, failures: str) -> SimRun:
    cluster = PoolSplit(100, 5)
    outages = []
    for spec in MIXED if failures == "mixed" else ():
        outages += [(o.kind, o.members, o.start, o.detect, o.end) for o in _schedule(jobs, cluster, spec, 11).outages]
    return simulate(jobs, cluster, SimConfig(policy), FailureSchedule.build(outages))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("failures", ["none", "mixed"])
@pytest.mark.parametrize("policy", POLICIES)
def test_capacity_never_exceeded_over_kth(load_shared_trace: Callable[..., Trace], policy: str, failures: str) -> None:
    jobs = _kth_jobs(load_shared_trace)
    if policy == "agents":
        # The agents decide every award through the engine (signed votes, a PBFT run on the
        # simulated network: about 1.5 ms a decision here), so they replay the first jobs only.
        jobs = jobs[:AGENT_JOBS]
    run = _run(jobs, policy, failures)
    tries = attempts(run)
    ran = [JobOutcome(a.job_id, 0, a.start, a.stop, a.nodes, "") for a in tries]
    assert peak_usage(ran) <= 100  # every attempt, killed ones included, within the 100 processors
    m = measure(run)
    assert m.completed == len(jobs) == (AGENT_JOBS if policy == "agents" else 28_475)  # repairs always come
    assert 0.0 <= m.availability <= 1.0
    if failures == "none":
        assert m.failures == 0 and m.availability == 1.0
    else:
        assert m.failures > 0 and m.availability < 1.0
        assert m.kills > 0 and m.lost_work > 0 and m.unrecovered == 0
        kinds = {e.kind for e in run.events}
        assert {"agent_fail", "node_fail", "cut", "detect", "requeue", "heal", "agent_recover"} <= kinds


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["fcfs", "easy"])
def test_without_failures_central_policies_are_the_reference_replays(
    load_shared_trace: Callable[..., Trace], replay_shared_trace: Callable[..., ReplayResult], policy: str
) -> None:
    run = _run(_kth_jobs(load_shared_trace), policy, "none")
    base = replay_shared_trace(KTH, policy)
    assert [(o.job_id, o.start, o.end) for o in run.outcomes] == [(o.job_id, o.start, o.end) for o in base.outcomes]
    m = measure(run)
    assert round(m.wait_mean) == (390_083 if policy == "fcfs" else 6_832)  # REFERENCE.md
