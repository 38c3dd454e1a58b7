"""Failure schedules for the resilience simulator, drawn from a seed before a run starts.

A schedule is a list of :class:`Outage` records, fixed before any policy runs, so that every policy
compared on one (workload, seed) meets exactly the same failures at the same instants: no side gets
failures the other is spared. Each outage has a start, the instant a monitor suspects it (a
phi-accrual detector, :mod:`llm_sched.sim.detector`, on a seeded heartbeat history; never after the
repair, because a process that comes back reports what it lost) and an end (repair or heal).

Kinds of outage:

- ``agent``: a resource agent and its pool of nodes go down (a site or partition failure): the
  jobs on the pool die, the agent cannot vote, the pool takes no work until the repair. The
  central scheduler of the FCFS/EASY baselines runs beside agent 0's pool and shares its fate.
- ``node``: one node goes down; the job on it dies.
- ``partition``: a group of agents is cut off from the rest for a while. Nothing dies: the group's
  running jobs go on, but the group cannot vote with the others and no new work crosses the cut.

Patterns (``FailureSpec.pattern``), for a failure rate ``r`` (the probability that a given agent
fails within the horizon):

- ``random``: each agent fails with probability r, at a uniform instant of the horizon, and is
  repaired after an exponential time of mean ``repair_mean``.
- ``cascading``: the random failures, and each failure gives each ring neighbour (agents i-1 and
  i+1) a chance ``cascade_prob`` of failing at a uniform instant within ``cascade_window`` after it,
  if that neighbour is up then and stays clear of its own other outages; cascaded failures cascade
  in turn (at most 10 k of them).
- ``partition``: each agent, with probability r, at a uniform instant, triggers a partition that
  cuts off the contiguous ring group of ``max(1, floor(partition_fraction x k))`` agents starting
  at it, for an exponential time of mean ``repair_mean``.

Node failures are independent of the pattern: each node fails with probability ``node_rate``.

Every agent and node draws from its own seeded stream, and draws the same first numbers (whether,
when, how long) whatever the rate, so the failures at a rate of 5% are a subset of those at 15% for the same seed (common random
numbers: the comparison across rates is not blurred by different luck).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from llm_sched.sim.detector import DetectorConfig, detection_time

Pattern = Literal["random", "cascading", "partition"]
PATTERNS: tuple[Pattern, ...] = ("random", "cascading", "partition")
OutageKind = Literal["agent", "node", "partition"]


class Outage(NamedTuple):
    """One failure episode. ``members``: the agent (agent), the node (node) or the group (partition)."""

    cause: int  # index in the schedule: events and killed jobs refer to their outage by it
    kind: OutageKind
    members: tuple[int, ...]
    start: float
    detect: float  # when a monitor suspects it (start <= detect <= end)
    end: float  # repair, or end of the partition


@dataclass(frozen=True, slots=True)
class FailureSpec:
    """What fails, how often, and how fast it comes back. Times in seconds."""

    rate: float = 0.0  # probability that an agent fails within the horizon
    pattern: Pattern = "random"
    repair_mean: float = 3600.0  # seconds, mean of the exponential repair (or partition) time
    node_rate: float = 0.0  # probability that a node fails within the horizon
    node_repair_mean: float = 7200.0
    cascade_prob: float = 0.5
    cascade_window: float = 600.0
    partition_fraction: float = 0.3
    horizon: float | None = None  # None: the caller's estimate of the run's length
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown failure pattern {self.pattern!r}; expected one of {', '.join(PATTERNS)}")
        for name in ("rate", "node_rate", "cascade_prob", "partition_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.repair_mean <= 0 or self.node_repair_mean <= 0 or self.cascade_window < 0:
            raise ValueError(f"repair times must be positive: {self}")


@dataclass(frozen=True, slots=True)
class FailureSchedule:
    """The outages of one run, in order of start time (then cause)."""

    outages: tuple[Outage, ...] = ()
    start: float = 0.0  # the horizon the outages were drawn in
    horizon: float = 0.0

    @classmethod
    def build(cls, outages: list[tuple[OutageKind, tuple[int, ...], float, float, float]],
              start: float = 0.0, horizon: float = 0.0) -> FailureSchedule:
        """A schedule from (kind, members, start, detect, end) tuples (hand-made, for tests)."""
        ordered = sorted(outages, key=lambda o: (o[2], o[0], o[1]))
        made = []
        for cause, (kind, members, t0, det, t1) in enumerate(ordered):
            if not t0 <= det <= t1:
                raise ValueError(f"outage {kind} {members}: need start <= detect <= end, got {t0}, {det}, {t1}")
            made.append(Outage(cause, kind, tuple(members), float(t0), float(det), float(t1)))
        return cls(tuple(made), start, horizon)

    def count(self, kind: OutageKind) -> int:
        """How many outages of one kind."""
        return sum(1 for o in self.outages if o.kind == kind)


def failure_horizon(submits: Sequence[float], work: float, nodes: int) -> tuple[float, float]:
    """(start, length) of the window failures are drawn in, from the workload alone (never the policy).

    It starts at the first submission and lasts until the later of the last submission and the
    time the machine would need for all the work (``work`` node-seconds) at full use: an estimate
    of the run's length that is the same for every policy, so failures fall while there is work.
    """
    if not submits:
        return 0.0, 0.0
    first, last = min(submits), max(submits)
    return first, max(last - first, work / nodes)


def draw_schedule(spec: FailureSpec, agents: int, nodes: int, start: float, horizon: float,
                  seed: int) -> FailureSchedule:
    """Draw the outages of ``agents`` agents and ``nodes`` nodes over ``[start, start + horizon]``."""
    horizon = spec.horizon if spec.horizon is not None else horizon
    det = spec.detector
    raw: list[tuple[OutageKind, tuple[int, ...], float, float, float]] = []
    group = max(1, int(spec.partition_fraction * agents))
    for a in range(agents):
        rng = random.Random(f"failures/{seed}/agent/{a}")
        u, t, d = rng.random(), start + rng.uniform(0.0, horizon), rng.expovariate(1.0 / spec.repair_mean)
        if u >= spec.rate:
            continue  # the stream is this agent's own: skipping its remaining draws shifts no one else
        detect = min(t + d, detection_time(rng, t, det))
        if spec.pattern == "partition":
            members = tuple(sorted((a + i) % agents for i in range(min(group, agents))))
            raw.append(("partition", members, t, detect, t + d))
        else:
            raw.append(("agent", (a,), t, detect, t + d))
    if spec.pattern == "cascading" and raw:
        raw = _cascade(spec, agents, raw, start + horizon, seed)
    for n in range(nodes if spec.node_rate > 0 else 0):
        rng = random.Random(f"failures/{seed}/node/{n}")
        u, t, d = rng.random(), start + rng.uniform(0.0, horizon), rng.expovariate(1.0 / spec.node_repair_mean)
        if u < spec.node_rate:
            raw.append(("node", (n,), t, min(t + d, detection_time(rng, t, det)), t + d))
    return FailureSchedule.build(raw, start, horizon)


def _cascade(spec: FailureSpec, agents: int, raw: list[tuple[OutageKind, tuple[int, ...], float, float, float]],
             stop: float, seed: int) -> list[tuple[OutageKind, tuple[int, ...], float, float, float]]:
    """Add the failures that the random ones set off in their ring neighbours (see the module)."""
    rng = random.Random(f"failures/{seed}/cascade")
    busy: dict[int, list[tuple[float, float]]] = {}
    for _, (a,), t0, _, t1 in raw:
        busy.setdefault(a, []).append((t0, t1))
    heap = [(t0, a) for _, (a,), t0, _, _ in raw]
    heapq.heapify(heap)
    out = list(raw)
    budget = 10 * agents
    while heap and budget > 0:
        t, a = heapq.heappop(heap)
        for b in sorted({(a - 1) % agents, (a + 1) % agents} - {a}):
            # Always draw the same numbers, whatever the outcome, so later draws do not shift.
            hit, at = rng.random(), t + rng.uniform(0.0, spec.cascade_window)
            d = rng.expovariate(1.0 / spec.repair_mean)
            detect = min(at + d, detection_time(rng, at, spec.detector))
            if hit >= spec.cascade_prob or at > stop:
                continue
            if any(s < at + d and at < e for s, e in busy.get(b, ())):
                continue  # b is already down, or would be, during that window
            busy.setdefault(b, []).append((at, at + d))
            out.append(("agent", (b,), at, detect, at + d))
            heapq.heappush(heap, (at, b))
            budget -= 1
            if budget == 0:
                break
    return out
