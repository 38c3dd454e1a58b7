"""The ledger: every run, committed decision and experiment or campaign unit, in one SQLite file.

One file (by default ``runs/llm_sched.db``, setting ``ledger`` / ``LLM_SCHED_LEDGER``), in WAL mode
with full synchronous commits, so that a decision the ledger acknowledged survives the process
being killed at any instant. No server: SQLite ships with Python.

Tables: ``runs`` (one row per scenario run, experiment or campaign, with its *epoch*), ``jobs``,
``decisions`` (keyed by run and job), ``placements`` (one row per node of a committed placement),
``votes`` (the votes of the deciding round), ``reputation_changes`` (every change made while the job
was decided), ``certificates`` (the quorum certificate of each commit), ``vote_keys`` (the agents'
public keys of each key epoch, which check those certificates) and ``units`` (results of experiment
and campaign units, keyed by run and unit). A version 1 ledger gains the two tables when opened.

Writing a decision is one transaction and idempotent: the key is (run, job), so a process that
replays a decision after a crash finds it there and writes nothing; a *different* decision for the
same key is refused (committed decisions are never rewritten). Epochs fence zombies: resuming a run
increments its epoch, and a write from an older epoch (a process believed dead) is refused.

Bad state gets a :class:`StoreError` naming the file and what to do, before anything is written: a
ledger from a newer schema version, a file that is not a ledger, a database locked by another
process past the busy timeout. A storage fault is a :class:`LedgerFault` (exit 1): a full disk (the
transaction is rolled back, nothing half-written) or a damaged file. Damage is looked for at every
open (``PRAGMA quick_check``: pages, records, b-trees) and whenever a row is read (SQLite's
"malformed", text that is not UTF-8, JSON that does not parse, a decision whose columns no longer
match the record written with it); it is reported, never repaired: the file is left as it is.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from llm_sched.errors import UserError
from llm_sched.safe_text import one_line
from llm_sched.store.storage_errors import StorageFault, nearly_full

SCHEMA_VERSION = 3  # 2: certificates and vote_keys; 3: executions
RunKind = Literal["scenario", "experiment", "campaign", "federation"]
RunStatus = Literal["running", "completed", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    seed INTEGER NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    status TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    run_dir TEXT,
    config TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_dir ON runs (kind, run_dir);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    job_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    pool TEXT,
    proposer TEXT,
    reason TEXT NOT NULL,
    rounds INTEGER NOT NULL,
    accepts INTEGER NOT NULL,
    voters INTEGER NOT NULL,
    content TEXT NOT NULL,
    resume TEXT NOT NULL,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id),
    UNIQUE (run_id, seq)
);
CREATE TABLE IF NOT EXISTS placements (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    node TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id, node)
);
CREATE TABLE IF NOT EXISTS votes (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    vote TEXT NOT NULL,
    reason TEXT NOT NULL,
    via TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id, agent)
);
CREATE TABLE IF NOT EXISTS reputation_changes (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    agent TEXT NOT NULL,
    old REAL NOT NULL,
    new REAL NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id, n)
);
CREATE TABLE IF NOT EXISTS certificates (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS vote_keys (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    epoch INTEGER NOT NULL,
    agent TEXT NOT NULL,
    public_key TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch, agent)
);
CREATE TABLE IF NOT EXISTS executions (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    job_id TEXT NOT NULL,
    executor TEXT NOT NULL,
    external_id TEXT,
    nodes TEXT NOT NULL,
    state TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    ran_on TEXT,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS units (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    unit TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (run_id, unit)
);
"""


# kind -> the command that resumes a stored run of that kind, for messages pointing at it
RESUME_COMMANDS: dict[str, str] = {
    "campaign": "python main.py --evaluate --resume {target}",
    "experiment": "python main.py --experiment --resume {target}",
    "scenario": "python main.py --resume {target}",
    "federation": "llm-sched agent (start the agent again: it catches up from the decision stream)",
}


def a_kind(kind: str) -> str:
    """``a scenario``, ``an experiment``: a run kind with its article, for messages."""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


class StoreError(UserError):
    """The ledger cannot be used as asked; the message names the file and the way out."""


class LedgerFault(StoreError, StorageFault):
    """The ledger's storage failed (disk full) or is damaged; exit 1."""


