"""Centralized baselines on one machine of P processors: FCFS and EASY backfilling.

Both run on :class:`~llm_sched.sim.engine.Engine` with two kinds of event: a batch of
arrivals and a job end. Events only change state; the scheduling pass is the engine's
``settle`` hook, which runs once every event due at the current instant is done. The effect is
that jobs ending at time t free their processors before anything is started at t, whatever
order the events were queued in (the usual convention of trace-driven simulators, and the one
the reference results in shared/docs/REFERENCE.md reproduce). Jobs end at their real run time;
the scheduler itself only reads ``estimate``.

:func:`schedule_pools` is the same FCFS and EASY on a machine split into pools, as one loop over
columns: the resilience simulator's central scheduler when nothing fails (a trace replay), with
the decisions of its event-driven run and a record of the order they happened in.
"""

from __future__ import annotations

import heapq
import itertools
import math
from array import array
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Literal, cast

from llm_sched.sim.engine import Engine
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.swf import TraceHeader, TraceJob

Policy = Literal["fcfs", "easy"]
POLICIES: tuple[Policy, ...] = ("fcfs", "easy")


class CapacityError(RuntimeError):
    """The simulator tried to use more processors than the machine has (a bug, never input)."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """The outcome of replaying a workload under one policy."""

    policy: Policy
    procs: int  # machine size P
    outcomes: tuple[JobOutcome, ...]  # one per accepted job, in submission order
    rejected: tuple[TraceJob, ...]  # jobs wider than P: they can never run here
    events: int  # engine events processed


def machine_procs(header: TraceHeader | None, jobs: Sequence[TraceJob]) -> int:
    """Machine size P: header MaxProcs, else MaxNodes, else the widest job."""
    return machine_size(header, lambda: max((job.procs for job in jobs), default=0))


def machine_size(header: TraceHeader | None, widest: Callable[[], int]) -> int:
    """:func:`machine_procs` with the widest job's processors given by ``widest`` (called if needed)."""
    if header is not None:
        for size in (header.max_procs, header.max_nodes):
            if size is not None and size > 0:
                return size
    return widest()


