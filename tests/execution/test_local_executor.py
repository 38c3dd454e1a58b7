"""The local executor runs every committed placement as real processes, one per node, and the run
acts on what they do: ends release capacity, a job whose process dies goes back to the agents."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from llm_sched.core.events import RunEvent, read_jsonl
from llm_sched.execution.factory import ExecutorChoice
from llm_sched.orchestration.runner import RunOptions, RunResult, run_scenario
from llm_sched.store.ledger import Ledger
from tests.conftest import Cli
from tests.store.faults import Place

LOCAL = RunOptions(executor=ExecutorChoice(kind="local", time_scale=0.0005))  # a 2-hour job runs 3.6 s


def _kinds(result: RunResult, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_jsonl(result.run_dir / "events.jsonl") if e["kind"] == kind]


def _committed(result: RunResult) -> dict[str, list[str]]:
    return {e["decision"]["job_id"]: sorted(e["decision"]["placement"]["nodes"])
            for e in _kinds(result, "decision") if e["decision"]["outcome"] == "commit"}


def test_every_committed_job_runs_on_exactly_the_nodes_the_agents_chose(place: Place) -> None:
    result = run_scenario(place.scenario("healthy"), place.settings(), options=LOCAL)
    committed = _committed(result)
    assert committed, "the healthy scenario commits jobs"
    started = {e["job_id"]: sorted(e["nodes"]) for e in _kinds(result, "job_started")}
    finished = {e["job_id"]: e for e in _kinds(result, "job_finished")}
    assert started == committed
    assert {j: sorted(e["ran_on"]) for j, e in finished.items()} == committed  # what each process reported
    assert {e["state"] for e in finished.values()} == {"completed"}
    with Ledger.open(place.ledger) as ledger:
        rows = {r.job_id: r for r in ledger.executions(result.run_dir.name)}
    assert {j: sorted(r.nodes) for j, r in rows.items()} == committed
    assert all(r.executor == "local" and r.state == "completed" and r.external_id for r in rows.values())
    assert all(r.ended is not None and r.ended > r.started for r in rows.values())
    for row in rows.values():  # every process ended and was reaped: the run leaves nothing running
        for pid in map(int, row.external_id.split(",")):  # type: ignore[union-attr]
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


class _KillFirstJob:
    """Kills one process of the first job started: the job fails on that node."""

    def __init__(self) -> None:
        self.killed: str | None = None

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "job_started" and self.killed is None:
            os.kill(int(event.external_id.split(",")[0]), signal.SIGKILL)  # type: ignore[attr-defined]
            self.killed = event.job_id  # type: ignore[attr-defined]


def test_a_job_whose_process_dies_is_placed_again_under_a_retry_id(place: Place) -> None:
    kill = _KillFirstJob()
    result = run_scenario(place.scenario("healthy"), place.settings(), options=LOCAL, subscribers=[kill])
    assert kill.killed is not None
    failed = [e for e in _kinds(result, "job_finished") if e["job_id"] == kill.killed]
    assert [e["state"] for e in failed] == ["failed"] and "exit codes" in failed[0]["reason"]
    retry = [e for e in _kinds(result, "job_submitted") if e.get("retry_of") == kill.killed]
    assert [e["job"]["id"] for e in retry] == [f"{kill.killed}.r1"]
    assert f"{kill.killed}.r1" in _committed(result)  # the agents decided it again, and it ran
    ends = {e["job_id"]: e["state"] for e in _kinds(result, "job_finished")}
    assert ends[f"{kill.killed}.r1"] == "completed"


def test_the_default_executor_is_the_simulated_clock(place: Place) -> None:
    result = run_scenario(place.scenario("healthy"), place.settings())
    assert {e["executor"] for e in _kinds(result, "job_started")} == {"sim"}
    assert _kinds(result, "scenario_started")[0]["executor"] == "sim"
    with Ledger.open(place.ledger) as ledger:
        assert ledger.executions(result.run_dir.name) == []  # the decisions hold all a simulated run did


@pytest.mark.parametrize(("flags", "message"), [
    (["--executor", "dask"], "--executor dask is for --evaluate"),
    (["--time-scale", "0.01"], "--time-scale goes with --executor local or slurm"),
    (["--executor", "local", "--time-scale", "0"], "0 is not allowed"),
    (["--executor", "mars"], "invalid choice: 'mars'"),
])
def test_bad_executor_flags_are_refused_with_one_line(cli: Cli, flags: list[str], message: str) -> None:
    result = cli("--scenario", "healthy", "--provider", "heuristic", *flags)
    assert result.code == 2 and message in result.err and "Traceback" not in result.text
