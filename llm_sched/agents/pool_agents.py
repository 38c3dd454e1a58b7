"""The simulator's resource agents: each owns one pool of whole nodes, bids on it and votes on awards.

They use the specialists' heuristic (:func:`~llm_sched.agents.heuristics.pool_score`), on the state
every agent shares in the simulator (free nodes, pool sizes, completed and killed jobs per pool).
A bid offers the agent's own pool; its self-reported score decides nothing: the award ranks the
bidders by the score each voter recomputes from the shared state (:func:`award`), and every voter
accepts a candidate exactly when it is the award it computes itself. Votes are signed with the
agent's own key and decided by the engine (:mod:`llm_sched.engine.tally`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llm_sched.agents.byzantine import PROTOCOL_BEHAVIOUR, claimed_score, corrupt_vote, extra_votes
from llm_sched.agents.heuristics import pool_score
from llm_sched.core.decisions import Vote
from llm_sched.core.signing import VoteKey

Award = tuple[tuple[int, int], ...]  # (pool, nodes taken from it), in the order they were chosen


@dataclass(frozen=True, slots=True)
class PoolView:
    """The shared state of the machine when one job is awarded, per pool (index = pool)."""

    free: Sequence[int]  # free nodes
    size: Sequence[int]
    completed: Sequence[int]  # jobs completed on the pool
    killed: Sequence[int]  # jobs killed on it
    specialisation: Sequence[float]  # how well the pool suits this job's kind
    side: Sequence[int]  # pools whose agents decide: live, on one side of any partition

    def score(self, pool: int, need: int) -> float:
        """The pool's heuristic score for a job of ``need`` nodes, as any agent computes it."""
        return pool_score(self.free[pool], need, self.size[pool], self.specialisation[pool],
                          self.completed[pool], self.killed[pool])


@dataclass(frozen=True, slots=True)
class Bid:
    """An agent's offer of its own pool, with the score it reports (which ranks nothing)."""

    agent: str
    pool: int
    score: float


def award(view: PoolView, need: int, bids: Sequence[Bid], by_claims: bool = False) -> Award:
    """The award of a job of ``need`` nodes among ``bids``, ranked by recomputed scores: the best
    bidder that can hold the whole job (ties: the lowest pool), else nodes from the best bidders in
    score order until the need is met (empty when the bidders cannot meet it). ``by_claims``: ranked
    by the scores the bids claim instead (what an agent that inflates its own would put forward)."""
    ranked = sorted((-(b.score if by_claims else view.score(b.pool, need)), b.pool)
                    for b in bids if view.free[b.pool] > 0)
    for _, pool in ranked:
        if view.free[pool] >= need:
            return ((pool, need),)
    out, left = [], need
    for _, pool in ranked:
        take = min(left, view.free[pool])
        out.append((pool, take))
        left -= take
        if not left:
            return tuple(out)
    return ()


def valid_award(view: PoolView, need: int, bids: Sequence[Bid], candidate: Award) -> bool:
    """True when ``candidate`` takes nodes only from pools that bid and are on the deciding side
    (``view.side``), each at most once, a positive count no larger than its free nodes, summing to
    exactly ``need``. The check a voter makes of an award it cannot recompute (the model's)."""
    if not isinstance(need, int) or need <= 0 or not candidate:
        return False
    bidders, side = {b.pool for b in bids}, set(view.side)
    seen: set[int] = set()
    total = 0
    for share in candidate:
        if not isinstance(share, tuple) or len(share) != 2:
            return False
        pool, count = share
        if not is_int(pool) or not is_int(count) or pool in seen:
            return False
        if pool not in bidders or pool not in side or not 0 <= pool < len(view.free):
            return False
        if not 0 < count <= view.free[pool]:
            return False
        seen.add(pool)
        total += count
    return total == need


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def placement_of(alloc: Award) -> tuple[str, tuple[str, ...]]:
    """An award as a placement (pool label, node shares) for its digest: pools "p0+p3", shares "p0:4"."""
    return "+".join(f"p{p}" for p, _ in alloc), tuple(f"p{p}:{c}" for p, c in alloc)


