"""A small five-specialist federation for agent and consensus tests."""

from __future__ import annotations

from llm_sched.agents.reputation import Reputation
from llm_sched.agents.specialist import SpecialistAgent, World
from llm_sched.core import ClusterState, Job, Node, Pool, Resources
from llm_sched.core.events import EventBus
from llm_sched.orchestration.graph import ConsensusGraph

AGENTS = {
    "compute-agent": ("compute", "cpu-pool"),
    "general-agent": ("general", "gen-pool"),
    "gpu-agent": ("gpu", "gpu-pool"),
    "memory-agent": ("memory", "mem-pool"),
    "storage-agent": ("storage", "io-pool"),
}


def pool(pool_id: str, specialty: str, count: int, gpus: int = 0, memory_gb: float = 256) -> Pool:
    nodes = tuple(
        Node(id=f"{pool_id}-{i}", capacity=Resources(cores=64, memory_gb=memory_gb, gpus=gpus, storage_gb=1000),
             load=0.1 * (i % 4))
        for i in range(count)
    )
    return Pool(id=pool_id, specialty=specialty, nodes=nodes)  # type: ignore[arg-type]


def federation() -> ClusterState:
    return ClusterState([
        pool("gpu-pool", "gpu", 4, gpus=4), pool("mem-pool", "memory", 4, memory_gb=1024),
        pool("cpu-pool", "compute", 8), pool("io-pool", "storage", 4), pool("gen-pool", "general", 4),
    ])


def build(state: ClusterState | None = None, *, quorum: int | None = None) -> tuple[ConsensusGraph, World, EventBus]:
    state = state or federation()
    world = World(state, Reputation.fresh(list(AGENTS)), {p: a for a, (_, p) in AGENTS.items()}, "test")
    agents = {a: SpecialistAgent(a, spec, world) for a, (spec, _) in AGENTS.items()}
    bus = EventBus()
    return ConsensusGraph(agents, world, bus, quorum=quorum), world, bus


def job(job_id: str, kind: str = "ai", nodes: int = 2, cores: int = 32, memory_gb: float = 128, gpus: int = 0) -> Job:
    return Job(id=job_id, kind=kind, nodes=nodes, per_node=Resources(cores=cores, memory_gb=memory_gb, gpus=gpus),
               runtime_s=3600)  # type: ignore[arg-type]
