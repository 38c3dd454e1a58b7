"""Workloads for the resilience simulator: seeded synthetic job streams, and SWF traces.

A :class:`SimJob` asks for whole nodes (exclusive allocation, as HPC batch systems do). In a trace
replay a node is one processor, so the job's width is its SWF processor count and FCFS/EASY stay
exactly the replays of REFERENCE.md.

Synthetic jobs come in four kinds, drawn with these shares (sizes in nodes; run times log-normal,
given by their median and the sigma of the log, clipped to the range shown; the user's estimate is
the run time times a factor drawn uniformly in [1.2, 3.0], rounded up to a minute, as users ask
for more time than they need):

========  =====  ==========================  ============  =====  =================
kind      share  nodes (weights)             median run    sigma  clipped to
========  =====  ==========================  ============  =====  =================
ai        30 %   1, 2, 4, 8 (3, 3, 2, 1)     60 min        0.8    5 min .. 6 h
climate   25 %   4, 8, 16 (3, 2, 1)          120 min       0.6    20 min .. 8 h
genomics  25 %   1, 2 (3, 1)                 20 min        0.9    1 min .. 3 h
physics   20 %   2, 4, 8, 16 (2, 3, 2, 1)    90 min        0.7    10 min .. 8 h
========  =====  ==========================  ============  =====  =================

Sizes are capped at the machine size. Arrival patterns, for a target offered load (node-seconds
of work per node-second of machine, default 0.8) over the stream:

- ``constant``: one job every ``span / n`` seconds, where ``span`` = total work / (nodes x load);
- ``poisson``: exponential inter-arrival times of the same mean;
- ``burst``: groups of ``burst_size`` jobs arriving at the same instant, groups evenly spaced so
  the mean rate is the same;
- ``batch``: every job at time 0 (the "high load" case: M jobs arriving at once).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from llm_sched.sim.swf import TraceJob, walltime

Arrival = Literal["constant", "poisson", "burst", "batch"]
ARRIVALS: tuple[Arrival, ...] = ("constant", "poisson", "burst", "batch")
KINDS: tuple[str, ...] = ("ai", "climate", "genomics", "physics")


class SimJob(NamedTuple):
    """One job: when it arrives, how long it really runs, what its user estimated, how many nodes."""

    job_id: int
    submit: float
    run: float
    estimate: float  # >= run (REFERENCE.md: max(requested, run))
    nodes: int
    kind: str  # one of KINDS, or "" for trace jobs
    # The run time limit the batch system enforces (the trace's requested time; a synthetic job's
    # estimate): with SimConfig.walltime_kill a job still running then is killed (inf: no limit).
    walltime: float = math.inf


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How one kind of synthetic job is drawn (see the module's table)."""

    share: float
    sizes: tuple[int, ...]
    size_weights: tuple[float, ...]
    median_run: float  # seconds
    sigma: float
    min_run: float
    max_run: float


KIND_SPECS: dict[str, KindSpec] = {
    "ai": KindSpec(0.30, (1, 2, 4, 8), (3, 3, 2, 1), 3600, 0.8, 300, 6 * 3600),
    "climate": KindSpec(0.25, (4, 8, 16), (3, 2, 1), 7200, 0.6, 1200, 8 * 3600),
    "genomics": KindSpec(0.25, (1, 2), (3, 1), 1200, 0.9, 60, 3 * 3600),
    "physics": KindSpec(0.20, (2, 4, 8, 16), (2, 3, 2, 1), 5400, 0.7, 600, 8 * 3600),
}


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """A synthetic workload: how many jobs, how they arrive, how hard they load the machine."""

    jobs: int = 100
    arrival: Arrival = "poisson"
    load: float = 0.8  # offered load; ignored by "batch"
    burst_size: int = 20

    def __post_init__(self) -> None:
        # isfinite: a NaN load passes "<= 0" and would make every arrival time NaN.
        if self.jobs < 0 or not (self.load > 0 and math.isfinite(self.load)) or self.burst_size < 1:
            raise ValueError(f"invalid workload: {self}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"unknown arrival pattern {self.arrival!r}; expected one of {', '.join(ARRIVALS)}")


def synthetic(spec: WorkloadSpec, machine_nodes: int, seed: int) -> list[SimJob]:
    """Draw ``spec.jobs`` jobs for a machine of ``machine_nodes`` nodes; the same seed gives the same jobs."""
    rng = random.Random(f"workload/{seed}")
    kinds = list(KIND_SPECS)
    shares = [KIND_SPECS[k].share for k in kinds]
    drawn: list[tuple[str, int, float, float]] = []
    for _ in range(spec.jobs):
        kind = rng.choices(kinds, shares)[0]
        ks = KIND_SPECS[kind]
        nodes = min(machine_nodes, rng.choices(ks.sizes, ks.size_weights)[0])
        run = rng.lognormvariate(math.log(ks.median_run), ks.sigma)
        run = float(round(min(ks.max_run, max(ks.min_run, run))))
        estimate = user_estimate(run * rng.uniform(1.2, 3.0), run)
        drawn.append((kind, nodes, run, estimate))
    submits = arrival_times(spec, [n * r for _, n, r, _ in drawn], machine_nodes, rng)
    return [
        SimJob(k + 1, submits[k], run, est, nodes, kind, est)
        for k, (kind, nodes, run, est) in enumerate(drawn)
    ]


def user_estimate(seconds: float, run: float) -> float:
    """What a user asks for: ``seconds`` rounded up to a whole minute, never below the ``run`` time."""
    return float(max(run, 60 * math.ceil(seconds / 60)))


def arrival_times(
    spec: WorkloadSpec, work: Sequence[float], machine_nodes: int, rng: random.Random
) -> list[float]:
    """Submit times (seconds from 0, whole seconds) of jobs whose node-seconds are ``work``."""
    n = len(work)
    if n == 0 or spec.arrival == "batch":
        return [0.0] * n
    span = math.fsum(work) / (machine_nodes * spec.load)
    gap = span / n
    if spec.arrival == "constant":
        return [float(round(k * gap)) for k in range(n)]
    if spec.arrival == "poisson":
        t, out = 0.0, []
        for _ in range(n):
            out.append(float(round(t)))
            t += rng.expovariate(1.0 / gap)
        return out
    size = spec.burst_size
    return [float(round((k // size) * size * gap)) for k in range(n)]


def from_trace(jobs: Iterable[TraceJob]) -> list[SimJob]:
    """Trace jobs as simulator jobs (a node is one processor; the estimate is the reader's, the
    walltime the requested time)."""
    return [SimJob(j.job_id, j.submit, j.run, j.estimate, j.procs, "", walltime(j.requested_time)) for j in jobs]
