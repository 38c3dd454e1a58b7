"""Contract-net bidding: exact message counts, the award rule, rigged and invalid awards, rounds,
and seeded random schedules with Byzantine agents on lossy links; plus a too-small quorum that fails.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from llm_sched.protocols.bidding import Bid, BiddingConfig, BiddingCore, bid_score
from llm_sched.protocols.messages import AgentId, Core, KeyRing, Kind, Message, Value, digest_of
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum

from . import helpers
from .helpers import APP, Driver, lossy

SIZES = (4, 5, 7, 10)
KINDS = (Kind.ANNOUNCE, Kind.BID, Kind.AWARD, Kind.WEIGHTED_VOTE, Kind.LOCK_CERT, Kind.COMMIT_VOTE, Kind.COMMIT_CERT)


def score(agent: AgentId, slot: int) -> float:
    """Agents claim different fits; several tie, so the agent-id tie break matters too."""
    return float((agent * 7 + slot) % 5)


def bidder(agent: AgentId) -> Bid:
    propose = APP.propose_for(agent)
    return lambda slot: (propose(slot), score(agent, slot))


def best_bid(
    n: int, slot: int, bids: Callable[[AgentId], Bid] = bidder, bad: frozenset[AgentId] = frozenset()
) -> Value:
    """The value the award rule must pick among the honest bids: highest score, then lowest id."""
    offers = [(-bids(a)(slot)[1], a, bids(a)(slot)[0]) for a in range(n) if a not in bad]
    return min(offers, key=lambda t: t[:2])[2]


class Liar(helpers.Liar):
    """``inflate`` bids an infeasible value with a huge score; ``rig`` awards a real bid that is not
    the best; ``invalid-award`` awards an infeasible value."""

    MIXED = ("honest", "silent", "vote-against", "inflate", "rig", "invalid-award")

    def _lie(self, behaviour: str, m: Message) -> Message | None:
        if behaviour == "inflate" and m.kind is Kind.BID:  # an infeasible value, a huge score
            lie = APP.invalid(m.slot)
            return self._signer.seal(replace(m, value=lie, digest=digest_of(lie), payload=b"1e9"))
        if behaviour == "rig" and m.kind is Kind.AWARD and m.proof and m.proof[0].kind is Kind.BID:
            worst = min(m.proof, key=lambda b: (bid_score(b) or 0.0, -b.sender))  # a real bid, not the best
            return self._signer.seal(replace(m, value=worst.value, digest=worst.digest))
        if behaviour == "invalid-award" and m.kind is Kind.AWARD:
            lie = APP.invalid(m.slot)
            return self._signer.seal(replace(m, value=lie, digest=digest_of(lie)))
        return m


@dataclass
class Case(helpers.Case):
    quorum: int | None = None
    bids: Callable[[AgentId], Bid] = bidder


def alternative_bid(slot: int) -> tuple[Value, float]:
    """The split brain's other world bids a valid value no honest agent offers, with a top score."""
    return APP.alternative(slot), 100.0


def cores(case: Case, ring: KeyRing) -> Callable[[AgentId, object | None, int], Core]:
    config = BiddingConfig(quorum=case.quorum)

    def core(a: AgentId, restore: object | None, world: int) -> BiddingCore:
        return BiddingCore(
            a, range(case.n), case.slots, ring.signer(a), ring, alternative_bid if world else case.bids(a),
            APP.validate, config, restore,  # type: ignore[arg-type]
        )

    return core


DRIVER = Driver(cores, Liar, (Kind.AWARD,))  # a decided value must be feasible and awarded
run, checked = DRIVER.run, DRIVER.checked


# --- normal case and the award rule --------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_normal_case_is_seven_times_n_minus_one(n: int) -> None:
    """Announce, bids, award, votes, lock certificate, commit votes, commit certificate: 7(n-1)."""
    net = run(Case(n), stop_when_done=False)
    assert all(net.decisions[a] == {0: best_bid(n, 0)} for a in range(n))
    assert net.stats.total_sent == 7 * (n - 1)
    assert [net.stats.sent[k] for k in KINDS] == [n - 1] * 7
    assert max(net.decided_at[a][0] for a in range(n)) == 7.0


