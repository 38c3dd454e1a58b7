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

Storage faults. The event log is checked against the ledger before a run is resumed (its hash chain
up to the last committed decision, see :mod:`llm_sched.store.event_chain`): a log deleted, cut short or
edited stops the resume with one line, the ledger untouched. A full disk under the checkpoint file
is a :class:`CheckpointError` (exit 1), the run left resumable. A checkpoint file that is damaged
(not SQLite, truncated, garbled) only ever held the steps of jobs in flight: it is moved aside to
``<name>.corrupt-<time>`` (said once on stderr) and a new one started, so new runs work and a resumed
run decides its in-flight job again from the start.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llm_sched.core import Job
from llm_sched.core.decisions import Certificate, Decision
from llm_sched.core.events import (
    EventLogError,
    JobSubmitted,
    ReputationChanged,
    RunEvent,
    TallyDone,
    VoteCast,
)
from llm_sched.core.model import Placement
from llm_sched.store.event_chain import GENESIS, Anchor, check_log
from llm_sched.store.ledger import DecisionRecord, Ledger, ReputationRow, VoteRow, integrity_report, sqlite_message
from llm_sched.store.storage_errors import StorageFault, nearly_full

SQLITE_HEADER = b"SQLite format 3\x00"


class CheckpointError(StorageFault):
    """The checkpoint file could not be read or written (disk full, damaged); exit 1."""


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
async def checkpointer(path: Path, run_id: str | None = None) -> AsyncIterator[Any]:
    """An async SQLite checkpointer for the consensus graph (WAL, one thread per job).

    A damaged file is moved aside first (:func:`set_aside_if_damaged`); any SQLite failure later
    (a full disk, damage found while reading) is a :class:`CheckpointError` naming the file and, with
    ``run_id``, the command that resumes the run."""
    import aiosqlite
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    import llm_sched.core.events  # noqa: F401 - every event model is registered before the list is taken

    set_aside_if_damaged(path)
    serde = JsonPlusSerializer(allowed_msgpack_modules=_our_models())
    try:
        conn = await aiosqlite.connect(path)
    except Exception as exc:  # noqa: BLE001 - aiosqlite raises sqlite3 errors and OSError alike
        raise CheckpointError(f"cannot open the checkpoint file {path}: {sqlite_message(str(exc))}") from None
    try:
        with _faults(path, "prepare", run_id):
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")  # a lost checkpoint only costs a redone step
        yield _guarded_saver()(conn, serde=serde, path=path, run_id=run_id)
    finally:
        try:
            await conn.close()
        except sqlite3.Error:
            pass  # closing only folds the WAL into the file; what failed before is what gets reported


