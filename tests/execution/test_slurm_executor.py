"""The healthy scenario with ``--executor slurm`` on a real 4-node Slurm cluster on this machine
(``scripts/slurm-local``): every committed job runs on exactly the nodes the agents chose (each node
writes its ``$SLURMD_NODENAME``), capacity comes back when jobs end, and a node set down mid-run
(``scontrol update state=down``) has its job placed again elsewhere.

The cluster: three GPU nodes and one large-memory node as ``scenarios/clusters/specialists.yaml``
describes them. On it the agents can place only the GPU job of the healthy scenario (its other
jobs need 6 compute nodes, 2 large-memory nodes or 12 TB of disk: they are rejected, with reasons)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_sched.core.events import RunEvent, read_jsonl
from llm_sched.execution.factory import ExecutorChoice
from llm_sched.execution.slurm_commands import set_node_state, sinfo_nodes, squeue_jobs
from llm_sched.orchestration.runner import RunOptions, RunResult, run_scenario
from llm_sched.store.ledger import Ledger
from tests.slurm_cluster import four_nodes, needs_slurm
from tests.store.faults import Place

pytestmark = needs_slurm


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with four_nodes(tmp_path_factory.mktemp("slurm")) as conf:
        yield conf


class _DownMidRun:
    """Once the first job runs on Slurm, sets its first node down from another thread, as an operator would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.node: str | None = None
        self.job: str | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "job_started" and self._thread is None:
            self.job, self.node = event.job_id, event.nodes[0]  # type: ignore[attr-defined]
            slurm_id = int(event.external_id)  # type: ignore[attr-defined]
            self._thread = threading.Thread(target=self._down_when_running, args=(slurm_id,), daemon=True)
            self._thread.start()

    def _down_when_running(self, slurm_id: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(j.job_id == slurm_id and j.state == "RUNNING" for j in squeue_jobs(env=self.env)):
                time.sleep(0.5)  # mid-run, not at its first instant
                set_node_state(self.node, "down", "test: node failure", env=self.env)  # type: ignore[arg-type]
                return
            time.sleep(0.1)


def _events(result: RunResult, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_jsonl(result.run_dir / "events.jsonl") if e["kind"] == kind]


def test_healthy_scenario_on_slurm_runs_where_the_agents_chose_and_survives_a_node_down(
        cluster: Path, place: Place) -> None:
    env = {"SLURM_CONF": str(cluster)}
    down = _DownMidRun(env)
    options = RunOptions(executor=ExecutorChoice(kind="slurm", time_scale=0.001, slurm_conf=cluster))
    try:
        result = run_scenario(place.scenario("healthy"), place.settings(), options=options, subscribers=[down])
    finally:
        if down.node is not None:
            set_node_state(down.node, "resume", "", env=env)
    assert down.job == "h-01" and down.node is not None

    committed = {e["decision"]["job_id"]: sorted(e["decision"]["placement"]["nodes"])
                 for e in _events(result, "decision") if e["decision"]["outcome"] == "commit"}
    started = {e["job_id"]: e for e in _events(result, "job_started")}
    finished = {e["job_id"]: e for e in _events(result, "job_finished")}
    # Every committed job went to Slurm on exactly its nodes, and ran there: each node wrote its name.
    assert {j: sorted(e["nodes"]) for j, e in started.items()} == committed
    assert {e["executor"] for e in started.values()} == {"slurm"}
    assert finished["h-01.r1"]["state"] == "completed" and finished["h-01.r1"]["ran_on"] == committed["h-01.r1"]
    assert set(finished["h-01"]["ran_on"]) <= set(committed["h-01"])
    # The node set down was noticed, took its job with it, and the agents placed the job again elsewhere.
    (node_down,) = _events(result, "node_state")
    assert node_down["node"] == down.node and node_down["state"] == "down"
    assert finished["h-01"]["state"] == "lost" and "NODE_FAIL" in finished["h-01"]["reason"]
    (retry,) = [e for e in _events(result, "job_submitted") if e.get("retry_of")]
    assert retry["retry_of"] == "h-01" and retry["job"]["id"] == "h-01.r1"
    assert down.node not in committed["h-01.r1"]
    # Capacity came back when h-01 ended: its surviving node's 4 GPUs went to the retry.
    assert set(committed["h-01"]) - {down.node} <= set(committed["h-01.r1"])
    # The ledger holds each Slurm job id and how it ended; Slurm is left with nothing running.
    with Ledger.open(place.ledger) as ledger:
        rows = {r.job_id: r for r in ledger.executions(result.run_dir.name)}
    assert {j: (r.state, r.external_id) for j, r in rows.items()} == {
        "h-01": ("lost", started["h-01"]["external_id"]), "h-01.r1": ("completed", started["h-01.r1"]["external_id"])}
    assert [j for j in squeue_jobs(env=env) if not j.ended] == []
    assert {n.name: n.state for n in sinfo_nodes(env=env)} == dict.fromkeys(["gpu-01", "gpu-02", "gpu-03", "mem-01"],
                                                                             "idle")
    # The jobs that do not fit this cluster were rejected by the agents, with their reasons.
    rejected = [e["decision"] for e in _events(result, "decision") if e["decision"]["outcome"] != "commit"]
    assert sorted(d["job_id"] for d in rejected) == ["h-02", "h-03", "h-04"]
    assert all("no pool can fit" in d["reason"] for d in rejected)


def test_the_cluster_the_agents_see_is_slurms(cluster: Path, place: Place) -> None:
    from llm_sched.execution.slurm import SlurmExecutor

    pools = {p.id: p for p in SlurmExecutor(place.root / "jobs", 0.001, cluster).pools()}
    assert sorted(pools) == ["gpu-pool", "mem-pool"]  # the catch-all partition swallows no node
    gpu = {n.id: n.capacity for n in pools["gpu-pool"].nodes}
    assert sorted(gpu) == ["gpu-01", "gpu-02", "gpu-03"]
    assert {(c.cores, c.memory_gb, c.gpus, c.storage_gb) for c in gpu.values()} == {(64, 512.0, 4, 2000.0)}
    (mem,) = pools["mem-pool"].nodes
    assert (mem.id, mem.capacity.memory_gb, mem.capacity.gpus) == ("mem-01", 2048.0, 0)
