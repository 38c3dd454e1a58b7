"""Metrics over per-job outcomes and the per-job CSV."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from llm_sched.sim.metrics import (
    CSV_COLUMNS,
    bounded_slowdown,
    peak_usage,
    percentile,
    schedule_metrics,
    write_outcomes_csv,
)
from llm_sched.sim.outcome import JobOutcome

# Machine of 4 processors. (job_id, submit, start, end, procs, where)
OUTCOMES = [
    JobOutcome(1, 0, 0, 100, 2, "m"),  # wait 0, run 100: bsld 1
    JobOutcome(2, 10, 20, 25, 2, "m"),  # wait 10, run 5 (< tau): (10 + 5) / 10 = 1.5
    JobOutcome(3, 10, 100, 120, 3, "m"),  # wait 90, run 20: 110 / 20 = 5.5; starts as job 1 ends
    JobOutcome(4, 50, 110, 140, 1, "m"),  # wait 60, run 30: 90 / 30 = 3
]


def test_bounded_slowdown_formula() -> None:
    assert bounded_slowdown(0, 100) == 1.0
    assert bounded_slowdown(10, 5) == 1.5  # short runs count as tau = 10 s
    assert bounded_slowdown(0, 1) == 1.0  # never below 1
    assert bounded_slowdown(100, 20) == 6.0
    assert bounded_slowdown(5, 0) == 1.0 and bounded_slowdown(50, 0) == 5.0  # zero-length runs


def test_percentile_interpolates_linearly() -> None:
    values = [0.0, 10.0, 60.0, 100.0]
    assert percentile(values, 0) == 0.0 and percentile(values, 100) == 100.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 95) == pytest.approx(94.0)
    assert math.isnan(percentile([], 50))


def test_summary_figures() -> None:
    s = schedule_metrics(OUTCOMES, procs=4)
    assert s.completed == 4
    assert s.wait_mean == pytest.approx((0 + 10 + 90 + 60) / 4)
    assert s.wait_p50 == pytest.approx(35.0)
    assert s.wait_p95 == pytest.approx(60 + 30 * 0.85)
    assert s.wait_max == 90
    assert s.bsld_mean == pytest.approx((1 + 1.5 + 5.5 + 3) / 4)
    assert s.makespan == 140  # last end 140 - first submit 0
    work = 2 * 100 + 2 * 5 + 3 * 20 + 1 * 30
    assert s.utilization == pytest.approx(work / (4 * 140))
    assert s.throughput == pytest.approx(4 / 140)
    assert set(s.as_dict()) >= {"wait_mean", "bsld_mean", "utilization"}


def test_empty_schedule_summary() -> None:
    s = schedule_metrics([], procs=4)
    assert s.completed == 0 and math.isnan(s.wait_mean)


def test_peak_usage_frees_processors_at_job_end() -> None:
    assert peak_usage(OUTCOMES) == 4  # job 3 starts at 100 as job 1 ends: 3, not 2 + 3
    assert peak_usage([JobOutcome(1, 0, 0, 10, 3, "m"), JobOutcome(2, 0, 5, 10, 2, "m")]) == 5


def test_csv_has_one_row_per_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    assert write_outcomes_csv(path, OUTCOMES) == 4
    rows = list(csv.reader(path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS == ("job_id", "submit", "start", "end", "wait", "procs", "where")
    assert rows[3] == ["3", "10", "100", "120", "90", "3", "m"]
    buffer = io.StringIO()
    write_outcomes_csv(buffer, OUTCOMES[:1])
    assert buffer.getvalue().splitlines()[1] == "1,0,0,100,0,2,m"
