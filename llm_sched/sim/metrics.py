"""Scheduling metrics over per-job outcomes, and a per-job CSV writer.

Definitions follow shared/docs/REFERENCE.md: wait = start - submit; bounded slowdown
max(1, (wait + run) / max(run, tau)) with tau = 10 s; utilization = sum(procs x run) /
(P x (last end - first submit)).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from typing import TextIO

from llm_sched.sim.outcome import JobOutcome

BSLD_TAU = 10.0
"""Seconds: runs shorter than this count as this long in the bounded slowdown."""

CSV_COLUMNS: tuple[str, ...] = ("job_id", "submit", "start", "end", "wait", "procs", "where")


@dataclass(frozen=True, slots=True)
class ScheduleMetrics:
    """Aggregate figures of one schedule. Times in seconds; throughput in jobs per second."""

    completed: int
    wait_mean: float
    wait_p50: float
    wait_p95: float
    wait_max: float
    bsld_mean: float
    utilization: float
    makespan: float  # last end - first submit
    throughput: float  # completed / makespan

    def as_dict(self) -> dict[str, float]:
        """The figures as a plain dict (for JSON, tables, events)."""
        return asdict(self)


def bounded_slowdown(wait: float, run: float, tau: float = BSLD_TAU) -> float:
    """max(1, (wait + run) / max(run, tau))."""
    return max(1.0, (wait + run) / max(run, tau))


def jain_index(values: Iterable[float]) -> float:
    """Jain's fairness index J = (sum x)^2 / (n * sum x^2) of ``n`` non-negative values.

    Computed over whatever per-job quantity the caller passes; the peer comparison
    (:mod:`llm_sched.evaluation.peer_comparison`) passes each completed job's bounded slowdown
    (:func:`bounded_slowdown`, never below 1, so J is always defined there). J lies in [1/n, 1]:
    1 when every value is equal, 1/n when one value is nonzero and the n - 1 others are 0.
    No values (n = 0): NaN, as the other figures of an empty schedule. All values 0: 1 (they are
    all equal). A negative or non-finite value raises :class:`ValueError` (J is for amounts).
    """
    xs = list(values)
    if any(not (x >= 0 and math.isfinite(x)) for x in xs):
        raise ValueError("Jain's index is for finite non-negative values")
    if not xs:
        return math.nan
    squares = math.fsum(x * x for x in xs)
    if squares == 0:
        return 1.0
    return min(1.0, math.fsum(xs) ** 2 / (len(xs) * squares))  # min: rounding never lifts it above 1


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, interpolating linearly between ranks.

    Same as numpy's default ("linear") method; NaN for no values.
    """
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def schedule_metrics(outcomes: Sequence[JobOutcome], procs: int, tau: float = BSLD_TAU) -> ScheduleMetrics:
    """Summarize a schedule of ``outcomes`` on a machine of ``procs`` processors."""
    n = len(outcomes)
    if n == 0:
        nan = math.nan
        return ScheduleMetrics(0, nan, nan, nan, nan, nan, nan, 0.0, 0.0)
    waits = sorted(o.start - o.submit for o in outcomes)
    bsld = math.fsum(bounded_slowdown(o.start - o.submit, o.end - o.start, tau) for o in outcomes)
    work = math.fsum(o.procs * (o.end - o.start) for o in outcomes)
    makespan = max(o.end for o in outcomes) - min(o.submit for o in outcomes)
    return summary_of(waits, bsld, work, makespan, procs)


def summary_of(waits: Sequence[float], bsld: float, work: float, makespan: float, procs: int) -> ScheduleMetrics:
    """The figures of ``n`` completed jobs from their sorted ``waits``, the sum of their bounded
    slowdowns, their work (processors x seconds) and the makespan (one formula for every caller)."""
    n = len(waits)
    return ScheduleMetrics(
        completed=n,
        wait_mean=math.fsum(waits) / n,
        wait_p50=percentile(waits, 50),
        wait_p95=percentile(waits, 95),
        wait_max=waits[-1],
        bsld_mean=bsld / n,
        utilization=work / (procs * makespan) if makespan > 0 else math.nan,
        makespan=makespan,
        throughput=n / makespan if makespan > 0 else math.nan,
    )


def peak_usage(outcomes: Iterable[JobOutcome]) -> int:
    """Most processors in use at any instant (a job's processors are free again at its end).

    An independent check of a schedule: it must never exceed the machine size.
    """
    # At equal times, ends (-procs, sorted first by the 0 flag) come before starts.
    changes = []
    for o in outcomes:
        changes.append((o.start, 1, o.procs))
        changes.append((o.end, 0, -o.procs))
    changes.sort()
    in_use = peak = 0
    for _, _, delta in changes:
        in_use += delta
        peak = max(peak, in_use)
    return peak


def write_outcomes_csv(target: str | PathLike[str] | TextIO, outcomes: Iterable[JobOutcome]) -> int:
    """Write one CSV row per job (columns ``CSV_COLUMNS``) to a path or open text file.

    Returns the number of rows written.
    """
    if isinstance(target, (str, PathLike)):
        with open(target, "w", newline="", encoding="utf-8") as stream:
            return _write_rows(stream, outcomes)
    return _write_rows(target, outcomes)


def _write_rows(stream: TextIO, outcomes: Iterable[JobOutcome]) -> int:
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for o in outcomes:
        writer.writerow((o.job_id, o.submit, o.start, o.end, o.start - o.submit, o.procs, o.where))
        rows += 1
    return rows
