"""One vote round on one candidate: signed ballots in; counted votes, the protocol's run, a certificate out.

The steps, the same for the scenario graph and the simulator's agents:
1. :func:`~llm_sched.protocols.certificate.screen` keeps the votes whose signature is their agent's,
   over exactly this run, job, round and candidate (forgeries and equivocations are refused);
2. every agent with a counted vote runs the protocol's core for this candidate on the seeded
   simulated network (:func:`~llm_sched.engine.round.decide_round`); its messages, bytes and time
   are counted there;
3. the round passes when the protocol decides the candidate *and* a quorum of signed accepts
   holds (q of n, or q/n of the reputation weight); the certificate is those signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llm_sched.core.decisions import Certificate, Vote
from llm_sched.core.signing import PublicKeys
from llm_sched.engine.round import Faulty, RoundOutcome, decide_round
from llm_sched.protocols.certificate import Screened, certificate, screen, signature_of
from llm_sched.protocols.messages import PlacementValue
from llm_sched.protocols.quorum import byzantine_quorum, weighted_quorum_fraction, weighted_quorum_met


@dataclass(frozen=True, slots=True)
class Weights:
    """A reputation-weighted count: accepting and total weight before the round, and what q/n needs."""

    accept: float
    total: float
    needed: float
    passed: bool


@dataclass(frozen=True, slots=True)
class Tally:
    """What one vote round decided, and the evidence for it."""

    screened: Screened
    accepting: tuple[str, ...]  # agents whose counted vote accepts, sorted by name
    ran: RoundOutcome
    passed: bool
    weights: Weights | None
    certificate: Certificate | None  # when passed


def count_weights(accepting: Sequence[str], members: Sequence[str], reputation: Mapping[str, float]) -> Weights:
    """Accepting and total reputation, and whether q/n of the total accepts."""
    n = len(members)
    accept = round(sum(reputation[a] for a in accepting), 4)
    total = round(sum(reputation[a] for a in members), 4)
    return Weights(accept, total, round(weighted_quorum_fraction(n) * total, 4), weighted_quorum_met(accept, total, n))


def tally(protocol: str, members: Sequence[str], value: PlacementValue, ballots: Sequence[tuple[str, Sequence[Vote]]],
          keys: PublicKeys, round_no: int, digest: str, seed: str, quorum: int | None = None,
          reputation: Mapping[str, float] | None = None, byzantine: Mapping[str, Faulty] | None = None) -> Tally:
    """Decide ``value`` (whose placement ``digest`` names) among ``members`` from their ``ballots``.

    ``quorum``: the count of signed accepts a commit needs (default the Byzantine q of n; a smaller
    one is passed to the protocol too, only to show that it is unsafe). ``reputation``: weigh each
    vote by its agent's reputation (the weighted core; the certificate records the weights).
    ``byzantine``: faulty agents that are up, with the protocol-level form of their behaviour and
    their honest answer (see :func:`~llm_sched.engine.round.decide_round`)."""
    job_id, n = value.job_id, len(members)
    q = byzantine_quorum(n) if quorum is None else quorum
    screened = screen(ballots, keys, job_id, round_no, digest)
    counted = screened.counted
    accepting = tuple(sorted(a for a, v in counted.items() if v.accept))
    weights = count_weights(accepting, members, reputation) if reputation is not None else None
    counted_pass = weights.passed if weights is not None else len(accepting) >= q
    ran = decide_round(protocol, members, value, {a: v.accept for a, v in counted.items()}, seed,
                       reputation, None if q == byzantine_quorum(n) else q, byzantine)
    # The protocol decides; the certificate needs the quorum of signed accepts as well. The two
    # agree (tests/agents/test_protocol_rounds.py); both are required, so a disagreement commits nothing.
    passed = ran.decided and counted_pass
    cert = None
    if passed:
        signatures = [signature_of(counted[a]) for a in accepting]
        if weights is not None and reputation is not None:
            cert = certificate(job_id, round_no, digest, q, signatures, n, dict(sorted(reputation.items())),
                               weights.needed)
        else:
            cert = certificate(job_id, round_no, digest, q, signatures, n)
    return Tally(screened, accepting, ran, passed, weights, cert)
