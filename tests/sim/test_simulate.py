"""simulate_trace (what --simulate calls): files written, metrics returned, user errors; the metrics table."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest
from rich.console import Console

from llm_sched.errors import UserError
from llm_sched.sim.failures import FailureSpec
from llm_sched.sim.resilience_metrics import JOB_CSV_COLUMNS
from llm_sched.sim.simulate import SyntheticSetup, compare, simulate_trace
from llm_sched.sim.swf import TraceFormatError
from llm_sched.sim.workload import WorkloadSpec
from llm_sched.ui.sim_view import metrics_table, print_metrics

HEADER = "; MaxProcs: 4\n"
# The five-job workload of test_baselines, as SWF lines: job submit wait run alloc cpu mem
# req_procs req_time req_mem status user group exe queue partition preceding think.
FIVE = """\
1 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 1 -1 -1 -1
2 1 -1 5 4 -1 -1 4 5 -1 1 1 1 -1 1 -1 -1 -1
3 2 -1 5 1 -1 -1 1 5 -1 1 1 1 -1 1 -1 -1 -1
4 3 -1 4 1 -1 -1 1 20 -1 1 1 1 -1 1 -1 -1 -1
5 7 -1 3 2 -1 -1 2 3 -1 1 1 1 -1 1 -1 -1 -1
"""


@pytest.fixture
def five_jobs(tmp_path: Path) -> Path:
    path = tmp_path / "five.swf.gz"
    path.write_bytes(gzip.compress((HEADER + FIVE).encode()))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.parametrize(("policy", "expected"), [
    ("fcfs", {"1": "0", "2": "10", "3": "15", "4": "15", "5": "15"}),
    ("easy", {"1": "0", "2": "10", "3": "2", "4": "15", "5": "7"}),
])
def test_trace_replay_writes_the_per_job_csv(five_jobs: Path, tmp_path: Path, policy: str,
                                             expected: dict[str, str]) -> None:
    result = simulate_trace(five_jobs, policy, out_dir=tmp_path / "out", agents=2, plot=False)
    assert result.nodes == 4 and result.jobs_read == 5 and result.plot_path is None
    rows = read_csv(result.csv_path)
    assert result.csv_path.name == f"five-{policy}-jobs.csv"
    assert tuple(rows[0]) == JOB_CSV_COLUMNS
    assert {r["job_id"]: r["start"] for r in rows} == expected
    assert all(float(r["wait"]) == float(r["start"]) - float(r["submit"]) for r in rows)
    assert all(r["completed"] == "1" and r["attempts"] == "1" for r in rows)
    assert result.metrics.completed == 5 and result.metrics.completion_rate == 1.0


def test_agents_replay_and_the_plot(five_jobs: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = simulate_trace(five_jobs, "agents", out_dir=tmp_path, agents=4, jobs=3)
    assert result.jobs_read == 3 and result.metrics.messages_per_decision == 24.0  # PBFT, n = 4, measured
    assert result.plot_path is not None and result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(result.csv_path)
    assert len(rows) == 3 and all(set(r["where"].split("+")) <= {"p0", "p1", "p2", "p3"} for r in rows)


def test_failures_in_a_trace_replay_are_seeded(five_jobs: Path, tmp_path: Path) -> None:
    spec = FailureSpec(rate=1.0, repair_mean=5)
    a = simulate_trace(five_jobs, "easy", out_dir=tmp_path, agents=4, failures=spec, seed=3, plot=False)
    b = simulate_trace(five_jobs, "easy", out_dir=tmp_path, agents=4, failures=spec, seed=3, plot=False)
    assert a.metrics == b.metrics and a.metrics.failures > 0


def test_user_errors_name_the_problem(five_jobs: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="trace file not found: .*missing.swf"):
        simulate_trace(tmp_path / "missing.swf", "easy", out_dir=tmp_path)
    with pytest.raises(UserError, match="unknown policy .lottery.; expected one of fcfs, sjf, easy, conservative, agents"):
        simulate_trace(five_jobs, "lottery", out_dir=tmp_path)
    with pytest.raises(UserError, match="--jobs"):
        simulate_trace(five_jobs, "easy", jobs=0, out_dir=tmp_path)
    with pytest.raises(UserError, match="cannot be split among 5 agents"):
        simulate_trace(five_jobs, "easy", agents=5, out_dir=tmp_path)
    with pytest.raises(UserError, match="unknown protocol"):
        simulate_trace(five_jobs, "agents", protocol="smoke", agents=2, out_dir=tmp_path)
    bad = tmp_path / "bad.swf"
    bad.write_text(HEADER + FIVE.replace("3 2 -1 5 1", "3 2 -1 five 1"))
    with pytest.raises(TraceFormatError) as info:
        simulate_trace(bad, "easy", out_dir=tmp_path)
    assert isinstance(info.value, UserError)
    assert "bad.swf, line 4: field 4 (run_time)" in str(info.value)


def test_metrics_table_renders_one_column_per_policy() -> None:
    scenario = SyntheticSetup(agents=5, workload=WorkloadSpec(jobs=60), failures=FailureSpec(rate=0.4))
    runs = compare(scenario, seed=1)
    buffer = io.StringIO()
    print_metrics(list(runs.values()), title="synthetic", console=Console(file=buffer, width=140))
    text = buffer.getvalue()
    for label in ("fcfs", "easy", "agents", "completion rate", "availability", "MTTR", "messages per decision"):
        assert label in text
    assert metrics_table(runs["easy"]).row_count == metrics_table(list(runs.values())).row_count


def test_the_plot_drawn_aside_is_the_plot_drawn_in_turn(five_jobs: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    aside = simulate_trace(five_jobs, "easy", out_dir=tmp_path / "aside", agents=2)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # no fork: drawn in turn
    in_turn = simulate_trace(five_jobs, "easy", out_dir=tmp_path / "in-turn", agents=2)
    assert aside.plot_path is not None and in_turn.plot_path is not None
    assert aside.plot_path.read_bytes() == in_turn.plot_path.read_bytes()


def test_a_plot_that_fails_aside_fails_the_command_with_its_message(five_jobs: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from llm_sched.sim import simulate as module

    def no_matplotlib(*_: object, **__: object) -> None:
        raise UserError("the utilization plot needs Matplotlib: pip install matplotlib")

    monkeypatch.setattr(module, "plot_utilization", no_matplotlib)
    with pytest.raises(UserError, match="needs Matplotlib"):
        simulate_trace(five_jobs, "easy", out_dir=tmp_path / "a", agents=2)
    import threading

    if threading.active_count() > 1:  # then the plot is drawn in this process, which os._exit would end
        pytest.skip("other threads run in this test process: no plot is drawn aside")
    monkeypatch.setattr(module, "plot_utilization", lambda *_, **__: os._exit(3))  # the drawing process dies
    with pytest.raises(RuntimeError, match="ended with exit code 3"):
        simulate_trace(five_jobs, "easy", out_dir=tmp_path / "b", agents=2)
