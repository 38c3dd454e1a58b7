"""Bid verification: honest claims pass, every kind of lie is named, the model's bid stays in range."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llm_sched.agents.answers import proposal_answer
from llm_sched.agents.byzantine import corrupt_proposal
from llm_sched.agents.evidence import BID_TOLERANCE, check_candidate, evidence_score, measured_claims
from llm_sched.agents.heuristics import bid_option
from llm_sched.core import ClusterState, Job, Node, Pool, Resources
from llm_sched.core.decisions import BidClaims, Proposal

NODE = Resources(cores=64, memory_gb=512, gpus=4)


def _state() -> ClusterState:
    loads = [0.1, 0.2, 0.3, 0.95]  # the last node is overloaded
    pool = Pool(id="machine", specialty="gpu", nodes=tuple(Node(id=f"n{i}", capacity=NODE, load=load)
                                                           for i, load in enumerate(loads)))
    other = Pool(id="other", specialty="compute", nodes=(Node(id="c0", capacity=NODE),))
    return ClusterState([pool, other])


JOB = Job(id="j", kind="ai", nodes=2, per_node=Resources(cores=32, memory_gb=128, gpus=4), runtime_s=3600)


def _honest_bid(state: ClusterState) -> Proposal:
    option = bid_option(state, JOB, "machine", 1.0)
    assert option is not None
    return Proposal(agent="a", job_id="j", placement=option.placement, score=option.score, reasoning="r",
                    via="heuristic", claims=measured_claims(state, JOB, "machine"))


def test_an_honest_bid_is_verified() -> None:
    state = _state()
    evidence = check_candidate(state, JOB, _honest_bid(state), 1.0)
    assert evidence.ok, evidence.summary()
    assert evidence.summary().startswith("feasible; bid claims verified (3 nodes free")


def test_false_capacity_false_load_and_an_inflated_bid_are_each_named() -> None:
    state = _state()
    honest = _honest_bid(state)
    lie = honest.model_copy(update={"claims": BidClaims(free_nodes=4, background_load=0.0),
                                    "score": min(1.0, honest.score + BID_TOLERANCE + 0.05)})
    evidence = check_candidate(state, JOB, lie, 1.0)
    assert not evidence.ok
    reasons = " | ".join(evidence.reasons())
    assert "false capacity claim: 4 nodes free claimed, 3 measured" in reasons
    assert "false load claim" in reasons and "inflated bid" in reasons


def test_a_bid_within_the_tolerance_is_not_inflated() -> None:
    state = _state()
    honest = _honest_bid(state)
    expected = evidence_score(state, JOB, honest.placement, 1.0)  # type: ignore[arg-type]
    assert check_candidate(state, JOB, honest.model_copy(update={"score": expected + BID_TOLERANCE - 0.01}), 1.0).ok


def test_the_lying_bidder_claims_its_whole_machine_and_the_top_score() -> None:
    state = _state()
    lie = corrupt_proposal("inflated_bids", _honest_bid(state), JOB, state, "machine")
    assert lie is not None and lie.score == 1.0
    assert lie.claims == BidClaims(free_nodes=4, background_load=0.0)
    assert "n3" in lie.placement.nodes  # type: ignore[union-attr]  # the busiest node first
    assert not check_candidate(state, JOB, lie, 1.0).ok


def test_a_pool_smaller_than_the_job_gets_spare_nodes_it_does_not_have() -> None:
    state = _state()
    big = JOB.model_copy(update={"nodes": 3})
    lie = corrupt_proposal("inflated_bids", _honest_bid(state), big, state, "other")
    assert lie is not None and len(lie.placement.nodes) == 3  # type: ignore[union-attr]
    assert any("unknown node" in r for r in check_candidate(state, big, lie, 1.0).reasons())


def test_the_models_bid_must_stay_in_the_range_the_evidence_allows() -> None:
    schema = proposal_answer(("A",), (0.5, 0.7))
    assert schema.model_validate({"option_id": "A", "score": 0.6, "reasoning": "r"}).score == 0.6  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="less than or equal to 0.7"):
        schema.model_validate({"option_id": "A", "score": 0.95, "reasoning": "r"})


def test_fast_fit_test_agrees_with_available_resources() -> None:
    state = _state()
    for node in state.nodes:
        for need in (Resources(cores=1), Resources(cores=58), Resources(cores=6, memory_gb=512, gpus=4),
                     Resources(memory_gb=513), Resources(gpus=5), Resources(storage_gb=1)):
            assert state.fits(node, need) == (not state.available(node).shortfalls(need)), (node, need)