class RunFenced(StoreError):
    """Another process took the run over (a higher epoch): this one must not write it any more."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One stored run, with how many decisions (or units) it has committed."""

    run_id: str
    kind: str
    name: str
    provider: str
    seed: int
    started: str
    ended: str | None
    status: str
    epoch: int
    run_dir: str | None
    config: dict[str, Any]
    decisions: int
    units: int


@dataclass(frozen=True, slots=True)
class VoteRow:
    agent: str
    vote: str  # "accept", "reject" or "silent"
    reason: str = ""
    via: str = ""


@dataclass(frozen=True, slots=True)
class ReputationRow:
    agent: str
    old: float
    new: float
    reason: str


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """A committed job handed to an executor: where it was placed, its id there (the Slurm job id),
    and how it ended (``running`` until then) on which nodes the job itself reported."""

    job_id: str
    executor: str
    external_id: str | None
    nodes: tuple[str, ...]
    state: str
    started: float
    ended: float | None = None
    ran_on: tuple[str, ...] | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A committed decision and what it rests on.

    ``content`` is what must be identical when a decision is written twice; ``resume`` is what a
    resumed run needs to continue after it (reputations, event-log position), not compared.
    """

    job_id: str
    seq: int
    outcome: str
    pool: str | None
    nodes: tuple[str, ...]
    proposer: str | None
    reason: str
    rounds: int
    accepts: int
    voters: int
    job_spec: dict[str, Any]
    submitted_at: float
    votes: tuple[VoteRow, ...] = ()
    reputation_changes: tuple[ReputationRow, ...] = ()
    resume: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    # The commit's quorum certificate (core.decisions.Certificate as JSON data); checked by
    # --verify against the run's public keys, so not part of ``content``.
    certificate: dict[str, Any] | None = None

    def content(self) -> str:
        body = {
            "outcome": self.outcome, "pool": self.pool, "nodes": list(self.nodes), "proposer": self.proposer,
            "reason": self.reason, "rounds": self.rounds, "accepts": self.accepts, "voters": self.voters,
            "job": self.job_spec, "votes": [[v.agent, v.vote] for v in self.votes],
            "reputation": [[r.agent, r.old, r.new, r.reason] for r in self.reputation_changes],
        }
        return json.dumps(body, sort_keys=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """An open ledger. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, path: Path, conn: sqlite3.Connection, timeout: float) -> None:
        self.path, self._conn, self._timeout = path, conn, timeout
        # The fence is checked before every event a run appends, maybe from another thread than the
        # one writing decisions: its own connection, used under its own lock.
        self._fence_conn: sqlite3.Connection | None = None
        self._fence_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, timeout: float = 5.0) -> Ledger:
        """Open (creating if needed) the ledger at ``path``; checks the schema before any write."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for the ledger {path}: {exc.strerror or exc}") from None
        if path.exists() and not path.is_file():
            raise StoreError(f"the ledger path {path} is not a file; set LLM_SCHED_LEDGER to a file path")
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the ledger {path}: {exc}") from None
        ledger = cls(path, conn, timeout)
        try:
            ledger._prepare()
        except BaseException:
            conn.close()
            raise
        return ledger

    def _prepare(self) -> None:
        with self._errors("read what is stored", "try again"):
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the ledger {self.path} has schema version {version}, newer than this llm-sched understands "
                    f"({SCHEMA_VERSION}); it was written by a newer release. Upgrade llm-sched, or point "
                    f"LLM_SCHED_LEDGER at another file. The ledger was not changed."
                )
            if version == 0:
                tables = self._conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                if tables:
                    raise StoreError(f"{self.path} is a SQLite database but not an llm-sched ledger (no schema "
                                     f"version); point LLM_SCHED_LEDGER at another file. It was not changed.")
            self._check_pages()
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")  # a committed decision survives a power cut too
            self._conn.execute("PRAGMA foreign_keys = ON")
            if version < SCHEMA_VERSION:  # a new ledger, or one from before certificates (every table IF NOT EXISTS)
                with self._transaction() as conn:  # (executescript would commit early: one statement at a time)
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_pages(self) -> None:
        """Every page readable and well-formed, before anything is read or written (reading only:
        a damaged ledger is reported and left as it is, never "repaired")."""
        problems = [row[0] for row in self._conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise LedgerFault(self._damaged(integrity_report(problems)))

    def _damaged(self, what: str) -> str:
        return (f"the ledger {self.path} is damaged ({what}); it was not changed. Restore it from a copy, or point "
                f"LLM_SCHED_LEDGER at another file (run folders keep their events.jsonl and summary.json)")

    def close(self) -> None:
        if self._fence_conn is not None:
            self._fence_conn.close()
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors and transactions ---------------------------------------------------------------
    @contextmanager
    def _errors(self, doing: str, then: str = "resume the run with --resume") -> Iterator[None]:
        """Translate SQLite failures, and stored text that no longer decodes, into messages a user can
        act on; ``then``: what to do once the disk has room again."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._explain(exc, doing, then) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # a stored value that is garbled
            raise LedgerFault(self._damaged(f"a stored value does not decode while trying to {doing}: "
                                            f"{sqlite_message(str(exc))}")) from None

    def _explain(self, exc: sqlite3.Error, doing: str, then: str) -> StoreError:
        code = getattr(exc, "sqlite_errorcode", None)
        text = sqlite_message(str(exc))
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
            return StoreError(f"the ledger {self.path} is locked by another process (waited {self._timeout:g} s to "
                              f"{doing}); wait for that process to finish, or point LLM_SCHED_LEDGER at another file")
        io_error = code is not None and code & 0xFF == sqlite3.SQLITE_IOERR or "disk I/O" in text
        if code == sqlite3.SQLITE_FULL or "full" in text or (io_error and nearly_full(self.path)):
            return LedgerFault(f"the disk is full: could not {doing} in the ledger {self.path}. Nothing was half-written "
                               f"(the transaction was rolled back) and what was committed before is intact; free some "
                               f"space and {then}")
        if code == sqlite3.SQLITE_NOTADB or "not a database" in text:
            return StoreError(f"{self.path} is not an llm-sched ledger (not a SQLite database); it was not changed")
        if code == sqlite3.SQLITE_CORRUPT or "malformed" in text or "decode" in text:
            return LedgerFault(self._damaged(text))
        if io_error:
            return LedgerFault(f"the ledger {self.path} could not be read or written ({text}) while trying to {doing}; "
                               f"check the disk it is on")
        if code == sqlite3.SQLITE_READONLY or "readonly" in text:
            return StoreError(f"the ledger {self.path} is read-only; could not {doing}")
        return StoreError(f"the ledger {self.path}: could not {doing}: {text}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: all or nothing."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: its queries see the ledger as of one moment, whatever another process
        commits meanwhile (a reader that counts rows a writer added after its first query would take
        the ledger for damaged)."""
        conn = self._conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, run_id: str, kind: RunKind, name: str, provider: str, seed: int,
                   config: Mapping[str, Any] | None = None, run_dir: Path | str | None = None) -> int:
        """Record a new run (status ``running``, epoch 1); returns the epoch."""
        with self._errors(f"record run {run_id}", "run it again"), self._transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise StoreError(f"a run {run_id} is already in the ledger {self.path}")
            conn.execute(
                "INSERT INTO runs (run_id, kind, name, provider, seed, started, status, epoch, run_dir, config) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running', 1, ?, ?)",
                (run_id, kind, name, provider, seed, _now(), None if run_dir is None else str(run_dir),
                 json.dumps(dict(config or {}), sort_keys=True)),
            )
        return 1

    def claim_run(self, run_id: str, kind: RunKind | None = None) -> tuple[RunInfo, int]:
        """Take over a stored run to resume it: its epoch goes up by one (older writers are fenced
        off) and its status back to ``running``. Returns the run as stored and the new epoch."""
        with self._errors(f"resume run {run_id}"), self._transaction() as conn:
            info = self._run(conn, run_id)
            if info is None:
                raise StoreError(f"no run {run_id} in the ledger {self.path} (python main.py --runs lists them)")
            if kind is not None and info.kind != kind:
                raise StoreError(f"run {run_id} is {a_kind(info.kind)}, not {a_kind(kind)}")
            epoch = info.epoch + 1
            conn.execute("UPDATE runs SET epoch = ?, status = 'running', ended = NULL WHERE run_id = ?", (epoch, run_id))
        return info, epoch

    def finish_run(self, run_id: str, epoch: int, status: RunStatus = "completed") -> None:
        """Close the run. Closing it as ``failed`` never raises (the run is closed because something
        else failed, and that error is the one to report; the run stays resumable either way)."""
        try:
            with self._errors(f"close run {run_id}"), self._transaction() as conn:
                self._fence(conn, run_id, epoch)
                conn.execute("UPDATE runs SET status = ?, ended = ? WHERE run_id = ?", (status, _now(), run_id))
        except StoreError:
            if status == "completed":
                raise

    def run(self, run_id: str) -> RunInfo | None:
        with self._errors(f"read run {run_id}"):
            return self._run(self._conn, run_id)

    def runs(self) -> list[RunInfo]:
        """Every stored run, oldest first."""
        with self._errors("list runs"):
            rows = self._conn.execute(f"{_RUN_QUERY} ORDER BY r.started, r.run_id").fetchall()
            return [_run_info(row) for row in rows]

    def find_run(self, kind: RunKind, run_dir: Path | str) -> RunInfo | None:
        """The latest run of ``kind`` that wrote to ``run_dir`` (experiments and campaigns)."""
        with self._errors("look up runs"):
            row = self._conn.execute(f"{_RUN_QUERY} WHERE r.kind = ? AND r.run_dir = ? ORDER BY r.started DESC, "
                                     "r.run_id DESC LIMIT 1", (kind, str(run_dir))).fetchone()
            return None if row is None else _run_info(row)

    def relocate_run(self, run_id: str, run_dir: Path | str) -> None:
        """Record that the run's folder is now ``run_dir`` (it was moved; the old path is gone)."""
        with self._errors(f"record the new folder of run {run_id}"), self._transaction() as conn:
            conn.execute("UPDATE runs SET run_dir = ? WHERE run_id = ?", (str(run_dir), run_id))

    def check_fence(self, run_id: str, epoch: int) -> None:
        """:class:`RunFenced` if another process has claimed the run since this one took ``epoch``.

        Called before every line a run appends to its event log and before its summary is written,
        so a process that lost the run (believed dead, its lock gone) writes nothing more there."""
        with self._fence_lock, self._errors(f"check who owns run {run_id}"):
            if self._fence_conn is None:
                self._fence_conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                                   check_same_thread=False)
            self._fence(self._fence_conn, run_id, epoch)

    @staticmethod
    def _run(conn: sqlite3.Connection, run_id: str) -> RunInfo | None:
        row = conn.execute(f"{_RUN_QUERY} WHERE r.run_id = ?", (run_id,)).fetchone()
        return None if row is None else _run_info(row)

    def _fence(self, conn: sqlite3.Connection, run_id: str, epoch: int) -> None:
        row = conn.execute("SELECT epoch FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in the ledger {self.path}")
        if row[0] != epoch:
            raise RunFenced(f"run {run_id} was taken over by another process (epoch {row[0]}, this one has "
                            f"{epoch}); this process stops writing to it")

    # -- decisions -----------------------------------------------------------------------------
    def record_decision(self, run_id: str, epoch: int, d: DecisionRecord) -> bool:
        """Write a decision, its job, placement, votes and reputation changes in one transaction.

        Returns False when the same decision is already recorded (a replay after a crash); refuses
        a different decision for the same job or position, and any write from a fenced-off epoch.
        """
        content = d.content()
        resume = RESUME_COMMANDS["scenario"].format(target=run_id)
        with self._errors(f"record the decision for {d.job_id}", f"resume the run with {resume}"), \
                self._transaction() as conn:
            self._fence(conn, run_id, epoch)
            stored = conn.execute("SELECT content, seq FROM decisions WHERE run_id = ? AND job_id = ?",
                                  (run_id, d.job_id)).fetchone()
            if stored is not None:
                if stored == (content, d.seq):
                    return False
                raise StoreError(f"run {run_id} already has a different decision for job {d.job_id}; the ledger "
                                 f"keeps the committed one and was not changed")
            taken = conn.execute("SELECT job_id FROM decisions WHERE run_id = ? AND seq = ?", (run_id, d.seq)).fetchone()
            if taken is not None:
                raise StoreError(f"run {run_id} already has decision {d.seq} (job {taken[0]}); not recording "
                                 f"job {d.job_id} in its place")
            conn.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)",
                         (run_id, d.job_id, json.dumps(d.job_spec, sort_keys=True), d.submitted_at))
            conn.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, d.job_id, d.seq, epoch, d.outcome, d.pool, d.proposer, d.reason, d.rounds, d.accepts,
                 d.voters, content, json.dumps(d.resume, sort_keys=True), _now()),
            )
            conn.executemany("INSERT INTO placements VALUES (?, ?, ?)", [(run_id, d.job_id, n) for n in d.nodes])
            conn.executemany("INSERT INTO votes VALUES (?, ?, ?, ?, ?, ?)",
                             [(run_id, d.job_id, v.agent, v.vote, v.reason, v.via) for v in d.votes])
            conn.executemany("INSERT INTO reputation_changes VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(run_id, d.job_id, i, r.agent, r.old, r.new, r.reason)
                              for i, r in enumerate(d.reputation_changes)])
            if d.certificate is not None:
                conn.execute("INSERT INTO certificates VALUES (?, ?, ?)",
                             (run_id, d.job_id, json.dumps(d.certificate, sort_keys=True)))
        return True

    # -- the agents' public keys ---------------------------------------------------------------
    def record_keys(self, run_id: str, epoch: int, keys: Sequence[tuple[int, str, str]]) -> None:
        """Store the public keys (key epoch, agent, key) this process's agents sign with."""
        with self._errors(f"record the public keys of run {run_id}"), self._transaction() as conn:
            self._fence(conn, run_id, epoch)
            conn.executemany("INSERT OR IGNORE INTO vote_keys VALUES (?, ?, ?, ?)",
                             [(run_id, e, agent, key) for e, agent, key in keys])

    def keys(self, run_id: str) -> list[tuple[int, str, str]]:
        """Every stored public key of the run: (key epoch, agent, key hex)."""
        with self._errors(f"read the public keys of {run_id}"):
            return [tuple(r) for r in self._conn.execute(  # type: ignore[misc]
                "SELECT epoch, agent, public_key FROM vote_keys WHERE run_id = ? ORDER BY epoch, agent", (run_id,))]

    def decisions(self, run_id: str) -> list[DecisionRecord]:
        """The run's committed decisions in order."""
        with self._errors(f"read the decisions of {run_id}"), self._snapshot() as conn:
            rows = conn.execute(
                "SELECT d.job_id, d.seq, d.outcome, d.pool, d.proposer, d.reason, d.rounds, d.accepts, d.voters, "
                "j.spec, j.submitted_at, d.resume, d.epoch, d.content FROM decisions d JOIN jobs j USING (run_id, job_id) "
                "WHERE d.run_id = ? ORDER BY d.seq", (run_id,)).fetchall()
            nodes = _grouped(conn, "SELECT job_id, node FROM placements WHERE run_id = ? ORDER BY job_id, rowid", run_id)
            votes = _grouped(conn, "SELECT job_id, agent, vote, reason, via FROM votes WHERE run_id = ? "
                             "ORDER BY job_id, agent", run_id)
            changes = _grouped(conn, "SELECT job_id, agent, old, new, reason FROM reputation_changes "
                               "WHERE run_id = ? ORDER BY job_id, n", run_id)
            certs = _grouped(conn, "SELECT job_id, body FROM certificates WHERE run_id = ?", run_id)
            records = []
            for job, seq, outcome, pool, proposer, reason, rounds, accepts, voters, spec, submitted, resume, epoch, \
                    content in rows:
                record = DecisionRecord(
                    job_id=job, seq=seq, outcome=outcome, pool=pool, nodes=tuple(r[0] for r in nodes.get(job, [])),
                    proposer=proposer, reason=reason, rounds=rounds, accepts=accepts, voters=voters,
                    job_spec=json.loads(spec), submitted_at=submitted,
                    votes=tuple(VoteRow(*r) for r in votes.get(job, [])),
                    reputation_changes=tuple(ReputationRow(*r) for r in changes.get(job, [])),
                    resume=json.loads(resume), epoch=epoch,
                    certificate=json.loads(certs[job][0][0]) if job in certs else None,
                )
                if _as_stored(record.content()) != _as_stored(content):
                    raise LedgerFault(self._damaged(f"the decision for job {job} of run {run_id} no longer matches "
                                                    "the record written with it"))
                records.append(record)
            # A garbled key drops a row from the join above: every decision, at positions 0..k-1.
            count = conn.execute("SELECT count(*) FROM decisions WHERE run_id = ?", (run_id,)).fetchone()[0]
            if count != len(records) or [r.seq for r in records] != list(range(count)):
                raise LedgerFault(self._damaged(f"run {run_id} has {count} decisions, {len(records)} of them readable "
                                                f"at positions {[r.seq for r in records]}"))
        return records

    # -- where committed jobs ran (executors) ------------------------------------------------------
    def record_execution(self, run_id: str, epoch: int, e: ExecutionRow) -> None:
        """Store (or update, as the job runs and ends) where a committed job was handed to run."""
        with self._errors(f"record the execution of job {e.job_id}"), self._transaction() as conn:
            self._fence(conn, run_id, epoch)
            conn.execute("INSERT OR REPLACE INTO executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (run_id, e.job_id, e.executor, e.external_id, json.dumps(list(e.nodes)), e.state,
                          e.started, e.ended, None if e.ran_on is None else json.dumps(list(e.ran_on)), e.reason))

    def executions(self, run_id: str) -> list[ExecutionRow]:
        """The run's executions in the order they started."""
        with self._errors(f"read the executions of {run_id}"):
            rows = self._conn.execute(
                "SELECT job_id, executor, external_id, nodes, state, started, ended, ran_on, reason FROM executions "
                "WHERE run_id = ? ORDER BY started, rowid", (run_id,)).fetchall()
        return [ExecutionRow(job, executor, external, tuple(json.loads(nodes)), state, started, ended,
                             None if ran_on is None else tuple(json.loads(ran_on)), reason)
                for job, executor, external, nodes, state, started, ended, ran_on, reason in rows]

    # -- experiment and campaign units ---------------------------------------------------------
    def record_unit(self, run_id: str, epoch: int, unit: str, result: Mapping[str, Any]) -> bool:
        """Store one unit's result (idempotent: False when the unit is already stored)."""
        text = json.dumps(result, sort_keys=True)
        with self._errors(f"record unit {unit}"), self._transaction() as conn:
            self._fence(conn, run_id, epoch)
            cur = conn.execute("INSERT OR IGNORE INTO units VALUES (?, ?, ?, ?)", (run_id, unit, epoch, text))
            return cur.rowcount == 1

    def units(self, run_id: str) -> dict[str, dict[str, Any]]:
        with self._errors(f"read the units of {run_id}"):
            rows = self._conn.execute("SELECT unit, result FROM units WHERE run_id = ?", (run_id,)).fetchall()
            return {unit: json.loads(result) for unit, result in rows}


