"""What makes a scenario run durable and resumable: ledger records of decisions, the LangGraph
checkpointer of the consensus graph, and the event log cut back to the last committed decision.

A run commits each decision at its *boundary*: after the cluster state took it and the occupancy
was reported. The ledger row stores, besides the decision, what a resumed run needs to continue
from there: the reputations, and where the event log ended (bytes and next sequence number).

Resuming (:class:`Progress`): the runner walks the scenario again with the event bus muted,
applying each stored decision instead of deciding (the cluster state, clock and faults follow
from the scenario and the seed); at the last stored decision it restores the reputations, cuts
the event log to the stored length and unmutes the bus at the stored sequence number. The job that
was in flight continues from its checkpointed thread, if any step of it had completed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llm_sched.domain import Job
from llm_sched.domain.decisions import Decision
from llm_sched.domain.model import Placement
from llm_sched.events import (
    EventLogError,
    JobSubmitted,
    ReputationChanged,
    RunEvent,
    TallyDone,
    VoteCast,
)
from llm_sched.store import DecisionRecord, Ledger, ReputationRow, VoteRow


def checkpoint_path(ledger: Path) -> Path:
    """The LangGraph checkpoints live next to the ledger, in their own SQLite file."""
    return ledger.with_name(f"{ledger.stem}-checkpoints{ledger.suffix or '.db'}")


def fingerprint(data: Any) -> str:
    """A short digest of a scenario's definition: a resumed run must run the same scenario."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _our_models() -> list[tuple[str, str]]:
    """Every pydantic model of this package: the types a checkpoint may hold."""
    found, pending = set(), list(BaseModel.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.startswith("llm_sched."):
            found.add((cls.__module__, cls.__name__))
    return sorted(found)


@asynccontextmanager
async def checkpointer(path: Path) -> AsyncIterator[Any]:
    """An async SQLite checkpointer for the consensus graph (WAL, one thread per job)."""
    import aiosqlite
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    import llm_sched.events  # noqa: F401 - every event model is registered before the list is taken

    serde = JsonPlusSerializer(allowed_msgpack_modules=_our_models())
    try:
        conn = await aiosqlite.connect(path)
    except Exception as exc:  # noqa: BLE001 - aiosqlite raises sqlite3 errors and OSError alike
        raise EventLogError(f"cannot open the checkpoint file {path}: {exc}") from None
    try:
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")  # a lost checkpoint only costs a redone step
        yield AsyncSqliteSaver(conn, serde=serde)
    finally:
        await conn.close()


class Journal:
    """A bus subscriber keeping what the ledger stores with a decision: the votes of each round and
    the reputation changes since the job was submitted."""

    def __init__(self) -> None:
        self.votes: dict[int, list[VoteRow]] = {}
        self.changes: list[ReputationRow] = []
        self.last_round = 0

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, JobSubmitted):
            self.votes, self.changes, self.last_round = {}, [], 0
        elif isinstance(event, VoteCast):
            v = event.vote
            row = VoteRow(event.agent, "silent" if v is None else ("accept" if v.accept else "reject"),
                          "" if v is None else v.reasoning, "" if v is None else v.via)
            self.votes.setdefault(event.round, []).append(row)
        elif isinstance(event, TallyDone):
            self.last_round = event.round
        elif isinstance(event, ReputationChanged):
            self.changes.append(ReputationRow(event.agent, event.old, event.new, event.reason))


def decision_of(record: DecisionRecord) -> Decision:
    """The decision a ledger row stands for (replayed when a run is resumed)."""
    placement = None
    if record.pool is not None:
        placement = Placement(job_id=record.job_id, pool=record.pool, nodes=record.nodes)
    return Decision(job_id=record.job_id, outcome=record.outcome, placement=placement,  # type: ignore[arg-type]
                    proposer=record.proposer, reason=record.reason, rounds=record.rounds,
                    accepts=record.accepts, voters=record.voters)


@dataclass
class Progress:
    """One run's durable progress: the ledger, this process's epoch, the decisions stored so far."""

    ledger: Ledger
    run_id: str
    epoch: int
    stored: list[DecisionRecord] = field(default_factory=list)
    journal: Journal = field(default_factory=Journal)
    saver: Any = None  # the checkpointer, while the run's event loop is up
    seq: int = 0  # position of the next decision

    def __post_init__(self) -> None:
        self._by_job = {d.job_id: d for d in self.stored}

    def stored_decision(self, job_id: str) -> DecisionRecord | None:
        return self._by_job.get(job_id)

    @property
    def last(self) -> DecisionRecord | None:
        return self.stored[-1] if self.stored else None

    def thread(self, job: Job) -> str:
        return f"{self.run_id}/{job.id}"

    async def commit(self, job: Job, decision: Decision, submitted_at: float, resume: dict[str, Any]) -> None:
        """Record the decision (one transaction), then drop the job's checkpoints."""
        j = self.journal
        round_no = decision.rounds if decision.outcome == "commit" else j.last_round
        placement = decision.placement
        record = DecisionRecord(
            job_id=job.id, seq=self.seq, outcome=decision.outcome, pool=placement.pool if placement else None,
            nodes=tuple(placement.nodes) if placement else (), proposer=decision.proposer, reason=decision.reason,
            rounds=decision.rounds, accepts=decision.accepts, voters=decision.voters,
            job_spec=job.model_dump(mode="json"), submitted_at=submitted_at,
            votes=tuple(j.votes.get(round_no, [])), reputation_changes=tuple(j.changes), resume=resume,
        )
        self.ledger.record_decision(self.run_id, self.epoch, record)
        self.seq += 1
        if self.saver is not None:
            await self.saver.adelete_thread(self.thread(job))

    def replayed(self) -> None:
        """A stored decision was applied again: the next one has the next position."""
        self.seq += 1


def cut_event_log(path: Path, stored: DecisionRecord | None, run_id: str) -> None:
    """Cut the event log back to where the last stored decision left it (the events after it
    belong to the step that was interrupted and are emitted again). A log shorter than that
    cannot be continued: a clear error, and the ledger stays as it is."""
    length = stored.resume["events_offset"] if stored is not None else 0
    size = path.stat().st_size if path.exists() else 0
    if size < length:
        raise EventLogError(
            f"the event log {path} is truncated: {size} bytes, but the last committed decision of run {run_id} "
            f"(job {stored.job_id if stored else '-'}) ends at byte {length}. The decisions are safe in the ledger "
            f"(python main.py --show {run_id}); this run cannot be resumed without its event log"
        )
    with path.open("r+b" if path.exists() else "wb") as handle:
        handle.truncate(length)