# The Byzantine behaviours (agents.byzantine) a pool agent can have in the simulator.
POOL_BEHAVIOURS: tuple[str, ...] = ("silent", "vote_flipping", "inflated_scores", "equivocate", "forge")


_REASONS = {(False, True): "the award recomputed from the shared state", (False, False): "not the award it computes",
            (True, True): "a valid award on the shared state", (True, False): "not a valid award on the shared state"}


class PoolAgent:
    """The agent owning pool ``pool``; it alone holds its signing key. ``behaviour``: a Byzantine
    behaviour from :data:`POOL_BEHAVIOURS` (None: honest)."""

    __slots__ = ("name", "pool", "key", "behaviour")

    def __init__(self, pool: int, run: str, behaviour: str | None = None) -> None:
        if behaviour is not None and behaviour not in POOL_BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r} for a pool agent; expected one of "
                             f"{', '.join(POOL_BEHAVIOURS)}")
        self.pool = pool
        self.name = f"p{pool}"
        self.key = VoteKey(self.name, run, 0)
        self.behaviour = behaviour

    def bid(self, view: PoolView, need: int) -> Bid | None:
        """Offer this agent's pool when it has a free node (a faulty agent may claim another score)."""
        if not view.free[self.pool] or self.behaviour == "silent":
            return None
        score = view.score(self.pool, need)
        return Bid(self.name, self.pool, claimed_score(self.behaviour, score) if self.behaviour else score)

    def judge(self, view: PoolView, need: int, bids: Sequence[Bid], candidate: Award, open_choice: bool = False) -> bool:
        """This agent's own check of ``candidate``: is it the award it computes from the shared state?
        With ``open_choice`` (a model chose the award, which no voter can recompute): is it valid?"""
        if open_choice:
            return valid_award(view, need, bids, candidate)
        return award(view, need, bids) == candidate

    def protocol_fault(self, view: PoolView, need: int, bids: Sequence[Bid], candidate: Award,
                       open_choice: bool = False) -> tuple[str, bool] | None:
        """How this agent lies in the protocol's own messages on ``candidate`` (None: it does not),
        with what its own check says of the candidate (the honest core it runs inside the lie).

        An agent that inflates its score lies when it leads: it puts forward the award its claims
        rank first, and where that is not the candidate the honest agents refuse the proposal
        (``alter``: a proposal carrying another placement) and change the view."""
        if self.behaviour is None:
            return None
        sound = self.judge(view, need, bids, candidate, open_choice)
        if self.behaviour == "inflated_scores":
            if open_choice or award(view, need, bids, by_claims=True) == candidate:
                return None
            return "alter", sound
        return PROTOCOL_BEHAVIOUR[self.behaviour], sound

    def ballot(self, view: PoolView, need: int, bids: Sequence[Bid], candidate: Award, job_id: str, round_no: int,
               digest: str, members: Sequence[str], open_choice: bool = False) -> list[Vote]:
        """Every vote this agent sends on ``candidate``, signed with its key: an honest agent accepts
        exactly when the candidate is the award it computes; a faulty one as its behaviour says
        (none when silent; a contradicting second vote, or votes in other agents' names)."""
        sound = self.judge(view, need, bids, candidate, open_choice)
        honest = Vote(agent=self.name, job_id=job_id, round=round_no, accept=sound, confidence=1.0,
                      reasoning=_REASONS[open_choice, sound], via="heuristic")
        if self.behaviour is None:
            votes = [honest]
        else:
            own = corrupt_vote(self.behaviour, honest, sound, any(p == self.pool for p, _ in candidate))
            votes = ([] if own is None else [own]) + extra_votes(self.behaviour, own, list(members))
        return [v.model_copy(update={"digest": digest, "signature": self.key.sign(job_id, round_no, digest, v.accept,
                                                                                  agent=v.agent)}) for v in votes]
