"""Damaged and forged SWF traces: every field is -1 (unknown) or a finite value within its bound, the
gzip layer reports damage instead of a traceback, and the shipped traces still load in full."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from llm_sched.errors import UserError
from llm_sched.sim.swf import FIELD_BOUNDS, FIELD_NAMES, MAX_PROCS, TraceFormatError, load_trace
from tests.conftest import Cli
from tests.sim.conftest import TRACES_DIR, _trace_path

BIG = "123456789012345678901234"  # beyond 64 bits
ORDER = ("job", "submit", "wait", "run", "procs", "cpu", "mem", "req_procs", "req_time", "req_mem", "status",
         "user", "group", "app", "queue", "partition", "preceding", "think")


def swf_line(**fields: str) -> str:
    """One job line: a 4-processor, 100-second job with every optional field -1, ``fields`` replaced."""
    values = {"job": "1", "submit": "0", "wait": "0", "run": "100", "procs": "4", "req_procs": "4",
              "req_time": "200", "status": "1", "user": "1", "group": "1", "queue": "1"} | fields
    return " ".join(values.get(name, "-1") for name in ORDER) + "\n"


def refused_by_cli(cli: Cli, trace: Path, *fragments: str) -> str:
    result = cli("--simulate", "--trace", str(trace), "--policy", "fcfs", "--agents", "1", "--out", "sim")
    assert result.code == 2 and "Traceback" not in result.text, result.text[-2000:]
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def format_error(tmp_path: Path, line: str) -> TraceFormatError:
    path = tmp_path / "t.swf"
    path.write_text("; MaxProcs: 8\n" + swf_line() + line, encoding="utf-8")
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    return info.value


@pytest.mark.parametrize(("fields", "index", "expected", "found"), [
    ({"run": "nan"}, 4, "-1 (unknown) or a number of seconds from 0 to 10,000,000,000", "'nan'"),
    ({"run": "inf"}, 4, "-1 (unknown) or a number of seconds from 0 to 10,000,000,000", "'inf'"),
    ({"run": "1e400"}, 4, "-1 (unknown) or a number of seconds from 0 to 10,000,000,000", "'1e400'"),
    ({"run": "-5"}, 4, "-1 (unknown) or a number of seconds from 0 to 10,000,000,000", "'-5'"),
    ({"submit": "-inf"}, 2, "-1 (unknown) or a number of seconds from 0 to 10,000,000,000", "'-inf'"),
    ({"cpu": "-0.5"}, 6, "-1 (unknown) or a number of seconds from 0 to 10,000,000,000", "'-0.5'"),
    ({"mem": "nan"}, 7, "-1 (unknown) or a number of kilobytes from 0 to 1,000,000,000,000,000", "'nan'"),
    ({"procs": BIG}, 5, "-1 (unknown) or a whole number of processors from 0 to 10,000,000", f"'{BIG}'"),
    ({"req_procs": "20000000"}, 8, "-1 (unknown) or a whole number of processors from 0 to 10,000,000",
     "'20000000'"),
    ({"job": BIG}, 1, "-1 (unknown) or a whole number from 0 to 9,223,372,036,854,775,807", f"'{BIG}'"),
    ({"user": "-2"}, 12, "-1 (unknown) or a whole number from 0 to 9,223,372,036,854,775,807", "'-2'"),
    ({"procs": "nan"}, 5, "a whole number", "'nan'"),
    ({"run": "9" * 6000}, 4, "-1 (unknown) or a number of seconds from 0 to 10,000,000,000", "'" + "9" * 36 + "..."),
])
def test_a_field_outside_its_range_names_the_line_the_field_and_the_range(
        tmp_path: Path, fields: dict[str, str], index: int, expected: str, found: str) -> None:
    error = format_error(tmp_path, swf_line(**fields))
    assert (error.line, error.field_index, error.field_name) == (3, index, FIELD_NAMES[index - 1])
    assert str(error) == (f"{tmp_path / 't.swf'}, line 3: field {index} ({FIELD_NAMES[index - 1]}): "
                          f"expected {expected}, found {found}")


def test_minus_one_still_means_unknown_in_every_field(tmp_path: Path) -> None:
    path = tmp_path / "t.swf"
    path.write_text(" ".join(["-1"] * 18) + "\n" + swf_line(run="-1") + swf_line(job="2", procs="-1", req_procs="-1")
                    + swf_line(job="3", cpu="-1.0", mem="-1.00"), encoding="utf-8")
    trace = load_trace(path)
    assert [job.job_id for job in trace.jobs] == [3]
    assert (trace.skipped_no_run, trace.skipped_no_procs) == (2, 1)  # counted, as before: valid SWF


def test_fields_at_their_bounds_are_read(tmp_path: Path) -> None:
    path = tmp_path / "t.swf"
    path.write_text(swf_line(job=str(2**63 - 1), run="10000000000", procs=str(MAX_PROCS), mem="1e15"), encoding="utf-8")
    (job,) = load_trace(path).jobs
    assert (job.job_id, job.run, job.procs) == (2**63 - 1, 10**10, MAX_PROCS)


def test_a_header_machine_size_beyond_its_bound_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.swf"
    path.write_text("; Computer: x\n; MaxProcs: " + "9" * 5000 + "\n" + swf_line(), encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_trace(path)
    assert str(info.value) == (f"{path}, line 2: header MaxProcs: expected a whole number from 0 to 10,000,000, "
                               f"found {'9' * 37}...")


def test_a_forged_run_time_is_refused_by_the_command(cli: Cli) -> None:
    trace = cli.cwd / "forged.swf"
    trace.write_text(swf_line() + swf_line(job="2", run="nan"), encoding="utf-8")
    refused_by_cli(cli, trace, "forged.swf, line 2: field 4 (run_time): expected -1 (unknown) or a number of seconds")


def test_processors_beyond_64_bits_are_refused_by_the_command(cli: Cli) -> None:
    trace = cli.cwd / "forged.swf"
    trace.write_text(swf_line(procs=BIG, req_procs=BIG), encoding="utf-8")
    refused_by_cli(cli, trace, "forged.swf, line 1: field 5 (allocated_procs)", "from 0 to 10,000,000")


def test_a_truncated_gzip_trace_is_refused_by_the_command(cli: Cli) -> None:
    trace = cli.cwd / "cut.swf.gz"
    trace.write_bytes(gzip.compress((swf_line() * 2000).encode(), mtime=0)[:300])
    message = refused_by_cli(cli, trace, "cut.swf.gz: the gzip data ends early, after line")
    assert message.endswith("(a truncated download?)")


@pytest.mark.parametrize(("content", "says"), [
    (b"\x1f\x8b\x08\x00 not really gzip", "damaged gzip data before the first line"),
    (gzip.compress(swf_line().encode(), mtime=0)[:-8] + b"\x00" * 8, "damaged gzip data"),  # the checksum is wrong
])
def test_damaged_gzip_data_is_refused_by_the_command(cli: Cli, content: bytes, says: str) -> None:
    trace = cli.cwd / "damaged.swf"  # the magic bytes, not the name, say it is gzip
    trace.write_bytes(content)
    refused_by_cli(cli, trace, "damaged.swf: " + says)


def test_non_utf8_bytes_in_a_comment_are_read_and_in_a_job_line_are_named(tmp_path: Path) -> None:
    path = tmp_path / "t.swf"
    path.write_bytes(b"; Note: log by J\xf6rg\n; MaxProcs: 8\n" + swf_line().encode())
    trace = load_trace(path)
    assert len(trace.jobs) == 1 and trace.header.max_procs == 8
    assert trace.header.fields["Note"] == "log by J\ufffdrg"
    path.write_bytes(swf_line().encode() + swf_line(run="1\xe90").encode("latin-1"))
    with pytest.raises(TraceFormatError, match=r"line 2: field 4 \(run_time\): expected a number, found '1\ufffd0'"):
        load_trace(path)


def test_an_endless_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.swf"
    path.write_text(swf_line() + "1" * 100_000, encoding="utf-8")
    with pytest.raises(UserError, match=r"t.swf, line 2: longer than 65,536 characters; not a trace file\?"):
        load_trace(path)


@pytest.mark.parametrize("name", sorted(p.name for p in TRACES_DIR.glob("*.swf*")) or ["absent"])
def test_a_shipped_trace_loads_every_job_line_within_the_bounds(name: str) -> None:
    path = _trace_path(name)
    data = path.read_bytes()
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8", errors="replace")
    job_lines = sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith(";"))
    trace = load_trace(path)
    assert len(trace.jobs) + trace.skipped == job_lines  # no line refused by the bounds, none lost
    assert max(job.procs for job in trace.jobs) <= FIELD_BOUNDS[4]
