"""FCFS and EASY on hand-made workloads, against an independent naive simulator, and invariants."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_sched.sim.baselines import ReplayResult, easy, fcfs, machine_procs, replay
from llm_sched.sim.metrics import peak_usage
from llm_sched.sim.swf import TraceHeader, TraceJob


def job(job_id: int, submit: float, run: float, procs: int, estimate: float | None = None) -> TraceJob:
    """A trace job with only what the schedulers read; the estimate defaults to the run time."""
    est = run if estimate is None else estimate
    return TraceJob(job_id, submit, -1, run, procs, procs, est, est, 1, -1, -1, -1, -1)


def starts(result: ReplayResult) -> dict[int, float]:
    return {o.job_id: o.start for o in result.outcomes}


# Five jobs on a machine of P = 4 processors: (id, submit, run, procs, estimate).
FIVE_JOBS = [
    job(1, 0, 10, 2, 10),
    job(2, 1, 5, 4, 5),
    job(3, 2, 5, 1, 5),
    job(4, 3, 4, 1, 20),  # really runs 4 s, but its user asked for 20 s
    job(5, 7, 3, 2, 3),
]


def test_fcfs_five_jobs_by_hand() -> None:
    # t=0  J1 starts (2 of 4 procs busy).
    # t=1  J2 needs all 4: it waits for J1, and under FCFS everything behind it waits too.
    # t=10 J1 ends: J2 starts on all 4 processors.
    # t=15 J2 ends: J3 (1 proc), J4 (1) and J5 (2) start together, in queue order; 4 procs used.
    assert starts(fcfs(FIVE_JOBS, 4)) == {1: 0, 2: 10, 3: 15, 4: 15, 5: 15}


def test_easy_five_jobs_by_hand() -> None:
    # t=0  J1 starts (2 procs free).
    # t=1  J2 (4 procs) is blocked: reservation at the shadow time 10 (J1's estimated end),
    #      with 0 extra processors (2 free + 2 from J1 - 4 needed).
    # t=2  J3 (1 proc, estimate 5) fits and ends by 7 <= 10: BACKFILLED at 2.
    # t=3  J4 (1 proc) fits the 1 idle processor, but its estimate (20) ends at 23 > 10 and
    #      there are no extra processors: starting it would delay J2. It must NOT backfill,
    #      although its real run (4 s) would have ended in time: the scheduler sees estimates.
    # t=7  J3 ends and J5 arrives at the same instant; the end is counted first, so 2 procs
    #      are idle. J5 (2 procs, estimate 3) ends by 7 + 3 = 10 <= 10: BACKFILLED at 7.
    #      J4 is checked again and still fails (7 + 20 > 10, no extra processors).
    # t=10 J1 and J5 end: J2 starts at its reservation, undelayed.
    # t=15 J2 ends: J4 starts.
    assert starts(easy(FIVE_JOBS, 4)) == {1: 0, 2: 10, 3: 2, 4: 15, 5: 7}


def test_easy_backfills_on_extra_processors_past_the_shadow_time() -> None:
    # P = 6. A holds 3 until 10, leaving 3 idle. B needs 4: blocked, shadow time 10, when
    # 3 + 3 = 6 will be free, 2 more than B needs (the extra processors).
    # t=2 C (1 proc) runs until 22, far past the shadow time, but on one of the 2 extra
    #     processors B will not need: BACKFILLED. 2 idle, 1 extra left.
    # t=3 D (2 procs, estimate 50) fits the 2 idle processors, but runs past 10 and needs more
    #     than the 1 extra processor left: starting it would leave only 6 - 1 - 2 = 3 < 4 for B
    #     at 10. It must wait.
    # t=10 A ends: B starts (1 idle left, D still does not fit). t=15 B ends: D starts.
    jobs = [job(1, 0, 10, 3), job(2, 1, 5, 4), job(3, 2, 20, 1), job(4, 3, 1, 2, 50)]
    assert starts(easy(jobs, 6)) == {1: 0, 2: 10, 3: 2, 4: 15}


def test_job_submitted_when_another_ends_starts_at_that_instant() -> None:
    jobs = [job(1, 0, 5, 2), job(2, 5, 1, 2)]
    for policy in ("fcfs", "easy"):
        assert starts(replay(jobs, 2, policy)) == {1: 0, 2: 5}


def test_jobs_wider_than_the_machine_are_rejected_and_counted() -> None:
    jobs = [job(1, 0, 5, 2), job(2, 1, 5, 9), job(3, 2, 5, 2)]
    result = easy(jobs, 4)
    assert [j.job_id for j in result.rejected] == [2]
    assert [o.job_id for o in result.outcomes] == [1, 3]


def test_machine_size_prefers_maxprocs_then_maxnodes_then_widest_job() -> None:
    jobs = [job(1, 0, 5, 7), job(2, 0, 5, 3)]
    assert machine_procs(TraceHeader(max_procs=8, max_nodes=16), jobs) == 8
    assert machine_procs(TraceHeader(max_nodes=16), jobs) == 16
    assert machine_procs(TraceHeader(), jobs) == 7
    assert machine_procs(None, jobs) == 7


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown policy 'sjf'"):
        replay(FIVE_JOBS, 4, "sjf")  # type: ignore[arg-type]


def naive_starts(jobs: Sequence[TraceJob], procs: int, backfill: bool) -> dict[int, float]:
    """A deliberately plain simulator: step from one event time to the next and rescan it all.

    Same rules (ends and arrivals of an instant first, then one pass; EASY with one reservation,
    running jobs taken by estimated end then submission order), none of the engine's machinery:
    no heap, no sorted running list, no incremental scan, no settle hook.
    """
    jobs = sorted(jobs, key=lambda j: j.submit)  # k below is the submission position
    pending = [k for k, j in enumerate(jobs) if j.procs <= procs]
    queue: list[int] = []
    running: dict[int, float] = {}  # position -> real end
    start: dict[int, float] = {}
    while pending or queue or running:
        now = min(list(running.values()) + ([jobs[pending[0]].submit] if pending else []))
        running = {k: end for k, end in running.items() if end > now}
        while pending and jobs[pending[0]].submit == now:
            queue.append(pending.pop(0))
        free = procs - sum(jobs[k].procs for k in running)
        while queue and jobs[queue[0]].procs <= free:
            k = queue.pop(0)
            start[k], running[k] = now, now + jobs[k].run
            free -= jobs[k].procs
        if backfill and queue:
            need, available = jobs[queue[0]].procs, free
            for est_end, k in sorted((start[k] + jobs[k].estimate, k) for k in running):
                available += jobs[k].procs
                if available >= need:
                    shadow, extra = max(est_end, now), available - need
                    break
            for k in list(queue[1:]):
                w = jobs[k].procs
                ends_in_time = now + jobs[k].estimate <= shadow
                if w <= free and (ends_in_time or w <= extra):
                    extra -= 0 if ends_in_time else w
                    free -= w
                    start[k], running[k] = now, now + jobs[k].run
                    queue.remove(k)
    return {jobs[k].job_id: s for k, s in start.items()}


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[TraceJob], int]:
    procs = draw(st.integers(1, 8))
    n = draw(st.integers(1, 25))
    jobs = [
        job(
            k,
            draw(st.integers(0, 40)),
            draw(st.integers(1, 20)),
            draw(st.integers(1, procs + 1)),  # sometimes too wide: rejected
            draw(st.integers(1, 40)),  # may be shorter than the run: the job overruns it
        )
        for k in range(n)
    ]
    return jobs, procs


@settings(max_examples=1000, deadline=None)
@given(workloads())
def test_engine_replay_matches_naive_simulator(workload: tuple[list[TraceJob], int]) -> None:
    jobs, procs = workload
    for policy in ("fcfs", "easy"):
        result = replay(jobs, procs, policy)
        assert starts(result) == naive_starts(jobs, procs, policy == "easy")
        assert peak_usage(result.outcomes) <= procs
        by_id = {j.job_id: j for j in jobs}
        for o in result.outcomes:
            assert o.start >= o.submit
            assert o.end == o.start + by_id[o.job_id].run


@settings(max_examples=100, deadline=None)
@given(workloads())
def test_fcfs_starts_jobs_in_submission_order(workload: tuple[list[TraceJob], int]) -> None:
    jobs, procs = workload
    started = [o.start for o in fcfs(jobs, procs).outcomes]  # outcomes are in submission order
    assert started == sorted(started)
