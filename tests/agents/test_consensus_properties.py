"""Property: with at most f Byzantine agents, no infeasible placement is ever committed, and every
feasible job commits within the round bound (honest agents on heuristics). With as many colluders
as the quorum, or the quorum lowered to the number of liars, the same check finds a bad commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from llm_sched.agents.byzantine import BEHAVIOURS
from llm_sched.agents.reputation import Reputation
from llm_sched.agents.specialist import SpecialistAgent, World
from llm_sched.core import ClusterState, Job, Node, Pool, Resources, check_placement, fitting_nodes
from llm_sched.core.events import EventBus
from llm_sched.core.model import JOB_KINDS, SPECIALTIES
from llm_sched.orchestration.graph import ConsensusGraph
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum


@dataclass(frozen=True)
class Case:
    pools: list[Pool]
    job: Job
    liars: dict[str, str]  # agent id -> behaviour


def _node(pool: str, i: int, draw: st.DrawFn) -> Node:
    capacity = Resources(cores=draw(st.sampled_from([16, 32, 64, 128])), memory_gb=draw(st.sampled_from([64, 256, 1024])),
                         gpus=draw(st.sampled_from([0, 0, 2, 4])), storage_gb=1000)
    return Node(id=f"{pool}-{i}", capacity=capacity, load=draw(st.sampled_from([0.0, 0.2, 0.5, 0.95])))


@st.composite
def cases(draw: st.DrawFn, liars: str = "up_to_f") -> Case:
    n = draw(st.sampled_from([4, 5, 7]))
    pools = [
        Pool(id=f"p{a}", specialty=draw(st.sampled_from(SPECIALTIES)),  # type: ignore[arg-type]
             nodes=tuple(_node(f"p{a}", i, draw) for i in range(draw(st.integers(1, 5)))))
        for a in range(n)
    ]
    per_node = Resources(cores=draw(st.sampled_from([8, 16, 48, 100])), memory_gb=draw(st.sampled_from([32, 128, 512])),
                         gpus=draw(st.sampled_from([0, 0, 1, 4])))
    job = Job(id="j", kind=draw(st.sampled_from(JOB_KINDS)), nodes=draw(st.integers(1, 4)), per_node=per_node,  # type: ignore[arg-type]
              runtime_s=3600)
    count = {"up_to_f": draw(st.integers(0, byzantine_f(n))), "quorum": byzantine_quorum(n)}[liars]
    chosen = draw(st.permutations([f"a{i}" for i in range(n)]))[:count]
    behaviour = st.sampled_from(BEHAVIOURS) if liars == "up_to_f" else st.just("invalid_nodes")
    return Case(pools, job, {a: draw(behaviour) for a in chosen})


def decide(case: Case, quorum: int | None = None) -> tuple[ConsensusGraph, object]:
    state = ClusterState(case.pools)
    agent_ids = [f"a{i}" for i in range(len(case.pools))]
    world = World(state, Reputation.fresh(agent_ids), {p.id: f"a{p.id[1:]}" for p in case.pools}, "property")
    agents = {a: SpecialistAgent(a, case.pools[i].specialty, world, behaviour=case.liars.get(a))
              for i, a in enumerate(agent_ids)}
    graph = ConsensusGraph(agents, world, EventBus(), quorum=quorum)
    return graph, asyncio.run(graph.decide(case.job))


def check_safe_and_live(case: Case, quorum: int | None = None) -> None:
    graph, decision = decide(case, quorum)
    state = graph.world.state
    if decision.outcome == "commit":  # type: ignore[attr-defined]
        assert check_placement(state, case.job, decision.placement).ok, f"bad commit: {decision}"  # type: ignore[attr-defined]
    feasible = any(len(fitting_nodes(state, case.job, p.id)) >= case.job.nodes for p in case.pools)
    if feasible and quorum is None:
        assert decision.outcome == "commit", f"feasible job not committed: {decision}"  # type: ignore[attr-defined]
        assert decision.rounds <= graph.max_rounds  # type: ignore[attr-defined]


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
                    database=None)
# The tests that must find a bad commit only need one: shrinking it would add time, not evidence.
FIND_ONE = settings(PROPERTY, phases=[Phase.explicit, Phase.generate])


@PROPERTY
@given(cases())
def test_up_to_f_byzantine_agents_never_get_a_bad_placement_committed(case: Case) -> None:
    check_safe_and_live(case)


def test_as_many_colluders_as_the_quorum_get_a_bad_placement_committed() -> None:
    @FIND_ONE
    @given(cases(liars="quorum"))
    def colluders(case: Case) -> None:
        check_safe_and_live(case)

    with pytest.raises(AssertionError, match="bad commit"):
        colluders()


def test_a_quorum_lowered_to_the_liars_lets_a_bad_placement_through() -> None:
    @FIND_ONE
    @given(cases())
    def lowered(case: Case) -> None:
        check_safe_and_live(case, quorum=max(1, len(case.liars)))

    with pytest.raises(AssertionError, match="bad commit"):
        lowered()
