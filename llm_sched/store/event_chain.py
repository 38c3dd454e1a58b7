"""The hash chain of a run's event log: a line edited, removed, reordered or cut short is found.

Each line of ``events.jsonl`` is the event's JSON text as it was written (pydantic's
``model_dump_json``, fields in the model's order, secrets scrubbed) with one member appended::

    {"kind": "vote", "seq": 41, ..., "hash": "<sha256 hex>"}

where ``hash = sha256(previous line's hash + "\\n" + the line's text without the hash member)``
and the first line chains from :data:`GENESIS`. The hash covers the written bytes exactly, so any
change to a line (a value, a space) breaks it; a removed line breaks the next one (and its ``seq``
jumps). Lines removed from the *end* leave an intact chain; the ledger catches those: every
committed decision stores where the log ended then (byte offset, next ``seq``, hash), and a
completed run's log ends with ``scenario_ended``. A resumed run cuts the log back to such a point
and continues the chain from the hash stored there.

The hash covers the wall-clock ``ts`` too (an edited timestamp is an edited line), so two runs with
the same seed have the same events but not the same hashes: :func:`llm_sched.core.events.comparable`
leaves ``hash`` out as it leaves out ``ts``.

A log written before hashes existed has no ``hash`` on any line: it is read as before and reported
as unchecked; such a log, resumed, is continued without hashes. A log with hashes on some lines
only has been edited.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_sched.store.storage_errors import StorageFault

HASH_FIELD = "hash"
GENESIS = ""
_SEALED = re.compile(r',"hash":"([0-9a-f]{64})"\}$')


class EventLogError(StorageFault):
    """The event log cannot be written or read back (disk full, truncated, damaged, missing)."""


def link(prev: str, body: str) -> str:
    """The chain value of a line whose text (without its hash) is ``body``, after ``prev``."""
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


def seal(prev: str, body: str) -> tuple[str, str]:
    """(the line to write, its hash) for the JSON object text ``body`` following ``prev``."""
    value = link(prev, body)
    return f'{body[:-1]},"{HASH_FIELD}":"{value}"}}', value


def unseal(line: str) -> tuple[str, str | None]:
    """(the text the hash was computed over, the hash) of a written line; None: no hash on it."""
    found = _SEALED.search(line)
    if found is None:
        return line, None
    return line[: found.start()] + "}", found.group(1)


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where the log stood when a decision was committed (stored in the ledger with it)."""

    job_id: str
    offset: int  # bytes of the log then
    seq: int  # the seq the next event got
    hash: str | None  # the chain value then (None: stored by a version without hashes)

    @classmethod
    def of(cls, job_id: str, resume: dict[str, Any]) -> Anchor | None:
        if "events_offset" not in resume:
            return None
        return cls(job_id, int(resume["events_offset"]), int(resume.get("events_seq", -1)), resume.get("events_hash"))


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    end: int  # byte offset just after the line's newline
    row: dict[str, Any]
    hash: str | None


class _Chain:
    """Follows the lines of one log and says what is wrong with the first one that does not follow."""

    def __init__(self) -> None:
        self.prev = GENESIS
        self.hashed: bool | None = None  # decided by the first line
        self.seq: int | None = None

    def problem(self, text: str, row: dict[str, Any]) -> tuple[str | None, str | None]:
        """(what is wrong with this line or None, its hash)."""
        body, value = unseal(text)
        if self.hashed is None:
            self.hashed = value is not None
        seq = row.get("seq")
        jumped = isinstance(seq, int) and self.seq is not None and seq != self.seq + 1
        if jumped:
            why = f"its event seq {seq} follows seq {self.seq}: lines were removed, added or reordered before it"
        else:
            why = "it was changed after it was written (its hash does not match its text)"
        self.seq = seq if isinstance(seq, int) else None
        if not self.hashed:
            if value is not None:
                return "it has a hash but the lines before it have none: the log was edited", value
            return (why if jumped else None), None
        if value is None:
            return "it has no hash but the lines before it have: it was changed or added after it was written", None
        if link(self.prev, body) != value:
            return why, value
        self.prev = value
        return None, value


