"""Typed run events on one stream.

Everything that happens in a run is an event; the console, the JSONL run log and the metrics all
read this stream. Events carry a sequence number (deterministic) and a wall-clock timestamp
(not deterministic, excluded when two runs are compared). Each line of the JSONL log also carries
the hash chaining it to the line before (:mod:`llm_sched.store.event_chain`), so a damaged log is found.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llm_sched.core.decisions import Decision, Proposal, Vote
from llm_sched.core.model import Job, Placement
from llm_sched.core.records import CallRecord
from llm_sched.scrub import Scrubber
from llm_sched.store.event_chain import GENESIS, HASH_FIELD, scan, seal
from llm_sched.store.event_chain import (
    EventLogError as EventLogError,  # defined with the chain it guards; used from here
)

# Fields that differ between two runs with the same seed and cassette (times measured, not simulated).
# Signatures and key epochs too: every process of a run signs with fresh keys (stored with the run).
NONDETERMINISTIC_FIELDS = frozenset({"ts", "latency_s", "wall_s", "signature", "key_epoch"})


class RunEvent(BaseModel):
    """Base of every event: ``kind`` names the type, ``seq`` orders the stream."""

    model_config = ConfigDict(frozen=True)

    kind: str
    seq: int = -1
    ts: float = 0.0


class LLMCallEvent(RunEvent):
    """One structured LLM call, whatever its outcome."""

    kind: Literal["llm_call"] = "llm_call"
    record: CallRecord


class ScenarioStarted(RunEvent):
    kind: Literal["scenario_started"] = "scenario_started"
    scenario: str
    seed: int
    provider: str
    # Where the answers come from (llm_sched.llm.factory.LLMSource): live model, cassette (recorded
    # from what) or heuristics.
    source: dict[str, Any] = {}
    agents: dict[str, str]  # agent id -> specialty
    n: int
    f: int
    quorum: int
    method: str = "placement"  # "placement" or "bidding"
    weighted: bool = False
    pools: dict[str, str] = {}  # agent id -> the pool it runs (bidding)
    protocol: str | None = None  # the protocol that decides each vote round
    executor: str = "sim"  # where committed jobs run: sim (the simulated clock), local or slurm


class PhaseStarted(RunEvent):
    kind: Literal["phase_started"] = "phase_started"
    phase: str
    description: str = ""


class FaultChanged(RunEvent):
    """A scheduled fault began or ended (the schedule is the scenario's, not known to the graph)."""

    kind: Literal["fault_changed"] = "fault_changed"
    agent: str
    behaviour: str
    active: bool


class JobSubmitted(RunEvent):
    kind: Literal["job_submitted"] = "job_submitted"
    job: Job
    sim_time: float
    retry_of: str | None = None  # a job an executor lost or saw fail, placed again under a new id


class ProposalMade(RunEvent):
    kind: Literal["proposal"] = "proposal"
    agent: str
    job_id: str
    proposal: Proposal | None  # None: silent (no answer in time)


class CandidateChosen(RunEvent):
    kind: Literal["candidate"] = "candidate"
    job_id: str
    round: int
    proposer: str
    placement: Placement
    score: float | None  # what ranked it: the voters' median recomputed score, or a bid; None: fails the check
    claimed: float | None = None  # the proposer's self-reported score, shown beside a recomputed one


class ScoreOverClaimed(RunEvent):
    """A proposal's self-reported score above what its author's own view of the shared state gives."""

    kind: Literal["score_overclaimed"] = "score_overclaimed"
    job_id: str
    agent: str
    claimed: float
    recomputed: float
    tolerance: float


class VoteCast(RunEvent):
    kind: Literal["vote"] = "vote"
    agent: str
    job_id: str
    round: int
    vote: Vote | None  # None: silent
    counted: bool = True  # False: refused (a signature that fails, or an equivocation); see VoteRefused


class VoteRefused(RunEvent):
    """A vote that does not count, and the fault it proves against the agent that sent it."""

    kind: Literal["vote_refused"] = "vote_refused"
    job_id: str
    round: int
    sender: str
    claimed: str  # the agent the vote claims to be from (another one: a forgery)
    reason: str


class TallyDone(RunEvent):
    kind: Literal["tally"] = "tally"
    job_id: str
    round: int
    accepts: int
    rejects: int
    silent: int
    quorum: int
    passed: bool
    refused: int = 0  # agents whose own vote was refused (see VoteRefused)
    # The protocol run that decided the round (engine.round), from the simulated
    # network's accounting: messages and bytes sent, simulated time (1 unit = the 1 ms link delay).
    protocol: str | None = None
    protocol_decided: bool | None = None
    messages: int | None = None
    message_bytes: int | None = None
    protocol_time: float | None = None
    candidate_feasible: bool  # the verifiable fact reputations are computed from (checks and bid claims)
    # Reputation-weighted tallies only: the weights the quorum was reached (or not) with.
    accept_weight: float | None = None
    total_weight: float | None = None
    needed_weight: float | None = None


class ProposalBlocked(RunEvent):
    """An infeasible candidate that the honest quorum voted down."""

    kind: Literal["proposal_blocked"] = "proposal_blocked"
    job_id: str
    proposer: str
    reasons: list[str]


class ReputationChanged(RunEvent):
    kind: Literal["reputation"] = "reputation"
    agent: str
    old: float
    new: float
    reason: str


class AgentExcluded(RunEvent):
    """Reputation fell below the threshold: the agent is detected as faulty and may not propose."""

    kind: Literal["agent_excluded"] = "agent_excluded"
    agent: str
    reputation: float
    job_id: str


class AgentReadmitted(RunEvent):
    kind: Literal["agent_readmitted"] = "agent_readmitted"
    agent: str
    reputation: float
    job_id: str


class DecisionMade(RunEvent):
    kind: Literal["decision"] = "decision"
    decision: Decision
    unanimous: bool
    wall_s: float = 0.0  # consensus time for this job (measured, so not compared between runs)
    # Modelled, not measured: the generalist's heuristic score (fit, load, specialisation) of the
    # committed placement on the state it was decided on, reputation left out. None for a reject.
    quality: float | None = None


class PoolOccupancy(BaseModel):
    """One pool's occupancy: nodes holding jobs, and shares of its cores busy with jobs and background."""

    model_config = ConfigDict(frozen=True)
    pool: str
    label: str | None
    nodes: int
    job_nodes: int
    jobs: float
    background: float
    total: float
    running: list[str]


class OccupancyReported(RunEvent):
    """Each pool's occupancy after a decision (scenarios with ``occupancy_view``)."""

    kind: Literal["occupancy"] = "occupancy"
    job_id: str
    sim_time: float
    pools: list[PoolOccupancy]


class AgentHealth(BaseModel):
    model_config = ConfigDict(frozen=True)
    agent: str
    pool: str | None
    reputation: float
    health: Literal["healthy", "suspect", "excluded"]


class NetworkStatus(RunEvent):
    """Every agent's health and reputation at the end of the run."""

    kind: Literal["network_status"] = "network_status"
    agents: list[AgentHealth]


class JobStarted(RunEvent):
    """A committed placement handed to an executor (sim, local processes or Slurm)."""

    kind: Literal["job_started"] = "job_started"
    job_id: str
    nodes: list[str]
    sim_time: float
    executor: str  # "sim", "local" or "slurm"
    external_id: str | None = None  # the Slurm job id, the process id


class JobFinished(RunEvent):
    kind: Literal["job_finished"] = "job_finished"
    job_id: str
    sim_time: float
    # What the executor saw: "completed", or "failed" / "lost" (the job goes back to the agents).
    state: Literal["completed", "failed", "lost"] = "completed"
    ran_on: list[str] | None = None  # the nodes the job itself reported (Slurm: $SLURMD_NODENAME)
    reason: str = ""


class NodeStateChanged(RunEvent):
    """The executor saw a node go down (no job is placed on it) or come back."""

    kind: Literal["node_state"] = "node_state"
    node: str
    state: Literal["up", "down"]
    reason: str = ""
    sim_time: float


class ScenarioEnded(RunEvent):
    kind: Literal["scenario_ended"] = "scenario_ended"
    scenario: str
    wall_s: float


Subscriber = Callable[[RunEvent], None]


class EventBus:
    """Numbers events in emission order and hands each to every subscriber.

    Thread-safe: LLM calls made from worker threads (SambaStudio's client is synchronous) may emit.
    """

    def __init__(self, subscribers: Iterable[Subscriber] = (), *, muted: bool = False) -> None:
        self._subscribers: list[Subscriber] = list(subscribers)
        self._lock = threading.Lock()
        self._seq = 0
        self.events: list[RunEvent] = []
        # Muted while a resumed run fast-forwards through decisions already in the ledger: those
        # events are in the log already; emitting drops them and numbers nothing.
        self.muted = muted

    @property
    def next_seq(self) -> int:
        """The sequence number the next event gets."""
        return self._seq

    def unmute(self, next_seq: int) -> None:
        """Resume numbering at ``next_seq`` (where the stored log ends) and deliver events again."""
        with self._lock:
            self._seq, self.muted = next_seq, False

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: RunEvent) -> RunEvent:
        with self._lock:
            if self.muted:
                return event
            stamped = event.model_copy(update={"seq": self._seq, "ts": time.time()})
            self._seq += 1
            self.events.append(stamped)
            for subscriber in self._subscribers:
                subscriber(stamped)
        return stamped


