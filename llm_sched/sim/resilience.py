"""The failure-aware scheduling simulator: central FCFS/EASY against decentralized agents.

Model
-----
A machine of ``N`` nodes is split into ``k`` pools of contiguous nodes, as equal as possible (the
first ``N mod k`` pools get one node more), each owned by one resource agent. Pool ``p``'s specialty
is ``KINDS[p mod 4]`` (ai, climate, genomics, physics). Jobs ask for whole nodes. In a trace replay a
node is one processor, so without failures FCFS and EASY here are exactly the replays of
:mod:`llm_sched.sim.baselines` (checked by the tests).

Policies, on the same cluster, workload and failure schedule:

- ``fcfs``, ``sjf``, ``easy``, ``conservative``: one central scheduler. FCFS starts jobs in
  arrival order and the head blocks the rest; SJF keeps the queue in order of the user's estimate
  (ties: arrival; requeued jobs too) and the head blocks the rest; EASY reserves the head's start
  and lets later jobs run ahead if they do not delay it; conservative backfilling gives every
  waiting job, in queue order, the earliest start by estimates that delays no reservation before it
  (rebuilt at each pass, so jobs ending early move every reservation up), and starts those due now.
  The scheduler runs beside agent 0's pool and shares its fate (when that pool's outage starts the
  scheduler is down), so it meets exactly the failures the agents meet, at the same instants. With
  ``failover`` set it has a hot standby beside the last pool (Slurm's backup controller): when the
  active scheduler goes down and the standby's pool is up, the standby takes over ``failover``
  seconds later, with the replicated queue; there is no failback (the repaired replica becomes the
  standby). Without a standby it is down until the repair. While it is down nothing new starts; submissions
  are buffered and join the queue in arrival order. ``queue_on_failure``: ``keep`` (default; the
  queue is persisted, as Slurm's state save does) or ``lose`` (the queue is lost when the scheduler
  fails; those jobs are resubmitted when it recovers and go to the back of the queue, behind the
  submissions buffered during the outage; counted as ``resubmit`` events; with a standby, only when
  both replicas are down). The scheduler places a
  job as Slurm's topology-aware best fit does on leaf switches: in the one pool with the fewest
  free nodes that can hold it whole (ties: the lowest id), else across pools in id order; only
  pools it can reach count. Its decisions are local: no messages, no delay.
- ``agents``: no central component. At each scheduling point the live agents that can reach one
  another decide the award of the job through the decision engine (:mod:`llm_sched.engine`), as
  the scenarios' agents do: each bids with its own pool (:mod:`llm_sched.agents.pool_agents`), the
  candidate is the award ranked by the specialists' multi-factor score (weights 0.35 resource match,
  0.25 load, 0.25 specialisation, 0.15 reputation; here resource match = the share of the job the
  pool's free nodes can hold, load = the pool's idle share, specialisation = the specialists' table,
  reputation = (jobs completed + 1) / (jobs completed + jobs killed + 1) on the pool), recomputed
  from the shared state, never taken from a bid: the best single pool that can hold the whole job if
  there is one, else nodes from the best bidders in score order. Every deciding agent recomputes the
  award and signs its vote; the engine screens the signatures and runs the protocol (PBFT by
  default) among all ``k`` agents on its seeded simulated network, the agents that are down or cut
  off being silent. A job starts only with a quorum certificate: q = byzantine_quorum(k) signed
  accepts and the protocol's decision. Without q live agents on one side of any partition nothing
  starts (the mirror of the central scheduler being down). The messages, bytes and simulated time
  of each decision are counted by the network: the job starts that time (in message delays, times
  ``hop_delay``) after the decision. The queue policy is EASY backfilling, as for ``easy``, on the
  replicated queue (it survives any failure), so that the comparison is about resilience, not about
  a weaker queue policy: without failures and with ``hop_delay`` 0 it gives EASY's schedule exactly.

Failures (:mod:`llm_sched.sim.failures`) are drawn before the run. An agent outage takes its pool
down: the jobs on it die at once, and the others learn it at the outage's detection instant (a
phi-accrual detector): the jobs' surviving nodes are released and the jobs go back to the front of
the queue to run again from the start (their lost work, nodes x seconds run, is counted). A node
outage does the same to the one job on the node. The central scheduler learns of a failure only
while it is up (else at its recovery); agents learn of it while at least one agent is up.
Partitions kill nothing: the cut-off pools keep running their jobs but get no new work from the
other side; the central scheduler uses only the pools on its side. Overlapping cut-off groups form
one island; agents in no group form the main island. No policy ever starts work on a failed pool
or node, even before the failure is detected (a dispatch there would fail at once and be retried
elsewhere; the same simplification for every policy).

Walltimes: with ``walltime_kill`` a job still running when it has run its walltime
(:attr:`SimJob.walltime`, the trace's requested time) is killed then, as Slurm's TIMEOUT does: it
ends (a ``timeout`` event before its ``end``) and is not run again; the schedulers, knowing the
limit, never expect a job to run past it. Without it, jobs run their recorded run time (a trace's
estimate is max(requested, run), as REFERENCE.md replays it).

Simplifications, the same for every policy: a killed job restarts from scratch (no checkpoints);
a job whose head-of-queue need exceeds the nodes it can currently reach gets no reservation, so
anything that fits may backfill meanwhile; the agents' queue changes (arrivals, requeues) are not
themselves charged as consensus decisions, only the awards are.

Every arrival, decision, start, end, kill, requeue, failure, detection and recovery is a
:class:`SimEvent` in the run's event list; :mod:`llm_sched.sim.resilience_metrics` computes the
figures from it.

A FCFS, SJF or EASY run with no outage, no deadline and no walltime kills (a trace replay, by
default) makes the same decisions
in one loop over columns (:func:`~llm_sched.sim.baselines.schedule_pools`) instead of engine
callbacks, and keeps its jobs, outcomes and events as columns (:class:`JobTable`), read as tuples
on demand: a million-job trace in seconds and a few hundred megabytes. Its run equals the
event-driven one (:func:`simulate_events`) field by field.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar, cast, overload

from llm_sched.agents.evidence import BID_TOLERANCE as OVERCLAIM_TOLERANCE
from llm_sched.agents.heuristics import SPECIALTY_FOR_KIND
from llm_sched.agents.heuristics import specialisation as heuristic_specialisation
from llm_sched.agents.pool_adviser import MODES as ADVICE_MODES
from llm_sched.agents.pool_adviser import VIAS, PoolAdviser
from llm_sched.agents.pool_agents import Award, PoolAgent, PoolView, award, placement_of
from llm_sched.core.signing import PublicKeys, placement_digest
from llm_sched.engine.awards import CertifiedAward
from llm_sched.engine.round import PROTOCOLS as ENGINE_PROTOCOLS
from llm_sched.engine.tally import tally
from llm_sched.protocols.messages import PlacementValue
from llm_sched.protocols.quorum import byzantine_quorum
from llm_sched.sim.columns import SLICE, Coded, Column, FrozenRows, Listed, Numbers, Rows, Same
from llm_sched.sim.engine import Engine
from llm_sched.sim.failures import FailureSchedule, Outage
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.workload import KINDS, SimJob

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")

Policy = Literal["fcfs", "sjf", "easy", "conservative", "agents"]
POLICIES: tuple[Policy, ...] = ("fcfs", "sjf", "easy", "conservative", "agents")
CENTRAL: tuple[Policy, ...] = ("fcfs", "sjf", "easy", "conservative")
# The central policies the column loop of sim.baselines.schedule_pools runs without failures.
COLUMN_POLICIES: tuple[Policy, ...] = ("fcfs", "sjf", "easy")
QueueOnFailure = Literal["keep", "lose"]

# The protocols that may decide the agents' awards: Byzantine-tolerant cores whose replicas validate
# what they accept (the reputation-weighted core needs the scenarios' reputation; not offered here).
PROTOCOLS: tuple[str, ...] = tuple(p for p in ENGINE_PROTOCOLS if p != "weighted")


def specialisation(pool_kind: str, job_kind: str) -> float:
    """The specialists' specialisation factor when the pool's owner bids (agent specialty = pool's)."""
    have = SPECIALTY_FOR_KIND[pool_kind]
    return heuristic_specialisation(have, have, job_kind)


class CapacityError(RuntimeError):
    """The simulator tried to give a node to two jobs, or a job more nodes than it may have (a bug)."""


class SimEvent(NamedTuple):
    """One thing that happened. Unused fields are -1.

    kinds: submit, decision (amount = messages), undecided (an agents' round that passed nothing;
    amount = messages), overclaim (agent = the bidder whose bid claimed more than its recomputed
    score), refused (agent = the sender of a vote that does not count), advice (an llm or hybrid
    run's proposal; amount = its index in agents.pool_adviser.VIAS: 0 the model's own choice), start (at the job's start instant, amount =
    nodes), end, timeout (just before the end of a job killed at its walltime), kill (amount =
    nodes, cause = outage), requeue (amount = nodes released), failover (agent = the pool whose
    scheduler replica took over),
    agent_fail, agent_recover, node_fail, node_recover, cut, heal (one per agent of a partition),
    detect (agent or node, cause), decider_down, decider_up, queue_lost (amount = jobs), resubmit.
    """

    t: float
    kind: str
    agent: int
    node: int
    job: int  # index of the job in SimRun.jobs
    amount: int
    cause: int


# tuple.__new__ builds the NamedTuple at C speed (SimEvent(...) goes through a Python-level
# __new__): a run logs several events per job.
_event = cast(Callable[[tuple[object, ...]], SimEvent], partial(tuple.__new__, SimEvent))


@dataclass(frozen=True, slots=True)
class PoolSplit:
    """``nodes`` nodes in ``agents`` contiguous pools (the first ``nodes mod agents`` one node larger)."""

    nodes: int
    agents: int
    cores_per_node: int = 1  # descriptive: jobs ask for whole nodes

    def __post_init__(self) -> None:
        if self.agents < 1 or self.nodes < self.agents:
            raise ValueError(f"need at least one node per agent: {self.nodes} nodes, {self.agents} agents")

    def pools(self) -> list[range]:
        """The node ranges of the pools, in agent order."""
        base, extra = divmod(self.nodes, self.agents)
        out, lo = [], 0
        for p in range(self.agents):
            hi = lo + base + (1 if p < extra else 0)
            out.append(range(lo, hi))
            lo = hi
        return out

    @staticmethod
    def pool_kind(p: int) -> str:
        """The specialty of pool ``p`` (a job kind)."""
        return KINDS[p % len(KINDS)]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How the policies behave. ``deadline``: seconds after the first submission at which the run
    stops (jobs not done then count as not completed); None runs until every job has completed."""

    policy: Policy = "easy"
    queue_on_failure: QueueOnFailure = "keep"
    protocol: str = "pbft"
    hop_delay: float = 0.01
    deadline: float | None = None
    # Seconds a central scheduler's hot standby (beside the last pool) takes to take over once the
    # active one is down; None: no standby (the scheduler is down until its pool is repaired).
    failover: float | None = None
    # Kill a job when it has run its requested time (SimJob.walltime), as Slurm's TIMEOUT does.
    walltime_kill: bool = False
    # Who chooses the agents' awards: the recomputed heuristic, or a model (llm; hybrid: close calls
    # only) through a PoolAdviser given to simulate(), under its call budget per run.
    advice: str = "heuristic"

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; expected one of {', '.join(POLICIES)}")
        if self.queue_on_failure not in ("keep", "lose"):
            raise ValueError(f"queue_on_failure must be keep or lose, got {self.queue_on_failure!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; expected one of {', '.join(PROTOCOLS)}")
        if self.hop_delay < 0:
            raise ValueError(f"hop_delay must not be negative, got {self.hop_delay}")
        if self.advice not in ADVICE_MODES:
            raise ValueError(f"unknown advice {self.advice!r}; expected one of {', '.join(ADVICE_MODES)}")
        if self.failover is not None and not (self.failover >= 0 and math.isfinite(self.failover)):
            raise ValueError(f"failover must be a non-negative number of seconds, got {self.failover}")


@dataclass(frozen=True, slots=True)
class SimRun:
    """Everything one run produced; metrics are computed from it.

    A central run without failures (:func:`simulate`'s replay) holds its jobs, outcomes and events
    as sequences read from columns (equal to the tuples the event-driven run makes, and pickled as
    such) and its :class:`JobTable`; every other run holds tuples and no table.
    """

    config: SimConfig
    cluster: PoolSplit
    schedule: FailureSchedule
    jobs: Sequence[SimJob]  # in submission order; SimEvent.job indexes this
    outcomes: Sequence[JobOutcome]  # completed jobs (their last attempt), in submission order
    incomplete: tuple[int, ...]  # job ids accepted but not completed by the deadline
    rejected: tuple[int, ...]  # job ids wider than the machine
    events: Sequence[SimEvent]
    start_time: float  # first submission
    end_time: float  # last job end, or the deadline
    engine_events: int
    quorum: int  # q for the agents policy (1 for the central ones: one scheduler)
    attempts_of: dict[int, int] = field(default_factory=dict)  # job id -> starts, when > 1
    # The agents' decisions, measured on the engine's simulated network (central policies: none).
    decision_time: float = 0.0  # seconds, summed over decisions (start = decision + its latency)
    decision_bytes: int = 0
    decision_rounds: int = 0  # views or rounds the protocol took, summed over decisions
    awards: tuple[CertifiedAward, ...] = ()
    context: str = ""  # what the agents' signatures are bound to
    public_keys: tuple[tuple[int, str, str], ...] = ()  # (key epoch, agent, Ed25519 public key hex)
    # The model's part in an llm or hybrid run: the adviser's counts over this run (calls, valid
    # answers, fallbacks by reason, latency in seconds, tokens); empty for heuristic agents.
    advice: tuple[tuple[str, float], ...] = ()
    table: JobTable | None = field(default=None, compare=False, repr=False)


def simulate(jobs: Sequence[SimJob], cluster: PoolSplit, config: SimConfig,
             schedule: FailureSchedule | None = None, context: str = "simulation",
             byzantine: Mapping[int, str] | None = None, adviser: PoolAdviser | None = None) -> SimRun:
    """Run ``jobs`` on ``cluster`` under ``config.policy`` through the outages of ``schedule``.
    ``context`` names the run in the agents' signatures (a campaign names configuration and seed)
    and seeds the engine's simulated network. ``byzantine``: pool -> the Byzantine behaviour of its
    agent (:data:`~llm_sched.agents.pool_agents.POOL_BEHAVIOURS`); only the agents policy has agents.
    ``adviser``: the model that chooses the agents' awards when ``config.advice`` is llm or hybrid
    (its mode must be that advice; its call budget starts afresh for this run).

    FCFS, SJF and EASY with no outage, no deadline and no walltime kills take a shortcut: the same decisions in one loop
    over columns (:func:`~llm_sched.sim.baselines.schedule_pools`), a run equal to the event-driven
    one (:func:`simulate_events`) in every field, events included (the tests check it)."""
    faulty = _checked(cluster, schedule, byzantine)
    _check_adviser(config, adviser)
    if (config.policy in COLUMN_POLICIES and config.deadline is None and not config.walltime_kill
            and not (schedule and schedule.outages)):
        replayed = _replay(jobs, cluster, config, schedule or FailureSchedule(), context)
        if replayed is not None:
            return replayed
    run = _Run(sorted(jobs, key=_submit_key), cluster, config, schedule or FailureSchedule(), context, faulty, adviser)
    return run.run()


def _check_adviser(config: SimConfig, adviser: PoolAdviser | None) -> None:
    if config.policy == "agents" and config.advice != "heuristic":
        if adviser is None or adviser.mode != config.advice:
            have = "none" if adviser is None else f"one in {adviser.mode} mode"
            raise ValueError(f"{config.advice} agents need a pool adviser in {config.advice} mode; got {have}")


def simulate_events(jobs: Sequence[SimJob], cluster: PoolSplit, config: SimConfig,
                    schedule: FailureSchedule | None = None, context: str = "simulation",
                    byzantine: Mapping[int, str] | None = None, adviser: PoolAdviser | None = None) -> SimRun:
    """:func:`simulate` on the event-driven simulator whatever the case (the reference its shortcut
    is checked against)."""
    faulty = _checked(cluster, schedule, byzantine)
    _check_adviser(config, adviser)
    run = _Run(sorted(jobs, key=_submit_key), cluster, config, schedule or FailureSchedule(), context, faulty, adviser)
    return run.run()


def _checked(cluster: PoolSplit, schedule: FailureSchedule | None,
             byzantine: Mapping[int, str] | None) -> dict[int, str]:
    for o in (schedule.outages if schedule else ()):
        limit = cluster.nodes if o.kind == "node" else cluster.agents
        if any(not 0 <= m < limit for m in o.members):
            raise ValueError(f"outage {o.cause} ({o.kind}) names {o.members}, outside 0..{limit - 1}")
    faulty = dict(byzantine or {})
    if any(not 0 <= p < cluster.agents for p in faulty):
        raise ValueError(f"Byzantine agents {sorted(faulty)} outside 0..{cluster.agents - 1}")
    return faulty


def _submit_key(job: SimJob) -> float:
    return job.submit


# -- central runs without failures, on columns (llm_sched.sim.columns) ----------------------------------

class JobColumns(Rows[SimJob]):
    """Jobs as numpy columns, sorted by submission (stable): what a tuple of :class:`SimJob` holds,
    in a few bytes a job. Read back, a whole time is an int, as the SWF reader gives it, so the jobs
    equal ``from_trace(load_trace(...).jobs)`` sorted."""

    __slots__ = ("job_id", "submit", "run", "estimate", "nodes", "kind", "walltime")

    def __init__(self, job_id: np.ndarray, submit: np.ndarray, run: np.ndarray, estimate: np.ndarray,
                 nodes: np.ndarray, kind: str = "", walltime: np.ndarray | None = None) -> None:
        import numpy as np

        order = np.argsort(submit, kind="stable")
        if bool((order[1:] > order[:-1]).all()):
            order = None  # already in order: no copies
        pick = (lambda a: a) if order is None else (lambda a: a[order])
        self.job_id = pick(np.asarray(job_id, dtype=np.int64))
        self.submit = pick(np.asarray(submit, dtype=np.float64))
        self.run = pick(np.asarray(run, dtype=np.float64))
        self.estimate = pick(np.asarray(estimate, dtype=np.float64))
        self.nodes = pick(np.asarray(nodes, dtype=np.int64))
        self.kind = kind
        self.walltime = None if walltime is None else pick(np.asarray(walltime, dtype=np.float64))
        limit: Column = Same(math.inf) if self.walltime is None else Numbers(self.walltime, True)
        columns = (Numbers(self.job_id), Numbers(self.submit, True), Numbers(self.run, True),
                   Numbers(self.estimate, True), Numbers(self.nodes), Same(kind), limit)
        super().__init__(_sim_job, columns, len(self.job_id))


_sim_job = cast(Callable[[tuple[object, ...]], SimJob], partial(tuple.__new__, SimJob))
_outcome = cast(Callable[[tuple[object, ...]], JobOutcome], partial(tuple.__new__, JobOutcome))


@dataclass(frozen=True, slots=True, eq=False)
class JobTable:
    """A central run without failures as numpy columns over its accepted jobs, in submission order:
    each started once (``start``) and completed (``end``), on the pools ``where_names[where]``.
    ``index``: their positions in ``SimRun.jobs`` (None: every job was accepted). ``log``: the run's
    records in the order they happened (:class:`~llm_sched.sim.baselines.PoolSchedule`)."""

    index: np.ndarray | None
    job_id: np.ndarray
    submit: np.ndarray
    start: np.ndarray
    end: np.ndarray
    nodes: np.ndarray
    where: np.ndarray
    where_names: tuple[str, ...]
    kind: Column
    log: np.ndarray

    def __len__(self) -> int:
        return len(self.job_id)


class _EventLog(FrozenRows[SimEvent]):
    """The events of a :class:`JobTable`'s run, made from its log when read."""

    __slots__ = ("_table", "_n", "_all")

    def __init__(self, table: JobTable) -> None:
        self._table = table
        self._n = 4 * len(table)  # submit, decision, start and end of each job
        self._all: tuple[SimEvent, ...] | None = None

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[SimEvent]:
        t = self._table
        make = _event
        m = len(t)
        position = t.index.tolist() if t.index is not None else range(m)
        submit, start, end, nodes = t.submit.tolist(), t.start.tolist(), t.end.tolist(), t.nodes.tolist()
        arrived = 0
        for a in range(0, len(t.log), SLICE):
            for record in t.log[a:a + SLICE].tolist():
                i, kind = record >> 2, record & 3
                if kind == 0:
                    for k in range(arrived, i):
                        yield make((submit[k], "submit", -1, -1, position[k], nodes[k], -1))
                    arrived = i
                elif kind == 1:
                    yield make((start[i], "decision", -1, -1, position[i], 0, -1))
                    yield make((start[i], "start", -1, -1, position[i], nodes[i], -1))
                else:
                    yield make((end[i], "end", -1, -1, position[i], nodes[i], -1))

    @overload
    def __getitem__(self, index: int) -> SimEvent: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[SimEvent, ...]: ...

    def __getitem__(self, index: int | slice) -> SimEvent | tuple[SimEvent, ...]:
        if self._all is None:
            self._all = tuple(self)
        return self._all[index]


def _replay(jobs: Sequence[SimJob], cluster: PoolSplit, config: SimConfig, schedule: FailureSchedule,
            context: str) -> SimRun | None:
    """The central scheduler's run without outages or deadline, as columns; None when the jobs do
    not fit columns (an id beyond 64 bits, a time beyond 2**53: the event-driven run takes them)."""
    import numpy as np

    from llm_sched.sim.baselines import schedule_pools

    if isinstance(jobs, JobColumns):
        shown: Sequence[SimJob] = jobs
        job_id, submit, run_time, estimate, nodes = jobs.job_id, jobs.submit, jobs.run, jobs.estimate, jobs.nodes
        kinds: Column = Same(jobs.kind)
        first = jobs[0].submit if len(jobs) else 0.0
    else:
        ordered = tuple(sorted(jobs, key=_submit_key))
        shown = ordered
        try:
            job_id = np.array([j.job_id for j in ordered], dtype=np.int64)
            times = np.array([(j.submit, j.run, j.estimate) for j in ordered], dtype=np.float64).reshape(-1, 3)
            nodes = np.array([j.nodes for j in ordered], dtype=np.int64)
        except (OverflowError, TypeError, ValueError):
            return None
        if not bool((np.abs(times) < 2.0**53).all()):
            return None  # NaN, or beyond exact floats
        submit, run_time, estimate = times[:, 0] + 0.0, times[:, 1] + 0.0, times[:, 2] + 0.0
        kinds = Listed([j.kind for j in ordered])
        first = ordered[0].submit if ordered else 0.0
    accepted = nodes <= cluster.nodes
    index = None
    if not bool(accepted.all()):
        index = np.flatnonzero(accepted)
        job_id, submit, run_time, estimate, nodes = (a[index] for a in (job_id, submit, run_time, estimate, nodes))
        if isinstance(kinds, Listed):
            kinds = Listed([kinds.values[i] for i in index.tolist()])
    pools = [len(r) for r in cluster.pools()]
    rank = None
    if config.policy == "sjf":  # the queue by estimate, ties in submission order, as _Run.rank
        rank = np.empty(len(estimate), dtype=np.int64)
        rank[np.argsort(estimate, kind="stable")] = np.arange(len(estimate))
    made = schedule_pools(submit.tolist(), run_time.tolist(), estimate.tolist(), nodes.tolist(), pools,
                          config.policy == "easy", None if rank is None else rank.tolist())
    start = np.frombuffer(made.start, dtype=np.float64)
    end = start + run_time
    # Where each job ran: a code into the pool names, then the distinct spreads ("p0+p1").
    names = [f"p{p}" for p in range(cluster.agents)]
    spreads: dict[str, int] = {}
    code = [spreads.setdefault("+".join([names[p] for p, _ in alloc]), len(names) + len(spreads))
            for alloc in made.spread]
    place = np.array(made.place, dtype=np.int64)
    where = place.copy()
    where[place < 0] = np.array(code, dtype=np.int64)[-1 - place[place < 0]]
    log = np.frombuffer(made.log, dtype=np.int64)
    table = JobTable(index, job_id, submit, start, end, nodes, where, (*names, *spreads), kinds, log)
    engine_events = made.events
    del made
    m = len(job_id)
    outcomes = Rows(_outcome, (Numbers(job_id), Numbers(submit), Numbers(start), Numbers(end),
                                Numbers(nodes), Coded(where, table.where_names)), m)
    if index is None:
        rejected: tuple[int, ...] = ()
    else:
        rejected = tuple(shown[i].job_id for i in np.flatnonzero(~accepted).tolist())
    return SimRun(
        config=config,
        cluster=cluster,
        schedule=schedule,
        jobs=shown,
        outcomes=outcomes,
        incomplete=(),
        rejected=rejected,
        events=_EventLog(table),
        start_time=first,
        end_time=float(end.max()) if m else first,
        engine_events=engine_events,
        quorum=1,
        context=context,
        public_keys=tuple(PublicKeys.of(context, {}).table()),
        table=table,
    )


@dataclass(slots=True)
class _KeptProfile:
    """Conservative backfilling's free-node profile after a pass at ``at``, with the reservations of
    the first ``reserved`` jobs of ``queue`` in it (the pass stopped where nothing more could start),
    and what it was built from.

    A pass rebuilds the profile and reserves the whole queue again. When nothing but arrivals came
    since (the same running jobs, the same free nodes, the old queue still in front) and every running
    job's estimated end is still to come, that rebuild gives this profile from ``now`` on:
    its steps after ``at`` are estimated ends and reservation ends, all later than ``now``, and the
    level before them is the same. Each old job's earliest start is then what it was, later than
    ``now`` (a window that failed from ``at`` failed at a dip after ``now``, which the window from
    ``now`` also covers), so the pass need only reserve the jobs after them. The results are the same as
    with the rebuild (tests/sim/test_central_policies.py), in far less time on a long queue."""

    at: float
    free: int
    running: list[tuple[float, int, int]]
    queue: list[int]
    reserved: int  # the first jobs of ``queue`` with their reservation in the profile (a pass may stop early)
    times: list[float]
    level: list[int]

    def holds(self, now: float, free: int, running: list[tuple[float, int, int]], queue: list[int]) -> bool:
        if free != self.free or running != self.running or queue[: len(self.queue)] != self.queue:
            return False
        return not running or running[0][0] > now  # sorted: every estimated end still to come


def _may_start_now(times: list[float], level: list[int], waiting: Sequence[int], width: Sequence[int],
                   estimate: Sequence[float]) -> bool:
    """Whether any job of ``waiting`` could still start now on this free-node profile.

    Reservations only take nodes away, so a job that cannot start now on this profile cannot start
    now once the jobs before it have their reservations too. To start now, a job of width w needs w
    nodes free from now until its estimated end: ``now + estimate`` no later than the first step at
    which the profile falls below w (the same sum and comparison as :func:`_earliest`'s)."""
    free, now = level[0], times[0]
    if free <= 0:
        return False
    drops = []  # (level, time): where the profile first falls below each lower level, in time order
    low = free
    for k in range(1, len(times)):
        if level[k] < low:
            low = level[k]
            drops.append((low, times[k]))
            if low <= 0:
                break
    for i in waiting:
        w = width[i]
        if w > free:
            continue
        for low, at in drops:
            if low < w:
                if now + estimate[i] <= at:
                    return True
                break
        else:
            return True  # w nodes stay free for ever
    return False


# A pass asks :func:`_may_start_now` after this many reservations: often enough to stop soon after the
# last job that starts (most of a long queue's reservations come after it), rarely enough to cost little.
_STOP_CHECK_EVERY = 8


def _earliest(times: list[float], level: list[int], need: int, length: float) -> int:
    """The first step of a free-node profile from which ``need`` nodes stay free for ``length``
    seconds (the profile's last level lasts for ever and is at least ``need``)."""
    j, n = 0, len(times)
    while True:
        while level[j] < need:
            j += 1
        until = times[j] + length
        k = j + 1
        while k < n and times[k] < until and level[k] >= need:
            k += 1
        if k == n or times[k] >= until:
            return j
        j = k  # the profile dips below the need at step k: no start before it fits


def _reserve(times: list[float], level: list[int], j: int, need: int, length: float) -> None:
    """Take ``need`` nodes from the profile from step ``j``'s time for ``length`` seconds."""
    until = times[j] + length
    if until <= times[j]:  # estimated at 0 s: it still holds its nodes until just after it starts
        until = math.nextafter(times[j], math.inf)
    k = bisect_left(times, until)
    if k == len(times) or times[k] != until:
        times.insert(k, until)
        level.insert(k, level[k - 1])
    for m in range(j, k):
        level[m] -= need


class _Run:
    """Simulation state; per-job data in parallel lists indexed by submission position."""

    def __init__(self, jobs: list[SimJob], cluster: PoolSplit, config: SimConfig,
                 schedule: FailureSchedule, context: str, byzantine: dict[int, str],
                 adviser: PoolAdviser | None = None) -> None:
        self.jobs = jobs
        self.cluster = cluster
        self.config = config
        self.schedule = schedule
        policy = config.policy
        self.central = policy in CENTRAL
        self.backfill = policy in ("easy", "agents")  # EASY: a reservation for the head alone
        self.conservative = policy == "conservative"  # a reservation for every waiting job
        k = cluster.agents
        self.k = k
        self.quorum = 1 if self.central else byzantine_quorum(k)
        # The agents, each with its own key; their decisions are measured by the engine. ``delay``:
        # the latency of the latest decision, what backfilling expects the next one to take.
        self.context = context
        self.agents = [] if self.central else [PoolAgent(p, context, byzantine.get(p)) for p in range(k)]
        self.members = [a.name for a in self.agents]
        # A model chooses the awards (llm, hybrid): voters then check that the award is valid.
        self.adviser = adviser if not self.central and config.advice != "heuristic" else None
        self.open_choice = self.adviser is not None
        self.keys = PublicKeys.of(context, {a.name: a.key for a in self.agents})
        self.delay = 0.0
        self.decision_time = 0.0
        self.decision_bytes = 0
        self.decision_rounds = 0
        self.awards: list[CertifiedAward] = []
        self.t0 = jobs[0].submit if jobs else 0.0
        # A hand-made schedule may start before the first job: the clock starts at the earlier.
        self.engine = Engine(min([self.t0, *(o.start for o in schedule.outages)]))
        n = len(jobs)
        self.submit = [j.submit for j in jobs]
        self.run_time = [j.run for j in jobs]
        self.estimate = [j.estimate for j in jobs]
        self.timed_out: list[bool] | None = None
        if config.walltime_kill:
            # A job still running at its walltime is killed then: it runs at most that long, and
            # the scheduler, knowing the limit, never expects it to run longer.
            self.timed_out = [j.run > j.walltime for j in jobs]
            self.run_time = [min(j.run, j.walltime) for j in jobs]
            self.estimate = [min(j.estimate, j.walltime) for j in jobs]
        self.width = [j.nodes for j in jobs]
        # SJF's queue order: by the user's estimate, ties in submission order.
        self.rank: list[int] | None = None
        if policy == "sjf":
            self.rank = [0] * n
            for r, i in enumerate(sorted(range(n), key=self.estimate.__getitem__)):
                self.rank[i] = r
        self.accepted = [j.nodes <= cluster.nodes for j in jobs]
        kind_index = {kind: i for i, kind in enumerate(KINDS)}
        self.kind = [kind_index.get(j.kind, -1) for j in jobs]
        self.start = [0.0] * n
        self.end = [0.0] * n
        self.est_end = [0.0] * n
        self.attempt = [0] * n
        self.alive = [False] * n
        self.done = [False] * n
        self.job_nodes: list[list[int]] = [[]] * n  # replaced, never mutated in place
        self.job_pools: list[tuple[tuple[int, int], ...]] = [()] * n
        self.remaining = sum(self.accepted)
        # Cluster state.
        pools = cluster.pools()
        self.pool_nodes = [list(r) for r in pools]
        self.size = [len(r) for r in pools]
        self.node_pool = [p for p, r in enumerate(pools) for _ in r]
        self.node_job = [-1] * cluster.nodes
        # Outages in progress per node and per pool (counts: hand-made schedules may overlap).
        self.node_out = [0] * cluster.nodes
        self.pool_out = [0] * k
        self.node_down = [False] * cluster.nodes
        self.pool_down = [False] * k
        self.free = [list(reversed(r)) for r in pools]  # popped from the end: lowest node first
        self.names = [f"p{p}" for p in range(k)]
        self.ok = [0] * k
        self.bad = [0] * k
        kinds = [PoolSplit.pool_kind(p) for p in range(k)]
        neutral = [specialisation(kinds[p], "") for p in range(k)]
        self.spec = [[specialisation(kinds[p], kind) for p in range(k)] for kind in KINDS] + [neutral]
        # Decider state. A central scheduler runs beside pool ``active``; its hot standby (if any)
        # beside the last pool, and takes over ``config.failover`` seconds after the active one fails.
        self.groups: dict[int, tuple[int, ...]] = {}  # active partitions by cause
        self.island = [0] * k
        self.up = True
        self.active = 0
        self.standby: int | None = k - 1 if self.central and config.failover is not None and k > 1 else None
        self.failing_over = False
        self.queue_gone = False  # queue_on_failure "lose": lost while no replica of the scheduler is up
        self.side: list[int] = list(range(k))
        self.side_set = set(self.side)
        self.unnoticed: dict[int, list[int]] = {}
        self.deferred: list[int] = []
        self.lost_queue: list[int] = []
        # Scheduling state.
        self.queue: list[int] = []
        self.running: list[tuple[float, int, int]] = []  # (estimated end, job, width), sorted
        self.settled = 0
        self.kept: _KeptProfile | None = None  # conservative backfilling's profile after its last pass
        self.next_arrival = 0
        self.events: list[SimEvent] = []
        self.log = self.events.append
        self.on_end = self._on_end
        self.on_arrivals = self._on_arrivals

    # -- driving -------------------------------------------------------------------------------
    def run(self) -> SimRun:
        engine = self.engine
        before = self.adviser.stats if self.adviser is not None else None
        if self.adviser is not None:
            self.adviser.begin_run()
        order = [i for i, ok in enumerate(self.accepted) if ok]
        self.order = order
        if order:
            engine.schedule(self.submit[order[0]], self.on_arrivals, None)
        for o in self.schedule.outages:
            # Scheduled in this order, so at equal times a start runs before its detection, and
            # a detection before its end.
            engine.schedule(o.start, self._on_outage_start, o)
            engine.schedule(o.detect, self._on_outage_detect, o)
            engine.schedule(o.end, self._on_outage_end, o)
        deadline = self.config.deadline
        until = None if deadline is None else self.t0 + deadline
        count = engine.run(until=until, settle=self._on_pass)
        if until is None and self.remaining:
            raise RuntimeError(f"{self.remaining} jobs never completed with no deadline (simulator bug)")
        jobs = self.jobs
        done_at = [self.end[i] for i in order if self.done[i]]
        end_time = until if until is not None else max(done_at, default=self.t0)
        make = cast(Callable[[tuple[object, ...]], JobOutcome], partial(tuple.__new__, JobOutcome))
        names, pools = self.names, self.job_pools
        outcomes = tuple(
            make((jobs[i].job_id, self.submit[i], self.start[i], self.end[i], self.width[i],
                  "+".join([names[p] for p, _ in pools[i]])))
            for i in order if self.done[i]
        )
        return SimRun(
            config=self.config,
            cluster=self.cluster,
            schedule=self.schedule,
            jobs=tuple(jobs),
            outcomes=outcomes,
            incomplete=tuple(jobs[i].job_id for i in order if not self.done[i]),
            rejected=tuple(j.job_id for j, ok in zip(jobs, self.accepted) if not ok),
            events=tuple(self.events),
            start_time=self.t0,
            end_time=end_time,
            engine_events=count,
            quorum=self.quorum,
            attempts_of={jobs[i].job_id: a for i, a in enumerate(self.attempt) if a > 1},
            decision_time=self.decision_time,
            decision_bytes=self.decision_bytes,
            decision_rounds=self.decision_rounds,
            awards=tuple(self.awards),
            context=self.context,
            public_keys=tuple(self.keys.table()),
            advice=() if before is None or self.adviser is None else self.adviser.stats.since(before),
        )

    # -- jobs ----------------------------------------------------------------------------------
    def _on_arrivals(self, _: object) -> None:
        now = self.engine.now
        order, submit, queue, log = self.order, self.submit, self.queue, self.log
        k, n = self.next_arrival, len(order)
        while k < n and submit[order[k]] <= now:
            i = order[k]
            queue.append(i)
            log(_event((now, "submit", -1, -1, i, self.width[i], -1)))
            k += 1
        self.next_arrival = k
        if k < n:
            self.engine.schedule(submit[order[k]], self.on_arrivals, None)

    def _on_end(self, data: tuple[int, int]) -> None:
        i, attempt = data
        if not self.alive[i] or self.attempt[i] != attempt:
            return  # this attempt was killed
        now = self.engine.now
        self.alive[i] = False
        self.done[i] = True
        self.end[i] = now
        self.remaining -= 1
        self._release(i)
        for p, _ in self.job_pools[i]:
            self.ok[p] += 1
        if self.timed_out is not None and self.timed_out[i]:
            self.log(_event((now, "timeout", -1, -1, i, self.width[i], -1)))
        self.log(_event((now, "end", -1, -1, i, self.width[i], -1)))

    def _release(self, i: int) -> None:
        """Give job ``i``'s nodes back (to the free lists when they are up) and forget it as running."""
        node_job, node_down, node_pool, pool_down, free = (
            self.node_job, self.node_down, self.node_pool, self.pool_down, self.free)
        for node in self.job_nodes[i]:
            node_job[node] = -1
            p = node_pool[node]
            if not node_down[node] and not pool_down[p]:
                free[p].append(node)
        self.job_nodes[i] = []
        running = self.running
        del running[bisect_left(running, (self.est_end[i], i))]
        self.settled = 0

    def _kill(self, i: int, cause: int) -> None:
        now = self.engine.now
        self.alive[i] = False
        self.unnoticed.setdefault(cause, []).append(i)
        for p, _ in self.job_pools[i]:
            self.bad[p] += 1
        self.log(_event((now, "kill", -1, -1, i, self.width[i], cause)))

    def _notice(self, cause: int) -> None:
        """The decider learns of outage ``cause``: its killed jobs release their nodes and requeue."""
        killed = self.unnoticed.pop(cause, None)
        if not killed:
            return
        now = self.engine.now
        for i in killed:
            self._release(i)
            self.log(_event((now, "requeue", -1, -1, i, self.width[i], cause)))
        self.queue[0:0] = sorted(killed)  # to the front, in submission order

    # -- outages -------------------------------------------------------------------------------
    def _on_outage_start(self, o: Outage) -> None:
        now, log = self.engine.now, self.log
        self.settled = 0
        if o.kind == "agent":
            p = o.members[0]
            self.pool_out[p] += 1
            self.pool_down[p] = True
            self.free[p].clear()
            log(_event((now, "agent_fail", p, -1, -1, self.size[p], o.cause)))
            node_job, alive = self.node_job, self.alive
            for node in self.pool_nodes[p]:
                j = node_job[node]
                if j >= 0 and alive[j]:
                    self._kill(j, o.cause)
        elif o.kind == "node":
            node = o.members[0]
            p = self.node_pool[node]
            self.node_out[node] += 1
            was_down = self.node_down[node]
            self.node_down[node] = True
            log(_event((now, "node_fail", p, node, -1, 1, o.cause)))
            j = self.node_job[node]
            if j >= 0 and self.alive[j]:
                self._kill(j, o.cause)
            elif j < 0 and not self.pool_down[p] and not was_down:
                self.free[p].remove(node)
        else:
            self.groups[o.cause] = o.members
            for a in o.members:
                log(_event((now, "cut", a, -1, -1, -1, o.cause)))
        self._refresh()

    def _on_outage_detect(self, o: Outage) -> None:
        now = self.engine.now
        for a in o.members if o.kind != "node" else (self.node_pool[o.members[0]],):
            self.log(_event((now, "detect", a, o.members[0] if o.kind == "node" else -1, -1, -1, o.cause)))
        if o.kind == "partition":
            return  # suspected, but nothing was lost: no job to reschedule
        if self._can_notice():
            self._notice(o.cause)
        else:
            self.deferred.append(o.cause)

    def _on_outage_end(self, o: Outage) -> None:
        now, log = self.engine.now, self.log
        self.settled = 0
        if o.kind == "agent":
            p = o.members[0]
            self.pool_out[p] -= 1
            if not self.pool_out[p]:
                self.pool_down[p] = False
                node_job, node_down = self.node_job, self.node_down
                self.free[p] = [n for n in reversed(self.pool_nodes[p]) if node_job[n] < 0 and not node_down[n]]
            log(_event((now, "agent_recover", p, -1, -1, self.size[p], o.cause)))
        elif o.kind == "node":
            node = o.members[0]
            p = self.node_pool[node]
            self.node_out[node] -= 1
            if not self.node_out[node]:
                self.node_down[node] = False
                if self.node_job[node] < 0 and not self.pool_down[p]:
                    self.free[p].append(node)
            log(_event((now, "node_recover", p, node, -1, 1, o.cause)))
        else:
            del self.groups[o.cause]
            for a in o.members:
                log(_event((now, "heal", a, -1, -1, -1, o.cause)))
        self._refresh()
        self._catch_up()

    def _catch_up(self) -> None:
        """The decider, up again, learns of the outages detected while it could not."""
        if self.deferred and self._can_notice():
            deferred, self.deferred = self.deferred, []
            for cause in deferred:
                self._notice(cause)

    def _other(self) -> int:
        """The scheduler replica that is not active (with a standby)."""
        return self.standby if self.active == 0 else 0  # type: ignore[return-value]

    def _on_failover(self, _: object) -> None:
        """The standby takes over if the active scheduler is still down and the standby is up."""
        self.failing_over = False
        other = self._other()
        if self.pool_down[self.active] and not self.pool_down[other]:
            self.active = other
            self.settled = 0
            self.log(_event((self.engine.now, "failover", other, -1, -1, -1, -1)))
        self._refresh()
        self._catch_up()

    def _can_notice(self) -> bool:
        if self.central:
            return self.up
        return not all(self.pool_down)

    def _refresh(self) -> None:
        """Recompute who can decide, and on which pools, after an outage starts or ends."""
        k, down = self.k, self.pool_down
        island = [0] * k
        if self.groups:
            # Overlapping cut-off groups form one island; the agents in no group are island 0.
            for label, members in enumerate(self.groups.values(), start=1):
                merged = {island[a] for a in members if island[a]}
                for a in range(k):
                    if island[a] in merged:
                        island[a] = label
                for a in members:
                    island[a] = label
        self.island = island
        home: int | None
        now = self.engine.now
        if self.central:
            up = not down[self.active]
            if not up and self.standby is not None and not self.failing_over and not down[self._other()]:
                self.failing_over = True
                self.engine.schedule(now + cast(float, self.config.failover), self._on_failover, None)
            home = island[self.active]
            side = [p for p in range(k) if not down[p] and island[p] == home] if up else []
        else:
            live: dict[int, int] = {}
            for a in range(k):
                if not down[a]:
                    live[island[a]] = live.get(island[a], 0) + 1
            home = next((lab for lab, c in live.items() if c >= self.quorum), None)
            up = home is not None
            side = [p for p in range(k) if not down[p] and island[p] == home] if up else []
        if up != self.up:
            self.log(_event((now, "decider_up" if up else "decider_down", -1, -1, -1, len(side), -1)))
        if self.central and self.config.queue_on_failure == "lose":
            # The queue lives in the schedulers' memory: lost once no replica of it is up (a hot
            # standby holds a copy), resubmitted when one is deciding again.
            held = self.standby is not None and not down[self._other()]
            if not up and not held and not self.queue_gone:
                self.queue_gone = True
                if self.queue:
                    self.log(_event((now, "queue_lost", -1, -1, -1, len(self.queue), -1)))
                    self.lost_queue.extend(self.queue)
                    self.queue.clear()
            elif up and self.queue_gone:
                self.queue_gone = False
                for i in self.lost_queue:
                    self.log(_event((now, "resubmit", -1, -1, i, self.width[i], -1)))
                self.queue.extend(self.lost_queue)
                self.lost_queue = []
        self.up = up
        self.side = side
        self.side_set = set(side)

    # -- scheduling ----------------------------------------------------------------------------
    def _on_pass(self) -> None:
        queue = self.queue
        if not self.up or not queue:
            return
        free, width = self.free, self.width
        total = 0
        for p in self.side:
            total += len(free[p])
        if self.rank is not None:
            queue.sort(key=self.rank.__getitem__)  # nearly sorted already: linear for timsort
        if self.conservative:
            self._conservative(total)
            return
        started = 0
        blocked = False
        while started < len(queue) and width[queue[started]] <= total:
            i = queue[started]
            if not self._place(i):
                blocked = True
                break
            total -= width[i]
            started += 1
        if started:
            del queue[:started]
            self.settled = 0
        if self.backfill and queue and total > 0 and not blocked:
            self._backfill(max(1, self.settled), total)
        self.settled = len(queue)

    def _backfill(self, first: int, free: int) -> None:
        """EASY: reserve for the blocked head, start later jobs that cannot delay it (as baselines)."""
        queue, width, estimate = self.queue, self.width, self.estimate
        if first >= len(queue):
            return
        begin = self.engine.now + self.delay  # when a job decided now would start
        shadow, extra = self._reservation(width[queue[0]], free)
        candidates = [
            i for i in queue[first:]
            if width[i] <= free and (begin + estimate[i] <= shadow or width[i] <= extra)
        ]
        for i in candidates:
            w = width[i]
            if w > free:
                continue
            if begin + estimate[i] <= shadow:
                pass
            elif w <= extra:
                extra -= w
            else:
                continue
            if not self._place(i):
                break
            queue.remove(i)
            free -= w

    def _conservative(self, free: int) -> None:
        """Conservative backfilling: each waiting job in queue order gets the earliest start, by
        estimates, that delays none of the reservations before it; those whose start is now start.

        The profile of free nodes is rebuilt at each pass from the running jobs' estimated ends (so
        a job that ends early moves every reservation up). A job wider than the nodes its side can
        ever get back gets no reservation, as EASY's head then gets none.

        A pass stops reserving once no job left could start now (:func:`_may_start_now`): what it
        would reserve after that starts nothing in this pass, and the next pass reserves it again
        anyway (or, after arrivals alone, goes on from where this one stopped). The schedule is the
        same as when every job is reserved every time; on a long queue most reservations are saved.
        """
        now, queue, width, estimate = self.engine.now, self.queue, self.width, self.estimate
        split, side = bool(self.groups), self.side_set
        kept, self.kept = self.kept, None
        if not split and kept is not None and kept.holds(now, free, self.running, queue):
            # Only jobs arrived since the last pass: the jobs before them get the reservations they
            # had, none of which starts now (see _KeptProfile); the rest are reserved after them.
            times, level, first = kept.times, kept.level, kept.reserved
            times[0] = now
        else:
            times, level, first = [now], [free], 0  # free nodes: level[j] from times[j] until times[j + 1]
            for est_end, i, w in self.running:
                if split:
                    w = sum(c for p, c in self.job_pools[i] if p in side)
                # A job past its estimate still holds its nodes: they come back just after now, not now.
                t = est_end if est_end > now else math.nextafter(now, math.inf)
                if t == times[-1]:
                    level[-1] += w
                else:
                    times.append(t)
                    level.append(level[-1] + w)
        most = level[-1]
        started: list[int] = []
        placed_all = True
        pos, check_at = first, first
        while pos < len(queue):
            if pos == check_at:
                # Nothing later can start now: the rest is reserved when it matters (a later pass).
                if not _may_start_now(times, level, queue[pos:], width, estimate):
                    break
                check_at += _STOP_CHECK_EVERY
            i = queue[pos]
            w = width[i]
            if w <= most:
                j = _earliest(times, level, w, estimate[i])
                if j == 0:
                    if not self._place(i):
                        placed_all = False
                        break
                    started.append(pos)
                _reserve(times, level, j, w, estimate[i])
            pos += 1
        if started:
            for p in reversed(started):
                del queue[p]
        if placed_all and not split:
            self.kept = _KeptProfile(now, level[0], list(self.running), list(queue), pos - len(started), times, level)

    def _reservation(self, need: int, free: int) -> tuple[float, int]:
        """Shadow time and extra nodes for the head, counting the nodes the decider's side will get back.

        A head that cannot be served even when every running job has ended (nodes down, or cut
        off) gets no reservation (shadow time +inf): anything that fits may start meanwhile.
        """
        available = free
        split = bool(self.groups)
        side = self.side_set
        for est_end, i, w in self.running:
            if split:
                w = sum(c for p, c in self.job_pools[i] if p in side)
            available += w
            if available >= need:
                return max(est_end, self.engine.now + self.delay), available - need
        return math.inf, 0

    def _place(self, i: int) -> bool:
        """Decide where job ``i`` runs and start it; False when the agents decided nothing."""
        need = self.width[i]
        free = self.free
        alloc: list[tuple[int, int]] = []
        if self.central:
            # Topology-aware, as Slurm's best fit on leaf switches: the pool with the fewest free
            # nodes that can hold the whole job (ties: lowest id), else pools in id order.
            best = -1
            for p in self.side:
                f = len(free[p])
                if f >= need and (best < 0 or f < len(free[best])):
                    best = p
            if best >= 0:
                alloc.append((best, need))
            else:
                for p in self.side:
                    c = min(need, len(free[p]))
                    if c:
                        alloc.append((p, c))
                        need -= c
                        if not need:
                            break
            self.log(_event((self.engine.now, "decision", -1, -1, i, 0, -1)))
        else:
            decided = self._award(i, need)
            if decided is None:
                return False
            alloc = list(decided)
        self._start(i, alloc)
        return True

    def _award(self, i: int, need: int) -> Award | None:
        """The agents decide job ``i``'s award through the engine: the live agents on the deciding
        side bid, the candidate is the award by recomputed scores, every one of them votes on it with
        a signed vote, and the protocol runs among all ``k`` agents (the others are silent). Sets the
        decision's latency (``delay``) from the protocol's simulated time; None when it did not pass."""
        free, spec = self.free, self.spec[self.kind[i]]
        view = PoolView([len(f) for f in free], self.size, self.ok, self.bad, spec, self.side)
        voters = [self.agents[p] for p in self.side]
        bids = [b for b in (a.bid(view, need) for a in voters) if b is not None]
        now = self.engine.now
        for b in bids:  # a bid's own score ranks nothing; one that over-claims is evidence against its agent
            if b.score - view.score(b.pool, need) > OVERCLAIM_TOLERANCE:
                self.log(_event((now, "overclaim", b.pool, -1, i, -1, -1)))
        job_id, round_no = str(self.jobs[i].job_id), self.attempt[i] + 1
        if self.adviser is None:
            candidate = award(view, need, bids)
        else:
            # The round's leader asks its model (the one model every agent of the run shares).
            kind = KINDS[self.kind[i]] if self.kind[i] >= 0 else ""
            proposal = self.adviser.propose(view, need, bids, job_id, kind)
            candidate = proposal.award
            self.log(_event((now, "advice", -1, -1, i, VIAS.index(proposal.via), -1)))
        pool, nodes = placement_of(candidate)
        digest = placement_digest(job_id, pool, nodes)
        # Each decision is one protocol instance; its first leader rotates with the decision number,
        # as Tendermint's proposer rotates with the height, so a faulty agent leads 1 in k of them.
        shift = len(self.awards) % self.k
        members = self.members[shift:] + self.members[:shift]
        ballots = [(a.name, a.ballot(view, need, bids, candidate, job_id, round_no, digest, self.members,
                                     self.open_choice)) for a in voters]
        # A faulty agent runs its honest core (what its own check says), wrapped to lie in what it sends.
        live_faulty = {a.name: fault for a in voters
                       if (fault := a.protocol_fault(view, need, bids, candidate, self.open_choice)) is not None}
        result = tally(self.config.protocol, members, PlacementValue(job_id, nodes, ""), ballots, self.keys,
                       round_no, digest, f"{self.context}/{job_id}/{round_no}", byzantine=live_faulty)
        for refusal in result.screened.refused:
            self.log(_event((now, "refused", int(refusal.sender[1:]), -1, i, 1, -1)))
        ran = result.ran
        latency = ran.sim_time * self.config.hop_delay
        self.decision_bytes += ran.bytes
        if result.certificate is None or not candidate:
            # Nothing starts; the job keeps its place, and the next event (an end, a recovery, an
            # arrival) brings the next pass: with the same state the same votes would fail again.
            self.log(_event((now, "undecided", -1, -1, i, ran.messages, -1)))
            return None
        self.delay = latency
        self.decision_time += latency
        self.decision_rounds += ran.rounds
        self.log(_event((now, "decision", -1, -1, i, ran.messages, -1)))
        self.awards.append(CertifiedAward(job_id, round_no, pool, nodes, result.certificate))
        return candidate

    def _start(self, i: int, alloc: list[tuple[int, int]]) -> None:
        free, node_job, side = self.free, self.node_job, self.side_set
        nodes: list[int] = []
        for p, c in alloc:
            if p not in side:
                raise CapacityError(f"job #{i} placed on pool {p}, outside the decider's side {sorted(side)}")
            lst = free[p]
            taken = lst[-c:]
            del lst[-c:]
            nodes += taken
        w = self.width[i]
        if len(nodes) != w:
            raise CapacityError(f"job #{i} needs {w} nodes, got {len(nodes)}")
        node_down = self.node_down
        for node in nodes:
            if node_job[node] >= 0 or node_down[node]:
                state = "down" if node_down[node] else f"held by job #{node_job[node]}"
                raise CapacityError(f"node {node} given to job #{i} while {state}")
            node_job[node] = i
        t = self.engine.now + (0.0 if self.central else self.delay)
        self.attempt[i] += 1
        self.alive[i] = True
        self.start[i] = t
        self.est_end[i] = t + self.estimate[i]
        self.job_nodes[i] = nodes
        self.job_pools[i] = tuple(alloc)
        insort(self.running, (self.est_end[i], i, w))
        self.engine.schedule(t + self.run_time[i], self.on_end, (i, self.attempt[i]))
        self.log(_event((t, "start", -1, -1, i, w, -1)))