def replay(
    jobs: Sequence[TraceJob], procs: int, policy: Policy = "easy", where: str = "machine"
) -> ReplayResult:
    """Replay ``jobs`` on ``procs`` processors under ``policy`` ("fcfs" or "easy").

    Jobs are taken in submission order (ties keep input order). ``where`` labels the machine in
    each :class:`JobOutcome`.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if procs <= 0:
        raise ValueError(f"machine size must be positive, got {procs}")
    ordered = sorted(jobs, key=_submit_key)  # sorted() is stable: equal submits keep file order
    accepted = [job for job in ordered if job.procs <= procs]
    rejected = tuple(job for job in ordered if job.procs > procs)
    sim = _Replay(accepted, procs, policy == "easy")
    events = sim.run()
    # tuple.__new__ via map builds the NamedTuples at C speed (JobOutcome(...) goes through
    # a Python-level __new__): a tenth of the replay time on a 100,000-job trace.
    make = cast(Callable[[tuple[object, ...]], JobOutcome], partial(tuple.__new__, JobOutcome))
    rows = zip(
        (job.job_id for job in accepted), sim.submit, sim.start, sim.end, sim.width, repeat(where)
    )
    outcomes = tuple(map(make, rows))
    return ReplayResult(policy, procs, outcomes, rejected, events)


def fcfs(jobs: Sequence[TraceJob], procs: int) -> ReplayResult:
    """First come, first served: the head of the queue blocks every later job."""
    return replay(jobs, procs, "fcfs")


def easy(jobs: Sequence[TraceJob], procs: int) -> ReplayResult:
    """EASY backfilling: the head gets a reservation; later jobs may jump ahead without delaying it."""
    return replay(jobs, procs, "easy")


def _submit_key(job: TraceJob) -> float:
    return job.submit


class _Replay:
    """Simulation state. Per-job data lives in parallel lists indexed by job position (hot path)."""

    __slots__ = (
        "engine", "backfill", "submit", "run_time", "estimate", "width", "start", "end",
        "free", "queue", "running", "next_arrival", "on_arrivals", "on_end", "settled",
    )

    def __init__(self, jobs: Sequence[TraceJob], procs: int, backfill: bool) -> None:
        self.engine = Engine(jobs[0].submit if jobs else 0.0)
        self.backfill = backfill
        self.submit = [job.submit for job in jobs]
        self.run_time = [job.run for job in jobs]
        self.estimate = [job.estimate for job in jobs]
        self.width = [job.procs for job in jobs]
        self.start: list[float] = [0.0] * len(jobs)  # set when the job starts
        self.end: list[float] = [0.0] * len(jobs)
        self.free = procs
        self.queue: list[int] = []  # waiting jobs in arrival order
        # Running jobs as (estimated end, index, width), kept sorted: the reservation needs
        # them in order of estimated end, and bisect keeps that cheap.
        self.running: list[tuple[float, int, int]] = []
        self.next_arrival = 0
        # Queue positions [1, settled) failed the last backfill test, and while nothing ends
        # they keep failing it: no more processors are idle, the shadow time is the same, the
        # extra processors are no more, and time only moved on. So a pass that follows only
        # arrivals looks at the newly queued jobs alone; any end resets this to a full scan.
        self.settled = 0
        # Bound once: creating a bound method per scheduled event is measurable churn.
        self.on_arrivals = self._on_arrivals
        self.on_end = self._on_end

    def run(self) -> int:
        """Simulate to the end; returns the number of engine events."""
        if self.submit:
            self.engine.schedule(self.submit[0], self.on_arrivals, None)
        events = self.engine.run(settle=self._on_pass)
        if self.queue or self.running:
            raise RuntimeError(f"{len(self.queue)} jobs never started; {len(self.running)} never ended")
        return events

    def _on_arrivals(self, _: object) -> None:
        # All jobs submitted at this instant arrive in one event, so that the next arrival
        # is scheduled only once (a small heap) and simultaneous arrivals share one pass.
        now = self.engine.now
        submit, queue, i, n = self.submit, self.queue, self.next_arrival, len(self.submit)
        while i < n and submit[i] <= now:
            queue.append(i)
            i += 1
        self.next_arrival = i
        if i < n:
            self.engine.schedule(submit[i], self.on_arrivals, None)

    def _on_end(self, i: int) -> None:
        self.free += self.width[i]
        self.settled = 0
        running = self.running
        del running[bisect_left(running, (self.start[i] + self.estimate[i], i))]

    def _on_pass(self) -> None:
        queue, width = self.queue, self.width
        started = 0
        while started < len(queue) and width[queue[started]] <= self.free:
            self._start(queue[started])
            started += 1
        if started:
            del queue[:started]
            self.settled = 0
        if self.backfill and queue and self.free > 0:
            self._backfill(max(1, self.settled))
        self.settled = len(queue)

    def _backfill(self, first: int) -> None:
        """EASY: reserve for the blocked head, then start later jobs that cannot delay it.

        Only queue positions from ``first`` on are examined (see ``settled``).
        """
        queue, width, estimate = self.queue, self.width, self.estimate
        if first >= len(queue):
            return
        now, free = self.engine.now, self.free
        shadow, extra = self._reservation(width[queue[0]])
        # Candidates against the pass's starting free/extra, filtered at comprehension speed:
        # both only shrink as jobs start, so this is a superset of what can start.
        candidates = [
            i for i in queue[first:]
            if width[i] <= free and (now + estimate[i] <= shadow or width[i] <= extra)
        ]
        if not candidates:
            return
        for i in candidates:
            w = width[i]
            if w > free:
                continue
            if now + estimate[i] <= shadow:  # done (by estimate) before the head may start
                pass
            elif w <= extra:  # runs past the shadow time, on processors the head leaves idle
                extra -= w
            else:
                continue
            self._start(i)
            queue.remove(i)  # few start per pass: C-level removal beats rebuilding the queue
            free -= w

    def _reservation(self, need: int) -> tuple[float, int]:
        """Shadow time (when the head can start, by estimates) and the processors it leaves spare.

        Running jobs are counted in order of estimated end (ties: submission order) until enough
        processors are free for the head: the last one counted sets the shadow time, and what
        is free then beyond the head's need is the extra. As in the classic implementation, a
        job tied at the shadow time but later in that order is not counted as extra; this
        conservative count reproduces the reference results (counting ties moves the EASY
        averages on KTH and CTC by 1 to 2%).
        """
        available = self.free
        for est_end, _, w in self.running:
            available += w
            if available >= need:
                # A job past its estimate is assumed to end now: the best the scheduler knows.
                return max(est_end, self.engine.now), available - need
        raise CapacityError(f"head job needs {need} processors; the machine can never free them")

    def _start(self, i: int) -> None:
        w = self.width[i]
        self.free -= w
        if self.free < 0:
            raise CapacityError(f"starting job #{i} ({w} procs) would exceed capacity by {-self.free}")
        now = self.engine.now
        self.start[i] = now
        self.end[i] = now + self.run_time[i]
        insort(self.running, (now + self.estimate[i], i, w))
        self.engine.schedule(self.end[i], self.on_end, i)


# -- the same schedulers on columns, for the resilience simulator's runs without failures -----------
@dataclass(frozen=True, slots=True)
class PoolSchedule:
    """What :func:`schedule_pools` decided, per job (in the order given) and in the order it happened.

    ``log`` records the run as the event-driven simulator would log it, one int per record:
    ``(k << 2) | 0`` an arrival batch (the jobs before position k have arrived, those from the
    previous batch's k on at this instant), ``(i << 2) | 1`` job i's decision and start,
    ``(i << 2) | 2`` job i's end.
    """

    start: array[float]
    place: list[int]  # the one pool that holds the job, or -1 - m for the m-th entry of ``spread``
    spread: list[tuple[tuple[int, int], ...]]  # (pool, nodes) of the jobs placed across pools
    log: array[int]
    events: int  # engine events: arrival batches and ends


def schedule_pools(submit: Sequence[float], run: Sequence[float], estimate: Sequence[float],
                   width: Sequence[int], pools: Sequence[int], backfill: bool,
                   rank: Sequence[int] | None = None) -> PoolSchedule:
    """FCFS (``backfill`` False) or EASY on a machine split into ``pools`` (their node counts), every
    job in submission order (``submit`` non-decreasing; each job fits the machine), nothing failing.

    It is :class:`~llm_sched.sim.resilience`'s central scheduler without failures, one loop instead
    of engine callbacks, and decides exactly what that one does: the passes run once every event of
    an instant is done (ends and arrivals in the order they were scheduled, as the engine runs
    them), the head starts while it fits, EASY backfills as :func:`replay` does, and a job goes to
    the pool with the fewest free nodes that holds it whole (ties: the lowest id), else across pools
    in id order (Slurm's best fit on leaf switches). Times are floats. ``rank``: SJF's queue order
    (each job's position by estimate; no backfilling with it), as the event-driven SJF keeps it.
    """
    m = len(submit)
    start = array("d", bytes(8 * m))  # C doubles: no float object kept per job
    place = [0] * m
    spread: list[tuple[tuple[int, int], ...]] = []
    log = array("q")
    rec = log.append
    pfree = list(pools)
    ids = range(len(pfree))
    free = sum(pfree)
    # Pending events as the engine holds them, (time, sequence number): the ends in a heap of
    # (time, seq, job), the next arrival batch beside it (at ``arrival``, numbered ``arrival_seq``).
    heap: list[tuple[float, int, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    seq = itertools.count(1).__next__
    arrival, arrival_seq = (submit[0] if m else math.inf), 0
    arrived = 0  # jobs [0, arrived) have arrived
    running: list[tuple[float, int, int]] = []  # (estimated end, job, width), sorted
    queue: list[int] = []
    settled = 0  # as _Replay.settled: queue positions [1, settled) failed the last backfill test
    events = 0
    narrowest = min(width, default=0)

    def begin(i: int, w: int, now: float) -> None:
        """Start job ``i`` (``w`` nodes) at ``now``, placed as Slurm's best fit: the pool with the
        fewest free nodes that holds it whole (ties: the lowest id), else pools in id order."""
        start[i] = now
        insort(running, (now + estimate[i], i, w))
        push(heap, (now + run[i], seq(), i))
        rec(i << 2 | 1)
        best, most = -1, 0
        for p in ids:
            f = pfree[p]
            if f >= w and (best < 0 or f < most):
                best, most = p, f
        if best >= 0:
            pfree[best] = most - w
            place[i] = best
            return
        need, alloc = w, []
        for p in ids:
            f = pfree[p]
            if f:
                c = need if need < f else f
                alloc.append((p, c))
                pfree[p] = f - c
                need -= c
                if not need:
                    break
        place[i] = -1 - len(spread)
        spread.append(tuple(alloc))

    while True:
        if heap and (heap[0][0] < arrival or (heap[0][0] == arrival and heap[0][1] < arrival_seq)):
            at, _, i = pop(heap)
            w = width[i]
            free += w
            p = place[i]
            if p >= 0:
                pfree[p] += w
            else:
                for p, c in spread[-1 - p]:
                    pfree[p] += c
            del running[bisect_left(running, (start[i] + estimate[i], i))]
            settled = 0
            rec(i << 2 | 2)
        elif arrival < math.inf:
            at = arrival
            j = arrived + 1  # the jobs submitted at this instant (mostly one)
            while j < m and submit[j] <= at:
                j += 1
            if rank is None:
                queue.extend(range(arrived, j))
            else:
                for i in range(arrived, j):
                    insort(queue, i, key=rank.__getitem__)
            arrived = j
            rec(j << 2)
            arrival, arrival_seq = (submit[j], seq()) if j < m else (math.inf, 0)
        else:
            break
        events += 1
        if not queue or arrival == at or (heap and heap[0][0] == at):
            continue  # nothing to start, or more events at this instant: the pass waits for them
        # The scheduling pass at ``at``: the head jobs that fit, then EASY's backfill.
        now = at
        started = 0
        n_queue = len(queue)
        while started < n_queue:
            i = queue[started]
            w = width[i]
            if w > free:
                break
            begin(i, w, now)
            free -= w
            started += 1
        if started:
            del queue[:started]
            n_queue -= started
            settled = 0
        first = settled if settled > 1 else 1
        if backfill and free > 0 and n_queue > first:
            # EASY, as _Replay._backfill: the head's reservation (shadow time, extra nodes), then
            # the later jobs that cannot delay it, in queue order.
            need, available = width[queue[0]], free
            shadow, extra = math.inf, 0  # no reservation: cannot happen without failures
            for est_end, _, w in running:
                available += w
                if available >= need:
                    shadow, extra = (est_end if est_end >= now else now), available - need
                    break
            fits = [i for i in queue[first:] if width[i] <= free and (now + estimate[i] <= shadow or width[i] <= extra)]
            for i in fits:
                w = width[i]
                if w > free:
                    if free < narrowest:
                        break  # no job left fits
                    continue
                if now + estimate[i] <= shadow:
                    pass
                elif w <= extra:
                    extra -= w
                else:
                    continue
                begin(i, w, now)
                free -= w
                queue.remove(i)
                n_queue -= 1
        settled = n_queue
    if queue or running:
        raise RuntimeError(f"{len(queue)} jobs never started; {len(running)} never ended")
    return PoolSchedule(start, place, spread, log, events)