@contextmanager
def _faults(path: Path, doing: str, run_id: str | None) -> Iterator[None]:
    """SQLite failures of the checkpoint file as one-line :class:`CheckpointError` messages."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _checkpoint_error(exc, path, doing, run_id) from None


def _checkpoint_error(exc: sqlite3.Error, path: Path, doing: str, run_id: str | None) -> CheckpointError:
    code, text = getattr(exc, "sqlite_errorcode", None), sqlite_message(str(exc))
    resume = f"resume the run with python main.py --resume {run_id}" if run_id else "resume the run with --resume"
    kept = "The decisions committed so far are in the ledger"
    io_error = code is not None and code & 0xFF == sqlite3.SQLITE_IOERR or "disk I/O" in text
    if code == sqlite3.SQLITE_FULL or "full" in text or (io_error and nearly_full(path)):
        return CheckpointError(f"the disk is full: could not {doing} a checkpoint in {path}. {kept}; free some "
                               f"space and {resume}")
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return CheckpointError(f"the checkpoint file {path} is damaged ({text}). {kept}; {resume} (the file is moved "
                               "aside and the job in flight decided again)")
    return CheckpointError(f"the checkpoint file {path}: could not {doing} a checkpoint ({text}). {kept}; fix this "
                           f"and {resume}")


@cache
def _guarded_saver() -> type:
    """LangGraph's AsyncSqliteSaver, its SQLite failures turned into :class:`CheckpointError`."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    class GuardedSaver(AsyncSqliteSaver):
        def __init__(self, conn: Any, *, serde: Any, path: Path, run_id: str | None) -> None:
            super().__init__(conn, serde=serde)
            self.path, self.run_id = path, run_id
            self.unreadable: set[str] = set()  # threads whose checkpoint could not be read (said once each)

        async def setup(self) -> None:
            with _faults(self.path, "prepare", self.run_id):
                await super().setup()

        async def aget_tuple(self, config: Any) -> Any:
            """The thread's last checkpoint; None (the job is decided again from its start) when it
            cannot be read back: its bytes garbled, or its pages damaged in a way the check at open
            did not see (quick_check does not read a blob's content)."""
            try:
                saved = await super().aget_tuple(config)
                if saved is None or _well_formed(saved):
                    return saved
                problem = "its bytes do not decode to a checkpoint"
            except sqlite3.Error as exc:
                code = getattr(exc, "sqlite_errorcode", None)
                if code not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) and "malformed" not in str(exc):
                    raise _checkpoint_error(exc, self.path, "read", self.run_id) from None
                problem = str(exc)
            except CheckpointError:
                raise  # the file could not even be prepared (setup): not this thread's bytes
            except Exception as exc:  # noqa: BLE001 - whatever the deserializer makes of garbled bytes
                problem = f"{type(exc).__name__}: {exc}"
            thread = str(config.get("configurable", {}).get("thread_id", "?"))
            if thread not in self.unreadable:
                self.unreadable.add(thread)
                print(f"warning: the checkpoint of {thread} in {self.path} cannot be read back "
                      f"({sqlite_message(problem)[:200]}); that job is decided again from its start", file=sys.stderr)
            return None

        async def alist(self, *args: Any, **kwargs: Any) -> Any:
            with _faults(self.path, "read", self.run_id):
                async for item in super().alist(*args, **kwargs):
                    yield item

        async def aput(self, *args: Any, **kwargs: Any) -> Any:
            with _faults(self.path, "save", self.run_id):
                return await super().aput(*args, **kwargs)

        async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
            with _faults(self.path, "save", self.run_id):
                await super().aput_writes(*args, **kwargs)

        async def adelete_thread(self, thread_id: str) -> None:
            with _faults(self.path, "delete", self.run_id):
                await super().adelete_thread(thread_id)

        async def aget_delta_channel_history(self, **kwargs: Any) -> Any:
            with _faults(self.path, "read", self.run_id):
                return await super().aget_delta_channel_history(**kwargs)

    return GuardedSaver


def _well_formed(saved: Any) -> bool:
    """Whether a checkpoint read back has the shape LangGraph wrote (garbled bytes may still decode,
    to a number or a string, say)."""
    checkpoint = getattr(saved, "checkpoint", None)
    return (isinstance(checkpoint, dict) and isinstance(checkpoint.get("v"), int)
            and all(isinstance(checkpoint.get(k), dict) for k in ("channel_values", "channel_versions", "versions_seen"))
            and isinstance(getattr(saved, "metadata", None), dict))


def checkpoint_damage(path: Path) -> str | None:
    """What is wrong with the checkpoint file ``path``, or None when it is usable (or absent). Only
    damage counts: a file locked by another process is not damaged."""
    try:
        if path.stat().st_size == 0:
            return None  # SQLite's own empty database
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoint file {path}: {exc.strerror or exc}") from None
    if header != SQLITE_HEADER:
        return "not a SQLite database"
    conn = sqlite3.connect(path, timeout=5.0)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        damaged = code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc) \
            or "not a database" in str(exc)
        return sqlite_message(str(exc)) if damaged else None
    finally:
        conn.close()
    return None if problems == ["ok"] else sqlite_message(integrity_report(problems))


