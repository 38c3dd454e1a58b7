"""The consensus graph on heuristic agents: commits, blocks liars, detects them, rejects with reasons."""

from __future__ import annotations

from llm_sched.core import check_placement
from tests.agents.fixtures import build, job


async def test_healthy_agents_commit_unanimously_on_a_fitting_pool() -> None:
    graph, world, bus = build()
    decision = await graph.decide(job("j1", kind="ai", gpus=4))
    assert decision.outcome == "commit" and decision.placement is not None
    assert decision.placement.pool == "gpu-pool"
    assert (decision.accepts, decision.voters, decision.rounds) == (5, 5, 1)
    assert check_placement(world.state, job("j1", kind="ai", gpus=4), decision.placement).ok
    kinds = [e.kind for e in bus.events]
    assert kinds.count("proposal") == 5 and kinds.count("vote") == 5 and kinds[-1] == "decision"


async def test_a_liars_invalid_proposal_is_blocked_and_the_liar_detected() -> None:
    graph, world, bus = build()
    graph.agents["storage-agent"].behaviour = "invalid_nodes"
    decisions = [await graph.decide(job(f"j{i}", kind="physics")) for i in range(3)]
    assert all(d.outcome == "commit" for d in decisions)
    assert all(not d.placement.nodes[0].startswith("ghost") for d in decisions if d.placement)
    blocked = [e for e in bus.events if e.kind == "proposal_blocked"]
    assert blocked and all(e.proposer == "storage-agent" for e in blocked)  # type: ignore[attr-defined]
    excluded = [e for e in bus.events if e.kind == "agent_excluded"]
    assert [e.agent for e in excluded] == ["storage-agent"]  # type: ignore[attr-defined]
    assert not world.reputation.can_propose("storage-agent")


async def test_infeasible_job_is_an_agreed_reject_with_a_reason() -> None:
    graph, _, _ = build()
    decision = await graph.decide(job("huge", kind="ai", nodes=16, gpus=4))
    assert decision.outcome == "reject"
    assert decision.reason.startswith("no pool can fit 16 nodes with 32 cores and 4 GPUs")


async def test_silent_agent_loses_reputation_but_cannot_stop_a_commit() -> None:
    graph, world, _ = build()
    graph.agents["gpu-agent"].behaviour = "silent"
    decision = await graph.decide(job("j1", kind="genomics", memory_gb=512))
    assert decision.outcome == "commit" and decision.accepts == 4
    assert world.reputation.scores["gpu-agent"] < 1.0


async def test_quorum_lowered_to_the_liars_lets_a_bad_placement_through() -> None:
    graph, world, _ = build(quorum=1)
    graph.agents["storage-agent"].behaviour = "invalid_nodes"
    decision = await graph.decide(job("j1", kind="physics"))
    assert decision.placement is not None
    assert not check_placement(world.state, job("j1", kind="physics"), decision.placement).ok


async def test_a_reject_with_too_few_abstentions_for_a_quorum_says_no_agent_proposed() -> None:
    graph, world, _ = build()
    world.reputation.excluded.update({"gpu-agent", "memory-agent"})  # 3 may propose: fewer than q = 4
    d = await graph.decide(job("huge", nodes=40))
    assert d.outcome == "reject" and d.rounds == 0
    assert d.reason.startswith("no agent proposed a placement: 3 of 5 found none feasible (")
    assert "0 rounds" not in d.reason
