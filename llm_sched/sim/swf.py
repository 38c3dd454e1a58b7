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

import math
import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from operator import le
from os import PathLike
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

from llm_sched.errors import UserError
from llm_sched.loader import INT64_MAX, MAX_LINE, read_lines

if TYPE_CHECKING:
    import numpy as np

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


# -- the jobs as columns ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class TraceColumns:
    """The jobs of :func:`load_trace` as numpy columns, in file order, without a TraceJob a job.

    ``submit``, ``run`` and ``estimate`` are floats (whole values are exact); ``job_id`` and
    ``procs`` are int64. ``walltime``: the requested time (:func:`walltime`), inf where missing.
    """

    path: str
    header: TraceHeader
    job_id: np.ndarray
    submit: np.ndarray
    run: np.ndarray
    procs: np.ndarray
    estimate: np.ndarray
    skipped_no_run: int
    skipped_no_procs: int
    walltime: np.ndarray

    def __len__(self) -> int:
        return len(self.job_id)

    @property
    def skipped(self) -> int:
        """Total job lines read but not turned into jobs."""
        return self.skipped_no_run + self.skipped_no_procs


def load_columns(
    path: str | PathLike[str], limit: int | None = None, keep_zero_run: bool = True
) -> TraceColumns:
    """:func:`load_trace`'s jobs, header and counts as :class:`TraceColumns`.

    A well-formed file (job lines of digits, points and minus signs; header lines) is parsed a few
    megabytes at a time by numpy and checked as :func:`parse_fields` checks each line. Anything else
    (a damaged or forged line, another spelling of a number, a read error, a header the reader
    refuses) is read again by :class:`SwfReader`, so the jobs and the errors are the same as
    :func:`load_trace`'s.
    """
    fast = _ColumnReader(Path(path), limit, keep_zero_run).read()
    if fast is not None:
        return fast
    import numpy as np

    reader = SwfReader(path, limit, keep_zero_run)
    jobs = list(reader)
    ids = np.array([j.job_id for j in jobs], dtype=np.int64)
    times = np.array([(j.submit, j.run, j.estimate, walltime(j.requested_time)) for j in jobs],
                     dtype=np.float64).reshape(-1, 4) + 0.0
    procs = np.array([j.procs for j in jobs], dtype=np.int64)
    return TraceColumns(str(path), reader.header, ids, times[:, 0], times[:, 1], procs, times[:, 2],
                        reader.skipped_no_run, reader.skipped_no_procs, times[:, 3])


def walltime(requested_time: float) -> float:
    """The run time limit a batch system enforces: the requested time (SWF field 9), inf when missing."""
    return float(requested_time) if requested_time > 0 else math.inf


_BLOCK = 4 << 20  # bytes read at a time
_NUMBER_BYTES = b"0123456789.- \t\n"  # all a fast-path job line may hold
_COMMENT_LINE = re.compile(rb"^[ \t]*;[^\n]*", re.MULTILINE)
_EXACT = 2.0**53  # ids beyond it would not be exact as floats


