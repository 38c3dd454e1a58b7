"""SWF reading: gzip and plain files, header, field conventions, skipped jobs, format errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from llm_sched.errors import UserError
from llm_sched.sim.swf import SwfReader, TraceFormatError, load_trace

HEADER = """\
; Version: 2.2
; Computer: test machine
; MaxNodes: 16 (batch partition; 32 total)
; MaxProcs: 8
;
"""

# Fields: job submit wait run alloc cpu mem req_procs req_time req_mem status user group exe queue
#         partition preceding think
JOBS = """\
1   0  5  100  4  12.50  -1  4   200  -1 1 7 3 -1 1 -1 -1 -1
2  10  0   50 -1     -1  -1  2    -1  -1 0 8 3 -1 1 -1 -1 -1
3  20  0   30  2     -1  -1  2    10  -1 5 9 3 -1 1 -1 -1 -1
4  30  0    0  1     -1  -1  1    60  -1 1 9 3 -1 1 -1 -1 -1
5  40  0   -1  1     -1  -1  1    60  -1 1 9 3 -1 1 -1 -1 -1
6  50  0   10 -1     -1  -1 -1    60  -1 1 9 3 -1 1 -1 -1 -1
7  60  0   10  1     -1  -1  1    60  -1 1 9 3 -1 1 -1 -1 -1
"""


def _write(tmp_path: Path, name: str, text: str, compress: bool) -> Path:
    path = tmp_path / name
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_reads_gzip_and_plain_alike_whatever_the_name(tmp_path: Path, compress: bool) -> None:
    # The misleading names prove detection is by magic bytes, not by extension.
    name = "trace.swf" if compress else "trace.swf.gz"
    trace = load_trace(_write(tmp_path, name, HEADER + JOBS, compress))
    assert [job.job_id for job in trace.jobs] == [1, 2, 3, 4, 7]  # job 4 runs 0 s: kept; 5 (run -1) and 6 (no procs): skipped
    assert trace.header.max_procs == 8
    assert trace.header.max_nodes == 16  # the comment after the number is ignored
    assert trace.header.fields["Computer"] == "test machine"


def test_field_conventions(tmp_path: Path) -> None:
    jobs = {job.job_id: job for job in load_trace(_write(tmp_path, "t.swf", HEADER + JOBS, False)).jobs}
    first = jobs[1]
    assert (first.submit, first.wait, first.run) == (0, 5, 100)
    assert (first.procs, first.status, first.user) == (4, 1, 7)
    assert first.requested_time == 200 and first.estimate == 200
    # Allocated processors missing (-1): fall back to the requested count (field 8).
    assert jobs[2].procs == 2
    # Requested time missing: the estimate is the run time.
    assert jobs[2].requested_time == -1 and jobs[2].estimate == 50
    # Requested time shorter than the run (the job overran it): estimate = max(requested, run).
    assert jobs[3].requested_time == 10 and jobs[3].estimate == 30


def test_unrunnable_jobs_are_counted_not_silently_dropped(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.swf", HEADER + JOBS, False)
    strict = load_trace(path, keep_zero_run=False)
    assert strict.skipped_no_run == 2  # job 4 (run 0) and job 5 (run -1)
    assert strict.skipped_no_procs == 1  # job 6: neither allocated nor requested processors
    assert strict.skipped == 3
    kept = load_trace(path)  # the default keeps run-0 jobs, as the reference results do
    assert [job.job_id for job in kept.jobs] == [1, 2, 3, 4, 7]
    assert kept.skipped_no_run == 1


def test_limit_counts_jobs_yielded(tmp_path: Path) -> None:
    reader = SwfReader(_write(tmp_path, "t.swf", HEADER + JOBS, True), limit=2)
    assert [job.job_id for job in reader] == [1, 2]
    assert reader.header.max_procs == 8


def _error_for(tmp_path: Path, bad_line: str, compress: bool = False) -> TraceFormatError:
    path = _write(tmp_path, "broken.swf", HEADER + JOBS + bad_line + "\n", compress)
    with pytest.raises(TraceFormatError) as caught:
        load_trace(path)
    return caught.value


BAD_LINE_NO = HEADER.count("\n") + JOBS.count("\n") + 1  # 1-based: the line after the good ones


def test_too_few_fields_names_file_line_and_missing_field(tmp_path: Path) -> None:
    error = _error_for(tmp_path, "8 70 0 10 1 -1 -1 1 60 -1 1 9 3 -1 1 -1 -1")  # 17 fields
    message = str(error)
    assert "broken.swf" in message
    assert f"line {BAD_LINE_NO}" in message
    assert "field 18 (think_time)" in message
    assert "expected 18 whitespace-separated fields" in message
    assert isinstance(error, UserError)  # the CLI prints it without a traceback
    assert (error.line, error.field_index, error.field_name) == (BAD_LINE_NO, 18, "think_time")


def test_too_many_fields_is_reported(tmp_path: Path) -> None:
    message = str(_error_for(tmp_path, "8 70 0 10 1 -1 -1 1 60 -1 1 9 3 -1 1 -1 -1 -1 99"))
    assert f"line {BAD_LINE_NO}" in message and "field 19" in message and "found 19 fields" in message


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_non_numeric_field_names_file_line_and_field(tmp_path: Path, compress: bool) -> None:
    error = _error_for(tmp_path, "8 70 0 ten 1 -1 -1 1 60 -1 1 9 3 -1 1 -1 -1 -1", compress)
    message = str(error)
    assert "broken.swf" in message
    assert f"line {BAD_LINE_NO}" in message
    assert "field 4 (run_time)" in message
    assert "expected a number" in message and "'ten'" in message


def test_fractional_count_is_rejected_but_fractional_time_is_read(tmp_path: Path) -> None:
    message = str(_error_for(tmp_path, "8 70 0 10 2.5 -1 -1 1 60 -1 1 9 3 -1 1 -1 -1 -1"))
    assert "field 5 (allocated_procs)" in message and "expected a whole number" in message
    path = _write(tmp_path, "frac.swf", "1 0.5 0 10.25 1 -1 -1 1 60 -1 1 9 3 -1 1 -1 -1 -1\n", False)
    (job,) = load_trace(path).jobs
    assert (job.submit, job.run, job.estimate) == (0.5, 10.25, 60)
