"""Seven workload scenarios after Jadhav, Jin, Deelman and Balaprakash, "Evaluating the Efficacy of
LLM-Based Reasoning for Multiobjective HPC Job Scheduling" (SC'25 WORKS workshop; arXiv 2506.02025).

Source: what we could read of the paper is its abstract (arxiv.org/abs/2506.02025 and its
OpenReview page, forum JlfzTdbypB): seven HPC workload scenarios "including heterogeneous mixes,
bursty patterns, and adversarial cases", instances of 10 to 100 jobs, FCFS, SJF and Google OR-Tools
as comparators. The seven names below are theirs; the full text (each scenario's parameters, the
machine sizes) was not available to us, so every number in the table is our own choice, made so
that each scenario has the property its name promises (the tests check it). Nothing here claims to
be their generator.

A machine of ``N`` nodes (default 40, split into 5 pools of 8 by the simulator, as its base set-up
:class:`~llm_sched.sim.simulate.SyntheticSetup`); jobs ask for whole nodes. Times in whole seconds.
Each job also gets an application kind (ai, climate, genomics, physics; drawn with the shares of
:mod:`llm_sched.sim.workload`), which only the agents' specialisation reads. Unless the table says
otherwise a user's estimate is the run time times a factor drawn uniformly in [1.2, 3.0], rounded up
to a minute (as :func:`~llm_sched.sim.workload.synthetic`), so it is never below the run time.
"Poisson, load L": exponential inter-arrival times whose mean makes the offered load (node-seconds
of work per node-second of machine over the arrivals) L (:func:`~llm_sched.sim.workload.arrival_times`).

=================  =====================================  ===========================  ==============================
scenario           nodes per job                          run time                     arrivals
=================  =====================================  ===========================  ==============================
homogeneous_short  1 or 2, equally likely                 uniform 1 .. 5 min           Poisson, load 0.8
heterogeneous_mix  the simulator's four-kind mix          its log-normal runs          Poisson, load 0.8
                   (:mod:`~llm_sched.sim.workload`:       (medians 20 .. 120 min,
                   1 .. 16 nodes, capped at N)            clipped 1 min .. 8 h)
long_jobs          a power of two <= max(1, N/4),         log-normal, median 6 h,      Poisson, load 0.8
                   equally likely                         sigma 0.4, clipped 2 .. 12 h
bursty             as heterogeneous_mix                   as heterogeneous_mix         groups of 4 .. 12 jobs at one
                                                                                       instant (never a group of one),
                                                                                       exponential gaps, load 0.8
high_parallelism   ceil(80 %) of the jobs: uniform in     log-normal, median 20 min,   Poisson, load 0.8
                   (N/2, N]; the others 1 .. max(1, N/8)  sigma 0.6, clipped 2 .. 120
                                                          min
resource_sparse    uniform in [ceil(N/4), ceil(N/2)]      log-normal, median 1 h,      Poisson, load 4; all at 0 if
                                                          sigma 0.5, clipped 10 min    the jobs would still fit
                                                          .. 4 h                       without waiting
adversarial        every 5th job from the first is a      blockers: log-normal,        each blocker at a Poisson
                   blocker of N nodes (the whole          median 2 h, sigma 0.3,       instant (load 0.9; never
                   machine); the others 1 or 2            clipped 1 .. 4 h; others     before the previous followers),
                                                          uniform 1 .. 5 min           its 4 followers 1 .. 60 s later
=================  =====================================  ===========================  ==============================

Defining properties (checked by tests/sim/test_peer_workloads.py):

- homogeneous_short: every job is narrow (<= 2 nodes) and short (<= 5 min).
- long_jobs: every run is at least 2 h (so its median is far above homogeneous_short's).
- bursty: jobs arrive in groups at the same instant: no submission instant has a single job (from
  2 jobs on; the last group may be smaller than 4, never a lone job).
- high_parallelism: most jobs (more than half) are wider than half the machine.
- resource_sparse: more work than the machine can hold without queueing: were every job started at
  its submission, more than ``N`` nodes would be busy at some instant (from 5 jobs on, as each holds
  at least ceil(N/4) nodes); the arrivals come about four times faster than the machine can serve.
- adversarial: designed against queue order and against estimate-based backfilling. Whole-machine
  blockers with long runs are followed at once by narrow short jobs (head-of-line blocking under
  FCFS; a stream of short jobs keeps SJF from ever choosing the next blocker); the short jobs' users
  overstate their time 10 to 20 times (estimate = run x U[10, 20], rounded up to a minute), so a
  backfilling scheduler that trusts estimates cannot fit them into the holes before a reservation;
  blockers' estimates are nearly exact (run x U[1.0, 1.1]).

Same ``seed`` (and kind, job count, machine size): same jobs. The draws of each scenario come from
their own stream (``"peer/<scenario>/<seed>"``); heterogeneous_mix and bursty draw their jobs from
:func:`~llm_sched.sim.workload.synthetic`'s stream for the seed, so heterogeneous_mix is the
simulator's own Poisson workload at load 0.8.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal

from llm_sched.sim.metrics import peak_usage
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.workload import KIND_SPECS, SimJob, WorkloadSpec, arrival_times, synthetic, user_estimate

ScenarioKind = Literal[
    "homogeneous_short", "heterogeneous_mix", "long_jobs", "bursty", "high_parallelism", "resource_sparse",
    "adversarial",
]
SCENARIO_KINDS: tuple[ScenarioKind, ...] = (
    "homogeneous_short", "heterogeneous_mix", "long_jobs", "bursty", "high_parallelism", "resource_sparse",
    "adversarial",
)
SCENARIO_TITLES: dict[str, str] = {
    "homogeneous_short": "homogeneous short jobs",
    "heterogeneous_mix": "heterogeneous mix",
    "long_jobs": "long jobs",
    "bursty": "bursty arrivals",
    "high_parallelism": "high parallelism",
    "resource_sparse": "resource sparse",
    "adversarial": "adversarial",
}

PAPER_JOB_RANGE: tuple[int, int] = (10, 100)
"""The paper's instances hold 10 to 100 jobs (its abstract)."""
DEFAULT_JOBS = 50  # inside the paper's range; CP-SAT handles it (its limit here is 200 jobs)
DEFAULT_NODES = 40
DEFAULT_POOLS = 5

