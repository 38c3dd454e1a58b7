"""Agent processes on NATS whose decisions run on a real 4-node Slurm cluster, as a user starts them:
``scripts/slurm-local up 4``, ``llm-sched federation up FILE --executor slurm``, ``llm-sched submit``.
A node is set down with ``scontrol`` while the longest job runs on it: the executor reports the node
and the lost job through the job log, every member takes them in the same order, and the members place
the job again on nodes that are up. The job that finds no room when it arrives waits at the executor
and runs once room comes back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.execution.slurm_commands import set_node_state, squeue_jobs
from llm_sched.store.ledger import Ledger
from tests.slurm_cluster import four_nodes, needs_slurm

FILE = PROJECT_ROOT / "scenarios" / "federations" / "slurm-four.yaml"
pytestmark = needs_slurm


def _llm_sched(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llm_sched", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT)


@pytest.fixture
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with four_nodes(tmp_path_factory.mktemp("slurmfed")) as conf:
        yield conf


def _wait(what: str, check: Any, timeout: float = 60.0, show: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"; last seen: {show()}" if show else ""))


def test_a_federation_runs_its_decisions_on_slurm_and_places_a_lost_job_again(slurm: Path, tmp_path: Path) -> None:
    data, env = tmp_path / "fed", {"SLURM_CONF": str(slurm)}
    up = _llm_sched("federation", "up", str(FILE), "--data", str(data), "--executor", "slurm",
                    "--slurm-conf", str(slurm), "--time-scale", "0.002")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "executor: slurm on 4 nodes in 2 pools" in up.stdout
        genesis = json.loads((data / "genesis.json").read_text())
        assert genesis["execution"]["executor"] == "slurm"  # every member starts from Slurm's cluster
        assert _llm_sched("submit", str(FILE), "--data", str(data)).returncode == 0

        # s01 (2 GPU nodes, the longest job) alone still running: one of its nodes goes down.
        def only_s01() -> Any:
            live = [j for j in squeue_jobs(env=env) if not j.ended]
            return live[0] if [j.name for j in live] == ["s01"] and live[0].state == "RUNNING" else None

        s01 = _wait("s01 running alone", only_s01)
        downed = s01.nodes[0]
        set_node_state(downed, "down", "test: node failure", env=env)

        seen: dict[str, Any] = {}

        def settled() -> Any:
            got = _llm_sched("status", "--json", "--data", str(data))
            body = json.loads(got.stdout) if got.returncode == 0 else {}
            seen.update(executor=body.get("executor"), decided=body.get("decided"), submitted=body.get("submitted"),
                        error=got.stderr[-300:])
            ex = body.get("executor") or {}
            # s01-s07, s01's retry and s08's (no room when it arrives: it waits) started
            ended = sum(ex.get(state, 0) for state in ("completed", "failed", "lost"))
            done = (ex.get("started", 0) >= 9 and ex.get("running") == 0 and ex.get("waiting") == 0
                    and ended == ex["started"] and body["decided"] == body["submitted"])
            return body if done else None

        status = _wait("every job ended and every entry decided", settled, timeout=90, show=lambda: seen)
    finally:
        _llm_sched("federation", "down", "--data", str(data))

    with Ledger.open(data / "executor" / "llm_sched.db") as ledger:
        rows = {r.job_id: r for r in ledger.executions("slurm-four")}
    assert status["invalid"] == [] and status["conflicts"] == []
    seen = f"status {status['executor']}, executions {sorted((r.job_id, r.state, r.nodes) for r in rows.values())}"
    assert status["executor"]["lost"] == 1 and status["executor"]["nodes_down"] == 1, seen
    # The lost job, and its retry on nodes that are up, where it ran and completed.
    assert rows["s01"].state == "lost" and "NODE_FAIL" in rows["s01"].reason
    assert rows["s01.r1"].state == "completed" and downed not in rows["s01.r1"].nodes
    # Every job Slurm ran, ran on exactly the nodes the members decided (each node wrote its name).
    decided = _decided_nodes(data)
    for job_id, row in rows.items():
        assert tuple(sorted(row.nodes)) == tuple(sorted(decided[job_id]))
        assert row.external_id and row.external_id.isdigit()
        if row.state == "completed":
            assert row.ran_on == tuple(sorted(row.nodes))
    # Every member holds the same decisions, the executor's reports among them, in the same order.
    ledgers = []
    for member in ("compute-agent", "general-agent", "gpu-agent", "memory-agent", "storage-agent"):
        with Ledger.open(data / "agents" / member / "ledger.db") as ledger:
            ledgers.append([(d.job_id, d.outcome, d.nodes) for d in ledger.decisions("slurm-four")])
    assert all(rows_ == ledgers[0] for rows_ in ledgers)
    order = [job for job, _, _ in ledgers[0]]
    (node_report,) = [job for job in order if job.startswith(f"!node:{downed}:down:")]
    # The node's report, then the lost job's, then its retry: every member applied them in that order.
    assert order.index(node_report) < order.index("!ended:s01") < order.index("s01.r1")
    outcomes = {job: outcome for job, outcome, _ in ledgers[0]}
    assert outcomes["s01.r1"] == "committed"
    # s08 found no room: the members rejected it, it waited, and a retry of it ran once room was back.
    assert outcomes["s08"] == "rejected" and "s08" not in rows
    (s08_ran,) = [job for job, row in rows.items() if job.startswith("s08.r") and row.state == "completed"]
    assert order.index("s08") < order.index(s08_ran)
    assert status["executor"]["completed"] == status["executor"]["started"] - 1  # all but the lost s01


def _decided_nodes(data: Path) -> dict[str, tuple[str, ...]]:
    with Ledger.open(data / "agents" / "gpu-agent" / "ledger.db") as ledger:
        return {d.job_id: d.nodes for d in ledger.decisions("slurm-four") if d.outcome == "committed"}
