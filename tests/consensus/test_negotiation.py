"""Negotiation: exact message counts with and without counter-proposal rounds, the adopted
counter, the agreed reject after the round limit, and seeded random schedules with Byzantine agents
on lossy links; plus a too-small quorum that fails.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from llm_sched.protocols.messages import (
    AgentId,
    Core,
    KeyRing,
    Kind,
    Message,
    PlacementValue,
    Propose,
    Validate,
    Value,
    digest_of,
)
from llm_sched.protocols.negotiation import NegotiationConfig, NegotiationCore
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum

from . import helpers
from .helpers import APP, Driver, lossy

SIZES = (4, 5, 7, 10)
LIMIT = NegotiationConfig().round_limit


def reject(slot: int) -> Value:
    """The agreed reject: no placement, and why."""
    return PlacementValue(f"job-{slot}", None, f"no placement agreed within {LIMIT} rounds")


class Liar(helpers.Liar):
    """``invalid`` offers and counters an infeasible value."""

    MIXED = ("honest", "silent", "vote-against", "invalid")

    def _lie(self, behaviour: str, m: Message) -> Message | None:
        if behaviour == "invalid" and m.kind in (Kind.OFFER, Kind.COUNTER):  # infeasible offers and counters
            lie = APP.invalid(m.slot)
            return self._signer.seal(replace(m, value=lie, digest=digest_of(lie)))
        return m


@dataclass
class Case(helpers.Case):
    quorum: int | None = None
    propose: Callable[[AgentId], Propose] = APP.propose_for
    prefer: Callable[[AgentId], Validate | None] = lambda _: None  # None: any feasible offer will do


def cores(case: Case, ring: KeyRing) -> Callable[[AgentId, object | None, int], Core]:
    config = NegotiationConfig(quorum=case.quorum)

    def core(a: AgentId, restore: object | None, world: int) -> NegotiationCore:
        return NegotiationCore(
            a, range(case.n), case.slots, ring.signer(a), ring, APP.alternative if world else case.propose(a),
            APP.validate, reject, config, restore, prefer=case.prefer(a),  # type: ignore[arg-type]
        )

    return core


def feasible(slot: int, value: Value) -> bool:
    return value == reject(slot) or APP.validate(slot, value)


# A decided value must be feasible, or the agreed reject, and have been offered.
DRIVER = Driver(cores, Liar, (Kind.OFFER,), feasible)
run, checked = DRIVER.run, DRIVER.checked


# --- counts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_first_offer_accepted_is_five_times_n_minus_one(n: int) -> None:
    net = run(Case(n), stop_when_done=False)
    assert all(net.decisions[a] == {0: APP.propose_for(0)(0)} for a in range(n))
    assert net.stats.total_sent == 5 * (n - 1)
    assert net.stats.sent[Kind.COUNTER] == 0


ON_P1 = PlacementValue(APP.job(0), (f"p1:{APP.need(0)}",), "the placement everyone but agent 0 wants")
assert APP.validate(0, ON_P1) and ON_P1 != APP.propose_for(0)(0)


def wants_p1(agent: AgentId) -> Validate | None:
    """Agents other than 0 like only job-0 on pool 1; agent 0 accepts anything feasible."""
    return None if agent == 0 else (lambda s, v: v == ON_P1)


@pytest.mark.parametrize("n", SIZES)
def test_one_counter_round_then_the_popular_counter(n: int) -> None:
    """Round 0: everyone but the proposer counters with pool 1; the refusals leave no quorum, so the
    proposer ends the round (ROUND-FAILED) and everyone announces round 1. Round 1's proposer
    adopts the most supported counter and it is committed. Cost: (n-1)(n+3) for the failed round,
    5(n-1) for the agreement, (n-1)(n+8) in all."""
    case = Case(n, propose=lambda a: APP.propose_for(0) if a == 0 else (lambda s: ON_P1), prefer=wants_p1)
    net = run(case, stop_when_done=False)
    assert all(net.decisions[a] == {0: ON_P1} for a in range(n))
    assert net.stats.total_sent == (n - 1) * (n + 8)
    sent = net.stats.sent
    assert (sent[Kind.COUNTER], sent[Kind.ROUND_FAILED], sent[Kind.NEW_ROUND]) == (n - 1, n - 1, n * (n - 1))
    assert sent[Kind.OFFER] == 2 * (n - 1)
    assert max(net.decided_at[a][0] for a in range(n)) < NegotiationConfig().base_timeout


def test_tied_counters_go_to_the_smaller_digest() -> None:
    """Proposer 0 offers an infeasible value; agents 1, 2, 3 each counter with their own feasible
    value (one supporter each): round 1's proposer adopts the counter with the smallest digest."""
    bad_offer: Callable[[AgentId], Propose] = lambda a: (lambda s: APP.invalid(s)) if a == 0 else APP.propose_for(a)
    net = run(Case(4, propose=bad_offer))
    counters = [APP.propose_for(a)(0) for a in (1, 2, 3)]
    assert all(net.decisions[a] == {0: min(counters, key=digest_of)} for a in range(4))