def set_aside_if_damaged(path: Path) -> Path | None:
    """Move a damaged checkpoint file (and its -wal/-shm) aside to ``<name>.corrupt-<UTC time>``, say so
    once on stderr, and return where it went; None when the file is fine. It only ever held the steps
    of jobs in flight (a committed decision drops its thread): nothing committed is in it."""
    problem = checkpoint_damage(path)
    if problem is None:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    k = 1
    while target.exists():
        k += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{k}")
    try:
        path.rename(target)
    except FileNotFoundError:
        return None  # another run moved it aside at the same moment
    except OSError as exc:
        raise CheckpointError(f"the checkpoint file {path} is damaged ({problem}) and could not be moved aside "
                              f"({exc.strerror or exc}); move it away and run again") from None
    for suffix in ("-wal", "-shm"):  # kept with it: SQLite opens <name>-wal together with <name>
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    print(f"warning: the checkpoint file {path} was damaged ({problem}); it was moved aside to {target.name} and a "
          "new one started. Committed decisions are in the ledger; a job that was being decided is decided again.",
          file=sys.stderr)
    return target


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
    certificate = Certificate.model_validate(record.certificate) if record.certificate is not None else None
    return Decision(job_id=record.job_id, outcome=record.outcome, placement=placement,  # type: ignore[arg-type]
                    proposer=record.proposer, reason=record.reason, rounds=record.rounds,
                    accepts=record.accepts, voters=record.voters, certificate=certificate)


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
    head: str | None = GENESIS  # the event log's chain value where this process continues it

    def __post_init__(self) -> None:
        self._by_job = {d.job_id: d for d in self.stored}

    def stored_decision(self, job_id: str) -> DecisionRecord | None:
        return self._by_job.get(job_id)

    @property
    def last(self) -> DecisionRecord | None:
        return self.stored[-1] if self.stored else None

    def thread(self, job: Job) -> str:
        return f"{self.run_id}/{job.id}"

    def fence(self) -> None:
        """Raise if another process has taken the run over: checked before every write to its files."""
        self.ledger.check_fence(self.run_id, self.epoch)

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
            certificate=decision.certificate.model_dump(mode="json") if decision.certificate is not None else None,
        )
        self.ledger.record_decision(self.run_id, self.epoch, record)
        self.seq += 1
        if self.saver is not None:
            await self.saver.adelete_thread(self.thread(job))

    def replayed(self) -> None:
        """A stored decision was applied again: the next one has the next position."""
        self.seq += 1


def check_event_log(path: Path, stored: list[DecisionRecord], run_id: str) -> str | None:
    """Before a run is resumed: its event log must hold, intact, everything up to where the last
    stored decision left it (the hash chain, and each decision's offset, seq and hash). Returns the
    chain value there, to continue from (None: a log written without hashes). A log that is missing,
    shorter or damaged cannot be continued: an :class:`EventLogError`, and the ledger stays as it is."""
    if not stored:
        return GENESIS  # nothing committed: the log is written again from its start
    last = stored[-1]
    length = last.resume["events_offset"]
    cannot = (f"The {len(stored)} committed decisions of run {run_id} are safe in the ledger (python main.py "
              f"--show {run_id}), but without its event log this run cannot be resumed: start a new run")
    if not path.is_file():
        raise EventLogError(f"the event log {path} of run {run_id} is missing (deleted or moved away). {cannot}")
    size = path.stat().st_size
    if size < length:
        raise EventLogError(
            f"the event log {path} is truncated: {size} bytes, but the last committed decision of run {run_id} "
            f"(job {last.job_id}) ends at byte {length}. {cannot}"
        )
    try:
        return check_log(path, anchors(stored), upto=length).head
    except EventLogError as exc:
        raise EventLogError(f"{exc}. {cannot}") from None


def cut_event_log(path: Path, stored: DecisionRecord | None) -> None:
    """Cut the event log back to where the last stored decision left it (the events after it
    belong to the step that was interrupted and are emitted again); see :func:`check_event_log`."""
    length = stored.resume["events_offset"] if stored is not None else 0
    try:
        with path.open("r+b" if path.exists() else "wb") as handle:
            handle.truncate(length)
    except OSError as exc:
        raise EventLogError(f"cannot cut the event log {path} back to byte {length}: {exc.strerror or exc}") from None


def anchors(stored: list[DecisionRecord]) -> list[Anchor]:
    """Where each stored decision left the event log."""
    return [a for a in (Anchor.of(d.job_id, d.resume) for d in stored) if a is not None]
