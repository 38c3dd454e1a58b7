"""Signed ballots in, counted votes and quorum certificates out; and the offline certificate check.

:func:`screen` decides which of the votes agents sent on a candidate count. A vote counts only when
it carries its agent's signature over exactly this run, job, round and candidate. What does not
count is evidence against an agent:
- a vote whose signature does not verify (a forgery in another agent's name: without that agent's
  private key nobody can sign for it; or a garbled vote of one's own), against the agent that sent it;
- two validly signed votes of one agent with different answers in one round (equivocation), against
  the signer: none of them counts, and the two signatures together prove the fault to anyone.

A commit's :class:`~llm_sched.core.decisions.Certificate` is the quorum of counted accepting
votes. :func:`check_certificate` verifies one against the run's public keys with nothing else:
no trust in whoever tallied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llm_sched.core.decisions import Certificate, Signature, Vote
from llm_sched.core.signing import PublicKeys, placement_digest
from llm_sched.protocols.quorum import byzantine_quorum, majority, weighted_quorum_met


@dataclass(frozen=True, slots=True)
class Refusal:
    """A vote that does not count: who sent it, whom it claims to be from, and why."""

    sender: str
    claimed: str
    reason: str
    equivocation: bool = False


@dataclass(slots=True)
class Screened:
    """The votes of one round after screening: the counted vote of each agent, and what was refused."""

    counted: dict[str, Vote] = field(default_factory=dict)
    first: dict[str, Vote] = field(default_factory=dict)  # each agent's first own vote, counted or not
    refused: list[Refusal] = field(default_factory=list)

    @property
    def refused_agents(self) -> set[str]:
        """Agents that sent a vote of their own and have none counted."""
        return set(self.first) - set(self.counted)


def screen(ballots: Sequence[tuple[str, Sequence[Vote]]], keys: PublicKeys, job_id: str, round_no: int,
           digest: str) -> Screened:
    """Sort the votes each agent sent (``ballots``: sender, its votes) into counted and refused.

    A vote belongs to the agent whose signature it carries, whoever passed it on (over a real bus the
    sender of a message proves nothing): only the signature says whose it is. So a forgery fails on
    its signature, and two validly signed votes of one agent that disagree prove that agent equivocated,
    whoever delivered them."""
    out = Screened()
    valid: dict[str, dict[str, Vote]] = {}  # agent -> its validly signed votes, by signature (copies are one)
    for sender, votes in ballots:
        for vote in votes:
            if vote.agent == sender:
                out.first.setdefault(sender, vote)
            problem = _problem(vote, keys, job_id, round_no, digest)
            if problem is None:
                valid.setdefault(vote.agent, {}).setdefault(vote.signature, vote)
            elif vote.agent == sender:
                out.refused.append(Refusal(sender, sender, f"its vote {problem}"))
            else:
                out.refused.append(Refusal(sender, vote.agent, f"sent a vote in {vote.agent}'s name: {problem}"))
    for agent, signed in sorted(valid.items()):
        votes = list(signed.values())
        if len({v.accept for v in votes}) > 1:
            out.refused.append(Refusal(agent, agent, f"equivocation: signed both accept and reject in round "
                                                     f"{round_no}", equivocation=True))
        else:
            out.counted[agent] = votes[0]
    return out


def _problem(vote: Vote, keys: PublicKeys, job_id: str, round_no: int, digest: str) -> str | None:
    if (vote.job_id, vote.round, vote.digest) != (job_id, round_no, digest):
        return "is for another job, round or candidate"
    if not keys.verify(vote.agent, vote.key_epoch, job_id, round_no, digest, vote.accept, vote.signature):
        return "has a signature that does not verify"
    return None


def signature_of(vote: Vote) -> Signature:
    """A signed vote's signature, as a certificate holds it."""
    return Signature(agent=vote.agent, key_epoch=vote.key_epoch, signature=vote.signature)


def certificate(job_id: str, round_no: int, digest: str, quorum: int, signatures: Sequence[Signature], voters: int,
                weights: dict[str, float] | None = None, needed: float | None = None) -> Certificate:
    """The certificate of a passed tally or decision: the quorum's signatures, in the order given
    (callers give them in agent order)."""
    return Certificate(job_id=job_id, round=round_no, digest=digest, quorum=quorum, voters=voters,
                       signatures=tuple(signatures), weights=weights, needed=needed)


def check_certificate(cert: Certificate | None, keys: PublicKeys, job_id: str, pool: str, nodes: Sequence[str],
                      members: Sequence[str], weighted: bool = False, crash_only: bool = False) -> str | None:
    """What is wrong with ``cert`` as the proof that ``members`` committed this placement (None: valid).

    The digest is recomputed from the placement; the quorum from the number of members (never taken
    from the certificate): the Byzantine quorum, or a majority for a crash-fault protocol
    (``crash_only``: Raft, Multi-Paxos); every signature is checked over the accepting statement. A
    weighted certificate is checked against the weights it records: the signatures are verified, the
    weights are the run's own record of its reputations."""
    if cert is None:
        return "no quorum certificate"
    if cert.job_id != job_id:
        return f"the certificate is for job {cert.job_id}"
    if cert.digest != placement_digest(job_id, pool, nodes):
        return "the certificate is for another placement (digest mismatch)"
    signers: set[str] = set()
    for sig in cert.signatures:
        if sig.agent not in members:
            return f"a signature by {sig.agent}, who is not a member of the run"
        if sig.agent in signers:
            return f"two signatures by {sig.agent}"
        if not keys.verify(sig.agent, sig.key_epoch, job_id, cert.round, cert.digest, True, sig.signature):
            return f"the signature of {sig.agent} does not verify"
        signers.add(sig.agent)
    n = len(members)
    if weighted:
        if cert.weights is None or set(cert.weights) != set(members):
            return "a weighted commit without the weights of every member"
        accept, total = sum(cert.weights[a] for a in signers), sum(cert.weights.values())
        if not weighted_quorum_met(accept, total, n):
            return f"signed weight {accept:.4f} of {total:.4f} is below the quorum"
        return None
    needed = majority(n) if crash_only else byzantine_quorum(n)
    if len(signers) < needed:
        return f"{len(signers)} valid signatures, fewer than the quorum of {needed} of {n}"
    return None
