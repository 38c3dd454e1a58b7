"""A node that goes down while the Slurm executor polls: the run hears of the node before it hears of
the job the node took with it, so the job is never placed again on a node that still looks usable.

No Slurm here: the executor's Slurm commands are replaced by a small cluster in which the node fails
between two commands of one poll (slurmctld marks the node down and ends its job NODE_FAIL at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llm_sched.core.model import Job, Placement, Resources
from llm_sched.execution import slurm
from llm_sched.execution.base import Finished, NodeChange, Update
from llm_sched.execution.slurm_commands import SlurmJob, SlurmNode

JOB_ID = 7


class _FailingCluster:
    """Two nodes and one job on n1; once armed, n1 fails right after the next Slurm command."""

    def __init__(self) -> None:
        self.armed = False
        self.failed = False

    def _after_a_command(self) -> None:
        self.failed = self.failed or self.armed

    def sinfo_nodes(self, **_: object) -> list[SlurmNode]:
        down = self.failed
        nodes = [SlurmNode(name="n1", partitions=("p",), cores=4, memory_mb=4096,
                           state="down" if down else "allocated", reason="test: node failure" if down else ""),
                 SlurmNode(name="n2", partitions=("p",), cores=4, memory_mb=4096, state="idle")]
        self._after_a_command()
        return nodes

    def squeue_jobs(self, **_: object) -> list[SlurmJob]:
        jobs = [] if self.failed else [SlurmJob(job_id=JOB_ID, name="j1", state="RUNNING", nodes=("n1",))]
        self._after_a_command()
        return jobs

    def job_state(self, job_id: int, **_: object) -> SlurmJob:
        return SlurmJob(job_id=job_id, name="j1", state="NODE_FAIL" if self.failed else "RUNNING", nodes=("n1",))

    def sbatch(self, *_: object, **__: object) -> int:
        return JOB_ID


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> _FailingCluster:
    fake = _FailingCluster()
    for name in ("sinfo_nodes", "squeue_jobs", "job_state", "sbatch"):
        monkeypatch.setattr(slurm, name, getattr(fake, name))
    monkeypatch.setattr(slurm, "scancel", lambda *_, **__: None)
    return fake


def _poll_until_the_job_ends(executor: slurm.SlurmExecutor) -> list[Update]:
    seen: list[Update] = []
    for _ in range(5):
        seen += asyncio.run(executor.advance(executor.now()))  # one poll: until is already reached
        if any(isinstance(u, Finished) for u in seen):
            return seen
    raise AssertionError(f"the job never ended: {seen}")


def test_a_node_failing_mid_poll_is_reported_before_the_job_it_lost(cluster: _FailingCluster, tmp_path: Path) -> None:
    executor = slurm.SlurmExecutor(tmp_path, time_scale=0.001)
    job = Job(id="j1", kind="ai", nodes=1, per_node=Resources(cores=1, memory_gb=1), runtime_s=60)
    asyncio.run(executor.start(job, Placement(job_id="j1", pool="p", nodes=("n1",))))
    cluster.armed = True  # n1 fails between the first and the second command of the next poll

    seen = _poll_until_the_job_ends(executor)

    kinds = [(type(u).__name__, getattr(u, "node", None) or getattr(u, "job_id", None)) for u in seen]
    assert kinds.index(("NodeChange", "n1")) < kinds.index(("Finished", "j1")), kinds
    (down,) = [u for u in seen if isinstance(u, NodeChange)]
    (lost,) = [u for u in seen if isinstance(u, Finished)]
    assert down.down and lost.state == "lost" and "NODE_FAIL" in lost.reason


def test_a_restarted_executor_reports_a_node_repaired_meanwhile_as_back_up(cluster: _FailingCluster,
                                                                          tmp_path: Path) -> None:
    # The members still hold n2 down (the last process reported it so); Slurm has it idle again.
    executor = slurm.SlurmExecutor(tmp_path, time_scale=0.001)
    executor.reported_down({"n2", "not-a-slurm-node"})
    seen = asyncio.run(executor.advance(executor.now()))
    assert [(u.node, u.down) for u in seen if isinstance(u, NodeChange)] == [("n2", False)]
