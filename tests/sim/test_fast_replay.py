"""The central replay on columns (FCFS and EASY without failures) against the event-driven simulator:
the same run, field by field and event by event, the same figures, the same CSV bytes; and the
column reader of SWF traces against the line reader (same jobs, same counts, same errors).

The shared-trace tests are skipped, with the reason, when ../shared/traces is absent.
"""

from __future__ import annotations

import gzip
import math
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_sched.errors import UserError
from llm_sched.sim.baselines import ReplayResult
from llm_sched.sim.failures import FailureSchedule, FailureSpec
from llm_sched.sim.metrics import schedule_metrics
from llm_sched.sim.resilience import JobColumns, PoolSplit, SimConfig, SimRun, simulate, simulate_events
from llm_sched.sim.resilience_metrics import attempts, busy_series, measure, table_metrics, write_jobs_csv
from llm_sched.sim.simulate import _bin_means, _envelope, _schedule, plot_utilization, simulate_trace
from llm_sched.sim.swf import SwfReader, Trace, TraceFormatError, load_columns, load_trace
from llm_sched.sim.workload import KINDS, SimJob, from_trace

KTH = "KTH-SP2-1996-2.1-cln.swf.gz"
SHARED = ("KTH-SP2-1996-2.1-cln.swf.gz", "CTC-SP2-1996-3.1-cln.swf.gz", "NASA-iPSC-1993-3.1-cln.swf.gz",
          "lublin_256.swf.gz")


def assert_same_run(fast: SimRun, slow: SimRun, tmp_path: Path) -> None:
    """Every field, every event, every figure and the CSV's bytes are the same."""
    assert fast.table is not None and slow.table is None
    assert fast == slow  # the dataclass fields: jobs, outcomes, events, times, counts, keys
    assert list(fast.events) == list(slow.events)
    assert list(fast.outcomes) == list(slow.outcomes) and list(fast.jobs) == list(slow.jobs)
    assert [type(o.where) for o in fast.outcomes] == [str] * len(slow.outcomes)
    assert fast.end_time == slow.end_time and fast.start_time == slow.start_time
    assert attempts(fast) == attempts(slow)
    assert busy_series(fast) == busy_series(slow)
    assert measure(fast) == measure(slow)
    assert table_metrics(fast.table, fast.cluster.nodes) == schedule_metrics(slow.outcomes, slow.cluster.nodes)
    write_jobs_csv(tmp_path / "fast.csv", fast)
    write_jobs_csv(tmp_path / "slow.csv", slow, attempts(slow))
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [100, 64])  # 64: the jobs wider than the machine are rejected
@pytest.mark.parametrize("policy", ["fcfs", "sjf", "easy"])
def test_the_replay_on_columns_is_the_event_driven_run_over_kth(
    load_shared_trace: Callable[..., Trace], replay_shared_trace: Callable[..., ReplayResult], tmp_path: Path,
    policy: str, nodes: int,
) -> None:
    jobs = from_trace(load_shared_trace(KTH).jobs)
    cluster = PoolSplit(nodes, 5)
    fast = simulate(jobs, cluster, SimConfig(policy))  # type: ignore[arg-type]
    slow = simulate_events(jobs, cluster, SimConfig(policy))  # type: ignore[arg-type]
    assert_same_run(fast, slow, tmp_path)
    assert len(fast.rejected) == (0 if nodes == 100 else 320)
    if nodes == 100 and policy != "sjf":  # KTH's machine: the reference replay (FCFS, EASY), as the event-driven run gives it
        base = replay_shared_trace(KTH, policy)
        assert [(o.job_id, o.start, o.end) for o in fast.outcomes] == [
            (o.job_id, o.start, o.end) for o in base.outcomes]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["fcfs", "sjf", "easy"])
