"""``--simulate`` with failures (drawn from --fail-rate and the seed, or listed in --failures FILE) and
the per-job Parquet file beside the CSV."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from llm_sched.cli.dispatch import main
from llm_sched.errors import UserError
from llm_sched.sim import resilience_metrics
from llm_sched.sim.columns import Numbers, Same
from llm_sched.sim.failure_file import load_failure_file
from llm_sched.sim.failures import FailureSpec
from llm_sched.sim.resilience_metrics import JOB_CSV_COLUMNS, JOB_PARQUET_TYPES, write_jobs_parquet
from llm_sched.sim.simulate import simulate_trace
from tests.conftest import Cli

# A machine of 4 processors; with --agents 2, pool p0 is nodes 0-1 (beside the central scheduler)
# and p1 is nodes 2-3. Jobs 1 and 2 take one pool each from t = 0 to 100; job 3 waits for them.
# Fields: job submit wait run alloc cpu mem req_procs req_time req_mem status user group exe queue
# partition preceding think.
TINY = """\
; MaxProcs: 4
1 0 -1 100 2 -1 -1 2 100 -1 1 1 1 -1 1 -1 -1 -1
2 0 -1 100 2 -1 -1 2 100 -1 1 1 1 -1 1 -1 -1 -1
3 1 -1 10 1 -1 -1 1 10 -1 1 1 1 -1 1 -1 -1 -1
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.swf"
    path.write_text(TINY)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def simulate_cli(cli: Cli, trace: Path, *args: str) -> tuple[int, str, str, list[dict[str, str]]]:
    result = cli("--simulate", "--trace", str(trace), "--policy", "fcfs", "--agents", "2", "--out", "out", *args)
    jobs = cli.cwd / "out" / "tiny-fcfs-jobs.csv"
    return result.code, result.out, result.err, read_csv(jobs) if jobs.exists() else []


# -- failures drawn from a rate ---------------------------------------------------------------------
def test_fail_rate_kills_and_requeues_jobs(cli: Cli, tiny: Path) -> None:
    code, out, err, rows = simulate_cli(cli, tiny, "--fail-rate", "1", "--seed", "3")
    assert code == 0, err
    assert "failures: drawn, rate 1, pattern random, seed 3: 2 agent outages, 0 node outages, 0 partitions" in out
    assert {r["job_id"]: r["attempts"] for r in rows} == {"1": "2", "2": "2", "3": "1"}  # killed, run again
    assert all(r["completed"] == "1" and float(r["start"]) > 100 for r in rows)


def test_drawn_failures_are_the_same_for_every_policy_with_the_same_seed(tiny: Path, tmp_path: Path) -> None:
    spec = FailureSpec(rate=1.0, pattern="cascading", node_rate=0.5)
    runs = [simulate_trace(tiny, p, out_dir=tmp_path, agents=2, failures=spec, seed=7, plot=False, parquet=False)
            for p in ("fcfs", "easy", "agents")]
    assert runs[0].run.schedule.outages and all(r.run.schedule == runs[0].run.schedule for r in runs)
    other = simulate_trace(tiny, "fcfs", out_dir=tmp_path, agents=2, failures=spec, seed=8, plot=False, parquet=False)
    assert other.run.schedule != runs[0].run.schedule


