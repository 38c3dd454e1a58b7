"""The ``slurm`` executor: committed placements become Slurm batch jobs on exactly the nodes chosen.

The cluster the agents decide on is Slurm's (:meth:`SlurmExecutor.pools`): each partition is a pool
(a node listed by several partitions belongs to the first), each node has the cores, memory, GPUs
(GRES) and temporary disk Slurm reports. A committed placement is submitted with
``sbatch --nodelist --nodes --ntasks-per-node --mem --gres=gpu:N --tmp --no-requeue``; its Slurm job
id goes to the ledger. Every poll reads ``sinfo --json`` (a node that became unusable is reported
down, so the agents stop placing on it) and ``squeue --json`` (a job of ours that left the queue
ended: ``scontrol show job`` says how). A job that failed or was lost with its node goes back to
the agents. Each job runs a stand-in payload: ``srun`` writes every node's ``$SLURMD_NODENAME`` to
the job's ``.nodes`` file (so the run can check where it really ran), then sleeps for its runtime on
the scaled clock.
"""

from __future__ import annotations

import asyncio
import math
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from llm_sched.core.model import Job, Node, Placement, Pool, Resources, Specialty
from llm_sched.execution.base import (
    EndState,
    Executor,
    Finished,
    NodeChange,
    Started,
    Update,
    WallClock,
    job_file,
    reported_nodes,
)
from llm_sched.execution.slurm_commands import SlurmJob, SlurmNode, job_state, sbatch, scancel, sinfo_nodes, squeue_jobs

POLL_S = 0.25
# How Slurm's final job states map onto the run's: a node failure loses the job, anything else
# that is not a clean completion failed it. Both go back to the agents.
_LOST = {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED"}


@dataclass
class _Submitted:
    job: Job
    placement: Placement
    slurm_id: int
    output: Path


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, folder: Path, time_scale: float, slurm_conf: Path | None = None) -> None:
        self.folder = folder
        self.clock = WallClock(time_scale)
        self.env = None if slurm_conf is None else {"SLURM_CONF": str(slurm_conf)}
        self._jobs: dict[int, _Submitted] = {}
        self._nodes = {n.name: n for n in sinfo_nodes(env=self.env)}
        self._down: set[str] = set()  # as last reported to the run
        folder.mkdir(parents=True, exist_ok=True)

    def now(self) -> float:
        return self.clock.now()

    def reported_down(self, nodes: set[str]) -> None:
        self._down = {n for n in nodes if n in self._nodes}

    def pools(self) -> list[Pool]:
        return pools_of(list(self._nodes.values()))

    async def start(self, job: Job, placement: Placement) -> Started:
        output = job_file(self.folder, job.id, ".nodes")
        output.unlink(missing_ok=True)
        need = job.per_node
        extra = [f"--tmp={math.ceil(need.storage_gb * 1024)}M"] if need.storage_gb else []
        slurm_id = sbatch(_script(output, job.nodes, self.clock.wall(job.runtime_s)), name=job.id,
                          nodelist=list(placement.nodes), nodes=job.nodes, ntasks_per_node=max(1, need.cores),
                          mem_mb=math.ceil(need.memory_gb * 1024), gpus=need.gpus, partition=placement.pool,
                          output=job_file(self.folder, job.id, ".out"), env=self.env, extra=extra)
        self._jobs[slurm_id] = _Submitted(job, placement, slurm_id, output)
        return Started(job.id, placement.nodes, str(slurm_id), self.now())

    async def advance(self, until: float) -> list[Update]:
        while True:
            updates = self._poll()
            if updates or (not self._jobs and not math.isfinite(until)) or self.now() >= until:
                return updates
            await asyncio.sleep(POLL_S)

    def _poll(self) -> list[Update]:
        """What changed since the last poll: node changes first, then the jobs that ended.

        The queue is read before the nodes. slurmctld marks a node down and ends the jobs it held
        (NODE_FAIL) under one lock, so a job seen lost in the queue has its node's change in the sinfo
        read after it, and the run takes the node out before it places the job again. Read the other
        way round, a node going down between the two reads would send its lost job back to the agents
        while the node still looked usable to them."""
        queue = {j.job_id: j for j in squeue_jobs(env=self.env)} if self._jobs else {}
        changes = self._node_changes()
        return changes + self._ended_jobs(queue)

    def _node_changes(self) -> list[Update]:
        """Nodes that became unusable (down, drained, not responding) or usable again since the last poll."""
        self._nodes = {n.name: n for n in sinfo_nodes(env=self.env)}
        changes: list[Update] = []
        for name, node in sorted(self._nodes.items()):
            down = not node.usable
            if down != (name in self._down):
                (self._down.add if down else self._down.discard)(name)
                changes.append(NodeChange(name, down, self.now(), node.reason or node.state))
        return changes

    def _ended_jobs(self, queued: dict[int, SlurmJob]) -> list[Update]:
        ended: list[Update] = []
        for slurm_id in sorted(self._jobs):
            seen = queued.get(slurm_id)
            if seen is not None and not seen.ended:
                if seen.state == "PENDING" and self._down & set(self._jobs[slurm_id].placement.nodes):
                    ended.append(self._stranded(self._jobs.pop(slurm_id)))  # it would wait for its node forever
                continue
            final = seen or job_state(slurm_id, env=self.env)
            ended.append(self._finished(self._jobs.pop(slurm_id), final))
        return ended

    def _stranded(self, sub: _Submitted) -> Finished:
        """A job still pending on a node that went down: cancelled, and lost (the agents place it anew)."""
        scancel(sub.slurm_id, env=self.env)
        gone = ", ".join(sorted(self._down & set(sub.placement.nodes)))
        return Finished(sub.job.id, "lost", self.now(), None, f"Slurm job {sub.slurm_id} was pending on {gone}, "
                        "which went down; cancelled")

    def _finished(self, sub: _Submitted, final: SlurmJob | None) -> Finished:
        state: EndState
        if final is None:
            state, reason = "lost", f"Slurm no longer knows job {sub.slurm_id}"
        else:
            state = "completed" if final.state == "COMPLETED" else "lost" if final.state in _LOST else "failed"
            reason = "" if state == "completed" else f"Slurm job {sub.slurm_id} ended {final.state}"
        return Finished(sub.job.id, state, self.now(), reported_nodes(sub.output), reason)

    @property
    def running(self) -> int:
        return len(self._jobs)

    def close(self) -> None:
        for slurm_id in list(self._jobs):
            scancel(slurm_id, env=self.env)
        self._jobs.clear()

    def abandon(self, external_id: str) -> None:
        scancel(int(external_id), env=self.env)


