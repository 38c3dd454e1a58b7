"""The single authority on whether a placement fits the current state.

Whatever an LLM or a (possibly lying) agent says, an honest agent accepts only what passes here.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_sched.core.model import Job, Placement
from llm_sched.core.state import ClusterState


class OverAllocationError(RuntimeError):
    """A commit that does not fit: a bug in the caller, since commits are checked first."""


@dataclass(frozen=True)
class Feasibility:
    ok: bool
    reasons: tuple[str, ...] = ()

    def summary(self) -> str:
        return "feasible" if self.ok else "; ".join(self.reasons)


def check_placement(state: ClusterState, job: Job, placement: Placement) -> Feasibility:
    """Every reason the placement cannot run now (empty when it can)."""
    reasons: list[str] = []
    if placement.job_id != job.id:
        reasons.append(f"placement is for job {placement.job_id}, not {job.id}")
    if placement.pool not in state.pools:
        reasons.append(f"unknown pool {placement.pool}")
    if len(placement.nodes) != job.nodes:
        reasons.append(f"{len(placement.nodes)} nodes given, job needs {job.nodes}")
    if len(set(placement.nodes)) != len(placement.nodes):
        reasons.append("a node is listed twice")
    for node_id in dict.fromkeys(placement.nodes):
        reasons.extend(_node_problems(state, job, placement.pool, node_id))
    return Feasibility(not reasons, tuple(reasons))


def commit(state: ClusterState, job: Job, placement: Placement) -> None:
    """Reserve the job's resources on the placement's nodes, after checking that it still fits."""
    verdict = check_placement(state, job, placement)
    if not verdict.ok:
        raise OverAllocationError(f"commit of {job.id} refused: {'; '.join(verdict.reasons)}")
    state.reserve(job, placement)


def _node_problems(state: ClusterState, job: Job, pool: str, node_id: str) -> list[str]:
    if node_id not in state.nodes:
        return [f"unknown node {node_id}"]
    problems = []
    if node_id in state.down:
        problems.append(f"node {node_id} is down")
    if state.pool_of[node_id] != pool:
        problems.append(f"node {node_id} is in pool {state.pool_of[node_id]}, not {pool}")
    if state.overloaded(node_id):
        problems.append(f"node {node_id} is overloaded (load {state.load[node_id]:.0%})")
    problems.extend(f"node {node_id}: {s}" for s in state.available(node_id).shortfalls(job.per_node))
    return problems


def fitting_nodes(state: ClusterState, job: Job, pool_id: str) -> list[str]:
    """Nodes of the pool that can take one share of the job now, least loaded first (ties by id)."""
    pool = state.pools[pool_id]
    fits = [n.id for n in pool.nodes if not state.overloaded(n.id) and state.fits(n.id, job.per_node)]
    return sorted(fits, key=lambda n: (state.load[n] + _reserved_share(state, n), n))


def _reserved_share(state: ClusterState, node_id: str) -> float:
    cores = state.nodes[node_id].capacity.cores or 1
    return state.used(node_id).cores / cores
