"""What anyone can verify about a candidate from the shared state: the evidence votes and
reputations rest on.

A placement candidate is checked for feasibility. A bid (a candidate with capacity claims) is also
checked against the facts it states about its own pool (how many nodes could take the job, the
background load) and its score against the evidence score the same heuristic gives from the facts.
Honest agents send only what passes; whatever fails is a verifiable fault, whoever sent it.

A placement proposal's self-reported score ranks nothing: :func:`rank_candidates` orders the
candidates by the median of the scores every voter computes from the shared state with its own
specialty, and :func:`over_claim` turns a claim above its author's own recomputed view into evidence.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from llm_sched.agents.heuristics import score_placement
from llm_sched.core import ClusterState, Feasibility, Job, Placement, check_placement, fitting_nodes
from llm_sched.core.decisions import BidClaims, Proposal

# A bid may differ from the evidence score by this much: room for the model's judgement, not for lies.
BID_TOLERANCE = 0.15
# Claimed background load may differ from the measured mean by this much (rounding).
LOAD_TOLERANCE = 0.02
# A placement proposal's score may exceed the heuristic's score for its author's own specialty by this
# much: two steps of the 0.05 answer grid. Over the shipped SmolLM2-135M cassettes of the six placement
# scenarios (234 honest model proposals before this check, 237 re-recorded with it) the largest
# over-claim measured was +0.035 both times, so no honest agent comes near it. Under-claims (down to
# -0.83 when a job's label sways the model) are no evidence: understating gains its author nothing,
# and a score ranks nothing anyway.
SCORE_TOLERANCE = 0.10

RankBy = Literal["recomputed", "claimed"]
PlacementKey = tuple[str, str, tuple[str, ...]]


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


def consensus_score(
    state: ClusterState, job: Job, placement: Placement, specialties: Iterable[str], owner_reputation: float
) -> float:
    """The median of the scores the voters (one specialty each) compute for a feasible ``placement``:
    every voter's own view counts, and no single specialty decides."""
    views = [score_placement(state, job, placement, s, owner_reputation)[0] for s in specialties]
    return round(statistics.median(views), 4)


@dataclass(frozen=True)
class Ranked:
    """A candidate put to the vote, and the score that ranked it (None: it fails the check)."""

    proposal: Proposal
    score: float | None


def rank_candidates(
    state: ClusterState,
    job: Job,
    proposals: Iterable[Proposal],
    specialties: list[str],
    owner_reputation: Mapping[str, float],
    rank_by: RankBy = "recomputed",
) -> list[Ranked]:
    """The distinct candidate placements in the order they go to the vote.

    A placement that fails the check comes first: the graph drops nothing agents send, and the
    voters' own check rejects it on the record (evidence against its author and against any voter that
    accepts it). Feasible placements follow, best first by the voters' median recomputed score; a bid
    (a proposal with claims) ranks by its bid, which every voter checks against the evidence
    (``BID_TOLERANCE``). Ties, and several authors of one placement, go to the lowest agent id, then the
    placement key: what an author claims decides nothing. ``rank_by="claimed"`` ranks by the authors'
    own scores instead (the old, unsafe order, kept to show what the recomputation prevents)."""
    if rank_by == "claimed":
        return _rank_by_claims(proposals)
    authors: dict[PlacementKey, Proposal] = {}
    for p in sorted(proposals, key=lambda p: p.agent):
        assert p.placement is not None
        authors.setdefault(p.placement.key(), p)
    ranked = []
    for key, p in authors.items():
        assert p.placement is not None
        score: float | None = None
        if check_placement(state, job, p.placement).ok:
            reputation = owner_reputation.get(p.placement.pool, 1.0)
            score = p.score if p.claims is not None else consensus_score(state, job, p.placement, specialties, reputation)
        ranked.append((score is not None, -(score or 0.0), p.agent, key, Ranked(p, score)))
    return [r for *_, r in sorted(ranked, key=lambda item: item[:4])]


def _rank_by_claims(proposals: Iterable[Proposal]) -> list[Ranked]:
    """Each placement's highest claim, highest first: an author's word decides (unsafe; tests only)."""
    best: dict[PlacementKey, Proposal] = {}
    for p in sorted(proposals, key=lambda p: p.agent):
        assert p.placement is not None
        key = p.placement.key()
        if key not in best or p.score > best[key].score:
            best[key] = p
    return [Ranked(p, p.score) for p in sorted(best.values(), key=lambda p: (-p.score, p.agent))]


@dataclass(frozen=True)
class OverClaim:
    """A placement proposal whose score exceeds what its author's own view of the state gives."""

    agent: str
    claimed: float
    recomputed: float

    @property
    def reason(self) -> str:
        return (f"self-reported score {self.claimed:.2f} above the {self.recomputed:.2f} its own specialty "
                f"computes from the shared state (tolerance {SCORE_TOLERANCE:.2f})")


def over_claim(state: ClusterState, job: Job, proposal: Proposal, specialty: str,
               owner_reputation: Mapping[str, float]) -> OverClaim | None:
    """Evidence against ``proposal``'s author when its score departs upward from the heuristic score
    for the author's own specialty by more than ``SCORE_TOLERANCE``. Bids are checked by
    :func:`check_candidate`; a placement that fails the check is evidence of its own (at the vote)."""
    placement = proposal.placement
    if placement is None or proposal.claims is not None or not check_placement(state, job, placement).ok:
        return None
    own, _ = score_placement(state, job, placement, specialty, owner_reputation.get(placement.pool, 1.0))
    if proposal.score - own <= SCORE_TOLERANCE + 1e-9:  # the grid's decimals are not exact in binary
        return None
    return OverClaim(proposal.agent, proposal.score, own)
