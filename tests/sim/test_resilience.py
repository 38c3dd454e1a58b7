"""The failure-aware simulator: hand-made schedules, failures, fairness, determinism, invariants."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_sched.sim.failures import FailureSchedule, FailureSpec, OutageKind
from llm_sched.sim.metrics import peak_usage
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.resilience import (
    POLICIES,
    PoolSplit,
    SimConfig,
    SimRun,
    simulate,
    specialisation,
)
from llm_sched.sim.resilience_metrics import attempts, measure
from llm_sched.sim.simulate import SyntheticSetup, compare, prepare, run_scenario
from llm_sched.sim.workload import KINDS, SimJob, WorkloadSpec


def job(job_id: int, submit: float, run: float, nodes: int, estimate: float | None = None, kind: str = "") -> SimJob:
    return SimJob(job_id, submit, run, run if estimate is None else estimate, nodes, kind)


def starts(run: SimRun) -> dict[int, float]:
    return {o.job_id: o.start for o in run.outcomes}


def sim(jobs: list[SimJob], nodes: int, agents: int, policy: str, outages: list | None = None,
        **config: object) -> SimRun:
    schedule = FailureSchedule.build(outages or [])
    return simulate(jobs, PoolSplit(nodes, agents), SimConfig(policy, **config), schedule)  # type: ignore[arg-type]


def at(run: SimRun, kind: str) -> list[float]:
    return [e.t for e in run.events if e.kind == kind]


# The five-job workload of test_baselines: (id, submit, run, nodes, estimate) on 4 nodes.
FIVE_JOBS = [job(1, 0, 10, 2, 10), job(2, 1, 5, 4, 5), job(3, 2, 5, 1, 5), job(4, 3, 4, 1, 20), job(5, 7, 3, 2, 3)]
FCFS_STARTS = {1: 0, 2: 10, 3: 15, 4: 15, 5: 15}
EASY_STARTS = {1: 0, 2: 10, 3: 2, 4: 15, 5: 7}  # derived step by step in test_baselines.py


@pytest.mark.parametrize("agents", [1, 2, 4])
def test_five_jobs_by_hand_under_every_policy(agents: int) -> None:
    # The pools change nothing without failures: a job may take nodes from several pools.
    assert starts(sim(FIVE_JOBS, 4, agents, "fcfs")) == FCFS_STARTS
    assert starts(sim(FIVE_JOBS, 4, agents, "easy")) == EASY_STARTS
    # Agents keep EASY's queue policy: with instant decisions, EASY's schedule exactly.
    assert starts(sim(FIVE_JOBS, 4, agents, "agents", hop_delay=0.0)) == EASY_STARTS


def test_five_jobs_with_a_one_second_decision_delay() -> None:
    # 4 agents decide by PBFT, measured on the engine's network at 3 message delays, with 1/3 s
    # per hop: each job starts 1 s after its decision, and the backfill test uses that start.
    # t=0   J1 decided, starts 1, estimated end 11.
    # t=1   J2 (4 nodes) blocked: shadow 11, no extra nodes.
    # t=2   J3 would start at 3 and end by 8 <= 11: backfilled, starts 3.
    # t=3   J4 (estimate 20) would end at 24 > 11: waits.
    # t=7   J5 needs 2 nodes, 1 is free: waits.  t=8: J3 ends; J5 would start 9, end 12 > 11: waits.
    # t=11  J1 ends: J2 decided, starts 12, ends 17.  t=17: J4 and J5 decided, start 18.
    run = sim(FIVE_JOBS, 4, 4, "agents", hop_delay=1 / 3)
    assert starts(run) == pytest.approx({1: 1, 2: 12, 3: 3, 4: 18, 5: 18})
    m = measure(run)
    assert m.decisions == 5 and m.messages == 5 * 24 and m.messages_per_decision == 24.0  # PBFT: 2n(n-1), n=4
    assert m.decision_latency == pytest.approx(1.0)
    assert m.bytes_per_decision > 0


def test_messages_per_decision_are_counted_on_the_network_and_match_the_protocols_formulas() -> None:
    formulas = {"pbft": lambda n: 2 * n * (n - 1), "tendermint": lambda n: (n - 1) * (2 * n + 1)}
    jobs = [job(i, i, 5, 1) for i in range(1, 4)]
    for protocol, formula in formulas.items():
        for n in (4, 5, 7):
            m = measure(sim(jobs, 2 * n, n, "agents", protocol=protocol))
            assert m.decisions == 3 and m.messages_per_decision == formula(n), (protocol, n)
            assert m.decision_latency == pytest.approx(3 * 0.01)  # three message delays of 10 ms
    with pytest.raises(ValueError, match="unknown protocol 'coordinator'; expected one of pbft, tendermint"):
        SimConfig("agents", protocol="coordinator")


def test_the_simulators_specialisation_is_the_specialists_for_a_pool_owner() -> None:
    from llm_sched.agents import heuristics

    for pool_kind in KINDS:
        spec = heuristics.SPECIALTY_FOR_KIND[pool_kind]
        for job_kind in (*KINDS, ""):
            assert specialisation(pool_kind, job_kind) == heuristics.specialisation(spec, spec, job_kind)


def test_bids_prefer_the_specialist_pool_and_split_only_when_needed() -> None:
    # Pools of 4 nodes: p0 ai, p1 climate, p2 genomics, p3 physics.
    jobs = [job(1, 0, 100, 2, kind="genomics"), job(2, 0, 100, 2, kind="ai"),
            job(3, 0, 100, 3, kind="physics"), job(4, 1, 100, 6, kind="climate")]
    run = sim(jobs, 16, 4, "agents")
    where = {o.job_id: o.where for o in run.outcomes}
    # Physics, like climate, wants the compute specialty: p1 and p3 tie, the lower id wins.
    assert where[1] == "p2" and where[2] == "p0" and where[3] == "p1"
    # 6 nodes and no pool has 6 free: the best bidders share it, in score order. Free nodes then:
    # p0 2, p1 1, p2 2, p3 4. Scores 0.35 cover + 0.25 idle share + 0.25 specialisation + 0.15:
    # p3 0.883, p1 0.521, p0 and p2 0.467 (tie: p0).
    assert where[4] == "p3+p1+p0"


# -- failures --------------------------------------------------------------------------------------
def test_agent_failure_kills_its_jobs_and_agents_reschedule_them_elsewhere() -> None:
    # 4 agents of one node; agent 0 fails at 10, is suspected at 12, repaired at 50.
    jobs = [job(1, 0, 100, 1)]
    outage = [("agent", (0,), 10, 12, 50)]
    agents = sim(jobs, 4, 4, "agents", outage, hop_delay=0.0)
    (o,) = agents.outcomes
    assert (o.start, o.end, o.where) == (12, 112, "p1")  # 3 live agents >= q = 3: decided at once
    m = measure(agents)
    assert (m.kills, m.requeues, m.lost_work, m.mttr) == (1, 1, 10.0, 2.0)
    assert m.detection_mean == 2.0 and m.decision_availability == 1.0
    # The central scheduler ran beside pool 0: down with it, it learns of the kill at its repair.
    central = sim(jobs, 4, 4, "fcfs", outage)
    (o,) = central.outcomes
    assert (o.start, o.end, o.where) == (50, 150, "p0")
    m = measure(central)
    assert (m.kills, m.lost_work, m.mttr) == (1, 10.0, 40.0)
    assert m.decision_availability == pytest.approx(1 - 40 / 150)
    assert m.availability == pytest.approx(1 - 40 / (4 * 150))  # one agent of four out for 40 s


def test_node_failure_kills_the_job_and_easy_backfills_while_the_node_is_down() -> None:
    # One agent, 4 nodes. J1 takes all 4; node 2 fails at 30 (suspected 31, repaired 200).
    jobs = [job(1, 0, 100, 4), job(2, 40, 50, 1)]
    outage = [("node", (2,), 30, 31, 200)]
    easy = sim(jobs, 4, 1, "easy", outage)
    # J1 needs 4 nodes, 3 are up: no reservation can be made, so J2 backfills at 40.
    assert starts(easy) == {1: 200, 2: 40}
    m = measure(easy)
    assert (m.kills, m.lost_work, m.mttr) == (1, 4 * 30.0, 170.0)
    assert [e.t for e in easy.events if e.kind == "requeue"] == [31]  # nodes released at detection
    fcfs = sim(jobs, 4, 1, "fcfs", outage)
    assert starts(fcfs) == {1: 200, 2: 300}  # FCFS: J2 waits behind the blocked head


def test_quorum_less_agents_decide_nothing_just_as_a_down_central_scheduler() -> None:
    # 4 agents of 2 nodes; q = 3. Two jobs arrive while a failure lasts from 100 to 400.
    jobs = [job(1, 0, 10, 1), job(2, 150, 10, 1), job(3, 200, 10, 1)]
    two_agents_down = [("agent", (1,), 100, 101, 400), ("agent", (2,), 100, 101, 400)]
    scheduler_down = [("agent", (0,), 100, 101, 400)]
    for policy, outages in (("agents", two_agents_down), ("fcfs", scheduler_down), ("easy", scheduler_down)):
        run = sim(jobs, 8, 4, policy, outages)
        assert not [t for t in at(run, "decision") if 100 < t < 400], policy
        assert starts(run)[2] == pytest.approx(400, abs=0.05) and starts(run)[3] == pytest.approx(400, abs=0.05)
        assert at(run, "decider_down") == [100] and at(run, "decider_up") == [400]
        m = measure(run)
        assert m.decision_availability == pytest.approx(1 - 300 / (m.makespan))
    # The other way round: each architecture rides out the failure that stops the other.
    assert starts(sim(jobs, 8, 4, "fcfs", two_agents_down))[2] == 150  # pools 0 and 3 are enough
    assert starts(sim(jobs, 8, 4, "agents", scheduler_down, hop_delay=0.0))[2] == 150  # 3 of 4 vote


def test_central_queue_kept_or_lost() -> None:
    # 3 agents of one node, FCFS. J1 runs on p0; J2 (3 nodes) blocks J3. Agent 0, and the
    # scheduler beside it, fail at 5 (suspected 6) and come back at 50; J4 arrives at 20.
    jobs = [job(1, 0, 100, 1), job(2, 1, 10, 3), job(3, 2, 10, 1), job(4, 20, 10, 1)]
    outage = [("agent", (0,), 5, 6, 50)]
    keep = sim(jobs, 3, 3, "fcfs", outage, queue_on_failure="keep")
    # Queue at 50: J1 (killed, requeued at the front), J2, J3, J4.
    assert starts(keep) == {1: 50, 2: 150, 3: 160, 4: 160}
    assert measure(keep).resubmitted == 0
    lose = sim(jobs, 3, 3, "fcfs", outage, queue_on_failure="lose")
    # J2 and J3 were lost at 5 and resubmitted at 50 behind J4, buffered during the outage.
    assert starts(lose) == {1: 50, 2: 150, 3: 160, 4: 50}
    assert measure(lose).resubmitted == 2
    assert [e.amount for e in lose.events if e.kind == "queue_lost"] == [2]


def test_partition_kills_nothing_but_blocks_new_work_across_the_cut() -> None:
    # 4 agents of 2 nodes; agents 2 and 3 are cut off from 100 to 300 (suspected at 101).
    jobs = [job(1, 0, 150, 8), job(2, 150, 1000, 4), job(3, 160, 10, 2)]
    cut = [("partition", (2, 3), 100, 101, 300)]
    central = sim(jobs, 8, 4, "easy", cut)
    # J1 spans the cut and finishes untouched; the scheduler (with agents 0 and 1) uses p0 and
    # p1 only: J2 fits there at 150, J3 must wait for the heal although p2 and p3 are idle.
    assert starts(central) == {1: 0, 2: 150, 3: 300}
    assert measure(central).kills == 0
    assert sorted(e.agent for e in central.events if e.kind == "detect") == [2, 3]
    # Agents: each side has 2 of 4 live agents, below q = 3: nobody decides until the heal.
    agents = sim(jobs, 8, 4, "agents", cut, hop_delay=0.0)
    assert starts(agents) == {1: 0, 2: 300, 3: 300}
    assert measure(agents).decision_availability < 1.0


def test_partition_that_cuts_off_the_central_schedulers_side() -> None:
    # Agent 0 alone is cut off: the central scheduler, beside it, reaches pool 0 only (2 nodes).
    jobs = [job(1, 0, 150, 8), job(2, 150, 1000, 4), job(3, 160, 10, 2)]
    cut = [("partition", (0,), 100, 101, 300)]
    central = sim(jobs, 8, 4, "easy", cut)
    # J2 needs 4 nodes, 2 are reachable: no reservation possible, so J3 backfills on p0.
    assert starts(central) == {1: 0, 2: 300, 3: 160}
    assert {o.job_id: o.where for o in central.outcomes}[3] == "p0"
    # The agents on the other side are 3 of 4, a quorum: they go on with pools 1 to 3.
    agents = sim(jobs, 8, 4, "agents", cut, hop_delay=0.0)
    assert starts(agents) == {1: 0, 2: 150, 3: 160}
    assert "p0" not in {o.job_id: o.where for o in agents.outcomes}[2].split("+")


def test_killed_jobs_complete_after_repairs_with_random_failures() -> None:
    scenario = SyntheticSetup(agents=5, workload=WorkloadSpec(jobs=200, arrival="poisson"),
                              failures=FailureSpec(rate=0.8, node_rate=0.05, repair_mean=7200))
    for policy in POLICIES:
        run = run_scenario(scenario, policy, seed=2)
        m = measure(run)
        assert m.kills > 0 and m.completed == m.jobs == 200 and m.unrecovered == 0, policy
        retried = {a.job_id for a in attempts(run) if a.cause >= 0}
        assert retried and retried <= {o.job_id for o in run.outcomes}
        assert all(run.attempts_of[j] >= 2 for j in retried)


def test_deadline_leaves_jobs_incomplete() -> None:
    jobs = [job(1, 0, 100, 1), job(2, 0, 100, 1), job(3, 0, 100, 1)]
    run = sim(jobs, 1, 1, "fcfs", deadline=150)
    assert [o.job_id for o in run.outcomes] == [1] and run.incomplete == (2, 3)
    m = measure(run)
    assert m.completion_rate == pytest.approx(1 / 3) and run.end_time == 150


def test_jobs_wider_than_the_machine_are_rejected() -> None:
    run = sim([job(1, 0, 10, 2), job(2, 0, 10, 9)], 4, 2, "agents")
    assert run.rejected == (2,) and measure(run).completion_rate == 0.5


# -- determinism and closeness to EASY -------------------------------------------------------------
def test_identical_seeds_give_identical_runs_and_other_seeds_differ() -> None:
    scenario = SyntheticSetup(agents=10, workload=WorkloadSpec(jobs=150), failures=FailureSpec(rate=0.3, pattern="cascading"))
    for policy in POLICIES:
        a, b = run_scenario(scenario, policy, 4), run_scenario(scenario, policy, 4)
        assert a.events == b.events and a.outcomes == b.outcomes
        assert measure(a) == measure(b)
        assert run_scenario(scenario, policy, 5).events != a.events
    jobs_a, _, sched_a = prepare(scenario, 4)
    jobs_b, _, sched_b = prepare(scenario, 5)
    assert jobs_a != jobs_b and sched_a != sched_b


def test_agents_without_failures_stay_close_to_easy() -> None:
    # What is measured: mean wait, mean bounded slowdown and utilization of the agents policy with
    # its default 30 ms decision delay (PBFT, three message delays of 10 ms) against central EASY,
    # on 200 synthetic jobs and 10 agents, for Poisson and all-at-once arrivals. With no delay the
    # schedules are identical; the delay alone moves the figures by under 3%.
    for arrival in ("poisson", "batch"):
        for seed in (1, 2):
            scenario = SyntheticSetup(agents=10, workload=WorkloadSpec(jobs=200, arrival=arrival))  # type: ignore[arg-type]
            m = compare(scenario, seed, ("easy", "agents"))
            easy, agents = m["easy"], m["agents"]
            assert agents.completed == easy.completed == 200
            assert agents.wait_mean == pytest.approx(easy.wait_mean, rel=0.03, abs=0.1)
            assert agents.bsld_mean == pytest.approx(easy.bsld_mean, rel=0.03)
            assert agents.utilization == pytest.approx(easy.utilization, rel=0.01)
            assert agents.messages_per_decision == 2 * 10 * 9  # PBFT, measured
            instant = SyntheticSetup(agents=10, workload=scenario.workload, hop_delay=0.0)
            jobs, cluster, schedule = prepare(instant, seed)
            same = [simulate(jobs, cluster, instant.config(p), schedule).outcomes for p in ("easy", "agents")]
            assert [(o.job_id, o.start) for o in same[0]] == [(o.job_id, o.start) for o in same[1]]


# -- invariants over random failure schedules ------------------------------------------------------
def check_invariants(run: SimRun) -> None:
    nodes = run.cluster.nodes
    m = measure(run)
    assert 0.0 <= m.availability <= 1.0
    assert 0.0 <= m.decision_availability <= 1.0
    assert m.completed + len(run.incomplete) + len(run.rejected) == len(run.jobs)
    tries = attempts(run)
    ran = [JobOutcome(a.job_id, 0, a.start, a.stop, a.nodes, "") for a in tries]
    assert peak_usage(ran) <= nodes  # capacity, independently of the simulator
    by_job: dict[int, list] = {}
    for a in tries:
        by_job.setdefault(a.job_id, []).append(a)
    for runs in by_job.values():
        runs.sort(key=lambda a: a.attempt)
        assert all(x.stop <= y.start for x, y in pairwise(runs))  # one attempt at a time
        assert all(not a.completed for a in runs[:-1])
    for o in run.outcomes:
        assert o.start >= o.submit
    # No decision while the decider is down.
    down = False
    for e in sorted(run.events, key=lambda e: e.t):
        if e.kind == "decider_down":
            down = True
        elif e.kind == "decider_up":
            down = False
        elif e.kind == "decision":
            assert not down


@st.composite
def failure_runs(draw: st.DrawFn) -> tuple[list[SimJob], PoolSplit, FailureSchedule]:
    agents = draw(st.integers(1, 6))
    nodes = agents * draw(st.integers(1, 3))
    n_jobs = draw(st.integers(1, 15))
    jobs = [job(k, draw(st.integers(0, 60)), draw(st.integers(1, 30)), draw(st.integers(1, nodes)),
                draw(st.integers(30, 60)), draw(st.sampled_from(KINDS))) for k in range(n_jobs)]
    outages: list[tuple[OutageKind, tuple[int, ...], float, float, float]] = []
    for _ in range(draw(st.integers(0, 6))):
        kind: OutageKind = draw(st.sampled_from(["agent", "node", "partition"]))
        start = draw(st.integers(0, 80))
        detect = start + draw(st.integers(0, 5))
        end = detect + draw(st.integers(0, 60))
        members: tuple[int, ...]
        if kind == "agent":
            members = (draw(st.integers(0, agents - 1)),)
        elif kind == "node":
            members = (draw(st.integers(0, nodes - 1)),)
        else:
            members = tuple(sorted(draw(st.sets(st.integers(0, agents - 1), min_size=1, max_size=agents))))
        outages.append((kind, members, start, detect, end))
    return jobs, PoolSplit(nodes, agents), FailureSchedule.build(outages)


@settings(max_examples=250, deadline=None)
@given(failure_runs(), st.sampled_from(["keep", "lose"]))
def test_invariants_hold_over_random_failure_schedules(
    case: tuple[list[SimJob], PoolSplit, FailureSchedule], queue: str
) -> None:
    jobs, cluster, schedule = case
    for policy in POLICIES:
        run = simulate(jobs, cluster, SimConfig(policy, queue_on_failure=queue), schedule)  # type: ignore[arg-type]
        check_invariants(run)
        # Every outage is repaired, so every job completes, killed ones included.
        assert not run.incomplete and len(run.outcomes) == len(jobs)


@settings(max_examples=150, deadline=None)
@given(failure_runs())
def test_without_failures_agents_and_easy_agree_and_fcfs_is_in_order(
    case: tuple[list[SimJob], PoolSplit, FailureSchedule],
) -> None:
    jobs, cluster, _ = case
    easy = simulate(jobs, cluster, SimConfig("easy"))
    agents = simulate(jobs, cluster, SimConfig("agents", hop_delay=0.0))
    assert starts(easy) == starts(agents)
    fcfs = simulate(jobs, cluster, SimConfig("fcfs"))
    started = [o.start for o in fcfs.outcomes]
    assert started == sorted(started)
    assert not math.isnan(measure(fcfs).wait_mean)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.0, 1.0),
    pattern=st.sampled_from(["random", "cascading", "partition"]),
    node_rate=st.floats(0.0, 0.5),
    repair=st.floats(60.0, 1e5),
    agents=st.integers(1, 8),
    seed=st.integers(0, 10_000),
)
def test_availability_never_exceeds_one_over_drawn_schedules(
    rate: float, pattern: str, node_rate: float, repair: float, agents: int, seed: int
) -> None:
    scenario = SyntheticSetup(agents=agents, nodes_per_agent=2, workload=WorkloadSpec(jobs=25, arrival="burst", burst_size=5),
                              failures=FailureSpec(rate=rate, pattern=pattern, node_rate=node_rate,  # type: ignore[arg-type]
                                                   repair_mean=repair, node_repair_mean=repair))
    jobs, cluster, schedule = prepare(scenario, seed)
    for policy in POLICIES:
        run = simulate(jobs, cluster, scenario.config(policy), schedule)
        m = measure(run)
        assert 0.0 <= m.availability <= 1.0 and 0.0 <= m.decision_availability <= 1.0
        assert m.completed == 25
        check_invariants(run)
