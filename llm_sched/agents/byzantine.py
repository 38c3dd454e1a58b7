"""Byzantine behaviours: how a faulty agent corrupts what an honest one would have said.

Each behaviour takes the honest proposal or vote and returns the faulty one (``None`` is silence).
Two send more than one vote (:func:`extra_votes`): ``equivocate`` signs both an accept and a reject
of the same candidate, ``forge`` adds accepting votes in the other agents' names, signed with its
own key since it has no other (the names ``equivocate`` and ``forge`` are the protocol harness's).
The consensus graph never sees these names: it only sees what the agent sends.
"""

from __future__ import annotations

from typing import Literal, get_args

from llm_sched.core import ClusterState, Job, Placement
from llm_sched.core.decisions import BidClaims, Proposal, Vote

Behaviour = Literal[
    "invalid_nodes", "overloaded_nodes", "inflated_scores", "vote_flipping", "silent", "corrupted_output", "inflated_bids",
    "equivocate", "forge",
]
BEHAVIOURS: tuple[str, ...] = get_args(Behaviour)


def _busiest_nodes(state: ClusterState, job: Job) -> Placement | None:
    """The job's node count taken from the most loaded nodes of one pool (likely over capacity)."""
    for pool_id in sorted(state.pools):
        nodes = sorted(state.pools[pool_id].nodes, key=lambda n: (-state.load[n.id], n.id))
        if len(nodes) >= job.nodes:
            return Placement(job_id=job.id, pool=pool_id, nodes=tuple(n.id for n in nodes[: job.nodes]))
    return None


def _false_bid(honest: Proposal, job: Job, state: ClusterState, pool_id: str) -> Proposal:
    """A bid on the agent's own pool that claims it is idle: the top bid, nodes whether they fit or not."""
    pool = state.pools[pool_id]
    busiest = sorted(pool.nodes, key=lambda n: (-state.load[n.id], n.id))
    nodes = tuple(n.id for n in busiest[: job.nodes])
    nodes += tuple(f"{pool_id}-spare-{i:02d}" for i in range(job.nodes - len(nodes)))  # capacity it does not have
    return honest.model_copy(update={
        "placement": Placement(job_id=job.id, pool=pool_id, nodes=nodes),
        "score": 1.0,
        "claims": BidClaims(free_nodes=len(pool.nodes), background_load=0.0),
        "reasoning": f"{pool_id} is idle: all {len(pool.nodes)} nodes free, a perfect fit for this job.",
    })


def corrupt_proposal(
    behaviour: str, honest: Proposal, job: Job, state: ClusterState, own_pool: str | None = None
) -> Proposal | None:
    """The proposal a faulty agent sends instead of ``honest`` (``own_pool``: the pool a bidder runs)."""
    if behaviour == "silent":
        return None
    if behaviour == "inflated_bids":
        return _false_bid(honest, job, state, own_pool or sorted(state.pools)[0])
    if behaviour == "invalid_nodes":
        pool = sorted(state.pools)[0]
        ghosts = tuple(f"ghost-node-{i:02d}" for i in range(job.nodes))
        return honest.model_copy(update={"placement": Placement(job_id=job.id, pool=pool, nodes=ghosts),
                                         "score": 0.99, "reasoning": "These nodes are idle and ideal."})
    if behaviour == "overloaded_nodes":
        placement = _busiest_nodes(state, job)
        return honest.model_copy(update={"placement": placement, "score": 0.97,
                                         "reasoning": "Plenty of capacity on these nodes."})
    if behaviour == "inflated_scores":
        return honest.model_copy(update={"score": 1.0, "reasoning": honest.reasoning + " (certain: perfect fit)"})
    if behaviour == "corrupted_output":
        return honest.model_copy(update={"placement": None, "score": 0.0, "reasoning": "\x00{{corrupted"})
    return honest  # vote_flipping lies only when voting


def corrupt_vote(behaviour: str, honest: Vote, sound: bool, own: bool) -> Vote | None:
    """The vote a faulty agent sends instead of ``honest``, whatever its policy: ``sound`` is what
    the agent's own check says of the candidate (feasible, or the award it computes itself), ``own``
    whether the candidate uses the agent's own pool."""
    if behaviour == "silent":
        return None
    if behaviour == "inflated_bids":
        # Backs its own bid and anything unsound, blocks every honest sound bid.
        accept = own or not sound
        return honest.model_copy(update={"accept": accept, "confidence": 0.99,
                                         "reasoning": "Only my cluster can run this job well." if accept else
                                         "These nodes are not suitable."})
    if behaviour == "vote_flipping":
        return honest.model_copy(update={"accept": not sound, "confidence": 1.0,
                                         "reasoning": "Voting against the evidence."})
    if behaviour in ("invalid_nodes", "overloaded_nodes"):
        # Colluding liars back unsound placements and block sound ones.
        return honest.model_copy(update={"accept": not sound, "confidence": 0.99})
    if behaviour == "inflated_scores":
        return honest.model_copy(update={"confidence": 1.0})
    if behaviour == "corrupted_output":
        return None  # an unreadable vote counts as no vote
    if behaviour == "forge":
        return honest.model_copy(update={"accept": True, "confidence": 1.0, "reasoning": "Everyone agrees: accept."})
    return honest


def claimed_score(behaviour: str, honest: float) -> float:
    """The score a faulty bidder reports for its own offer (a bid's own score ranks nothing: voters
    recompute it; a claim far above the recomputed score is evidence against the bidder)."""
    return 1.0 if behaviour in ("inflated_scores", "inflated_bids") else honest


# What each behaviour does to the agent's protocol core when its answer goes to a real protocol
# (transport.harness.ByzantineCore / SplitBrainCore): the same lie, in the protocol's messages. Lies
# about placements become proposals that carry a lie (alter); lies in votes, votes for a lie.
PROTOCOL_BEHAVIOUR: dict[str, str] = {
    "silent": "silent", "vote_flipping": "vote-against", "equivocate": "equivocate", "forge": "forge",
    "invalid_nodes": "alter", "overloaded_nodes": "alter", "inflated_bids": "alter", "corrupted_output": "silent",
}


def extra_votes(behaviour: str, vote: Vote | None, members: list[str]) -> list[Vote]:
    """The votes a faulty agent sends besides ``vote``, its own (unsigned here: the agent signs
    everything it sends with the one key it has)."""
    if vote is None:
        return []
    if behaviour == "equivocate":  # the same round, the same candidate, the other answer
        return [vote.model_copy(update={"accept": not vote.accept, "reasoning": "(the other answer)",
                                        "byzantine": True})]
    if behaviour == "forge":  # accepts in every other member's name
        return [vote.model_copy(update={"agent": peer, "accept": True, "confidence": 1.0, "byzantine": True,
                                        "reasoning": "Accept."}) for peer in members if peer != vote.agent]
    return []
