"""Proposals, votes and decisions: what agents say and what the group agrees."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from llm_sched.core.model import Placement
from llm_sched.core.records import CallRecord

# How an answer was produced: the model's validated answer, the heuristic after a failed model call,
# the heuristic alone (no model), or the deterministic check alone (no question worth asking).
Via = Literal["llm", "fallback", "heuristic", "check"]
_FROZEN = ConfigDict(frozen=True)


class BidClaims(BaseModel):
    """What a bid states about the bidder's own pool; anyone can check it against the shared state."""

    model_config = _FROZEN

    free_nodes: int  # nodes that could take one share of the job now
    background_load: float  # mean background load of the pool's nodes


class Proposal(BaseModel):
    """An agent's proposed placement for a job (``placement`` None: it sees no feasible option).

    A bid is a proposal on the bidder's own pool with ``claims``; ``score`` is then the bid."""

    model_config = _FROZEN

    agent: str
    job_id: str
    placement: Placement | None
    score: float
    reasoning: str
    via: Via
    llm: CallRecord | None = None
    claims: BidClaims | None = None
    # Where the chosen option stood in the heuristic's ranking (0: its first choice), and how many
    # options were offered: what "agreement with the heuristic" is computed from.
    heuristic_rank: int | None = None
    options_offered: int | None = None
    byzantine: bool = False  # a faulty agent rewrote what it would honestly have sent


class Vote(BaseModel):
    """An agent's vote on the candidate of one round."""

    model_config = _FROZEN

    agent: str
    job_id: str
    round: int
    accept: bool
    confidence: float
    reasoning: str
    via: Via
    llm: CallRecord | None = None
    byzantine: bool = False  # a faulty agent rewrote what it would honestly have sent
    # What the signature covers besides the fields above (see llm_sched.core.signing): the digest
    # of the candidate placement, and the key epoch of the signing key. Unsigned: "".
    digest: str = ""
    key_epoch: int = 0
    signature: str = ""


class Signature(BaseModel):
    """One agent's signature in a certificate: made with its key of ``key_epoch``."""

    model_config = _FROZEN

    agent: str
    key_epoch: int
    signature: str


class Certificate(BaseModel):
    """A quorum certificate: the signed accepting votes that committed one placement.

    Anyone with the run's public keys checks it offline: every signature over the same statement
    (run, agent, job, round, digest, accept), from distinct members, at least ``quorum`` of them.
    A reputation-weighted commit also records the weights its tally used (``weights``, ``needed``)."""

    model_config = _FROZEN

    job_id: str
    round: int
    digest: str
    quorum: int
    voters: int
    signatures: tuple[Signature, ...]
    weights: dict[str, float] | None = None
    needed: float | None = None


class Decision(BaseModel):
    """What the group agreed for a job: commit a placement, or reject with a reason."""

    model_config = _FROZEN

    job_id: str
    outcome: Literal["commit", "reject"]
    placement: Placement | None = None
    proposer: str | None = None
    reason: str
    rounds: int
    accepts: int = 0
    voters: int = 0
    certificate: Certificate | None = None  # a commit's proof of quorum