def test_simulate_trace_gives_what_the_event_driven_path_gives(
    shared_trace_path: Callable[[str], Path], tmp_path: Path, policy: str
) -> None:
    # What --simulate did before the columns: read TraceJobs, make SimJobs, run the engine.
    path = shared_trace_path(KTH)
    trace = load_trace(path)
    jobs = from_trace(trace.jobs)
    cluster = PoolSplit(100, 5)
    schedule = _schedule(jobs, cluster, FailureSpec(), 1)
    slow = simulate_events(jobs, cluster, SimConfig(policy), schedule)  # type: ignore[arg-type]
    result = simulate_trace(path, policy, out_dir=tmp_path, plot=False)
    assert result.run.table is not None and result.jobs_read == len(trace.jobs) and result.skipped == trace.skipped
    assert result.run == slow and list(result.run.events) == list(slow.events)
    assert result.metrics == measure(slow)
    if policy != "sjf":  # REFERENCE.md has FCFS and EASY
        assert round(result.metrics.wait_mean) == (390_083 if policy == "fcfs" else 6_832)
    write_jobs_csv(tmp_path / "slow.csv", slow)
    assert result.csv_path.read_bytes() == (tmp_path / "slow.csv").read_bytes()


def test_with_failures_or_a_deadline_the_event_driven_run_is_kept(tmp_path: Path) -> None:
    jobs = [SimJob(k, 10 * k, 50, 60, 1 + k % 3, "") for k in range(20)]
    cluster = PoolSplit(6, 2)
    outage = FailureSchedule.build([("agent", (1,), 30, 35, 200)])
    assert simulate(jobs, cluster, SimConfig("easy"), outage).table is None
    assert simulate(jobs, cluster, SimConfig("easy", deadline=100)).table is None
    assert simulate(jobs, cluster, SimConfig("agents", hop_delay=0.0)).table is None
    fast = simulate(jobs, cluster, SimConfig("easy"))
    assert_same_run(fast, simulate_events(jobs, cluster, SimConfig("easy")), tmp_path)


def test_a_replayed_run_pickles_as_tuples(tmp_path: Path) -> None:
    jobs = [SimJob(k, k, 5, 5, 1, "ai") for k in range(5)]
    run = simulate(jobs, PoolSplit(2, 2), SimConfig("fcfs"))
    back = pickle.loads(pickle.dumps(run))
    assert back == run and isinstance(back.events, tuple) and back.events == run.events
    assert run.events[0] == back.events[0] and run.outcomes[-1] == back.outcomes[-1]
    assert run.outcomes[1:3] == back.outcomes[1:3] and run.jobs == tuple(jobs)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[SimJob], PoolSplit]:
    agents = draw(st.integers(1, 5))
    nodes = agents * draw(st.integers(1, 4))
    jobs = []
    for k in range(draw(st.integers(0, 40))):
        run = draw(st.sampled_from([0, 0.5, 1, 2, 5, 10, 30, 60]))  # 0: ends at its start
        estimate = draw(st.sampled_from([run, run + 1, 2 * run + 3, 100]))
        submit = draw(st.sampled_from([0, 1, 2, 2.5, 3, 10, 20, 40]))  # many at the same instant
        jobs.append(SimJob(draw(st.integers(1, 10**12)), submit, run, estimate, draw(st.integers(1, nodes + 2)),
                           draw(st.sampled_from(KINDS))))
    return jobs, PoolSplit(nodes, agents)


@settings(max_examples=300, deadline=None)
@given(workloads(), st.sampled_from(["fcfs", "sjf", "easy"]))
def test_the_replay_on_columns_is_the_event_driven_run_on_random_workloads(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[list[SimJob], PoolSplit], policy: str
) -> None:
    jobs, cluster = case
    fast = simulate(jobs, cluster, SimConfig(policy))  # type: ignore[arg-type]
    slow = simulate_events(jobs, cluster, SimConfig(policy))  # type: ignore[arg-type]
    assert_same_run(fast, slow, tmp_path_factory.mktemp("csv"))


