"""The central baselines beyond FCFS and EASY: SJF, conservative backfilling, a hot standby, walltime kills."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llm_sched.evaluation.config import BaseScenario
from llm_sched.sim.failures import FailureSchedule
from llm_sched.sim.resilience import CENTRAL, PoolSplit, SimConfig, SimRun, simulate, simulate_events
from llm_sched.sim.resilience_metrics import measure
from llm_sched.sim.simulate import SyntheticSetup, prepare, simulate_trace
from llm_sched.sim.workload import SimJob, WorkloadSpec

# Six nodes in two pools. A holds 3 nodes until 100; B (5 nodes) is the blocked head, reserved at 100;
# C needs the whole machine; D is one long narrow job that EASY backfills on B's spare node.
JOBS = [SimJob(1, 0.0, 100.0, 100.0, 3, ""), SimJob(2, 1.0, 100.0, 100.0, 5, ""),
        SimJob(3, 2.0, 200.0, 200.0, 6, ""), SimJob(4, 3.0, 1000.0, 1000.0, 1, "")]
MACHINE = PoolSplit(6, 2)


def starts(run: SimRun) -> dict[int, float]:
    return {o.job_id: o.start for o in run.outcomes}


def test_easy_backfills_a_job_that_delays_the_second_in_queue() -> None:
    assert starts(simulate(JOBS, MACHINE, SimConfig("easy"))) == {1: 0.0, 2: 100.0, 3: 1003.0, 4: 3.0}


def test_conservative_backfilling_keeps_every_reservation() -> None:
    # C is reserved at 200 behind B, so D may not start before C's reservation ends at 400.
    assert starts(simulate(JOBS, MACHINE, SimConfig("conservative"))) == {1: 0.0, 2: 100.0, 3: 200.0, 4: 400.0}


def test_conservative_backfilling_starts_a_job_that_fits_before_the_reservations() -> None:
    short = [*JOBS[:3], SimJob(4, 3.0, 50.0, 50.0, 3, "")]  # fits A's spare nodes until 100
    assert starts(simulate(short, MACHINE, SimConfig("conservative")))[4] == 3.0


def test_sjf_runs_the_shortest_estimate_first_and_the_head_blocks() -> None:
    jobs = [SimJob(1, 0.0, 100.0, 100.0, 6, ""), SimJob(2, 1.0, 300.0, 300.0, 4, ""),
            SimJob(3, 2.0, 50.0, 60.0, 4, ""), SimJob(4, 3.0, 10.0, 500.0, 2, "")]
    got = starts(simulate(jobs, MACHINE, SimConfig("sjf")))
    # At 100 the queue by estimate is 3 (60 s), 2 (300 s), 4 (500 s): 3 starts; 2 blocks 4 though 4 fits.
    assert got == {1: 0.0, 3: 100.0, 2: 150.0, 4: 150.0}  # 3 ends at 150 (its run), not its estimate
    assert starts(simulate(jobs, MACHINE, SimConfig("fcfs")))[2] == 100.0


@pytest.mark.parametrize("policy", CENTRAL)
def test_every_central_policy_completes_a_synthetic_workload_through_failures(policy: str) -> None:
    setup = SyntheticSetup(workload=WorkloadSpec(jobs=80, arrival="burst", load=1.2))
    jobs, cluster, schedule = prepare(setup, 3)
    run = simulate(jobs, cluster, setup.config(policy), schedule)  # type: ignore[arg-type]
    assert len(run.outcomes) == 80 and not run.incomplete


def test_sjf_and_conservative_differ_from_easy_under_a_queue() -> None:
    setup = SyntheticSetup(workload=WorkloadSpec(jobs=200, arrival="batch"))
    jobs, cluster, _ = prepare(setup, 1)
    waits = {p: measure(simulate(jobs, cluster, SimConfig(p))).wait_mean for p in ("fcfs", "sjf", "easy", "conservative")}
    assert waits["sjf"] < waits["fcfs"] and waits["easy"] < waits["fcfs"] and waits["conservative"] < waits["fcfs"]
    assert len(set(waits.values())) == 4


OUTAGE = FailureSchedule.build([("agent", (0,), 10.0, 12.0, 500.0)])
LATE = [SimJob(1, 20.0, 30.0, 60.0, 2, "")]


def test_without_a_standby_nothing_starts_until_the_schedulers_pool_is_repaired() -> None:
    run = simulate(LATE, MACHINE, SimConfig("easy"), OUTAGE)
    assert starts(run) == {1: 500.0}
    assert measure(run).failovers == 0


def test_a_hot_standby_takes_over_after_the_failover_time() -> None:
    run = simulate(LATE, MACHINE, SimConfig("easy", failover=30.0), OUTAGE)
    # Down at 10, the standby beside pool 1 decides from 40; pool 0 is down, so the job runs on pool 1.
    assert starts(run) == {1: 40.0}
    assert run.outcomes[0].where == "p1"
    kinds = [(e.t, e.kind) for e in run.events if e.kind in ("decider_down", "failover", "decider_up")]
    assert kinds == [(10.0, "decider_down"), (40.0, "failover"), (40.0, "decider_up")]
    assert measure(run).failovers == 1


def test_a_standby_whose_own_pool_is_down_cannot_take_over() -> None:
    both = FailureSchedule.build([("agent", (0,), 10.0, 12.0, 500.0), ("agent", (1,), 5.0, 6.0, 200.0)])
    run = simulate(LATE, MACHINE, SimConfig("easy", failover=30.0), both)
    assert starts(run) == {1: 230.0}  # pool 1 back at 200, the standby in charge 30 s later


def test_a_lost_queue_survives_on_the_standby() -> None:
    queued = [SimJob(1, 0.0, 100.0, 100.0, 6, ""), SimJob(2, 5.0, 10.0, 10.0, 2, "")]
    outage = FailureSchedule.build([("agent", (0,), 50.0, 52.0, 400.0)])
    lose = simulate(queued, MACHINE, SimConfig("easy", "lose"), outage)
    kept = simulate(queued, MACHINE, SimConfig("easy", "lose", failover=30.0), outage)
    assert any(e.kind == "queue_lost" for e in lose.events)
    assert not any(e.kind == "queue_lost" for e in kept.events)


def test_walltime_kill_ends_a_job_at_its_requested_time() -> None:
    jobs = [SimJob(1, 0.0, 100.0, 100.0, 2, "", 60.0), SimJob(2, 0.0, 50.0, 60.0, 2, "", 60.0)]
    killed = simulate(jobs, MACHINE, SimConfig("easy", walltime_kill=True))
    assert {o.job_id: o.end for o in killed.outcomes} == {1: 60.0, 2: 50.0}
    assert measure(killed).timeouts == 1
    assert [e.kind for e in killed.events if e.job == 0][-2:] == ["timeout", "end"]
    assert {o.job_id: o.end for o in simulate(jobs, MACHINE, SimConfig("easy")).outcomes}[1] == 100.0


def test_walltime_kill_takes_the_event_driven_path_and_matches_it() -> None:
    jobs = [SimJob(i, float(i), 100.0, 100.0, 1 + i % 3, "", 80.0 if i % 4 == 0 else math.inf) for i in range(1, 30)]
    config = SimConfig("easy", walltime_kill=True)
    assert simulate(jobs, MACHINE, config) == simulate_events(jobs, MACHINE, config)


def test_a_campaign_base_scenario_gives_the_central_scheduler_a_standby_by_default() -> None:
    assert BaseScenario().failover == 120.0
    assert BaseScenario.model_validate({"failover": None}).failover is None


def test_simulate_command_kills_trace_jobs_past_their_requested_time(tmp_path: Path) -> None:
    # Job 1 asked for 10 s and ran 30 s (field 4 run, field 9 requested); job 2 kept within its 50 s.
    trace = tmp_path / "two.swf"
    trace.write_text("; MaxProcs: 4\n"
                     "1 0 -1 30 2 -1 -1 2 10 -1 1 1 1 -1 1 -1 -1 -1\n"
                     "2 0 -1 20 2 -1 -1 2 50 -1 1 1 1 -1 1 -1 -1 -1\n")
    killed = simulate_trace(trace, "easy", out_dir=tmp_path, agents=2, walltime_kill=True, plot=False)
    assert {o.job_id: o.end for o in killed.run.outcomes} == {1: 10.0, 2: 20.0}
    assert killed.metrics.timeouts == 1
    kept = simulate_trace(trace, "easy", out_dir=tmp_path, agents=2, plot=False)
    assert {o.job_id: o.end for o in kept.run.outcomes} == {1: 30.0, 2: 20.0} and kept.metrics.timeouts == 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("pattern", ["random", "cascading", "partition"])
def test_conservative_keeping_its_profile_between_passes_gives_the_rebuilt_schedule(
        seed: int, pattern: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The profile kept from the last pass (only arrivals since), and passes that stop once nothing
    # more can start, against every job reserved again at every pass, on busy workloads with agents,
    # nodes and partitions failing, walltime kills and estimates above runs.
    from llm_sched.sim import resilience
    from llm_sched.sim.failures import FailureSpec

    setup = SyntheticSetup(workload=WorkloadSpec(jobs=150, arrival="poisson", load=1.3),
                           failures=FailureSpec(rate=0.4, pattern=pattern, node_rate=0.1, repair_mean=1800.0),
                           failover=60.0, walltime_kill=seed % 2 == 0)
    jobs, cluster, schedule = prepare(setup, seed)
    kept = simulate(jobs, cluster, setup.config("conservative"), schedule)  # type: ignore[arg-type]
    monkeypatch.setattr(resilience._KeptProfile, "holds", lambda *_: False)
    monkeypatch.setattr(resilience, "_may_start_now", lambda *_: True)
    rebuilt = simulate(jobs, cluster, setup.config("conservative"), schedule)  # type: ignore[arg-type]
    assert [(o.job_id, o.start, o.end, o.where) for o in kept.outcomes] == \
           [(o.job_id, o.start, o.end, o.where) for o in rebuilt.outcomes]
    assert kept.events == rebuilt.events


@pytest.mark.parametrize("seed", range(6))
def test_conservative_keeping_its_profile_holds_when_jobs_outrun_their_estimates(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Users' estimates from half to twice the run: a job past its estimate still holds its nodes,
    # and a kept profile must not outlive that estimated end.
    import random

    from llm_sched.sim import resilience

    rng = random.Random(seed)
    jobs, t = [], 0.0
    for k in range(1, 201):
        t += rng.expovariate(1 / 30)
        run = rng.uniform(10, 600)
        jobs.append(SimJob(k, round(t, 3), round(run, 3), round(run * rng.uniform(0.5, 2.0), 3), rng.randint(1, 6), ""))
    machine = PoolSplit(8, 2)
    calls = []
    earliest = resilience._earliest
    monkeypatch.setattr(resilience, "_earliest", lambda *a: calls.append(1) or earliest(*a))
    kept = simulate(jobs, machine, SimConfig("conservative"))
    fast, calls[:] = len(calls), []
    monkeypatch.setattr(resilience._KeptProfile, "holds", lambda *_: False)
    monkeypatch.setattr(resilience, "_may_start_now", lambda *_: True)
    rebuilt = simulate(jobs, machine, SimConfig("conservative"))
    assert [(o.job_id, o.start) for o in kept.outcomes] == [(o.job_id, o.start) for o in rebuilt.outcomes]
    assert fast < len(calls) / 2  # the same schedule from fewer than half the reservations


def test_a_job_estimated_at_zero_seconds_holds_its_nodes_under_conservative_backfilling() -> None:
    # An SWF line with run 0 and no requested time: the reservation of its start took nothing, so the
    # next job was started on its nodes too (CapacityError). It waits for the end, as under EASY.
    jobs = [SimJob(1, 0.0, 0.0, 0.0, 4, ""), SimJob(2, 0.0, 10.0, 10.0, 4, "")]
    for policy in ("conservative", "easy"):
        run = simulate(jobs, PoolSplit(4, 1), SimConfig(policy))
        assert [(o.job_id, o.start, o.end) for o in run.outcomes] == [(1, 0.0, 0.0), (2, 0.0, 10.0)], policy