def test_no_pyarrow_says_parquet_not_written(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code = main(["--simulate", "--trace", str(tiny), "--policy", "easy", "--agents", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "failures: none" in out
    assert "Parquet: not written (pyarrow is not installed; pip install 'llm-sched[parquet]')" in out
    assert (tmp_path / "tiny-easy-jobs.csv").exists() and not (tmp_path / "tiny-easy-jobs.parquet").exists()


@pytest.mark.parametrize("args", [("--fail-rate", "1.5"), ("--fail-rate", "nan"), ("--node-fail-rate", "-0.1")])
def test_a_failure_rate_outside_0_to_1_is_refused(cli: Cli, tiny: Path, args: tuple[str, ...]) -> None:
    result = cli("--simulate", "--trace", str(tiny), "--policy", "fcfs", *args)
    assert result.code == 2 and f"argument {args[0]}" in result.err and "from 0 to 1" in result.err


# -- failures from a file ---------------------------------------------------------------------------
@pytest.mark.parametrize(("outage", "counts"), [
    ("{kind: agent, members: [1], start: 10, end: 50}", "1 agent outage, 0 node outages, 0 partitions"),
    ("{kind: node, members: 3, start: 10, end: 50}", "0 agent outages, 1 node outage, 0 partitions"),
])
def test_failure_file_outage_kills_job_on_that_pool(cli: Cli, tiny: Path, outage: str, counts: str) -> None:
    (cli.cwd / "outages.yaml").write_text(f"outages:\n  - {outage}\n")
    code, out, err, rows = simulate_cli(cli, tiny, "--failures", "outages.yaml")
    assert code == 0, err
    assert f"failures: from outages.yaml: {counts}" in out
    by_id = {r["job_id"]: r for r in rows}
    assert by_id["1"]["attempts"] == "1" and by_id["1"]["where"] == "p0"  # the other pool is untouched
    assert by_id["2"]["attempts"] == "2" and by_id["2"]["where"] == "p1"  # killed at 10, rerun at the repair
    assert by_id["2"]["start"] == "50" and by_id["2"]["end"] == "150"


def test_failure_file_times_count_from_the_first_submission(tmp_path: Path) -> None:
    trace = tmp_path / "late.swf"
    trace.write_text(TINY.replace("\n1 0 ", "\n1 1000 ").replace("\n2 0 ", "\n2 1000 ").replace("\n3 1 ", "\n3 1001 "))
    (tmp_path / "f.csv").write_text("kind,members,start,end,detect\n# agents 0 and 1, then a cut\n"
                                    "agent,0 1,10,50,\npartition,1,60,70,65\n")
    plan = load_failure_file(tmp_path / "f.csv")
    result = simulate_trace(trace, "easy", out_dir=tmp_path, agents=2, failures=plan, seed=4, plot=False)
    outages = result.run.schedule.outages
    assert [(o.kind, o.members, o.start, o.end) for o in outages] == [
        ("agent", (0,), 1010.0, 1050.0), ("agent", (1,), 1010.0, 1050.0), ("partition", (1,), 1060.0, 1070.0)]
    assert all(o.start < o.detect < o.start + 2 for o in outages[:2])  # phi-accrual delay, from the seed
    assert outages[2].detect == 1065.0  # given
    again = simulate_trace(trace, "fcfs", out_dir=tmp_path, agents=2, failures=plan, seed=4, plot=False)
    assert again.run.schedule == result.run.schedule


def test_failure_file_in_yaml_and_csv_give_the_same_outages(tmp_path: Path) -> None:
    (tmp_path / "f.yml").write_text("outages:\n  - {kind: node, members: [2], start: 5, end: 9.5, detect: 6}\n"
                                    "  - {kind: partition, members: [1, 0], start: 1, end: 3}\n")
    (tmp_path / "f.csv").write_text("kind,members,start,end,detect\nnode,2,5,9.5,6\npartition,1;0,1,3,\n")
    yaml_plan, csv_plan = load_failure_file(tmp_path / "f.yml"), load_failure_file(tmp_path / "f.csv")
    assert [p.entry for p in yaml_plan.outages] == [p.entry for p in csv_plan.outages]
    assert yaml_plan.schedule(2, 4, 100.0, 1) == csv_plan.schedule(2, 4, 100.0, 1)


def test_failure_file_with_unknown_kind_names_entry_and_allowed_values(cli: Cli, tiny: Path) -> None:
    (cli.cwd / "bad.yaml").write_text("outages:\n  - {kind: agent, members: [0], start: 1, end: 2}\n"
                                      "  - {kind: disk, members: [0], start: 1, end: 2}\n")
    code, _, err, _ = simulate_cli(cli, tiny, "--failures", "bad.yaml")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "bad.yaml: outage 2, line 3: kind:" in err
    assert "'agent', 'node' or 'partition'" in err and "'disk'" in err


@pytest.mark.parametrize(("text", "expected"), [
    ("kind,members,start,end\nagent,0,ten,20\n", "f.csv: line 2: start:"),
    ("kind,members,start,end\nnode,1 2,0,20\n", "f.csv: line 2: members: a node outage names one node index"),
    ("kind,members,start,end\nagent,0,30,20\n", "f.csv: line 2: end: end (20 s) must come after start (30 s)"),
    ("kind,members,start,end,detect\nagent,0,10,20,25\n", "detect (25 s) must lie from start (10 s) to end (20 s)"),
    ("kind,members,begin,end\n", "f.csv: line 1: the header names 'begin'"),
])
def test_failure_file_problems_name_the_line_and_the_field(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "f.csv").write_text(text)
    with pytest.raises(UserError) as info:
        load_failure_file(tmp_path / "f.csv")
    assert expected in str(info.value)


@pytest.mark.parametrize(("outage", "expected"), [
    ("{kind: agent, members: [2], start: 1, end: 2}", "members: agent 2 does not exist; the run has 2 agents"),
    ("{kind: partition, members: [0, 5], start: 1, end: 2}", "members: agent 5 does not exist"),
    ("{kind: node, members: [4], start: 1, end: 2}", "members: node 4 does not exist; the machine has 4 nodes"),
])
def test_failure_file_member_out_of_range_exits_2_without_traceback(cli: Cli, tiny: Path, outage: str,
                                                                     expected: str) -> None:
    (cli.cwd / "far.yaml").write_text(f"outages:\n  - {outage}\n")
    code, _, err, _ = simulate_cli(cli, tiny, "--failures", "far.yaml")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "far.yaml: outage 1, line 2: " + expected in err


def test_failure_file_and_fail_rate_together_are_refused(cli: Cli, tiny: Path) -> None:
    (cli.cwd / "f.yaml").write_text("outages: []\n")
    code, _, err, _ = simulate_cli(cli, tiny, "--failures", "f.yaml", "--fail-rate", "0.1")
    assert code == 2 and "--failures FILE and --fail-rate R do not go together" in err


# -- Parquet ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("failures", [None, FailureSpec(rate=1.0)], ids=["table run", "event-driven run"])
def test_parquet_matches_csv_rows(tiny: Path, tmp_path: Path, failures: FailureSpec | None) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    wide = tmp_path / "wide.swf"  # job 4 is wider than the machine: a row without times
    wide.write_text(TINY + "4 2 -1 10 8 -1 -1 8 10 -1 1 1 1 -1 1 -1 -1 -1\n")
    result = simulate_trace(wide, "easy", out_dir=tmp_path, agents=2, failures=failures, seed=3, plot=False)
    assert (result.run.table is not None) == (failures is None)
    assert result.parquet_path == tmp_path / "wide-easy-jobs.parquet"
    table = pq.read_table(result.parquet_path)
    assert table.column_names == list(JOB_CSV_COLUMNS)
    assert [str(t) for t in table.schema.types] == [
        {"float64": "double"}.get(t, t) for t in JOB_PARQUET_TYPES.values()]
    rows = read_csv(result.csv_path)
    assert len(rows) == table.num_rows == 4 and rows[3]["start"] == ""
    for row, stored in zip(rows, table.to_pylist()):
        for name in JOB_CSV_COLUMNS:
            text, value = row[name], stored[name]
            if isinstance(value, str):  # kind and where (the kind of trace jobs is "")
                assert text == value, (name, row, stored)
            else:  # numbers; null where the CSV field is empty
                assert value is None if text == "" else float(text) == value, (name, row, stored)


def test_parquet_of_a_table_run_is_written_from_its_columns(tiny: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    result = simulate_trace(tiny, "easy", out_dir=tmp_path, agents=2, plot=False, parquet=False)
    assert result.run.table is not None

    def refuse(*_: object) -> None:
        raise AssertionError("a Python object per job")

    # No attempts list, no column read back as Python values: numpy columns straight into Arrow.
    monkeypatch.setattr(resilience_metrics, "attempts", refuse)
    monkeypatch.setattr(Numbers, "part", refuse)
    monkeypatch.setattr(Same, "part", refuse)
    assert write_jobs_parquet(tmp_path / "t.parquet", result.run) == 3
    assert pq.read_table(tmp_path / "t.parquet").column("where").to_pylist() == ["p0", "p1", "p0"]