# -- the utilization plot ---------------------------------------------------------------------------
def test_bin_means_and_band_of_a_step_function() -> None:
    x = np.array([0.0, 1.0, 2.5, 4.0])
    y = np.array([10.0, 30.0, 0.0, 20.0])
    centres, means = _bin_means(x, y, 5.0, 5)
    assert centres.tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert means.tolist() == pytest.approx([10.0, 30.0, 15.0, 0.0, 20.0])
    edges, low, high = _envelope(x, y, 5.0, 5)
    assert edges.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert low.tolist() == [10.0, 30.0, 0.0, 0.0, 20.0, 20.0] and high.tolist() == [10.0, 30.0, 30.0, 0.0, 20.0, 20.0]


def test_a_long_run_is_plotted_as_band_and_means(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    jobs = [SimJob(k, 7 * k, 5 + k % 13, 20, 1 + k % 4, "") for k in range(3000)]
    run = simulate(jobs, PoolSplit(8, 2), SimConfig("easy"))
    assert len(busy_series(run)[0]) > 2000
    path = plot_utilization(run, tmp_path / "u.png", title="long")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- SWF traces as columns --------------------------------------------------------------------------
def assert_same_trace(path: Path, **options: object) -> None:
    trace = load_trace(path, **options)  # type: ignore[arg-type]
    columns = load_columns(path, **options)  # type: ignore[arg-type]
    assert columns.header == trace.header
    assert (columns.skipped_no_run, columns.skipped_no_procs) == (trace.skipped_no_run, trace.skipped_no_procs)
    assert columns.job_id.tolist() == [j.job_id for j in trace.jobs]
    for name in ("submit", "run", "estimate"):
        values = [getattr(j, name) for j in trace.jobs]
        assert getattr(columns, name).tolist() == values
    assert columns.procs.tolist() == [j.procs for j in trace.jobs]
    sim_jobs = JobColumns(columns.job_id, columns.submit, columns.run, columns.estimate, columns.procs,
                          walltime=columns.walltime)
    expected = sorted(from_trace(trace.jobs), key=lambda j: j.submit)
    assert list(sim_jobs) == expected  # whole numbers read back as int, as the reader gives them
    assert [(type(j.submit), type(j.run), type(j.estimate)) for j in sim_jobs] == [
        (type(j.submit), type(j.run), type(j.estimate)) for j in expected]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED)
def test_the_shared_traces_read_as_columns(shared_trace_path: Callable[[str], Path], name: str) -> None:
    path = shared_trace_path(name)
    assert_same_trace(path)
    assert_same_trace(path, keep_zero_run=False)
    assert_same_trace(path, limit=1234)


HEADER = "; MaxProcs: 8\n; Note: a header\n"
LINE = "{job} {submit} -1 {run} {procs} -1 -1 {procs} {req} -1 1 1 1 -1 1 -1 -1 -1\n"


def line(job: int, submit: str = "0", run: str = "10", procs: str = "2", req: str = "20") -> str:
    return LINE.format(job=job, submit=submit, run=run, procs=procs, req=req)