class JsonlSink:
    """Appends each event as one JSON line, scrubbed of secrets (:mod:`llm_sched.scrub`) before it is
    written and sealed with the hash chaining it to the line before (:mod:`llm_sched.store.event_chain`).

    ``head``: the chain value the log ends with (:data:`GENESIS` for a new log, the stored one for a
    log a resumed run continues; None continues a log written without hashes, without them).
    ``fence``: called before every append; it raises when this process may no longer write the run
    (another process took it over), so a zombie never adds a line.
    """

    def __init__(self, path: Path, secrets: Iterable[str] = (), *, head: str | None = GENESIS,
                 fence: Callable[[], None] | None = None) -> None:
        self.path = path
        self.head = head
        self._scrub = Scrubber(secrets)
        self._fence = fence
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise EventLogError(f"cannot open the event log {path}: {exc.strerror or exc}") from None

    def __call__(self, event: RunEvent) -> None:
        if self._fence is not None:
            self._fence()
        line, head = self._scrub(event.model_dump_json()), None
        if self.head is not None:
            line, head = seal(self.head, line)
        try:
            self._handle.write(line + "\n")
            self._handle.flush()
        except OSError as exc:
            raise EventLogError(f"could not write the event log {self.path}: {exc.strerror or exc}. The decisions "
                                f"committed so far are in the ledger; fix this and resume the run with --resume") from None
        self.head = head

    def tell(self) -> int:
        """Bytes written so far (everything is flushed after each event)."""
        return self._handle.tell()

    def close(self) -> None:
        if self._handle.closed:
            return
        try:
            self._handle.close()
        except OSError:
            pass  # the write that failed has been reported already


def comparable(event: RunEvent | dict[str, Any]) -> dict[str, Any]:
    """The event as a dict without the fields that legitimately differ between identical runs (and
    without the log line's chain hash, which covers the timestamp)."""
    data = event.model_dump(mode="json") if isinstance(event, RunEvent) else event
    return _strip({k: v for k, v in data.items() if k != HASH_FIELD})


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in NONDETERMINISTIC_FIELDS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read an events file back as dicts (one per line, each with its ``hash``). A line that is not
    an event, was cut short or breaks the hash chain (edited, removed, reordered) is an
    :class:`EventLogError` naming the file and the line; so is a missing file."""
    return [line.row for line in scan(path)]


@cache
def event_types() -> dict[str, type[RunEvent]]:
    """Every event class by its ``kind``."""
    found: dict[str, type[RunEvent]] = {}
    pending = list(RunEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        found[cls.model_fields["kind"].default] = cls
    return found


def parse_event(row: dict[str, Any]) -> RunEvent:
    """An event read back from a log (see :func:`read_jsonl`) as its typed model."""
    return event_types()[row["kind"]].model_validate(row)

