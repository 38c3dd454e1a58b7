"""Reader for the Standard Workload Format (SWF) of the Parallel Workloads Archive.

A job line has 18 whitespace-separated numeric fields; header lines start with ``;``. Files may
be gzip-compressed or plain text: the reader looks at the magic bytes, not at the file name
(:func:`llm_sched.loader.read_lines`, which also reports damaged or truncated gzip data).

Every field is -1 (unknown, as SWF writes it) or a finite value from 0 to a bound for its kind
(:data:`FIELD_BOUNDS`): a line with NaN, infinity, another negative number or an absurd size is a
:class:`TraceFormatError` naming the line and the field, not a job. Such a line is refused rather
than skipped: it is a damaged or forged file, and replaying the rest of it would report results
for a workload that is not the one in the file. (Lines that are valid SWF but describe nothing to
run, such as a run time of -1, are skipped and counted, as before.)

Bytes that are not UTF-8 are read as U+FFFD, not refused: in a job line they make a field that is
not a number (an error naming line and field); in a ``;`` comment, where old logs carry Latin-1
names, they change nothing the simulator uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from operator import le
from os import PathLike
from pathlib import Path
from typing import NoReturn

from llm_sched.errors import UserError
from llm_sched.loader import INT64_MAX, read_lines

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

# Upper bounds, by kind. The simulator keeps state per processor, so a machine or job beyond
# MAX_PROCS would exhaust memory rather than be simulated (the largest machines have ~10^7 cores).
MAX_SECONDS = 1e10  # over 300 years, and above any Unix time of this century
MAX_PROCS = 10_000_000
MAX_KB = 1e15  # memory per processor, kilobytes (an exabyte)
_KINDS: dict[str, tuple[float, str]] = {  # kind -> (bound, what a value is)
    "seconds": (MAX_SECONDS, "a number of seconds"),
    "procs": (MAX_PROCS, "a whole number of processors"),
    "kb": (MAX_KB, "a number of kilobytes"),
    "id": (INT64_MAX, "a whole number"),  # ids and codes: stored as 64-bit integers
}
FIELD_KINDS: tuple[str, ...] = (
    "id", "seconds", "seconds", "seconds", "procs", "seconds", "kb", "procs", "seconds", "kb",
    "id", "id", "id", "id", "id", "id", "id", "seconds",
)
FIELD_BOUNDS: tuple[float, ...] = tuple(_KINDS[kind][0] for kind in FIELD_KINDS)
"""The largest value each field may hold; the smallest is 0, or -1 for unknown."""
_UNKNOWN = -1
_HEADER_BOUNDS: dict[str, int] = {"MaxProcs": MAX_PROCS, "MaxNodes": MAX_PROCS, "UnixStartTime": INT64_MAX}
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
        if len(found) > 40:  # a hostile token may be megabytes long
            found = found[:37] + "..."
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
        with closing(read_lines(Path(self.path), "trace")) as lines:
            for lineno, line in enumerate(lines, start=1):
                text = line.strip()
                if not text:
                    continue
                if text[0] == ";":
                    if _read_header_line(text, header_lines, self.path, lineno):
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
    are allowed except in fields that hold ids, counts or codes. Every value is -1 (unknown) or
    from 0 to its field's bound in :data:`FIELD_BOUNDS`.
    """
    if len(parts) != N_FIELDS:
        _raise_count(parts, name, lineno)
    try:
        # Fast path, three C-level passes: every field is an integer except average CPU time
        # and memory (fields 6 and 7), which some logs write with decimals.
        values = [*map(int, parts[:5]), *map(float, parts[5:7]), *map(int, parts[7:])]
    except ValueError:
        values = _parse_slow(parts, name, lineno)
        _check_ranges(values, parts, name, lineno)
        return values
    if not _plausible(values):
        _check_ranges(values, parts, name, lineno)
    return values


def _plausible(values: list[float]) -> bool:
    """The fast path's range test, in C-level passes (it runs once per job line): no value below -1,
    none above its bound (NaN fails that comparison too), and no fraction between -1 and 0, which
    only the two fields parsed as floats can hold. :func:`_check_ranges` names the field if not."""
    cpu, memory = values[5], values[6]
    return (min(values) >= _UNKNOWN and all(map(le, values, FIELD_BOUNDS))
            and (cpu >= 0 or cpu == _UNKNOWN) and (memory >= 0 or memory == _UNKNOWN))


def _check_ranges(values: list[float], parts: list[str], name: str, lineno: int) -> None:
    """Raise :class:`TraceFormatError` for the first field that is neither -1 nor within its bounds."""
    for i, (value, kind) in enumerate(zip(values, FIELD_KINDS)):
        bound, what = _KINDS[kind]
        if value != _UNKNOWN and not 0 <= value <= bound:
            raise TraceFormatError(name, lineno, i + 1, f"-1 (unknown) or {what} from 0 to {int(bound):,}",
                                   repr(parts[i]))


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


def _read_header_line(text: str, into: dict[str, str], name: str, lineno: int) -> bool:
    """Record a "; Key: value" line (the first of a repeated key wins); False if not one.

    A machine size or start time beyond its bound is an error here: the machine is sized from it.
    """
    match = _HEADER_RE.match(text)
    if match is None:
        return False
    key, value = match.group(1), match.group(2)
    digits, bound = _leading_digits(value), _HEADER_BOUNDS.get(key)
    if key not in into and bound is not None and digits is not None and _beyond(digits, bound):
        shown = digits if len(digits) <= 40 else digits[:37] + "..."
        raise UserError(f"{name}, line {lineno}: header {key}: expected a whole number from 0 to {bound:,}, "
                        f"found {shown}")
    into.setdefault(key, value)
    return True


def _beyond(digits: str, bound: int) -> bool:
    # Compared by length first: int() refuses strings of more than 4300 digits.
    significant = digits.lstrip("0") or "0"
    return len(significant) > len(str(bound)) or int(significant) > bound


def _make_header(lines: dict[str, str]) -> TraceHeader:
    return TraceHeader(
        max_procs=_leading_int(lines.get("MaxProcs")),
        max_nodes=_leading_int(lines.get("MaxNodes")),
        unix_start_time=_leading_int(lines.get("UnixStartTime")),
        fields=dict(lines),
    )


def _leading_int(value: str | None) -> int | None:
    # Values such as "338 (batch partition; 512 total)" carry a comment after the number.
    digits = _leading_digits(value)
    return int(digits) if digits is not None else None


def _leading_digits(value: str | None) -> str | None:
    match = _LEADING_INT_RE.match(value) if value is not None else None
    return match.group(1) if match else None