def _script(nodes_file: Path, nodes: int, seconds: float) -> str:
    """The batch script: one task per node reports ``$SLURMD_NODENAME``, then the job works (sleeps)."""
    report = 'echo "$SLURMD_NODENAME" >> ' + shlex.quote(str(nodes_file))
    return (f"#!/bin/sh\nsrun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 sh -c {shlex.quote(report)} "
            f"|| exit 1\nsleep {seconds:.3f}\n")


def pools_of(nodes: list[SlurmNode]) -> list[Pool]:
    """Slurm's partitions as pools. A node in several partitions belongs to the smallest of them (ties
    by name): a site's catch-all partition (``all``) does not swallow its GPU or large-memory ones."""
    size = Counter(p for node in nodes for p in node.partitions)
    members: dict[str, list[Node]] = defaultdict(list)
    for node in sorted(nodes, key=lambda n: n.name):
        if node.partitions:
            capacity = Resources(cores=node.cores, memory_gb=node.memory_mb / 1024, gpus=node.gpus,
                                 storage_gb=node.tmp_disk_mb / 1024)
            home = min(node.partitions, key=lambda p: (size[p], p))
            members[home].append(Node(id=node.name, capacity=capacity))
    return [Pool(id=p, specialty=_specialty(ns), nodes=tuple(ns)) for p, ns in sorted(members.items())]


def _specialty(nodes: list[Node]) -> Specialty:
    """What a partition is for, read from its nodes (a scenario pool of the same name says better)."""
    if any(n.capacity.gpus for n in nodes):
        return "gpu"
    if all(n.capacity.memory_gb >= 16 * max(1, n.capacity.cores) for n in nodes):
        return "memory"
    return "compute"