LOAD = 0.8
SPARSE_LOAD = 4.0
ADVERSARIAL_LOAD = 0.9
BLOCKER_EVERY = 5
FOLLOWER_DELAY = (1, 60)  # seconds after their blocker
BURST_SIZES = (4, 12)


def peer_workload(kind: str, jobs: int = DEFAULT_JOBS, nodes: int = DEFAULT_NODES, seed: int = 1) -> list[SimJob]:
    """``jobs`` jobs of scenario ``kind`` for a machine of ``nodes`` nodes, in submission order
    (ids 1..jobs); the same arguments give the same jobs."""
    if kind not in SCENARIO_KINDS:
        raise ValueError(f"unknown scenario {kind!r}; expected one of {', '.join(SCENARIO_KINDS)}")
    if jobs < 0 or nodes < 1:
        raise ValueError(f"need a non-negative number of jobs and at least one node, got {jobs} jobs, {nodes} nodes")
    if kind == "heterogeneous_mix":
        return synthetic(WorkloadSpec(jobs, "poisson", LOAD), nodes, seed)
    if kind == "bursty":
        return _bursty(jobs, nodes, seed)
    rng = random.Random(f"peer/{kind}/{seed}")
    if kind == "adversarial":
        return _adversarial(jobs, nodes, rng)
    shapes = _shapes(kind, jobs, nodes, rng)  # (nodes, run) per job
    load = SPARSE_LOAD if kind == "resource_sparse" else LOAD
    submits = arrival_times(WorkloadSpec(jobs, "poisson", load), [w * r for w, r in shapes], nodes, rng)
    if kind == "resource_sparse" and peak_usage(_zero_wait(submits, shapes)) <= nodes:
        submits = [0.0] * jobs  # few jobs: only all at once do they exceed the machine
    return _jobs(submits, shapes, [_estimate(rng, r) for _, r in shapes], rng)