def scan(path: Path, upto: int | None = None, *, open_tail: bool = False) -> Iterator[Line]:
    """The lines of the event log ``path`` (up to byte ``upto``), each checked as it is read: a line
    that is not a JSON event, does not follow the chain or was cut short is an :class:`EventLogError`
    naming the file and the line. ``open_tail``: the log of a run that is being written, or was
    killed while it wrote: a last line without its newline is not read (a resume cuts it off)."""
    chain = _Chain()
    offset = 0
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise EventLogError(f"the event log {path} is missing (deleted or moved away)") from None
    except OSError as exc:
        raise EventLogError(f"cannot read the event log {path}: {exc.strerror or exc}") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if upto is not None and offset >= upto:
                return
            offset += len(raw)
            where = f"the event log {path} is damaged at line {number}"
            if not raw.endswith(b"\n"):
                if open_tail:
                    return
                raise EventLogError(f"{where}: the file ends in the middle of this line (truncated)")
            try:
                text = raw[:-1].decode("utf-8")
            except UnicodeDecodeError:
                raise EventLogError(f"{where}: it is not UTF-8 text (garbled)") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise EventLogError(f"{where}: it is not a JSON event ({exc.msg})") from None
            if not isinstance(row, dict) or "kind" not in row:
                raise EventLogError(f"{where}: it is not an event (no 'kind' field)")
            problem, value = chain.problem(text, row)
            if problem is not None:
                raise EventLogError(f"{where}: {problem}")
            yield Line(number, offset, row, value)


@dataclass(frozen=True, slots=True)
class LogCheck:
    """What :func:`check_log` found: the events read, whether they carry hashes, where it ends."""

    events: int
    hashed: bool
    head: str | None  # the chain value at the end of what was read (None: a log without hashes)
    end: int  # bytes read


def check_log(path: Path, anchors: Sequence[Anchor] = (), *, upto: int | None = None,
              complete: bool = False, decisions: int | None = None) -> LogCheck:
    """Read the log ``path`` through (up to byte ``upto``), checking its chain and that it agrees with
    what the ledger stored: every decision's ``anchors`` (a line ends there, with that seq and
    hash), ``decisions`` committed (as many ``decision`` events at least) and, for a ``complete``
    run, a last line ``scenario_ended`` (a run not complete may end in a line cut short by its
    kill). An :class:`EventLogError` names the first disagreement."""
    waiting = sorted((a for a in anchors if upto is None or a.offset <= upto), key=lambda a: a.offset)
    events = decided = 0
    head: str | None = GENESIS
    hashed = False
    end = 0
    last: dict[str, Any] = {}
    for line in scan(path, upto, open_tail=not complete):
        events, end, last = events + 1, line.end, line.row
        hashed = line.hash is not None
        head = line.hash
        decided += line.row["kind"] == "decision"
        while waiting and waiting[0].offset <= line.end:
            _check_anchor(path, waiting.pop(0), line)
    if events == 0:
        head = GENESIS
    if waiting:
        first = waiting[0]
        raise EventLogError(f"the event log {path} is truncated: it ends at byte {end}, but the decision for job "
                            f"{first.job_id} was committed when it reached byte {first.offset}")
    if decisions is not None and decided < decisions:
        raise EventLogError(f"the event log {path} is damaged: it holds {decided} decision events, but the ledger has "
                            f"{decisions} committed decisions: lines were removed")
    if complete and last.get("kind") != "scenario_ended":
        raise EventLogError(f"the event log {path} is truncated: the run completed, but the log ends at line {events} "
                            f"({last.get('kind', 'nothing')}), not with scenario_ended")
    return LogCheck(events, hashed, head if hashed or events == 0 else None, end)


def _check_anchor(path: Path, anchor: Anchor, line: Line) -> None:
    where = f"the event log {path} is damaged at line {line.number}"
    committed = f"the decision for job {anchor.job_id} was committed"
    if line.end != anchor.offset:
        raise EventLogError(f"{where}: {committed} at byte {anchor.offset}, in the middle of this line: "
                            "lines before it were changed")
    if anchor.seq >= 0 and line.row.get("seq") != anchor.seq - 1:
        raise EventLogError(f"{where}: {committed} after event {anchor.seq - 1}, this line is event "
                            f"{line.row.get('seq')}")
    if anchor.hash is not None and line.hash != anchor.hash:
        raise EventLogError(f"{where}: its hash is not the one stored with {committed}: the log was rewritten")
