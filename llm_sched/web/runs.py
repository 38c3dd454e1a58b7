"""Run folders for the web view: list them cheaply and follow one's event log as it is written.

No web framework here: :func:`list_runs` and :class:`EventTail` are plain functions and classes over
``runs/<run_id>/events.jsonl`` (one JSON event per line, appended as the run goes, each line chained
to the one before by its ``hash``; see :mod:`llm_sched.store.event_chain`) and ``summary.json``
(written once the run has finished).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from llm_sched.core.events import parse_event
from llm_sched.errors import UserError
from llm_sched.names import check_name, inside
from llm_sched.store.event_chain import GENESIS, link, unseal

EVENTS = "events.jsonl"
SUMMARY = "summary.json"
# A run without an end written to within this many seconds is being written: live. Older: stopped
# (killed or interrupted; a resume continues it, and the viewer follows it again).
LIVE_WITHIN_S = 30.0
# The first line (scenario_started) carries the source of the answers; one is never near this size.
_FIRST_LINE_MAX = 1 << 20
_READ_MAX = 4 << 20  # bytes read at once: a long log is read in pieces
_MARK = 64  # bytes kept from where a count stopped, to notice the log being rewritten
# A line that opens with one of these is that kind of event: pydantic writes ``kind`` first, and a
# quote inside a JSON string is escaped, so the text cannot occur inside another event's values.
_DECISION = b'\n{"kind":"decision",'
_ENDED = b'\n{"kind":"scenario_ended",'


def run_folder(runs_dir: Path, run_id: str) -> Path | None:
    """The folder of run ``run_id`` inside ``runs_dir``; None when the id is not a run name, the
    folder lies outside (a link out of it) or is not there. The id comes from a URL: never trusted."""
    try:
        check_name("run", run_id)
        folder = inside(runs_dir, runs_dir / run_id)
    except UserError:
        return None
    return folder if folder.is_dir() else None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One row of the runs list."""

    id: str
    scenario: str
    provider: str
    started: float  # wall-clock time of scenario_started (the log's mtime when it has none)
    modified: float  # when the log was last written
    status: str  # "live", "stopped" (no end, not written for a while) or "done"
    decisions: int  # decision events in the log
    size: int  # bytes of complete lines in the log

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Scanned:
    """What was counted in one log so far, so that a later listing reads only what was appended."""

    size: int  # bytes counted (complete lines only)
    mtime_ns: int
    head: dict[str, Any]  # the first line, parsed ({} when it is not readable yet)
    decisions: int
    ended: bool
    last: bytes  # the bytes the count stopped after: a log rewritten under them is counted anew


class RunCatalog:
    """Lists the runs of one folder, newest first. Each log is read once: afterwards only the bytes
    appended since the last listing (logs only grow; a shorter one, cut back by a resume, is read anew)."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._scanned: dict[str, _Scanned] = {}
        self._lock = threading.Lock()  # listings may run on several worker threads at once

    def list(self, now: float | None = None) -> list[RunInfo]:
        now = time.time() if now is None else now
        rows = []
        with self._lock:
            folders = self._folders()
            for folder in folders:
                info = self._info(folder, now)
                if info is not None:
                    rows.append(info)
            names = {f.name for f in folders}
            self._scanned = {k: v for k, v in self._scanned.items() if k in names}  # forget deleted runs
        return sorted(rows, key=lambda r: (r.started, r.id), reverse=True)

    def _folders(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.runs_dir))
        except OSError:
            return []
        return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False) and _is_run_name(e.name)]

    def _info(self, folder: Path, now: float) -> RunInfo | None:
        log = folder / EVENTS
        try:
            stat = log.stat()
        except OSError:
            return None  # not a run folder (or its log is not there yet)
        scanned = self._scan(folder.name, log, stat.st_size, stat.st_mtime_ns)
        head = scanned.head
        if (folder / SUMMARY).exists() or scanned.ended:
            status = "done"
        else:
            status = "live" if now - stat.st_mtime <= LIVE_WITHIN_S else "stopped"
        return RunInfo(
            id=folder.name,
            scenario=str(head.get("scenario", "")),
            provider=str(head.get("provider", "")),
            started=float(head.get("ts") or stat.st_mtime),
            modified=stat.st_mtime,
            status=status,
            decisions=scanned.decisions,
            size=scanned.size,
        )

    def _scan(self, key: str, log: Path, size: int, mtime_ns: int) -> _Scanned:
        known = self._scanned.get(key)
        if known is not None and known.size == size and known.mtime_ns == mtime_ns:
            return known
        try:
            with log.open("rb") as handle:
                if known is None or not _still_ends_with(handle, known):
                    known = _Scanned(0, mtime_ns, {}, 0, False, b"")  # new, or cut back by a resume
                handle.seek(known.size)
                _count(handle, known)
        except OSError:
            return known or _Scanned(0, mtime_ns, {}, 0, False, b"")
        known.mtime_ns = mtime_ns
        self._scanned[key] = known
        return known


def _still_ends_with(handle: BinaryIO, known: _Scanned) -> bool:
    """Whether the log still holds, where the last scan stopped, the bytes it stopped after."""
    handle.seek(known.size - len(known.last))
    return handle.read(len(known.last)) == known.last


def _count(handle: BinaryIO, known: _Scanned) -> None:
    """Count the complete lines from the handle's position on into ``known``, a piece at a time."""
    carry = b""
    while piece := handle.read(_READ_MAX):
        chunk = carry + piece
        end = chunk.rfind(b"\n") + 1  # a line still being written is counted when it is complete
        if known.size == 0 and end:
            known.head = _first_row(chunk[: min(end, _FIRST_LINE_MAX)])
        # Counted in place, without splitting lines: a folder of long logs is read in well under a
        # second, once. The patterns open with the newline ending the line before, and each counted
        # piece starts a line: its first line is looked at on its own.
        known.decisions += chunk.count(_DECISION, 0, end) + chunk.startswith(_DECISION[1:], 0, end)
        # scenario_ended is the last line: searched from the end, found at once.
        known.ended = known.ended or chunk.rfind(_ENDED, 0, end) >= 0 or chunk.startswith(_ENDED[1:], 0, end)
        known.size += end
        if end:
            known.last = chunk[max(0, end - _MARK): end]
        carry = chunk[end:]