class _ColumnReader:
    """The fast path of :func:`load_columns`; ``read`` returns None to leave the file to SwfReader."""

    def __init__(self, path: Path, limit: int | None, keep_zero_run: bool) -> None:
        self.path = path
        self.limit = limit
        self.keep_zero_run = keep_zero_run
        self.header_lines: dict[str, str] = {}
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.yielded = 0
        self.skipped_no_run = 0
        self.skipped_no_procs = 0
        self.full = limit is not None and limit <= 0  # the limit is reached: the next job line ends
        self.done = False

    def read(self) -> TraceColumns | None:
        import gzip
        import stat
        import zlib
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        try:
            if not stat.S_ISREG(self.path.stat().st_mode):
                return None  # a FIFO or a device: SwfReader says what it is
            with open(self.path, "rb") as raw, ThreadPoolExecutor(1) as reader:
                stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if raw.read(2) == b"\x1f\x8b" else raw
                raw.seek(0)
                carry = b""
                ahead = reader.submit(stream.read, _BLOCK)
                while not self.done:
                    # The next block is read and gunzipped meanwhile (zlib lets go of the GIL).
                    block = ahead.result()
                    if block:
                        ahead = reader.submit(stream.read, _BLOCK)
                    data = carry + block if block else carry + b"\n" if carry else b""
                    if not data:
                        break
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        if len(data) > MAX_LINE:
                            return None
                        carry = data
                        continue
                    carry = data[cut + 1:]
                    if len(carry) > MAX_LINE or not self._lines(data[:cut + 1]):
                        return None
                    if not block:
                        break
        except (OSError, EOFError, zlib.error, UserError, ValueError, UnicodeError):
            return None
        header = _make_header(self.header_lines) if self.header_lines else TraceHeader()
        empty = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
        job_id, submit, run, procs, estimate, limit = (
            np.concatenate(part) for part in zip(*self.parts)) if self.parts else empty
        return TraceColumns(str(self.path), header, job_id, submit, run, procs, estimate,
                            self.skipped_no_run, self.skipped_no_procs, limit)

    def _lines(self, data: bytes) -> bool:
        """Complete lines: job lines in runs, header lines one by one. False: not for the fast path."""
        if b"\r" in data:
            return False  # universal newlines would make more lines of it
        at = 0
        if b";" in data:
            for match in _COMMENT_LINE.finditer(data):
                if not self._jobs(data[at:match.start()]):
                    return False
                if self.done:
                    return True
                if match.end() - match.start() > MAX_LINE:
                    return False
                _read_header_line(match.group().decode("utf-8", "replace").strip(), self.header_lines,
                                  str(self.path), 0)
                at = match.end() + 1
        return self._jobs(data[at:])

    def _jobs(self, data: bytes) -> bool:
        import numpy as np

        if not data.strip():
            return True  # blank lines
        if self.full:
            self.done = True  # a job line after the limit: the reader stops before it
            return True
        if data.translate(None, _NUMBER_BYTES):
            return False
        if len(data) > MAX_LINE:
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            if int(np.diff(ends, prepend=-1).max()) > MAX_LINE + 1:
                return False
        columns = _parse(data)
        if columns is None:
            return False
        run = columns[3]
        kept_run = run >= 0 if self.keep_zero_run else run > 0
        procs = np.where(columns[4] > 0, columns[4], columns[7])
        kept = kept_run & (procs > 0)
        if self.limit is not None:
            room = self.limit - self.yielded
            counts = np.cumsum(kept)
            if counts[-1] >= room:  # the limit falls in this run of lines
                last = int(np.searchsorted(counts, room)) + 1  # lines read: up to the room-th job
                columns = [c[:last] for c in columns]
                run, procs, kept, kept_run = run[:last], procs[:last], kept[:last], kept_run[:last]
                self.full = True
                self.done = last < len(counts)
        if not _valid(columns):
            return False
        self.skipped_no_run += int((~kept_run).sum())
        self.skipped_no_procs += int((kept_run & ~kept).sum())
        self.yielded += int(kept.sum())
        requested_time = columns[8][kept]
        run = run[kept] + 0.0  # floats; + 0.0: no -0.0 (the reader's int 0)
        estimate = np.maximum(np.where(requested_time >= 0, requested_time, -1), run) + 0.0
        limit = np.where(requested_time > 0, requested_time, np.inf) + 0.0  # as walltime()
        self.parts.append((columns[0][kept].astype(np.int64), columns[1][kept] + 0.0, run,
                           procs[kept].astype(np.int64), estimate, limit))
        return True


# A job line's fields as numpy parses them fastest: whole numbers, but for the average CPU time and
# the memory (fields 6 and 7), which logs write with decimals.
_ROW = [(f"f{k}", "f8" if k in (5, 6) else "i8") for k in range(N_FIELDS)]


def _parse(data: bytes) -> list[np.ndarray] | None:
    """The 18 fields of the job lines in ``data`` as columns: whole numbers as int64 when they all
    are, else every field as float64; None when numpy refuses a line (the line reader will say why)."""
    import io
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rows = np.loadtxt(io.BytesIO(data), dtype=_ROW, comments=None, ndmin=1, encoding="ascii")
            return [rows[f"f{k}"] for k in range(N_FIELDS)]
        except ValueError:
            pass  # a decimal point in a field of whole numbers (a time, say), or a bad line
        try:
            values = np.loadtxt(io.BytesIO(data), dtype=np.float64, comments=None, ndmin=2, encoding="ascii")
        except ValueError:
            return None
    return list(values.T) if values.shape[1] == N_FIELDS else None


def _valid(columns: list[np.ndarray]) -> bool:
    """What :func:`parse_fields` accepts: each field -1 or from 0 to its bound, whole where it must be
    (and, read as floats, ids exact: below 2**53). Checked from each column's extremes."""
    import numpy as np

    if not len(columns[0]):
        return True
    for k, values in enumerate(columns):
        low, high = values.min(), values.max()
        whole = values.dtype.kind == "i"
        if low < _UNKNOWN or high > (FIELD_BOUNDS[k] if whole else _FAST_BOUNDS[k]):
            return False
        if whole:
            continue  # int64: whole, and within 64 bits
        if k in _INTEGER_FIELDS:
            if not (np.floor(values) == values).all():
                return False  # a fraction where a whole number must be (so none in (-1, 0) either)
        elif low < 0 and ((values < 0) & (values != _UNKNOWN)).any():
            return False  # a fraction in (-1, 0)
    return True


# FIELD_BOUNDS, ids capped where floats stop being exact: a larger id goes to the line reader.
_FAST_BOUNDS: tuple[float, ...] = tuple(
    min(bound, _EXACT - 1) if kind == "id" else bound for bound, kind in zip(FIELD_BOUNDS, FIELD_KINDS))
