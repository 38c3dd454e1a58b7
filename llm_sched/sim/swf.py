"""Reader for the Standard Workload Format (SWF) of the Parallel Workloads Archive.

A job line has 18 whitespace-separated numeric fields; header lines start with ``;``. Files may
be gzip-compressed or plain text: the reader looks at the magic bytes, not at the file name.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from typing import NoReturn, TextIO

from llm_sched.errors import UserError

FIELD_NAMES: tuple[str, ...] = (
    "job_number",
    "submit_time",
    "wait_time",
    "run_time",
    "allocated_procs",
    "avg_cpu_time",
    "used_memory",
    "requested_procs",
    "requested_time",
    "requested_memory",
    "status",
    "user_id",
    "group_id",
    "executable",
    "queue",
    "partition",
    "preceding_job",
    "think_time",
)
"""The 18 SWF fields in file order (field k of the format is ``FIELD_NAMES[k - 1]``)."""

N_FIELDS = len(FIELD_NAMES)

# 0-based positions of the fields that must hold whole numbers (ids, counts, codes).
_INTEGER_FIELDS: tuple[int, ...] = (0, 4, 7, 10, 11, 12, 13, 14, 15, 16)

_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_RE = re.compile(r"^;\s*([A-Za-z][\w ]*?)\s*:\s*(.*?)\s*$")
_LEADING_INT_RE = re.compile(r"^\s*(\d+)")


class TraceFormatError(UserError):
    """A job line that does not follow SWF; the message names file, line, field and expectation."""

    def __init__(self, path: str, line: int, field_index: int, expected: str, found: str) -> None:
        name = FIELD_NAMES[field_index - 1] if 1 <= field_index <= N_FIELDS else "extra field"
        self.path = path
        self.line = line
        self.field_index = field_index
        self.field_name = name
        super().__init__(
            f"{path}, line {line}: field {field_index} ({name}): expected {expected}, found {found}"
        )


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace. Times are in seconds; -1 marks a missing value, as in SWF."""

    job_id: int
    submit: float
    wait: float
    run: float
    procs: int  # allocated processors (field 5), or requested (field 8) when field 5 is missing
    requested_procs: int
    requested_time: float  # field 9; -1 when missing
    estimate: float  # what a scheduler may know of the run time: max(requested_time, run)
    status: int
    user: int
    group: int
    queue: int
    partition: int


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """The machine description from the ``;`` header lines."""

    max_procs: int | None = None
    max_nodes: int | None = None
    unix_start_time: int | None = None
    fields: dict[str, str] = field(default_factory=dict)  # every "Key: value" header line


@dataclass(frozen=True, slots=True)
class Trace:
    """A whole trace in memory, with how many job lines were skipped and why."""

    path: str
    header: TraceHeader
    jobs: tuple[TraceJob, ...]
    skipped_no_run: int  # run time missing or not positive: nothing to simulate
    skipped_no_procs: int  # neither allocated nor requested processors > 0

    @property
    def skipped(self) -> int:
        """Total job lines read but not turned into jobs."""
        return self.skipped_no_run + self.skipped_no_procs


def open_text(path: str | PathLike[str]) -> TextIO:
    """Open a file for reading text, decompressing it when it starts with the gzip magic bytes."""
    raw = open(path, "rb")  # noqa: SIM115 - ownership passes to the returned stream
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", errors="replace")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


class SwfReader:
    """Iterate over the jobs of one SWF file; ``header`` and skip counts fill in while reading.

    ``limit`` stops after that many jobs have been yielded (skipped lines do not count).
    Jobs whose run time is 0 are kept by default: they are real submissions that waited in the
    queue (the reference results in REFERENCE.md count them). ``keep_zero_run=False`` skips them
    along with jobs whose run time is missing (-1), which are always skipped and counted.
    """

    def __init__(
        self, path: str | PathLike[str], limit: int | None = None, keep_zero_run: bool = True
    ) -> None:
        self.path = str(path)
        self.limit = limit
        self.keep_zero_run = keep_zero_run
        self.header = TraceHeader()
        self.skipped_no_run = 0
        self.skipped_no_procs = 0

    @property
    def skipped(self) -> int:
        """Total job lines skipped so far (no run time or no processors)."""
        return self.skipped_no_run + self.skipped_no_procs

    def __iter__(self) -> Iterator[TraceJob]:
        header_lines: dict[str, str] = {}
        yielded = 0
        self.skipped_no_run = self.skipped_no_procs = 0  # counts describe the latest pass
        with open_text(self.path) as stream:
            for lineno, line in enumerate(stream, start=1):
                text = line.strip()
                if not text:
                    continue
                if text[0] == ";":
                    if _read_header_line(text, header_lines):
                        self.header = _make_header(header_lines)
                    continue
                if self.limit is not None and yielded >= self.limit:
                    break
                job = self._job(parse_fields(text.split(), self.path, lineno))
                if job is not None:
                    yielded += 1
                    yield job

    def _job(self, values: list[float]) -> TraceJob | None:
        run = values[3]
        if run < 0 or (run == 0 and not self.keep_zero_run):
            self.skipped_no_run += 1
            return None
        job = make_job(values)
        if job.procs <= 0:
            self.skipped_no_procs += 1
            return None
        return job


