"""Figures of one resilience run, computed from its event list (and the per-job outcomes).

A central run without failures kept as a :class:`~llm_sched.sim.resilience.JobTable` (a trace
replay) is read from its columns instead, at C speed: the same figures, series and CSV bytes.

Definitions (shared/docs/REFERENCE.md where it has one):

- window: from the first submission to the last job end (or the deadline); events after it (failures
  drawn for the horizon that fall after the work is done) are not counted.
- completion rate: jobs completed / jobs submitted (jobs wider than the machine count as submitted
  and not completed).
- availability: time-weighted fraction of agent-time in service over the window: an agent is out of
  service while its outage lasts or while a partition cuts it off; never above 100%.
- decision availability: fraction of the window during which the policy could decide (central
  scheduler up; for agents, a quorum of live, connected agents).
- MTTR: for each outage that killed jobs, the time from the outage's start to the moment the last
  of those jobs runs again (detection + rescheduling); the mean over those outages. Outages some of
  whose jobs never ran again before the end are left out and counted as ``unrecovered``.
- detection: mean time from an outage's start to its detection (phi-accrual), over the window.
- wait = start - submit of the attempt that completed; bounded slowdown max(1, (wait + run) /
  max(run, 10)); utilization = work of the completed runs / (nodes x makespan); makespan = last end -
  first submit; throughput = completed / makespan (jobs per second). Work lost to kills is reported
  separately as ``lost_work`` (node-seconds).
- timeouts: jobs killed when they reached their walltime (counted as ended: the batch system
  ended them; the work they did is in the utilization). failovers: takeovers by a central
  scheduler's hot standby.
- llm calls, choices, fallbacks (agents whose awards a model chooses): the calls sent, the awards
  that are the model's own choice, and those the heuristic gave instead (budget spent, invalid
  answer, failed call); the proposals that needed no call (no choice, or no close call) are neither.
- rounds per decision: the protocol's views (PBFT) or rounds (Tendermint) a decision took, 1 when
  the first leader's proposal passed; counted from the agents' protocol state (0 for a central
  scheduler).
- messages per decision: protocol messages / decisions (0 for a central scheduler, whose decisions
  are local).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from itertools import repeat
from os import PathLike
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

from llm_sched.sim.columns import Coded, Same
from llm_sched.sim.metrics import BSLD_TAU, ScheduleMetrics, schedule_metrics, summary_of
from llm_sched.sim.resilience import JobTable, SimEvent, SimRun

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, slots=True)
class ResilienceMetrics:
    """The figures of one run (times in seconds, rates as fractions in [0, 1])."""

    policy: str
    jobs: int
    completed: int
    completion_rate: float
    rejected: int
    availability: float
    decision_availability: float
    failures: int
    kills: int
    lost_work: float
    requeues: int
    resubmitted: int
    mttr: float
    unrecovered: int
    detection_mean: float
    throughput: float  # completed jobs per second of makespan
    wait_mean: float  # seconds from submission to the last attempt's start, over completed jobs
    wait_p50: float
    wait_p95: float
    wait_max: float
    bsld_mean: float  # bounded slowdown, tau 10 s
    utilization: float
    makespan: float
    decisions: int
    messages: int
    messages_per_decision: float
    bytes_per_decision: float
    decision_latency: float
    rounds_per_decision: float  # protocol views or rounds per decision (1: decided in the first)
    undecided: int  # agents' rounds that passed nothing
    votes_refused: int  # votes that did not count (forged, equivocating)
    overclaims: int  # bids whose own score exceeded the recomputed one beyond the tolerance
    timeouts: int  # jobs killed at their walltime (SimConfig.walltime_kill)
    failovers: int  # a central scheduler's standby taking over
    llm_calls: int  # model calls of an llm or hybrid agents run (0: heuristic agents, central policies)
    llm_choices: int  # awards the model chose (checked valid)
    llm_fallbacks: int  # awards the heuristic gave because the budget was spent, the answer invalid or the call failed
    engine_events: int

    def as_dict(self) -> dict[str, float | int | str]:
        """The figures as a plain dict (JSON, tables, campaign records)."""
        return asdict(self)


class Attempt(NamedTuple):
    """One run of a job: from its start to its end or the kill that stopped it."""

    job_id: int
    attempt: int  # 0 for the first start
    start: float
    stop: float  # end, or kill instant (never before start: a job killed before starting ran 0 s)
    nodes: int
    completed: bool
    cause: int  # the outage that killed it, -1 if it completed (or was still running at the end)


_attempt = cast(Callable[[tuple[object, ...]], Attempt], partial(tuple.__new__, Attempt))  # C speed


def attempts(run: SimRun) -> list[Attempt]:
    """Every attempt of every job, from the start, end and kill events, in the order they stopped
    (then those still running at the deadline). Compute it once and pass it to :func:`measure`,
    :func:`busy_series` and :func:`write_jobs_csv`: on a long run it is most of their time."""
    if run.table is not None:
        return _table_attempts(run.table)
    jobs = run.jobs
    open_: dict[int, tuple[int, float]] = {}  # job index -> (attempt index, start)
    count: dict[int, int] = {}
    out: list[Attempt] = []
    for e in run.events:
        kind = e.kind
        if kind == "start":
            a = count.get(e.job, 0)
            count[e.job] = a + 1
            open_[e.job] = (a, e.t)
        elif kind == "end" or kind == "kill":
            a, t = open_.pop(e.job)
            out.append(_attempt((jobs[e.job].job_id, a, t, max(t, e.t), e.amount, kind == "end",
                                 e.cause if kind == "kill" else -1)))
    for i, (a, t) in open_.items():  # still running when the deadline stopped the run
        out.append(Attempt(jobs[i].job_id, a, t, max(t, run.end_time), jobs[i].nodes, False, -1))
    return out


def _table_attempts(table: JobTable) -> list[Attempt]:
    # One attempt a job, completed; in the order of the end records.
    import numpy as np

    log = table.log
    ended = log[(log & 3) == 2] >> 2
    start, end = table.start[ended], table.end[ended]
    return list(map(_attempt, zip(table.job_id[ended].tolist(), repeat(0), start.tolist(),
                                  np.maximum(start, end).tolist(), table.nodes[ended].tolist(),
                                  repeat(True), repeat(-1))))


def _out_of_service(events: Iterable[SimEvent], k: int, lo: float, hi: float) -> float:
    """Agent-seconds out of service within [lo, hi] (overlapping outages of one agent count once)."""
    depth = [0] * k
    since = [0.0] * k
    total = 0.0
    for e in events:
        if e.kind in ("agent_fail", "cut"):
            a = e.agent
            if depth[a] == 0:
                since[a] = e.t
            depth[a] += 1
        elif e.kind in ("agent_recover", "heal"):
            a = e.agent
            depth[a] -= 1
            if depth[a] == 0:
                total += max(0.0, min(e.t, hi) - max(since[a], lo))
    for a in range(k):
        if depth[a] > 0:
            total += max(0.0, hi - max(since[a], lo))
    return total


def _decider_down_time(events: Iterable[SimEvent], lo: float, hi: float) -> float:
    total, since = 0.0, None
    for e in events:
        if e.kind == "decider_down":
            since = e.t
        elif e.kind == "decider_up" and since is not None:
            total += max(0.0, min(e.t, hi) - max(since, lo))
            since = None
    if since is not None:
        total += max(0.0, hi - max(since, lo))
    return total


_JOB_KINDS = frozenset({"submit", "decision", "start", "end", "kill", "requeue", "resubmit"})


def _time(e: SimEvent) -> float:
    return e.t


def measure(run: SimRun, tries: Sequence[Attempt] | None = None) -> ResilienceMetrics:
    """Compute :class:`ResilienceMetrics` from a run (``tries``: its :func:`attempts`, if at hand)."""
    lo, hi = run.start_time, run.end_time
    span = hi - lo
    events = run.events
    k = run.cluster.agents
    table = run.table
    # The sweeps read the failure events only (a handful beside the jobs' events), in time order
    # (stable: same-time events keep the order they happened in), within the window. A run kept
    # as a table had no failure: its events are its jobs' (each decided, started and ended once).
    if table is not None:
        in_window: list[SimEvent] = []
        tries = ()
        kinds = Counter({"decision": len(table)})
        messages = 0
        summary = table_metrics(table, run.cluster.nodes)
    else:
        in_window = sorted((e for e in events if e.kind not in _JOB_KINDS and e.t <= hi), key=_time)
        tries = attempts(run) if tries is None else tries
        kinds = Counter(e.kind for e in events)
        messages = sum(e.amount for e in events if e.kind == "decision" or e.kind == "undecided")
        summary = schedule_metrics(run.outcomes, run.cluster.nodes)
    if span > 0:
        availability = 1.0 - _out_of_service(in_window, k, lo, hi) / (k * span)
        decision_availability = 1.0 - _decider_down_time(in_window, lo, hi) / span
    else:
        availability = decision_availability = 1.0
    started: dict[int, float] = {}
    detected: dict[int, float] = {}
    for e in in_window:
        if e.kind in ("agent_fail", "node_fail", "cut"):
            started.setdefault(e.cause, e.t)
        elif e.kind == "detect":
            detected.setdefault(e.cause, e.t)
    delays = [detected[c] - t for c, t in started.items() if c in detected]
    restarts: dict[tuple[int, int], float] = {(a.job_id, a.attempt): a.start for a in tries}
    recovered: dict[int, float] = {}
    unrecovered: set[int] = set()
    lost = 0.0
    kills = 0
    for a in tries:
        if a.cause < 0:
            continue
        kills += 1
        lost += a.nodes * (a.stop - a.start)
        again = restarts.get((a.job_id, a.attempt + 1))
        outage_start = run.schedule.outages[a.cause].start
        if again is None or again > hi:
            unrecovered.add(a.cause)
        else:
            recovered[a.cause] = max(recovered.get(a.cause, -math.inf), again - outage_start)
    recovery = [t for c, t in recovered.items() if c not in unrecovered]
    submitted = len(run.jobs)
    completed = len(run.outcomes)
    return ResilienceMetrics(
        policy=run.config.policy,
        jobs=submitted,
        completed=completed,
        completion_rate=completed / submitted if submitted else math.nan,
        rejected=len(run.rejected),
        availability=availability,
        decision_availability=decision_availability,
        failures=len(started),
        kills=kills,
        lost_work=lost,
        requeues=kinds["requeue"],
        resubmitted=kinds["resubmit"],
        mttr=sum(recovery) / len(recovery) if recovery else math.nan,
        unrecovered=len(unrecovered),
        detection_mean=sum(delays) / len(delays) if delays else math.nan,
        throughput=summary.throughput,
        wait_mean=summary.wait_mean,
        wait_p50=summary.wait_p50,
        wait_p95=summary.wait_p95,
        wait_max=summary.wait_max,
        bsld_mean=summary.bsld_mean,
        utilization=summary.utilization,
        makespan=summary.makespan,
        decisions=kinds["decision"],
        messages=messages,
        messages_per_decision=messages / kinds["decision"] if kinds["decision"] else 0.0,
        bytes_per_decision=run.decision_bytes / kinds["decision"] if kinds["decision"] else 0.0,
        decision_latency=run.decision_time / kinds["decision"] if kinds["decision"] else 0.0,
        rounds_per_decision=run.decision_rounds / kinds["decision"] if kinds["decision"] and run.decision_rounds else 0.0,
        undecided=kinds["undecided"],
        votes_refused=kinds["refused"],
        overclaims=kinds["overclaim"],
        timeouts=kinds["timeout"],
        failovers=kinds["failover"],
        llm_calls=int(dict(run.advice).get("calls", 0)),
        llm_choices=sum(1 for e in events if e.kind == "advice" and e.amount == 0) if run.advice else 0,
        llm_fallbacks=sum(1 for e in events if e.kind == "advice" and e.amount >= 2) if run.advice else 0,
        engine_events=run.engine_events,
    )


def table_metrics(table: JobTable, procs: int, tau: float = BSLD_TAU) -> ScheduleMetrics:
    """:func:`~llm_sched.sim.metrics.schedule_metrics` of a table's outcomes, on its columns: the
    same float operations on the same values, and exact sums (fsum), so the same figures."""
    import numpy as np

    n = len(table)
    if n == 0:
        return schedule_metrics((), procs, tau)
    waits = table.start - table.submit
    ran = table.end - table.start
    ordered = np.sort(waits).tolist()
    bsld = math.fsum(np.maximum(1.0, (waits + ran) / np.maximum(ran, tau)).tolist())
    work = math.fsum((table.nodes * ran).tolist())
    makespan = float(table.end.max()) - float(table.submit.min())
    return summary_of(ordered, bsld, work, makespan, procs)


def busy_series(run: SimRun, tries: Iterable[Attempt] | None = None) -> tuple[list[float], list[int]]:
    """Nodes computing over time, as a step function: (instants, nodes busy from each instant on).
    ``tries``: the run's :func:`attempts`, if at hand."""
    if run.table is not None:
        times, busy = busy_arrays(run)
        return [run.start_time, *times[1:].tolist()], busy.tolist()
    changes: list[tuple[float, int]] = []
    for a in attempts(run) if tries is None else tries:
        if a.stop > a.start:
            changes.append((a.start, a.nodes))
            changes.append((a.stop, -a.nodes))
    changes.sort()
    times: list[float] = [run.start_time]
    busy: list[int] = [0]
    level = 0
    for t, delta in changes:
        level += delta
        if t == times[-1]:
            busy[-1] = level
        else:
            times.append(t)
            busy.append(level)
    return times, busy


