"""What anyone can verify about a candidate from the shared state: the evidence votes and
reputations rest on.

A placement candidate is checked for feasibility. A bid (a candidate with capacity claims) is also
checked against the facts it states about its own pool (how many nodes could take the job, the
background load) and its score against the evidence score the same heuristic gives from the facts.
Honest agents send only what passes; whatever fails is a verifiable fault, whoever sent it.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_sched.agents.heuristics import score_placement
from llm_sched.domain import ClusterState, Feasibility, Job, Placement, check_placement, fitting_nodes
from llm_sched.domain.decisions import BidClaims, Proposal

# A bid may differ from the evidence score by this much: room for the model's judgement, not for lies.
BID_TOLERANCE = 0.15
# Claimed background load may differ from the measured mean by this much (rounding).
LOAD_TOLERANCE = 0.02


@dataclass(frozen=True)
class Evidence:
    """The verdict on one candidate: feasibility, false claims, an inflated score."""

    feasibility: Feasibility
    false_claims: tuple[str, ...] = ()
    inflated: str | None = None
    verified: str = ""  # what was verified, for the prompt, when everything holds

    @property
    def ok(self) -> bool:
        return self.feasibility.ok and not self.false_claims and self.inflated is None

    def reasons(self) -> tuple[str, ...]:
        return (*self.feasibility.reasons, *self.false_claims, *((self.inflated,) if self.inflated else ()))

    def summary(self) -> str:
        if self.ok:
            return f"feasible; {self.verified}" if self.verified else "feasible"
        return "; ".join(self.reasons())


def measured_claims(state: ClusterState, job: Job, pool_id: str) -> BidClaims:
    """The true facts a bid for ``job`` on ``pool_id`` states."""
    nodes = state.pools[pool_id].nodes
    load = sum(state.load[n.id] for n in nodes) / len(nodes)
    return BidClaims(free_nodes=len(fitting_nodes(state, job, pool_id)), background_load=round(load, 3))


def evidence_score(state: ClusterState, job: Job, placement: Placement, reputation: float) -> float:
    """The heuristic score of a bid from the facts, as every agent computes it (pool's own specialty)."""
    pool = state.pools[placement.pool]
    score, _ = score_placement(state, job, placement, pool.specialty, reputation)
    return score


def check_candidate(state: ClusterState, job: Job, candidate: Proposal, reputation: float) -> Evidence:
    """Everything verifiable about ``candidate``; ``reputation`` is its proposer's."""
    assert candidate.placement is not None, "candidates always carry a placement"
    feasibility = check_placement(state, job, candidate.placement)
    claims = candidate.claims
    if claims is None or candidate.placement.pool not in state.pools:
        return Evidence(feasibility)
    truth = measured_claims(state, job, candidate.placement.pool)
    false_claims = []
    if claims.free_nodes != truth.free_nodes:
        false_claims.append(f"false capacity claim: {claims.free_nodes} nodes free claimed, {truth.free_nodes} measured")
    if abs(claims.background_load - truth.background_load) > LOAD_TOLERANCE:
        false_claims.append(f"false load claim: {claims.background_load:.0%} background load claimed, "
                            f"{truth.background_load:.0%} measured")
    inflated = None
    verified = ""
    if feasibility.ok:
        expected = evidence_score(state, job, candidate.placement, reputation)
        if candidate.score > expected + BID_TOLERANCE:
            inflated = f"inflated bid: {candidate.score:.2f} claimed, the evidence gives {expected:.2f}"
        verified = (f"bid claims verified ({truth.free_nodes} nodes free, background load {truth.background_load:.0%}, "
                    f"bid {candidate.score:.2f} against evidence {expected:.2f})")
    return Evidence(feasibility, tuple(false_claims), inflated, verified)