def _is_run_name(name: str) -> bool:
    try:
        check_name("run", name)
    except UserError:
        return False
    return True


def _first_row(data: bytes) -> dict[str, Any]:
    end = data.find(b"\n", 0, _FIRST_LINE_MAX)
    if end < 0:
        return {}
    try:
        row = json.loads(data[:end])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return row if isinstance(row, dict) and row.get("kind") == "scenario_started" else {}


# -- following one log -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One event line, checked: its ``seq``, ``kind`` and the row as written (hash included)."""

    seq: int
    kind: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that cannot be shown as an event (or breaks the chain): said to the page, not fatal."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Reset:
    """The log was cut back (a resumed run continues from its last committed decision): start again."""


Entry = Event | Problem | Reset


class EventTail:
    """Reads the lines appended to an event log since the last :meth:`poll`.

    Only complete lines count: a line without its newline is still being written and is read at a
    later poll. Each line is parsed as a typed event (:func:`llm_sched.core.events.parse_event`) and
    checked against the hash chain; a line that fails is a :class:`Problem`, and the next ones are
    still read. A log shorter than what was read, or whose last line read has changed, was cut back:
    a :class:`Reset`, and reading starts over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._restart()

    def _restart(self) -> None:
        self.offset = 0
        self.line = 0
        self._last = b""  # the last complete line read, to notice the log being rewritten under us
        self._prev = GENESIS  # the chain value of the last line read
        self._hashed: bool | None = None

    def poll(self) -> list[Entry]:
        """The entries appended since the last call (none while the log does not exist yet)."""
        try:
            with self.path.open("rb") as handle:
                entries: list[Entry] = []
                if self._rewritten(handle):
                    self._restart()
                    entries.append(Reset())
                handle.seek(self.offset)
                chunk = handle.read(_READ_MAX)
                while b"\n" not in chunk and (more := handle.read(_READ_MAX)):
                    chunk += more  # one line longer than a piece: read on to its end
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [Problem(self.line, f"cannot read the event log: {exc.strerror or exc}")]
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for raw in complete.splitlines(keepends=True):
            self.line += 1
            self._last = raw
            entries += self._entries(raw[:-1])
        self.offset += len(complete)
        return entries

    def _rewritten(self, handle: Any) -> bool:
        if self.offset == 0:
            return False
        size = handle.seek(0, os.SEEK_END)
        if size < self.offset:
            return True
        handle.seek(self.offset - len(self._last))
        return bool(handle.read(len(self._last)) != self._last)

    def _entries(self, raw: bytes) -> list[Entry]:
        where = f"line {self.line}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return [Problem(self.line, f"{where} is not UTF-8 text")]
        if not text.strip():
            return []
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            return [Problem(self.line, f"{where} is not JSON ({exc.msg})")]
        if not isinstance(row, dict) or not isinstance(row.get("kind"), str):
            return [Problem(self.line, f"{where} is not an event (no 'kind')")]
        try:
            parse_event(row)
        except KeyError:
            return [Problem(self.line, f"{where}: unknown event kind {row['kind'][:60]!r}")]
        except ValidationError as exc:
            return [Problem(self.line, f"{where}: a {row['kind'][:60]} event that does not validate "
                                       f"({exc.error_count()} errors)")]
        seq = row.get("seq")
        event = Event(seq if isinstance(seq, int) else -1, row["kind"], row)
        broken = self._chain(text)
        # A line off the chain is still shown, after the warning: hiding it would hide what was changed.
        return [Problem(self.line, f"{where} {broken}"), event] if broken else [event]

    def _chain(self, text: str) -> str | None:
        """What is wrong with this line's place in the hash chain, or None."""
        body, value = unseal(text)
        if self._hashed is None:
            self._hashed = value is not None
        if not self._hashed:
            return "has a hash but the lines before it have none: the log was edited" if value else None
        if value is None:
            return "has no hash but the lines before it have: it was changed or added afterwards"
        # Follow the line's own hash: an edited line is reported alone, not every line after it.
        expected, self._prev = link(self._prev, body), value
        return None if expected == value else "does not match its hash: the log was changed after it was written"
