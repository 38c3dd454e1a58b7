"""Figures of one resilience run, computed from its event list (and the per-job outcomes).

Definitions (shared/docs/REFERENCE.md where it has one):

- window: from the first submission to the last job end (or the deadline); events after it (failures
  drawn for the horizon that fall after the work is done) are not counted.
- completion rate: jobs completed / jobs submitted (jobs wider than the machine count as submitted
  and not completed).
- availability: time-weighted fraction of agent-time in service over the window: an agent is out of
  service while its outage lasts or while a partition cuts it off; never above 100%.
- decision availability: fraction of the window during which the policy could decide (central
  scheduler up; for agents, a quorum of live, connected agents).
- MTTR: for each outage that killed jobs, the time from the outage's start to the moment the last
  of those jobs runs again (detection + rescheduling); the mean over those outages. Outages some of
  whose jobs never ran again before the end are left out and counted as ``unrecovered``.
- detection: mean time from an outage's start to its detection (phi-accrual), over the window.
- wait = start - submit of the attempt that completed; bounded slowdown max(1, (wait + run) /
  max(run, 10)); utilization = work of the completed runs / (nodes x makespan); makespan = last end -
  first submit; throughput = completed / makespan (jobs per second). Work lost to kills is reported
  separately as ``lost_work`` (node-seconds).
- messages per decision: protocol messages / decisions (0 for a central scheduler, whose decisions
  are local).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from os import PathLike
from typing import NamedTuple, cast

from llm_sched.sim.metrics import schedule_metrics
from llm_sched.sim.resilience import SimEvent, SimRun


@dataclass(frozen=True, slots=True)
class ResilienceMetrics:
    """The figures of one run (times in seconds, rates as fractions in [0, 1])."""

    policy: str
    jobs: int
    completed: int
    completion_rate: float
    rejected: int
    availability: float
    decision_availability: float
    failures: int
    kills: int
    lost_work: float
    requeues: int
    resubmitted: int
    mttr: float
    unrecovered: int
    detection_mean: float
    throughput: float
    wait_mean: float
    wait_p50: float
    wait_p95: float
    wait_max: float
    bsld_mean: float
    utilization: float
    makespan: float
    decisions: int
    messages: int
    messages_per_decision: float
    bytes_per_decision: float
    decision_latency: float
    undecided: int  # agents' rounds that passed nothing
    votes_refused: int  # votes that did not count (forged, equivocating)
    overclaims: int  # bids whose own score exceeded the recomputed one beyond the tolerance
    engine_events: int

    def as_dict(self) -> dict[str, float | int | str]:
        """The figures as a plain dict (JSON, tables, campaign records)."""
        return asdict(self)


class Attempt(NamedTuple):
    """One run of a job: from its start to its end or the kill that stopped it."""

    job_id: int
    attempt: int  # 0 for the first start
    start: float
    stop: float  # end, or kill instant (never before start: a job killed before starting ran 0 s)
    nodes: int
    completed: bool
    cause: int  # the outage that killed it, -1 if it completed (or was still running at the end)


_attempt = cast(Callable[[tuple[object, ...]], Attempt], partial(tuple.__new__, Attempt))  # C speed


def attempts(run: SimRun) -> list[Attempt]:
    """Every attempt of every job, from the start, end and kill events, in the order they stopped
    (then those still running at the deadline)."""
    jobs = run.jobs
    open_: dict[int, tuple[int, float]] = {}  # job index -> (attempt index, start)
    count: dict[int, int] = {}
    out: list[Attempt] = []
    for e in run.events:
        kind = e.kind
        if kind == "start":
            a = count.get(e.job, 0)
            count[e.job] = a + 1
            open_[e.job] = (a, e.t)
        elif kind == "end" or kind == "kill":
            a, t = open_.pop(e.job)
            out.append(_attempt((jobs[e.job].job_id, a, t, max(t, e.t), e.amount, kind == "end",
                                 e.cause if kind == "kill" else -1)))
    for i, (a, t) in open_.items():  # still running when the deadline stopped the run
        out.append(Attempt(jobs[i].job_id, a, t, max(t, run.end_time), jobs[i].nodes, False, -1))
    return out


def _out_of_service(events: Iterable[SimEvent], k: int, lo: float, hi: float) -> float:
    """Agent-seconds out of service within [lo, hi] (overlapping outages of one agent count once)."""
    depth = [0] * k
    since = [0.0] * k
    total = 0.0
    for e in events:
        if e.kind in ("agent_fail", "cut"):
            a = e.agent
            if depth[a] == 0:
                since[a] = e.t
            depth[a] += 1
        elif e.kind in ("agent_recover", "heal"):
            a = e.agent
            depth[a] -= 1
            if depth[a] == 0:
                total += max(0.0, min(e.t, hi) - max(since[a], lo))
    for a in range(k):
        if depth[a] > 0:
            total += max(0.0, hi - max(since[a], lo))
    return total


def _decider_down_time(events: Iterable[SimEvent], lo: float, hi: float) -> float:
    total, since = 0.0, None
    for e in events:
        if e.kind == "decider_down":
            since = e.t
        elif e.kind == "decider_up" and since is not None:
            total += max(0.0, min(e.t, hi) - max(since, lo))
            since = None
    if since is not None:
        total += max(0.0, hi - max(since, lo))
    return total


_JOB_KINDS = frozenset({"submit", "decision", "start", "end", "kill", "requeue", "resubmit"})


def _time(e: SimEvent) -> float:
    return e.t


def measure(run: SimRun) -> ResilienceMetrics:
    """Compute :class:`ResilienceMetrics` from a run."""
    lo, hi = run.start_time, run.end_time
    span = hi - lo
    events = run.events
    k = run.cluster.agents
    # The sweeps read the failure events only (a handful beside the jobs' events), in time order
    # (stable: same-time events keep the order they happened in), within the window.
    in_window = sorted((e for e in events if e.kind not in _JOB_KINDS and e.t <= hi), key=_time)
    if span > 0:
        availability = 1.0 - _out_of_service(in_window, k, lo, hi) / (k * span)
        decision_availability = 1.0 - _decider_down_time(in_window, lo, hi) / span
    else:
        availability = decision_availability = 1.0
    started: dict[int, float] = {}
    detected: dict[int, float] = {}
    for e in in_window:
        if e.kind in ("agent_fail", "node_fail", "cut"):
            started.setdefault(e.cause, e.t)
        elif e.kind == "detect":
            detected.setdefault(e.cause, e.t)
    delays = [detected[c] - t for c, t in started.items() if c in detected]
    tries = attempts(run)
    restarts: dict[tuple[int, int], float] = {(a.job_id, a.attempt): a.start for a in tries}
    recovered: dict[int, float] = {}
    unrecovered: set[int] = set()
    lost = 0.0
    kills = 0
    for a in tries:
        if a.cause < 0:
            continue
        kills += 1
        lost += a.nodes * (a.stop - a.start)
        again = restarts.get((a.job_id, a.attempt + 1))
        outage_start = run.schedule.outages[a.cause].start
        if again is None or again > hi:
            unrecovered.add(a.cause)
        else:
            recovered[a.cause] = max(recovered.get(a.cause, -math.inf), again - outage_start)
    recovery = [t for c, t in recovered.items() if c not in unrecovered]
    kinds = Counter(e.kind for e in events)
    messages = sum(e.amount for e in events if e.kind == "decision" or e.kind == "undecided")
    summary = schedule_metrics(run.outcomes, run.cluster.nodes)
    submitted = len(run.jobs)
    completed = len(run.outcomes)
    return ResilienceMetrics(
        policy=run.config.policy,
        jobs=submitted,
        completed=completed,
        completion_rate=completed / submitted if submitted else math.nan,
        rejected=len(run.rejected),
        availability=availability,
        decision_availability=decision_availability,
        failures=len(started),
        kills=kills,
        lost_work=lost,
        requeues=kinds["requeue"],
        resubmitted=kinds["resubmit"],
        mttr=sum(recovery) / len(recovery) if recovery else math.nan,
        unrecovered=len(unrecovered),
        detection_mean=sum(delays) / len(delays) if delays else math.nan,
        throughput=summary.throughput,
        wait_mean=summary.wait_mean,
        wait_p50=summary.wait_p50,
        wait_p95=summary.wait_p95,
        wait_max=summary.wait_max,
        bsld_mean=summary.bsld_mean,
        utilization=summary.utilization,
        makespan=summary.makespan,
        decisions=kinds["decision"],
        messages=messages,
        messages_per_decision=messages / kinds["decision"] if kinds["decision"] else 0.0,
        bytes_per_decision=run.decision_bytes / kinds["decision"] if kinds["decision"] else 0.0,
        decision_latency=run.decision_time / kinds["decision"] if kinds["decision"] else 0.0,
        undecided=kinds["undecided"],
        votes_refused=kinds["refused"],
        overclaims=kinds["overclaim"],
        engine_events=run.engine_events,
    )


def busy_series(run: SimRun) -> tuple[list[float], list[int]]:
    """Nodes computing over time, as a step function: (instants, nodes busy from each instant on)."""
    changes: list[tuple[float, int]] = []
    for a in attempts(run):
        if a.stop > a.start:
            changes.append((a.start, a.nodes))
            changes.append((a.stop, -a.nodes))
    changes.sort()
    times: list[float] = [run.start_time]
    busy: list[int] = [0]
    level = 0
    for t, delta in changes:
        level += delta
        if t == times[-1]:
            busy[-1] = level
        else:
            times.append(t)
            busy.append(level)
    return times, busy


JOB_CSV_COLUMNS: tuple[str, ...] = (
    "job_id", "kind", "submit", "start", "end", "wait", "nodes", "where", "attempts", "completed",
)


def write_jobs_csv(target: str | PathLike[str], run: SimRun) -> int:
    """One row per submitted job (columns ``JOB_CSV_COLUMNS``); empty times for jobs not completed.

    ``start`` and ``end`` are those of the attempt that completed; ``attempts`` counts starts.
    Returns the number of rows.
    """
    done = {o.job_id: o for o in run.outcomes}
    starts: dict[int, int] = {}
    for a in attempts(run):
        starts[a.job_id] = starts.get(a.job_id, 0) + 1
    rows = 0
    with open(target, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(JOB_CSV_COLUMNS)
        for job in run.jobs:
            o = done.get(job.job_id)
            if o is None:
                writer.writerow((job.job_id, job.kind, job.submit, "", "", "", job.nodes, "",
                                 starts.get(job.job_id, 0), 0))
            else:  # to the microsecond: decision delays make sums such as 0.020000000018
                writer.writerow((job.job_id, job.kind, _t(o.submit), _t(o.start), _t(o.end),
                                 _t(o.start - o.submit), o.procs, o.where, starts.get(job.job_id, 0), 1))
            rows += 1
    return rows


def _t(x: float) -> float | int:
    r = round(float(x), 6)
    return int(r) if r.is_integer() else r
