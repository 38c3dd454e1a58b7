"""The live state placements are checked and reserved against."""

from __future__ import annotations

import math
from collections.abc import Iterable

from llm_sched.core.model import Job, Node, Placement, Pool, Resources

# A node whose cores are this busy with background work takes no new job: it is "overloaded".
OVERLOAD_THRESHOLD = 0.9


class ClusterState:
    """Pools, per-node background load, and the capacity reserved by committed placements."""

    def __init__(self, pools: Iterable[Pool]) -> None:
        self.pools: dict[str, Pool] = {}
        self.nodes: dict[str, Node] = {}
        self.pool_of: dict[str, str] = {}
        for pool in pools:
            if pool.id in self.pools:
                raise ValueError(f"duplicate pool id {pool.id}")
            self.pools[pool.id] = pool
            for node in pool.nodes:
                if node.id in self.nodes:
                    raise ValueError(f"node {node.id} is in pools {self.pool_of[node.id]} and {pool.id}")
                self.nodes[node.id] = node
                self.pool_of[node.id] = pool.id
        self.load: dict[str, float] = {n.id: n.load for n in self.nodes.values()}
        self._used: dict[str, Resources] = {n: Resources() for n in self.nodes}
        self.running: dict[str, tuple[Job, Placement]] = {}
        # Nodes an executor reported down (Slurm: down, drained, not responding): they take no job.
        self.down: set[str] = set()

    def background(self, node_id: str) -> Resources:
        """Capacity taken by background work: that fraction of the node's cores."""
        node = self.nodes[node_id]
        return Resources(cores=math.ceil(node.capacity.cores * self.load[node_id] - 1e-9))

    def used(self, node_id: str) -> Resources:
        return self._used[node_id]

    def available(self, node_id: str) -> Resources:
        node = self.nodes[node_id]
        return node.capacity.minus(self.background(node_id)).minus(self._used[node_id])

    def fits(self, node_id: str, need: Resources) -> bool:
        """``available(node_id)`` has no shortfall for ``need``: the same test, without building objects
        (it runs for every node of every pool an agent looks at)."""
        if node_id in self.down:
            return False
        cap, used = self.nodes[node_id].capacity, self._used[node_id]
        free_cores = cap.cores - math.ceil(cap.cores * self.load[node_id] - 1e-9) - used.cores
        return (need.cores <= max(0, free_cores) and need.memory_gb <= cap.memory_gb - used.memory_gb + 1e-9
                and need.gpus <= cap.gpus - used.gpus and need.storage_gb <= cap.storage_gb - used.storage_gb + 1e-9)

    def set_down(self, node_id: str, down: bool) -> None:
        """Mark a node down (it takes no new job) or back up."""
        if down:
            self.down.add(node_id)
        else:
            self.down.discard(node_id)

    def overloaded(self, node_id: str) -> bool:
        return self.load[node_id] >= OVERLOAD_THRESHOLD

    def reserve(self, job: Job, placement: Placement) -> None:
        """Reserve the job's resources on the placement's nodes, unchecked: callers commit through
        :func:`llm_sched.core.feasibility.commit`, which checks first (the state stays below the
        rules that judge it, so the two modules do not import each other)."""
        for node_id in placement.nodes:
            self._used[node_id] = self._used[node_id].plus(job.per_node)
        self.running[job.id] = (job, placement)

    def release(self, job_id: str) -> Placement:
        """Give back what a running job reserved; returns its placement."""
        job, placement = self.running.pop(job_id)
        for node_id in placement.nodes:
            self._used[node_id] = self._used[node_id].minus(job.per_node)
        return placement

    def occupancy(self, pool_id: str) -> dict[str, object]:
        """The pool's occupancy: nodes holding a job, core shares (jobs, background, total), running jobs."""
        pool = self.pools[pool_id]
        running = sorted(job_id for job_id, (_, placement) in self.running.items() if placement.pool == pool_id)
        job_nodes = sum(1 for n in pool.nodes if self._used[n.id].cores or self._used[n.id].gpus)
        return {"pool": pool_id, "label": pool.label, "nodes": len(pool.nodes), "job_nodes": job_nodes,
                **{k: round(v, 4) for k, v in self.pool_usage(pool_id).items()}, "running": running}

    def pool_usage(self, pool_id: str) -> dict[str, float]:
        """Fractions of the pool's cores reserved by jobs and busy with background work."""
        nodes = self.pools[pool_id].nodes
        total = sum(n.capacity.cores for n in nodes) or 1
        jobs = sum(self._used[n.id].cores for n in nodes)
        background = sum(self.background(n.id).cores for n in nodes)
        return {"jobs": jobs / total, "background": background / total, "total": min(1.0, (jobs + background) / total)}
