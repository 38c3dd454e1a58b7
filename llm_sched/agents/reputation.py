"""Reputation from verifiable facts only: proposals that fail the feasibility check, bids whose
claims or score contradict the shared state, proposals whose self-reported score exceeds what
their author's own view of the shared state gives, votes for candidates that fail those checks,
votes whose signatures fail or contradict each other, and silence (no answer in time). Good conduct earns it back.

Every honest agent can recompute these facts from the shared state, so every honest agent holds
the same reputations. Nothing here knows which agent is faulty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PENALTY_INFEASIBLE_PROPOSAL = 0.30
PENALTY_ACCEPTED_INFEASIBLE = 0.20
PENALTY_SILENCE = 0.10
PENALTY_FALSE_CLAIM = 0.20  # a bid's claims about its own pool contradict the shared state
PENALTY_INFLATED_BID = 0.20  # a bid above what the evidence supports
# A placement score above its author's own recomputed view: the same lie as an inflated bid, so the
# same weight. Net of the reward its honest votes earn, a liar caught every job loses 0.10 a job.
PENALTY_OVERCLAIMED_SCORE = PENALTY_INFLATED_BID
# A vote whose signature fails (forged in another's name, or its own garbled) and a pair of signed
# votes that contradict each other are proofs of a fault, as strong as an infeasible proposal.
PENALTY_BAD_VOTE = 0.30
PENALTY_EQUIVOCATION = 0.30
REWARD_GOOD_CONDUCT = 0.10
EXCLUDE_BELOW = 0.5  # cannot propose below this
READMIT_AT = 0.6  # hysteresis: back to proposing only once clearly recovered
SUSPECT_BELOW = 0.8  # shown as "suspect": lost more than one fault's worth, not yet excluded


@dataclass(frozen=True)
class Change:
    agent: str
    old: float
    new: float
    reason: str


@dataclass
class Reputation:
    """Scores in [0, 1] per agent, and who is excluded from proposing."""

    scores: dict[str, float]
    excluded: set[str] = field(default_factory=set)

    @classmethod
    def fresh(cls, agents: list[str]) -> Reputation:
        return cls({a: 1.0 for a in agents})

    def snapshot(self) -> dict[str, object]:
        """Scores and exclusions as plain data (stored with each decision, and in checkpoints)."""
        return {"scores": dict(self.scores), "excluded": sorted(self.excluded)}

    def restore(self, snapshot: dict[str, object]) -> None:
        """Take the scores and exclusions of a :meth:`snapshot` (resuming a run)."""
        scores, excluded = snapshot["scores"], snapshot["excluded"]
        assert isinstance(scores, dict) and isinstance(excluded, list)
        self.scores = {str(a): float(v) for a, v in scores.items()}
        self.excluded = {str(a) for a in excluded}

    def can_propose(self, agent: str) -> bool:
        return agent not in self.excluded

    def adjust(self, agent: str, delta: float, reason: str) -> Change | None:
        old = self.scores[agent]
        new = round(min(1.0, max(0.0, old + delta)), 4)
        if new == old:
            return None
        self.scores[agent] = new
        return Change(agent, old, new, reason)

    def health(self, agent: str) -> str:
        """``excluded``, ``suspect`` or ``healthy``, from the agent's reputation and exclusion."""
        if agent in self.excluded:
            return "excluded"
        return "suspect" if self.scores[agent] < SUSPECT_BELOW else "healthy"

    def update_exclusions(self) -> tuple[list[str], list[str]]:
        """Apply the thresholds; returns (newly excluded, newly readmitted), sorted."""
        excluded = sorted(a for a, s in self.scores.items() if s < EXCLUDE_BELOW and a not in self.excluded)
        readmitted = sorted(a for a in self.excluded if self.scores[a] >= READMIT_AT)
        self.excluded.update(excluded)
        self.excluded.difference_update(readmitted)
        return excluded, readmitted