def busy_arrays(run: SimRun, tries: Iterable[Attempt] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`busy_series` as numpy arrays (float instants, int nodes), at C speed for a table."""
    import numpy as np

    table = run.table
    if table is None:
        times, busy = busy_series(run, tries)
        return np.asarray(times, dtype=np.float64), np.asarray(busy, dtype=np.int64)
    # The log is in time order: its starts and ends are the changes, sorted by instant (within an
    # instant the order differs from a sort, but not the level once they are all counted). A slice
    # at a time: small temporaries, not a dozen arrays of millions.
    instants, deltas = [], []
    for a in range(0, len(table.log), _SLICE):
        records = table.log[a:a + _SLICE]
        kind = records & 3
        records, started = records[kind != 0], kind[kind != 0] == 1
        job = records >> 2
        start, end, nodes = table.start[job], table.end[job], table.nodes[job]
        ran = end > start  # an attempt of no length changes nothing
        instants.append(np.where(started, start, end)[ran])
        deltas.append(np.where(started, nodes, -nodes)[ran])
    at = np.concatenate(instants) if instants else np.zeros(0)
    level = np.cumsum(np.concatenate(deltas)) if deltas else np.zeros(0, dtype=np.int64)
    last = np.ones(len(at), dtype=bool)
    last[:-1] = at[1:] != at[:-1]
    at, level = at[last], level[last]
    if len(at) and at[0] == run.start_time:  # a change at the first instant replaces the 0 there
        return at, level
    return (np.concatenate(([float(run.start_time)], at)),
            np.concatenate((np.zeros(1, dtype=np.int64), level)))


JOB_CSV_COLUMNS: tuple[str, ...] = (
    "job_id", "kind", "submit", "start", "end", "wait", "nodes", "where", "attempts", "completed",
)
# The Parquet file's column types (pyarrow names): the CSV's columns, typed. Times in seconds to the
# microsecond, as in the CSV; null where the CSV has an empty field (a job that did not complete).
JOB_PARQUET_TYPES: dict[str, str] = {
    "job_id": "int64", "kind": "string", "submit": "float64", "start": "float64", "end": "float64",
    "wait": "float64", "nodes": "int64", "where": "string", "attempts": "int64", "completed": "int64",
}


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows ``a`` to ``b`` (exclusive) of a table run's accepted jobs: each started once and completed.
    The writers read them from the table's columns, a slice at a time, without a row object each."""

    table: JobTable
    a: int
    b: int

    def __len__(self) -> int:
        return self.b - self.a


def job_rows(run: SimRun, tries: Iterable[Attempt] | None = None) -> Iterator[TableRows | list[tuple[object, ...]]]:
    """The per-job table, one row per submitted job in submission order (columns ``JOB_CSV_COLUMNS``),
    a block at a time: a list of row tuples (None for an empty field) or, for a table run, a
    :class:`TableRows` slice of its columns. ``start`` and ``end`` are those of the attempt that
    completed, times to the microsecond; ``attempts`` counts starts. What the CSV and the Parquet
    writers both write. ``tries``: the run's :func:`attempts`, if at hand."""
    if run.table is not None and _distinct_ids(run, run.table):
        yield from _table_rows(run, run.table)
        return
    done = {o.job_id: o for o in run.outcomes}
    starts: dict[int, int] = {}
    for a in attempts(run) if tries is None else tries:
        starts[a.job_id] = starts.get(a.job_id, 0) + 1
    block: list[tuple[object, ...]] = []
    for job in run.jobs:
        o = done.get(job.job_id)
        if o is None:
            block.append((job.job_id, job.kind, job.submit, None, None, None, job.nodes, None,
                          starts.get(job.job_id, 0), 0))
        else:  # to the microsecond: decision delays make sums such as 0.020000000018
            block.append((job.job_id, job.kind, _t(o.submit), _t(o.start), _t(o.end), _t(o.start - o.submit),
                          o.procs, o.where, starts.get(job.job_id, 0), 1))
        if len(block) == _CSV_SLICE:
            yield block
            block = []
    if block:
        yield block


def write_jobs_csv(target: str | PathLike[str], run: SimRun, tries: Iterable[Attempt] | None = None) -> int:
    """One row per submitted job (columns ``JOB_CSV_COLUMNS``, rows :func:`job_rows`); empty times
    for jobs not completed. ``tries``: the run's :func:`attempts`, if at hand. Returns the number of rows."""
    rows = 0
    with open(target, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)  # writes None as an empty field
        writer.writerow(JOB_CSV_COLUMNS)
        plain: bool | None = None
        for block in job_rows(run, tries):
            if isinstance(block, TableRows):
                if plain is None:
                    plain = _plain_text(block.table)
                _write_table_csv(stream, writer, block, plain)
            else:
                writer.writerows(block)
            rows += len(block)
    return rows


def write_jobs_parquet(target: str | PathLike[str], run: SimRun, tries: Iterable[Attempt] | None = None) -> int:
    """The rows of :func:`write_jobs_csv` as a Parquet file (types ``JOB_PARQUET_TYPES``), written
    from a table run's columns without a Python object per job. Needs pyarrow (the parquet extra).
    Returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in JOB_PARQUET_TYPES.items()])
    rows = 0
    pending: list[pa.RecordBatch] = []
    with pq.ParquetWriter(target, schema) as writer:
        for block in job_rows(run, tries):
            if isinstance(block, TableRows):
                arrays = _table_arrays(block)
            else:
                arrays = [pa.array(list(values), kind) for values, kind in zip(zip(*block), schema.types)]
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            rows += len(block)
            if sum(b.num_rows for b in pending) >= _CSV_SLICE:  # a row group of a slice or more
                writer.write_table(pa.Table.from_batches(pending, schema))
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema))
    return rows


def _t(x: float) -> float | int:
    r = round(float(x), 6)
    return int(r) if r.is_integer() else r


def _distinct_ids(run: SimRun, table: JobTable) -> bool:
    """No two jobs share an id (else the rows follow the id-keyed general writer)."""
    import numpy as np

    ids = table.job_id
    if run.rejected:
        ids = np.concatenate((ids, np.array(run.rejected, dtype=np.int64)))
    elif len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return True
    return len(np.unique(ids)) == len(ids)


_CSV_SLICE = 65_536
_SLICE = 1 << 18  # log records at a time
_CSV_ROW = "%s,%s,%s,%s,%s,%s,%s,%s,1,1\r\n"  # a completed job's row: attempts and completed are 1
_CSV_SPECIAL = frozenset(',"\r\n')  # what makes the csv module quote a field (excel dialect)


def _table_rows(run: SimRun, table: JobTable) -> Iterator[TableRows | list[tuple[object, ...]]]:
    """:func:`job_rows` of a table run: slices of its accepted jobs, and between them the rows of the
    jobs it rejected (wider than the machine), in submission order."""
    import numpy as np

    jobs = run.jobs
    total = len(jobs)
    if table.index is None:
        rejected: list[int] = []
    else:
        rejected = np.flatnonzero(np.isin(np.arange(total), table.index, invert=True)).tolist()
    row = done = 0  # rows given; accepted jobs given
    waiting: list[tuple[object, ...]] = []  # rejected rows not yet given
    for position in [*rejected, total]:
        count = position - row  # accepted jobs before this rejected one
        if count and waiting:
            yield waiting
            waiting = []
        for a in range(done, done + count, _CSV_SLICE):
            yield TableRows(table, a, min(done + count, a + _CSV_SLICE))
        done += count
        if position < total:
            job = jobs[position]
            waiting.append((job.job_id, job.kind, job.submit, None, None, None, job.nodes, None, 0, 0))
        row = position + 1
    if waiting:
        yield waiting


def _plain_text(table: JobTable) -> bool:
    """No text of the table needs quoting in a CSV (then its rows are formatted directly)."""
    return not any(_CSV_SPECIAL.intersection(text) for text in (*table.where_names, *table.kind.distinct()))


def _write_table_csv(stream: IO[str], writer: Any, block: TableRows, plain: bool) -> None:
    """The CSV rows of a table slice, the bytes the csv module writes: formatted directly (str of each
    value, "\\r\\n"), twice as fast, unless a text field needs quotes (then by ``writer``)."""
    table, a, b = block.table, block.a, block.b
    submit, start = table.submit[a:b], table.start[a:b]
    rows = zip(table.job_id[a:b].tolist(), table.kind.part(a, b), _t_column(submit), _t_column(start),
               _t_column(table.end[a:b]), _t_column(start - submit), table.nodes[a:b].tolist(),
               map(table.where_names.__getitem__, table.where[a:b].tolist()))
    if plain:
        stream.write("".join(map(_CSV_ROW.__mod__, rows)))
    else:
        writer.writerows((*r, 1, 1) for r in rows)


def _table_arrays(block: TableRows) -> list[Any]:
    """The Arrow columns of a table slice, from its numpy columns (no Python object per row)."""
    import numpy as np
    import pyarrow as pa

    table, a, b = block.table, block.a, block.b
    n = b - a
    submit, start = table.submit[a:b], table.start[a:b]
    ones = np.ones(n, dtype=np.int64)
    where = pa.array(list(table.where_names), pa.string()).take(pa.array(table.where[a:b]))
    kind = table.kind
    if isinstance(kind, Same):
        kinds = pa.array([kind.value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))
    elif isinstance(kind, Coded):
        kinds = pa.array(list(kind.names), pa.string()).take(pa.array(kind.codes[a:b]))
    else:
        kinds = pa.array(kind.part(a, b), pa.string())
    return [pa.array(table.job_id[a:b], pa.int64()), kinds, pa.array(_micro(submit)), pa.array(_micro(start)),
            pa.array(_micro(table.end[a:b])), pa.array(_micro(start - submit)), pa.array(table.nodes[a:b], pa.int64()),
            where, pa.array(ones), pa.array(ones)]


def _micro(values: np.ndarray) -> np.ndarray:
    """:func:`_t` of each value as floats: the values rounded to the microsecond, at C speed. numpy
    rounds ``values * 1e6``; where that product lies within a few units in the last place of a half,
    its own rounding could tip the other way than Python's exact ``round``: those few take Python's."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if bool((np.trunc(values) == values).all()):
        return values
    rounded = np.round(values, 6)
    scaled = values * 1e6
    near = np.abs(scaled - np.floor(scaled) - 0.5) <= 4 * np.spacing(np.abs(scaled))
    for i in np.flatnonzero(near).tolist():
        rounded[i] = round(float(values[i]), 6)
    return rounded


def _t_column(values: np.ndarray) -> list[float | int]:
    """:func:`_t` of each value: whole values as int at C speed, the others one by one."""
    import numpy as np

    whole = values.astype(np.int64)
    if bool((whole == values).all()):
        return whole.tolist()
    return [_t(v) for v in values.tolist()]
