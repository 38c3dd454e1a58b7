"""The specialists' multi-factor heuristic: resource match, load, specialisation, reputation.

It produces the feasible options an agent offers its model, scores them, and answers on its own
when the model fails or is off. Deterministic: ties break on pool and node ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_sched.core import ClusterState, Job, Placement, fitting_nodes
from llm_sched.core.model import Specialty

# Which specialty suits which kind of job; "general" suits everything a little.
SPECIALTY_FOR_KIND: dict[str, Specialty] = {
    "ai": "gpu",
    "quantum": "gpu",
    "drug": "gpu",
    "genomics": "memory",
    "graph": "memory",
    "analytics": "storage",
    "climate": "compute",
    "physics": "compute",
    "fusion": "compute",
    "cosmology": "compute",
}
WEIGHTS = {"resource_match": 0.35, "load": 0.25, "specialisation": 0.25, "reputation": 0.15}
OPTIONS_PER_AGENT = 3


@dataclass(frozen=True)
class Option:
    """A feasible placement an agent can offer, with its heuristic score."""

    option_id: str
    placement: Placement
    factors: dict[str, float]
    score: float


def specialisation(agent_specialty: str, pool_specialty: str, job_kind: str) -> float:
    """How well the pool suits the job, seen by this specialist (its own field weighs more)."""
    wanted = SPECIALTY_FOR_KIND.get(job_kind, "general")
    if pool_specialty == wanted:
        return 1.0 if agent_specialty in (wanted, "general") else 0.9
    if pool_specialty == "general":
        return 0.6
    return 0.3 if agent_specialty == pool_specialty else 0.2


def resource_match(state: ClusterState, job: Job, nodes: tuple[str, ...]) -> float:
    """1.0 when the job uses what the nodes are for; penalises idle GPUs and heavy over-provisioning."""
    scores = []
    for node_id in nodes:
        cap = state.nodes[node_id].capacity
        need = job.per_node
        parts = [need.cores / cap.cores if cap.cores else 1.0, need.memory_gb / cap.memory_gb if cap.memory_gb else 1.0]
        if cap.gpus:
            parts.append(need.gpus / cap.gpus)  # a CPU job on a GPU node wastes the GPUs
        scores.append(sum(parts) / len(parts))
    return min(1.0, sum(scores) / len(scores))


def load_factor(state: ClusterState, nodes: tuple[str, ...]) -> float:
    busy = [state.load[n] + state.used(n).cores / max(1, state.nodes[n].capacity.cores) for n in nodes]
    return max(0.0, 1.0 - sum(busy) / len(busy))


def score_placement(
    state: ClusterState, job: Job, placement: Placement, agent_specialty: str, reputation: float
) -> tuple[float, dict[str, float]]:
    """The weighted score in [0, 1] and its factors. ``reputation`` is the pool owner's."""
    pool = state.pools[placement.pool]
    factors = {
        "resource_match": round(resource_match(state, job, placement.nodes), 4),
        "load": round(load_factor(state, placement.nodes), 4),
        "specialisation": specialisation(agent_specialty, pool.specialty, job.kind),
        "reputation": round(reputation, 4),
    }
    return round(sum(WEIGHTS[k] * v for k, v in factors.items()), 4), factors


def placement_options(
    state: ClusterState, job: Job, agent_specialty: str, owner_reputation: dict[str, float], limit: int = OPTIONS_PER_AGENT
) -> list[Option]:
    """The best feasible placement in each pool that can take the job, best first, at most ``limit``."""
    scored = []
    for pool_id in sorted(state.pools):
        fits = fitting_nodes(state, job, pool_id)
        if len(fits) < job.nodes:
            continue
        placement = Placement(job_id=job.id, pool=pool_id, nodes=tuple(fits[: job.nodes]))
        score, factors = score_placement(state, job, placement, agent_specialty, owner_reputation.get(pool_id, 1.0))
        scored.append((score, pool_id, placement, factors))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [
        Option(option_id=chr(ord("A") + i), placement=p, factors=f, score=s)
        for i, (s, _pool, p, f) in enumerate(scored[:limit])
    ]


def why_infeasible(state: ClusterState, job: Job) -> str:
    """The agreed reason when no pool can take the job, e.g. "no pool can fit 16 nodes with 4 GPUs"."""
    need = job.per_node
    extras = [f"{need.cores} cores"]
    if need.gpus:
        extras.append(f"{need.gpus} GPUs")
    if need.memory_gb:
        extras.append(f"{need.memory_gb:g} GB memory")
    best = max((len(fitting_nodes(state, job, p)) for p in state.pools), default=0)
    return f"no pool can fit {job.nodes} nodes with {' and '.join(extras)} each (most free in one pool: {best})"


def bid_option(state: ClusterState, job: Job, pool_id: str, reputation: float) -> Option | None:
    """A bidder's offer on its own pool: the least loaded nodes that fit, scored as every voter will
    score it (with the pool's specialty), or None when the pool cannot take the job now."""
    fits = fitting_nodes(state, job, pool_id)
    if len(fits) < job.nodes:
        return None
    placement = Placement(job_id=job.id, pool=pool_id, nodes=tuple(fits[: job.nodes]))
    score, factors = score_placement(state, job, placement, state.pools[pool_id].specialty, reputation)
    return Option(option_id="A", placement=placement, factors=factors, score=score)


def pool_score(free: int, need: int, size: int, specialisation: float, completed: int, killed: int) -> float:
    """The same four factors for a pool of interchangeable whole nodes (the simulator's pools):
    resource match = the share of a ``need``-node job the ``free`` nodes can hold, load = the pool's
    idle share, the specialisation factor, and reputation = (completed + 1) / (completed + killed + 1)
    of the jobs run on the pool."""
    return (WEIGHTS["resource_match"] * (min(free, need) / need) + WEIGHTS["load"] * (free / size)
            + WEIGHTS["specialisation"] * specialisation
            + WEIGHTS["reputation"] * ((completed + 1) / (completed + killed + 1)))