_RUN_QUERY = (
    "SELECT r.run_id, r.kind, r.name, r.provider, r.seed, r.started, r.ended, r.status, r.epoch, r.run_dir, "
    "r.config, (SELECT count(*) FROM decisions d WHERE d.run_id = r.run_id), "
    "(SELECT count(*) FROM units u WHERE u.run_id = r.run_id) FROM runs r"
)


def _run_info(row: Sequence[Any]) -> RunInfo:
    return RunInfo(*row[:10], json.loads(row[10]), row[11], row[12])  # type: ignore[arg-type]


def sqlite_message(text: str) -> str:
    """An SQLite message as one safe line: "Could not decode ... with text '<garbage>'" quotes the
    damaged bytes, which must not reach a terminal (control codes) nor run on for pages."""
    return one_line(re.sub(r" with text '.*", "", text, flags=re.DOTALL))[:300]


def integrity_report(problems: Sequence[str]) -> str:
    """SQLite's integrity report (several lines, headed ``*** in database main ***``) as one line."""
    lines = [line.strip() for problem in problems for line in problem.splitlines()]
    return "; ".join(line for line in lines if line and not line.startswith("***"))


def _as_stored(content: str) -> Any:
    """A decision's content as compared for damage: votes are read back in agent order, not the order
    they were cast in, so their order does not count."""
    data = json.loads(content)
    data["votes"] = sorted(data["votes"])
    return data


def _grouped(conn: sqlite3.Connection, query: str, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for job, *rest in conn.execute(query, (run_id,)):
        groups.setdefault(job, []).append(tuple(rest))
    return groups