def load_trace(
    path: str | PathLike[str], limit: int | None = None, keep_zero_run: bool = True
) -> Trace:
    """Read a whole SWF file (gzip or plain) into a :class:`Trace`; see :class:`SwfReader`."""
    reader = SwfReader(path, limit, keep_zero_run)
    jobs = tuple(reader)
    return Trace(str(path), reader.header, jobs, reader.skipped_no_run, reader.skipped_no_procs)


def parse_fields(parts: list[str], name: str, lineno: int) -> list[float]:
    """Convert the 18 tokens of a job line to numbers, or raise :class:`TraceFormatError`.

    Integral values come back as ``int`` (so times print without ``.0``); fractional values
    are allowed except in fields that hold ids, counts or codes.
    """
    if len(parts) != N_FIELDS:
        _raise_count(parts, name, lineno)
    try:
        # Fast path, three C-level passes: every field is an integer except average CPU time
        # and memory (fields 6 and 7), which some logs write with decimals.
        return [*map(int, parts[:5]), *map(float, parts[5:7]), *map(int, parts[7:])]
    except ValueError:
        return _parse_slow(parts, name, lineno)


def make_job(v: list[float]) -> TraceJob:
    """Build a :class:`TraceJob` from the 18 numbers of a job line (no filtering)."""
    run = v[3]
    allocated = int(v[4])
    requested_procs = int(v[7])
    # Allocated processors are what the job really occupied; the request is the fallback
    # when the allocation is missing (-1, or 0 in a few logs).
    procs = allocated if allocated > 0 else requested_procs
    requested_time = v[8] if v[8] >= 0 else -1
    # A missing request (-1, or 0 in some logs) leaves the scheduler with the run time;
    # a request shorter than the run (the job overran it) is raised to the run time.
    estimate = max(requested_time, run)
    # Positional arguments: this runs once per job line and keyword passing costs measurably.
    return TraceJob(
        int(v[0]), v[1], v[2], run, procs, requested_procs, requested_time, estimate,
        int(v[10]), int(v[11]), int(v[12]), int(v[14]), int(v[15]),
    )


def _parse_slow(parts: list[str], name: str, lineno: int) -> list[float]:
    """Field-by-field parse: accepts fractional times, and names the first bad field."""
    values: list[float] = []
    for i, token in enumerate(parts):
        try:
            x = float(token)
        except ValueError:
            raise TraceFormatError(name, lineno, i + 1, "a number", repr(token)) from None
        if x.is_integer():
            values.append(int(x))
        elif i in _INTEGER_FIELDS:
            raise TraceFormatError(name, lineno, i + 1, "a whole number", repr(token))
        else:
            values.append(x)
    return values


def _raise_count(parts: list[str], name: str, lineno: int) -> NoReturn:
    found = len(parts)
    # Name the first field that is missing, or the first one too many.
    index = found + 1 if found < N_FIELDS else N_FIELDS + 1
    raise TraceFormatError(
        name, lineno, index, f"{N_FIELDS} whitespace-separated fields", f"{found} fields"
    )


def _read_header_line(text: str, into: dict[str, str]) -> bool:
    """Record a "; Key: value" line (the first of a repeated key wins); False if not one."""
    match = _HEADER_RE.match(text)
    if match is None:
        return False
    into.setdefault(match.group(1), match.group(2))
    return True


def _make_header(lines: dict[str, str]) -> TraceHeader:
    return TraceHeader(
        max_procs=_leading_int(lines.get("MaxProcs")),
        max_nodes=_leading_int(lines.get("MaxNodes")),
        unix_start_time=_leading_int(lines.get("UnixStartTime")),
        fields=dict(lines),
    )


def _leading_int(value: str | None) -> int | None:
    # Values such as "338 (batch partition; 512 total)" carry a comment after the number.
    if value is None:
        return None
    match = _LEADING_INT_RE.match(value)
    return int(match.group(1)) if match else None