@pytest.mark.parametrize("n", SIZES)
def test_agreed_reject_after_the_round_limit(n: int) -> None:
    """Every agent accepts only its own placement: every round fails; from the round limit on the
    offer is the agreed reject, and all agree on it. Cost: LIMIT failed rounds, then 5(n-1)."""
    def own_only(agent: AgentId) -> Validate:
        mine = APP.propose_for(agent)
        return lambda s, v: v == mine(s)

    net = run(Case(n, prefer=own_only), stop_when_done=False)
    assert all(net.decisions[a] == {0: reject(0)} for a in range(n))
    decided = net.decisions[0][0]
    assert isinstance(decided, PlacementValue) and decided.placement is None and decided.reason
    assert net.stats.total_sent == LIMIT * (n - 1) * (n + 3) + 5 * (n - 1)
    assert net.stats.sent[Kind.OFFER] == (LIMIT + 1) * (n - 1)


def test_silent_proposer_times_out_to_the_next() -> None:
    case = Case(5, byzantine={0: "silent"})
    net = run(case)
    for a in case.honest:
        assert net.decisions[a] == {0: APP.propose_for(1)(0)}
        assert net.decided_at[a][0] > NegotiationConfig().base_timeout


# --- random schedules ----------------------------------------------------------------------------


def random_case(seed: int, quorum_delta: int = 0) -> Case:
    rng = random.Random(f"negotiation/{seed}")
    n = rng.choice((4, 4, 5, 7))
    bad = sorted(rng.sample(range(n), byzantine_f(n)))
    behaviours = ("silent", "vote-against", "invalid", "mixed", "equivocate")
    behaviour = "equivocate" if quorum_delta else rng.choice(behaviours)
    honest = [a for a in range(n) if a not in bad]
    quorum = byzantine_quorum(n) + quorum_delta if quorum_delta else None
    # Half the runs negotiate: agents then like only placements on pools of their own parity.
    picky = rng.random() < 0.5
    prefer: Callable[[AgentId], Validate | None] = _likes if picky else (lambda _: None)
    faults = lossy(rng, n, honest, rough=not quorum_delta)
    return Case(n, rng.randint(1, 3), seed, {a: behaviour for a in bad}, faults, quorum, prefer=prefer)


def _likes(agent: AgentId) -> Validate:
    """Even agents like placements whose first share is on an even pool (p0, p2, p4), odd agents
    on an odd one (p1, p3): offers get countered."""

    def likes(slot: int, value: Value) -> bool:
        if not isinstance(value, PlacementValue) or not value.placement:
            return False
        first_pool = int(value.placement[0].partition(":")[0][1:])
        return first_pool % 2 == agent % 2

    return likes


def test_random_schedules_agree_and_decide() -> None:
    runs, messages, rejects = 300, 0, 0
    for seed in range(runs):
        case = random_case(seed)
        net = DRIVER.assert_agree_and_decide(case, f"seed {seed}")
        messages += net.stats.total_sent
        rejects += sum(v == reject(s) for s, v in net.decisions[case.honest[0]].items())
    print(f"\nnegotiation: {runs} random schedules, {messages} messages, {rejects} agreed rejects, no violation")


def test_a_quorum_below_q_breaks_agreement() -> None:
    seed, violations = DRIVER.agreement_break(lambda s: random_case(s, quorum_delta=-1), range(200))
    assert checked(random_case(seed, quorum_delta=-1))[1] == violations  # replays from its seed