def test_counts_are_per_decision_and_each_slot_goes_to_its_best_bid() -> None:
    net = run(Case(7, slots=5), stop_when_done=False)
    assert net.stats.total_sent == 5 * 7 * 6
    assert net.decisions[2] == {s: best_bid(7, s) for s in range(5)}


def test_ties_go_to_the_lower_agent_id() -> None:
    flat: Callable[[AgentId], Bid] = lambda a: (lambda s: (APP.propose_for(a)(s), 1.0))
    net = run(Case(5, bids=flat))
    assert net.decisions[4] == {0: APP.propose_for(0)(0)}


def test_an_inflated_infeasible_bid_never_wins() -> None:
    case = Case(4, byzantine={3: "inflate"})
    net, found = checked(case)
    assert found == []
    assert all(net.decisions[a] == {0: best_bid(4, 0, bad=frozenset({3}))} for a in case.honest)


# --- rigged awards and rounds --------------------------------------------------------------------


@pytest.mark.parametrize("rig", ["rig", "invalid-award"])
def test_a_rigged_award_is_refused_and_the_next_announcer_tenders(rig: str) -> None:
    """Announcer 0 awards a worse bid than the best it was sent, or an infeasible value: honest
    voters refuse, the round times out, and announcer 1's tender picks the best bid."""
    case = Case(4, byzantine={0: rig})
    net, found = checked(case)
    assert found == []
    for a in case.honest:
        assert net.decisions[a] == {0: best_bid(4, 0)}
        assert net.decided_at[a][0] > BiddingConfig().base_timeout
    assert net.stats.sent[Kind.ANNOUNCE] == 2 * 3  # two tenders: rounds 0 and 1


@pytest.mark.parametrize("n", SIZES)
def test_silent_announcer_times_out_to_the_next(n: int) -> None:
    case = Case(n, byzantine={0: "silent"})
    net = run(case, stop_when_done=False)
    bad = frozenset({0})
    for a in case.honest:
        assert net.decisions[a] == {0: best_bid(n, 0, bad=bad)}
        assert net.decided_at[a][0] > BiddingConfig().base_timeout
    assert net.stats.sent[Kind.NEW_ROUND] == (n - 1) ** 2


# --- random schedules ----------------------------------------------------------------------------


BEHAVIOURS = ("silent", "vote-against", "inflate", "rig", "invalid-award", "mixed", "equivocate")


def random_case(seed: int, quorum_delta: int = 0) -> Case:
    rng = random.Random(f"bidding/{seed}")
    n = rng.choice((4, 4, 5, 7))
    bad = sorted(rng.sample(range(n), byzantine_f(n)))
    behaviour = "equivocate" if quorum_delta else rng.choice(BEHAVIOURS)
    honest = [a for a in range(n) if a not in bad]
    quorum = byzantine_quorum(n) + quorum_delta if quorum_delta else None
    faults = lossy(rng, n, honest, rough=not quorum_delta)
    return Case(n, rng.randint(1, 3), seed, {a: behaviour for a in bad}, faults, quorum)


def test_random_schedules_agree_and_decide() -> None:
    runs, messages = 300, 0
    for seed in range(runs):
        messages += DRIVER.assert_agree_and_decide(random_case(seed), f"seed {seed}").stats.total_sent
    print(f"\nbidding: {runs} random schedules, {messages} messages, no violation")


def test_a_quorum_below_q_breaks_agreement() -> None:
    seed, violations = DRIVER.agreement_break(lambda s: random_case(s, quorum_delta=-1), range(200))
    assert checked(random_case(seed, quorum_delta=-1))[1] == violations  # replays from its seed
