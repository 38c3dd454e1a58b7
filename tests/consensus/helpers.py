"""Shared test helpers: run a schedule on a network to its natural end, with every message counted;
and one driver for the protocol tests that run seeded cases with Byzantine agents on lossy links
(weighted voting, bidding, negotiation, gossip), each file supplying only its core and its lies."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from llm_sched.protocols.core_base import CoreWrapper
from llm_sched.protocols.messages import AgentId, Core, KeyRing, Kind, Message, Output, Signer, Validate, Value
from llm_sched.protocols.weighted import ACCEPT, REJECT
from llm_sched.transport.harness import (
    Collusion,
    PoolAwards,
    Schedule,
    SplitBrainCore,
    check_agreement,
    check_validity,
    make_factory,
)
from llm_sched.transport.network import Crash, FaultPlan, LinkModel, Network, Partition

APP = PoolAwards()  # the harness's application: awards by the simulator's pool agents


def run_to_end(schedule: Schedule, until: float = 2_000.0) -> tuple[Network, list[Message]]:
    """Run without stopping early, so messages still in flight after the last decision count too."""
    keyring = KeyRing(schedule.seed, range(schedule.n))
    sent: list[Message] = []
    net = Network(range(schedule.n), make_factory(schedule, keyring), keyring, schedule.seed,
                  schedule.faults, sent.append)
    net.run(until)
    return net, sent


# --- the protocol driver -------------------------------------------------------------------------


class Liar(CoreWrapper):
    """An honest core whose outgoing messages a behaviour rewrites (or drops). Shared behaviours:
    ``silent`` drops everything; ``vote-against`` flips weighted votes and withholds commit votes;
    ``mixed`` picks one of ``MIXED`` per message. Subclasses add their lies in ``_lie``."""

    MIXED: tuple[str, ...] = ("honest", "silent", "vote-against")

    def __init__(self, inner: Core, behaviour: str, signer: Signer, rng: random.Random) -> None:
        super().__init__(inner)
        self.behaviour, self._signer, self._rng = behaviour, signer, rng

    def _rewrite(self, out: Output) -> Output:
        sent = []
        for m in out.messages:
            b = self._rng.choice(self.MIXED) if self.behaviour == "mixed" else self.behaviour
            kept = self._apply(b, m)
            if kept is not None:
                sent.append(kept)
        return Output(sent, out.decisions)

    def _apply(self, behaviour: str, m: Message) -> Message | None:
        if behaviour == "silent":
            return None
        if behaviour == "vote-against" and m.kind is Kind.WEIGHTED_VOTE:
            return self._signer.seal(replace(m, payload=REJECT if m.payload == ACCEPT else ACCEPT))
        if behaviour == "vote-against" and m.kind is Kind.COMMIT_VOTE:
            return None  # withhold the second phase too
        return self._lie(behaviour, m)

    def _lie(self, behaviour: str, m: Message) -> Message | None:
        """The protocol's own lies; by default (and for ``honest``) the message as it was."""
        return m


@dataclass
class Case:
    """One run: agents, Byzantine behaviours, the network's faults. Files subclass it to add their
    protocol's knobs (all with defaults), which their core builder reads."""

    n: int
    slots: int = 1
    seed: int = 0
    byzantine: Mapping[AgentId, str] = field(default_factory=dict)
    faults: FaultPlan = FaultPlan()
    until: float = field(default=20_000.0, kw_only=True)  # keyword only: subclasses' fields follow

    @property
    def honest(self) -> list[AgentId]:
        return [a for a in range(self.n) if a not in self.byzantine]


C = TypeVar("C", bound=Case)
# Given the case and the key ring, build the protocol's config once and return a core maker:
# (agent, restored state or None, world) -> core. World 0 is the agent's own input; world 1 the
# split brain's other world, which proposes (or bids) a valid value no honest agent offers.
CoreMaker = Callable[[AgentId, object | None, int], Core]
Cores = Callable[[C, KeyRing], CoreMaker]
LiarMaker = Callable[[Core, str, Signer, random.Random], Core]


def _itself(m: Message) -> Iterable[Message]:
    return (m,)