ODD_FILES = {
    "plain": HEADER + "".join(line(k, str(k)) for k in range(1, 9)),
    "decimals": HEADER + line(1, "1.5", "2.25") + line(2, "3.", ".5") + line(3, "7", "0.0") + line(4, "8.0", "-1.0"),
    "exponent and plus sign": HEADER + line(1, "1e3") + line(2, "+5"),
    "ids beyond 2**53": HEADER + line(2**53 + 1) + line(2**63 - 1, "4"),
    "ids beyond 2**53 with decimals": HEADER + line(2**53 + 1, "0.5") + line(3, "4"),
    "tabs and blank lines": HEADER + "\t" + line(2, "6").replace(" ", "\t") + "   \n\n" + line(3, "007"),
    "crlf": (HEADER + line(1) + line(2, "3")).replace("\n", "\r\n"),
    "header between jobs": HEADER + line(1) + "; MaxNodes: 16\n" + line(2, "4") + ";\n" + line(3, "9"),
    "header after the last job": "; Version: 2\n" + line(1) + line(2, "1") + "; MaxProcs: 32\n",
    "skipped lines": HEADER + line(1, run="-1") + line(2, procs="-1") + line(3, run="0") + line(4, "5"),
    "no final newline": HEADER + line(1) + line(2, "3").rstrip("\n"),
    "latin-1 comment": HEADER.replace("a header", "caf\xe9") + line(1),
    "comment after spaces": "   ; MaxProcs: 4\n" + line(1),
    "only a header": HEADER,
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(ODD_FILES))
@pytest.mark.parametrize("options", [{}, {"limit": 2}, {"limit": 1}, {"keep_zero_run": False}])
def test_odd_but_valid_files_read_the_same_as_columns(tmp_path: Path, name: str, options: dict[str, object]) -> None:
    text = ODD_FILES[name]
    data = text.encode("latin-1") if "latin" in name else text.encode()
    for compress in (False, True):
        path = tmp_path / ("t.swf.gz" if compress else "t.swf")
        path.write_bytes(gzip.compress(data) if compress else data)
        assert_same_trace(path, **options)


BAD_LINES = [
    line(2, run="-5"), line(2, run="1.2.3"), line(2, procs="2.5"), line(2, run="nan"), line(2, "12345678901234567890"),
    line(2).replace(" 1 1 1 -1", " 1 1 -1"), line(2).rstrip("\n") + " 7\n", line(2, run="5;"), line(2, run="-0.5"),
    "99" + "9" * 70_000 + "\n",
]


@pytest.mark.parametrize("bad", BAD_LINES, ids=range(len(BAD_LINES)))
def test_a_bad_line_is_the_same_error_from_the_column_reader(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "t.swf"
    path.write_text(HEADER + line(1) + bad + line(3, "4"), encoding="utf-8")
    with pytest.raises(UserError) as expected:
        list(SwfReader(path))
    with pytest.raises(UserError) as got:
        load_columns(path)
    assert str(got.value) == str(expected.value) and type(got.value) is type(expected.value)
    if isinstance(expected.value, TraceFormatError):
        assert got.value.line == 4  # type: ignore[attr-defined]
    # Past the limit the line is not parsed (a line too long to read is still refused), by either reader.
    assert outcome(lambda: load_columns(path, limit=1).job_id.tolist()) == outcome(
        lambda: [j.job_id for j in load_trace(path, limit=1).jobs])


def outcome(read: Callable[[], list[int]]) -> object:
    try:
        return read()
    except UserError as exc:
        return str(exc)


def test_a_truncated_gzip_trace_is_the_same_error(tmp_path: Path) -> None:
    data = gzip.compress((HEADER + "".join(line(k, str(k)) for k in range(1, 3000))).encode())
    path = tmp_path / "t.swf.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as expected:
        load_trace(path)
    with pytest.raises(UserError) as got:
        load_columns(path)
    assert str(got.value) == str(expected.value)


def test_job_columns_sort_by_submission_and_keep_ties_in_order() -> None:
    columns = JobColumns(np.array([3, 1, 2, 4]), np.array([5.0, 0.0, 5.0, 1.5]), np.array([1.0, 2.0, 3.0, 4.0]),
                         np.array([1.0, 2.0, 3.0, 4.5]), np.array([1, 1, 2, 2]))
    assert [j.job_id for j in columns] == [1, 4, 3, 2]
    assert columns[1] == SimJob(4, 1.5, 4, 4.5, 2, "") and columns[-1].submit == 5 and type(columns[-1].submit) is int
    assert len(columns) == 4 and columns[1:3] == (columns[1], columns[2])
    assert not math.isnan(measure(simulate(columns, PoolSplit(2, 1), SimConfig("easy"))).wait_mean)
