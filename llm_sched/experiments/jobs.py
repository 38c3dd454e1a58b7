"""The jobs of an experiment: seeded synthetic HPC jobs over the specialists' cluster.

Kinds rotate through a seeded shuffle of the domain's job kinds; each kind asks what its specialty
is for (GPUs, memory, cores, storage). Every ``oversized_every``-th job asks for more nodes than any
pool has, so the agents must agree to reject it. The same seed gives the same jobs, whatever the
method or repetition.
"""

from __future__ import annotations

import random

from llm_sched.agents.heuristics import SPECIALTY_FOR_KIND
from llm_sched.core import JOB_KINDS, ClusterState, Job, Resources


def make_jobs(count: int, seed: int, oversized_every: int, state: ClusterState) -> list[Job]:
    """``count`` jobs drawn from ``seed``; ``state`` tells how large an oversized job must be."""
    rng = random.Random(f"experiment-jobs/{seed}")
    kinds = list(JOB_KINDS)
    rng.shuffle(kinds)
    largest = max(len(p.nodes) for p in state.pools.values())
    jobs = []
    for i in range(count):
        job_id = f"job-{i + 1:0{max(2, len(str(count)))}d}"
        runtime = float(rng.randrange(600, 7201, 300))
        if oversized_every and (i + 1) % oversized_every == 0:
            need = Resources(cores=8, memory_gb=32, gpus=1)
            jobs.append(Job(id=job_id, kind="ai", name="oversized", nodes=largest + 1, per_node=need,
                            runtime_s=runtime))
            continue
        kind = kinds[i % len(kinds)]
        specialty = SPECIALTY_FOR_KIND.get(kind, "general")
        if specialty == "gpu":
            nodes, need = rng.randint(1, 2), Resources(cores=rng.choice((16, 24, 32)),
                                                       memory_gb=rng.choice((64, 128, 256)), gpus=rng.randint(1, 4))
        elif specialty == "memory":
            nodes, need = rng.randint(1, 2), Resources(cores=rng.choice((8, 16, 32)),
                                                       memory_gb=rng.choice((512, 1024, 1536)))
        elif specialty == "storage":
            nodes, need = rng.randint(1, 2), Resources(cores=rng.choice((8, 16)), memory_gb=rng.choice((32, 64, 128)),
                                                       storage_gb=rng.choice((2000, 5000, 12000)))
        else:
            nodes, need = rng.randint(2, 4), Resources(cores=rng.choice((32, 48, 64)),
                                                       memory_gb=rng.choice((64, 128, 192)))
        jobs.append(Job(id=job_id, kind=kind, nodes=nodes, per_node=need, runtime_s=runtime))
    return jobs