@dataclass(frozen=True)
class Driver(Generic[C]):
    """Runs a protocol's cases: honest cores, ``equivocate`` as a split brain, any other behaviour
    through ``liar``; and checks agreement and validity among the honest agents, where a decided
    value must pass ``feasible`` and have been sent in a message of one of the ``proposals`` kinds
    (looked for among ``unwrap(m)`` of every message m sent)."""

    cores: Cores[C]
    liar: LiarMaker
    proposals: tuple[Kind, ...]
    feasible: Validate = APP.validate
    unwrap: Callable[[Message], Iterable[Message]] = _itself

    def run(self, case: C, stop_when_done: bool = True, on_send: Callable[[Message], None] | None = None) -> Network:
        """Drive the case on the simulated network; stop once every honest agent decided every slot."""
        ring = KeyRing(case.seed, range(case.n))
        rng = random.Random(f"{case.seed}/byzantine")
        collusion = Collusion.split(case.honest, rng)
        core = self.cores(case, ring)

        def factory(a: AgentId, restore: object | None) -> Core:
            behaviour = case.byzantine.get(a)
            if behaviour is None:
                return core(a, restore, 0)
            if behaviour == "equivocate":  # one honest core per half of the honest agents
                return SplitBrainCore(a, (core(a, None, 0), core(a, None, 1)), collusion)
            return self.liar(core(a, restore, 0), behaviour, ring.signer(a), rng)

        net = Network(range(case.n), factory, ring, case.seed, case.faults, on_send)
        heal = case.faults.heal_time

        def done() -> bool:
            return net.now >= heal and all(len(net.decisions[a]) == case.slots for a in case.honest if net.is_up(a))

        net.run(case.until, stop=done if stop_when_done else None)
        return net

    def checked(self, case: C) -> tuple[Network, list[str]]:
        """Run the case; list agreement and validity violations among honest agents."""
        proposed: dict[int, set[Value]] = {}

        def observe(sent: Message) -> None:
            for m in self.unwrap(sent):
                if m.kind in self.proposals and m.value is not None:
                    proposed.setdefault(m.slot, set()).add(m.value)

        net = self.run(case, on_send=observe)
        decided = {a: net.decisions[a] for a in case.honest}
        return net, check_agreement(decided) + check_validity(decided, proposed, self.feasible)

    def first_violation(self, make: Callable[[int], C], seeds: Iterable[int]) -> tuple[int, list[str]] | None:
        """The first seed whose case breaks agreement or validity, with what it broke."""
        for seed in seeds:
            _, found = self.checked(make(seed))
            if found:
                return seed, found
        return None

    def agreement_break(self, make: Callable[[int], C], seeds: Iterable[int]) -> tuple[int, list[str]]:
        """The first seed whose case breaks a check, and what it broke: there must be one, and the
        first violation must be of agreement."""
        found = self.first_violation(make, seeds)
        assert found is not None, "no violation: the check cannot fail?"
        assert found[1][0].startswith("agreement"), found
        return found

    def assert_agree_and_decide(self, case: C, label: str) -> Network:
        """Check the case: no violation, and every honest agent decided every slot."""
        net, found = self.checked(case)
        assert found == [], label
        assert all(len(net.decisions[a]) == case.slots for a in case.honest), f"{label} did not finish"
        return net


def lossy(rng: random.Random, n: int, honest: list[AgentId], rough: bool = True) -> FaultPlan:
    """Random delays, drops, duplicates and corruption until GST; with ``rough`` maybe a partition
    that heals and an honest agent that crashes and restarts from what it persisted (without, the
    network stays connected and every agent up)."""
    link = LinkModel(1.0, rng.choice((0.0, 0.5, 2.0, 5.0)), rng.choice((0.0, 0.05, 0.2)),
                     rng.choice((0.0, 0.1)), rng.choice((0.0, 0.05)))
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    if rough and rng.random() < 0.4:
        members = rng.sample(range(n), n)
        cut, start = rng.randint(1, n - 1), rng.uniform(0.0, 40.0)
        groups = (frozenset(members[:cut]), frozenset(members[cut:]))
        partitions = (Partition(start, start + rng.uniform(10.0, 150.0), groups),)
    if rough and rng.random() < 0.3:
        at = rng.uniform(0.0, 80.0)
        crashes = (Crash(rng.choice(honest), at, at + rng.uniform(5.0, 100.0)),)
    return FaultPlan(link, rng.uniform(0.0, 120.0), partitions, crashes)