def _shapes(kind: str, jobs: int, nodes: int, rng: random.Random) -> list[tuple[int, float]]:
    if kind == "homogeneous_short":
        return [(min(nodes, rng.choice((1, 2))), float(rng.randint(60, 300))) for _ in range(jobs)]
    if kind == "long_jobs":
        sizes = [2**k for k in range(int(math.log2(max(1, nodes // 4))) + 1)]
        return [(rng.choice(sizes), _lognormal(rng, 6 * 3600, 0.4, 2 * 3600, 12 * 3600)) for _ in range(jobs)]
    if kind == "high_parallelism":
        wide = math.ceil(0.8 * jobs)
        is_wide = [k < wide for k in range(jobs)]
        rng.shuffle(is_wide)
        return [(rng.randint(nodes // 2 + 1, nodes) if w else rng.randint(1, max(1, nodes // 8)),
                 _lognormal(rng, 1200, 0.6, 120, 7200)) for w in is_wide]
    # resource_sparse
    low, high = math.ceil(nodes / 4), math.ceil(nodes / 2)
    return [(rng.randint(low, high), _lognormal(rng, 3600, 0.5, 600, 4 * 3600)) for _ in range(jobs)]


def _bursty(jobs: int, nodes: int, seed: int) -> list[SimJob]:
    drawn = synthetic(WorkloadSpec(jobs, "batch"), nodes, seed)  # the mix's shapes, all at 0 for now
    rng = random.Random(f"peer/bursty/{seed}")
    groups: list[int] = []
    left = jobs
    while left > 0:
        size = min(left, rng.randint(*BURST_SIZES))
        if left - size == 1:
            size += 1  # never leave a group of one at the end
        groups.append(size)
        left -= size
    span = math.fsum(j.nodes * j.run for j in drawn) / (nodes * LOAD)
    gap = span / max(1, len(groups))
    submits, t = [], 0.0
    for size in groups:
        submits += [float(round(t))] * size
        t += rng.expovariate(1.0 / gap) if gap > 0 else 0.0
    return [j._replace(submit=s) for j, s in zip(drawn, submits, strict=True)]


def _adversarial(jobs: int, nodes: int, rng: random.Random) -> list[SimJob]:
    shapes, estimates = [], []
    for k in range(jobs):
        if k % BLOCKER_EVERY == 0:
            run = _lognormal(rng, 7200, 0.3, 3600, 4 * 3600)
            shapes.append((nodes, run))
            estimates.append(user_estimate(run * rng.uniform(1.0, 1.1), run))
        else:
            run = float(rng.randint(60, 300))
            shapes.append((min(nodes, rng.choice((1, 2))), run))
            estimates.append(user_estimate(run * rng.uniform(10.0, 20.0), run))
    cycles = [shapes[k:k + BLOCKER_EVERY] for k in range(0, jobs, BLOCKER_EVERY)]
    starts = arrival_times(WorkloadSpec(len(cycles), "poisson", ADVERSARIAL_LOAD),
                           [math.fsum(w * r for w, r in c) for c in cycles], nodes, rng)
    submits: list[float] = []
    for start, cycle in zip(starts, cycles, strict=True):
        start = max(start, submits[-1] if submits else 0.0)  # never before the previous cycle's followers
        after = sorted(rng.randint(*FOLLOWER_DELAY) for _ in cycle[1:])
        submits += [start] + [start + d for d in after]
    return _jobs(submits, shapes, estimates, rng)


def _jobs(submits: Sequence[float], shapes: Sequence[tuple[int, float]], estimates: Sequence[float],
          rng: random.Random) -> list[SimJob]:
    kinds, shares = list(KIND_SPECS), [s.share for s in KIND_SPECS.values()]
    labels = [rng.choices(kinds, shares)[0] for _ in shapes]
    return [SimJob(job_id=k + 1, submit=s, run=r, estimate=e, nodes=w, kind=label)
            for k, (s, (w, r), e, label) in enumerate(zip(submits, shapes, estimates, labels, strict=True))]


def _zero_wait(submits: Sequence[float], shapes: Sequence[tuple[int, float]]) -> list[JobOutcome]:
    """Each job run at its submission, without waiting (what no machine of too few nodes can do)."""
    return [JobOutcome(k + 1, s, s, s + r, w, "") for k, (s, (w, r)) in enumerate(zip(submits, shapes, strict=True))]


def _lognormal(rng: random.Random, median: float, sigma: float, low: float, high: float) -> float:
    return float(round(min(high, max(low, rng.lognormvariate(math.log(median), sigma)))))


def _estimate(rng: random.Random, run: float) -> float:
    return user_estimate(run * rng.uniform(1.2, 3.0), run)
