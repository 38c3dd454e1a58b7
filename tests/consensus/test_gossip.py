"""Gossip voting: exact message counts, how fanout trades load for rounds, eventual agreement on lossy
links, Byzantine agents, equivocating proposers (agreement kept, termination not promised), and a
too-small quorum that fails. Runs print the messages and gossip rounds they took (``pytest -s``).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from llm_sched.protocols.gossip import GossipConfig, GossipCore
from llm_sched.protocols.messages import (
    BROADCAST,
    NIL,
    AgentId,
    Core,
    KeyRing,
    Kind,
    Message,
    Output,
    Value,
    digest_of,
)
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum
from llm_sched.transport.network import FaultPlan, LinkModel, Network

from . import helpers
from .helpers import APP, Driver, lossy

SIZES = (4, 5, 7, 10)
PERIOD = GossipConfig().period


class Liar(helpers.Liar):
    """An honest core whose outgoing envelopes a behaviour rewrites: ``silent`` sends nothing (and
    relays nothing); ``lie`` signs its votes for another value and its proposals with an
    infeasible one, consistently, and relays everything else."""

    def _rewrite(self, out: Output) -> Output:
        if self.behaviour == "silent":
            return Output([], out.decisions)
        sent = [self._signer.seal(replace(m, proof=tuple(map(self._own_lie, m.proof)))) for m in out.messages]
        return Output(sent, out.decisions)

    def _own_lie(self, m: Message) -> Message:
        if m.sender != self.node_id:
            return m
        if m.kind is Kind.GOSSIP_VOTE:
            return self._signer.seal(replace(m, digest=digest_of(APP.alternative(m.slot))))
        lie = APP.invalid(m.slot)
        return self._signer.seal(replace(m, value=lie, digest=digest_of(lie)))


@dataclass
class Case(helpers.Case):
    fanout: int = 2
    quorum: int | None = None


def cores(case: Case, ring: KeyRing) -> Callable[[AgentId, object | None, int], Core]:
    config = GossipConfig(fanout=case.fanout, quorum=case.quorum)

    def core(a: AgentId, restore: object | None, world: int) -> GossipCore:
        rng = random.Random(f"{case.seed}/gossip/{a}/{world}/{restore is not None}")  # each agent's own seeded RNG
        return GossipCore(
            a, range(case.n), case.slots, ring.signer(a), ring, APP.alternative if world else APP.propose_for(a),
            APP.validate, rng, config, restore,  # type: ignore[arg-type]
        )

    return core


# A decided value must be feasible and proposed; proposals travel inside the gossip envelopes.
DRIVER = Driver(cores, Liar, (Kind.GOSSIP_PROPOSAL,), unwrap=lambda envelope: envelope.proof)
run, checked = DRIVER.run, DRIVER.checked


def rounds_taken(net: Network, agents: list[AgentId]) -> float:
    """Gossip rounds (periods) from the start until the last of these agents decided its last slot."""
    return max(max(net.decided_at[a].values()) for a in agents) / PERIOD


# --- counts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_normal_case_is_n_times_n_minus_one(n: int) -> None:
    """Each agent pushes to each other agent once per slot (k per round from a shuffled deck):
    n(n-1) GOSSIP envelopes per decision, nothing else."""
    net = run(Case(n, slots=2), stop_when_done=False)
    assert all(net.decisions[a] == {s: APP.propose_for(s)(s) for s in range(2)} for a in range(n))
    assert dict(net.stats.sent) == {Kind.GOSSIP: 2 * n * (n - 1)}
    assert net.stats.delivered == net.stats.sent
    print(f"\nn={n}, k=2: {n * (n - 1)} envelopes per decision, both slots decided by all "
          f"after {rounds_taken(net, list(range(n))):.1f} gossip rounds")


def test_fanout_sets_the_rounds_not_the_count() -> None:
    """At n = 10 a bigger fanout decides in fewer rounds for the same n(n-1) envelopes."""
    n, seeds = 10, range(10)
    mean_rounds = {}
    for k in (1, 2, 3, 9):
        taken = []
        for seed in seeds:
            net = run(Case(n, seed=seed, fanout=k), stop_when_done=False)
            assert net.stats.total_sent == n * (n - 1)
            taken.append(rounds_taken(net, list(range(n))))
        mean_rounds[k] = statistics.mean(taken)
    print(f"\nn=10: mean gossip rounds until every agent decided, by fanout: {mean_rounds}")
    assert mean_rounds[1] > mean_rounds[2] > mean_rounds[3] > mean_rounds[9]


# --- eventual agreement --------------------------------------------------------------------------


def test_fanout_two_reaches_every_honest_agent_on_a_lossy_network() -> None:
    """n = 10, k = 2, three silent agents, 20% loss with jitter and duplicates for the first 100
    time units: pushes get lost, pulls repair, and every honest agent decides the same values."""
    n, slots, sent, pulls, rounds = 10, 3, [], [], []
    for seed in range(20):
        faults = FaultPlan(LinkModel(1.0, jitter=2.0, drop=0.2, duplicate=0.1), gst=100.0)
        case = Case(n, slots, seed, byzantine={1: "silent", 4: "silent", 8: "silent"}, faults=faults)
        net, found = checked(case)
        assert found == [], f"seed {seed}"
        assert all(len(net.decisions[a]) == slots for a in case.honest), f"seed {seed}"
        sent.append(net.stats.total_sent)
        pulls.append(net.stats.sent[Kind.GOSSIP_PULL])
        rounds.append(rounds_taken(net, case.honest))
    assert min(pulls) > 0  # the push alone did not do it
    print(f"\nn=10, k=2, 20% loss, 3 silent: {statistics.mean(sent) / slots:.0f} envelopes per decision "
          f"(normal case {n * (n - 1)}), {statistics.mean(pulls) / slots:.0f} of them pulls, "
          f"all honest agents done after {statistics.mean(rounds):.0f} gossip rounds on average "
          f"(slot 1's proposer is silent: that slot waits out a proposer timeout)")


def random_case(seed: int, behaviours: tuple[str, ...] = ("silent", "lie"), quorum_delta: int = 0) -> Case:
    rng = random.Random(f"gossip/{seed}")
    n = rng.choice((4, 4, 5, 7))
    bad = sorted(rng.sample(range(n), byzantine_f(n)))
    behaviour = rng.choice(behaviours)
    quorum = byzantine_quorum(n) + quorum_delta if quorum_delta else None
    slots, fanout = rng.randint(1, 3), rng.choice((2, 3))
    faults = lossy(rng, n, [], rough=False)  # the network stays connected, every agent up
    return Case(n, slots, seed, {a: behaviour for a in bad}, faults, fanout=fanout, quorum=quorum)


def test_random_schedules_agree_and_decide() -> None:
    """f Byzantine agents that stay silent or lie consistently (votes for another value, infeasible
    proposals, which cost a proposer timeout), lossy links until GST."""
    runs, messages = 300, 0
    for seed in range(runs):
        messages += DRIVER.assert_agree_and_decide(random_case(seed), f"seed {seed}").stats.total_sent
    print(f"\ngossip: {runs} random schedules, {messages} messages, no violation, all decided")


def test_equivocating_proposers_never_break_agreement() -> None:
    """Colluders that tell each half of the honest agents something else. Votes are never withdrawn,
    so a split can leave a slot undecided for good (the module's stated limit), never decided twice."""
    runs, stuck = 150, 0
    for seed in range(runs):
        case = replace(random_case(seed, ("equivocate",)), until=2_000.0)  # a split stays split: stop early
        net, found = checked(case)
        assert found == [], f"seed {seed}"
        stuck += any(len(net.decisions[a]) < case.slots for a in case.honest)
    print(f"\ngossip with equivocating proposers: {runs} runs, no violation, {stuck} left a slot undecided")


def test_a_seed_replays_to_the_same_history() -> None:
    """Peer choices come from seeded per-agent RNGs: the same seed gives the same run."""
    histories = {run(random_case(11), stop_when_done=False).history_hash() for _ in range(3)}
    assert len(histories) == 1


def test_a_quorum_below_q_breaks_agreement() -> None:
    DRIVER.agreement_break(lambda s: random_case(s, ("equivocate",), quorum_delta=-1), range(200))


# --- a single core -------------------------------------------------------------------------------

RING = KeyRing(5, range(4))


def envelope(sender: AgentId, receiver: AgentId, *originals: Message) -> Message:
    return RING.signer(sender).make(receiver, Kind.GOSSIP, 0, 0, NIL, proof=originals)


def proposal(round_: int, value: Value) -> Message:
    return RING.signer(round_ % 4).make(BROADCAST, Kind.GOSSIP_PROPOSAL, round_, 0, digest_of(value), value)


def lone_core(restore: object | None = None) -> GossipCore:
    return GossipCore(3, range(4), 1, RING.signer(3), RING, APP.propose_for(3), APP.validate,
                      random.Random(1), GossipConfig(), restore)  # type: ignore[arg-type]


def own_votes(out: Output) -> set[str]:
    return {m.digest for e in out.messages for m in e.proof if m.kind is Kind.GOSSIP_VOTE and m.sender == 3}


def test_forged_originals_are_ignored() -> None:
    """A vote claiming agent 2 but signed by agent 1 does not count, even inside a valid envelope."""
    core = lone_core()
    core.tick(0.0)
    value = APP.propose_for(0)(0)
    forged = RING.signer(1).seal(RING.signer(2).make(BROADCAST, Kind.GOSSIP_VOTE, 0, 0, digest_of(value)))
    out = core.step(envelope(1, 3, proposal(0, value), forged))
    assert own_votes(out) == {digest_of(value)}
    assert core.decided == {}  # the proposer's vote and ours: q = 3 only with the forged one
    core.step(envelope(1, 3, RING.signer(2).make(BROADCAST, Kind.GOSSIP_VOTE, 0, 0, digest_of(value))))
    assert core.decided == {0: value}  # agent 2's real vote, relayed by agent 1


def test_a_restarted_agent_never_votes_twice() -> None:
    core = lone_core()
    core.tick(0.0)
    first = APP.propose_for(0)(0)
    assert own_votes(core.step(envelope(0, 3, proposal(0, first)))) == {digest_of(first)}
    again = lone_core(core.persisted())
    again.tick(1_000.0)  # long past every proposer timeout
    other = APP.propose_for(1)(0)
    out = again.step(envelope(1, 3, proposal(1, other)))
    assert own_votes(out) == set()  # its vote for the first value stands
