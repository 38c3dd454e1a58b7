"""One vote round of the scenario graph, decided by a real protocol on the simulated network.

The graph gathers the agents' signed votes on a candidate. Then every agent runs the chosen
protocol's sans-I/O core (PBFT by default) for one slot on the seeded simulated network, built
from the same registry and hooks as the protocol experiments: the protocol asks, the agent answers.
An agent's core accepts the candidate exactly when the agent's counted, signed vote accepts it; an
agent with no counted vote (silent, or its votes refused) runs no core, as if crashed. The round
passes when the protocol decides the candidate. Its messages, bytes and simulated time come from the
network's accounting, not from a formula. The network's seed comes from the run, the job and the
round, so a run's history is the same every time.

Only protocols whose replicas validate what they are asked to accept are offered: with Raft or
Multi-Paxos a replica accepts whatever the leader sends, so a vote would change nothing.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llm_sched.protocols.messages import Core, KeyRing, PlacementValue, Value
from llm_sched.protocols.registry import CoreArgs, Hooks, get_method
from llm_sched.transport.harness import ByzantineCore, Collusion, SplitBrainCore
from llm_sched.transport.network import Crash, FaultPlan, LinkModel, Network

Faulty = tuple[str, bool]  # a faulty agent's protocol-level behaviour, and what its honest core would answer
PROTOCOLS = ("pbft", "tendermint", "weighted")  # Byzantine-tolerant cores whose replicas validate
MAX_TIME = 400.0  # simulated time units (1 unit = the 1 ms link delay): decide by then or the round fails


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """What the protocol did with one candidate."""

    protocol: str
    decided: bool
    messages: int
    bytes: int
    sim_time: float  # when the first agent decided, or MAX_TIME
    rounds: int = 1  # views (PBFT) or rounds (Tendermint, weighted) it took: 1 + the highest an honest agent reached


def decide_round(protocol: str, agents: Sequence[str], value: PlacementValue, accepts: Mapping[str, bool],
                 seed: str, weights: Mapping[str, float] | None = None, quorum: int | None = None,
                 byzantine: Mapping[str, Faulty] | None = None) -> RoundOutcome:
    """Run ``protocol`` among ``agents`` on ``value``; ``accepts``: each counted vote (absent: no core).
    ``weights``: the weighted core's reputation weights; ``quorum`` overrides the protocol's quorum,
    only to show that a smaller one is unsafe. ``byzantine``: agents that are up but faulty, each
    with its protocol-level behaviour (``silent``, ``forge``, ``vote-against``, ``alter``,
    ``equivocate``) and what its honest core would answer: it runs that honest core, wrapped to lie
    in what it sends (as in the protocol experiments), whether or not a vote of it counted; a
    ``vote-against`` agent that leads a view proposes as it votes (the "no quorum" value for a
    candidate its check finds sound), so the honest agents change the view. Only the honest agents'
    decisions count."""
    method = get_method(protocol)
    ids = tuple(range(len(agents)))
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    keyring = KeyRing(seed, ids)
    config = _config(protocol, agents, weights, quorum)
    faulty = {i: byzantine[a] for i, a in enumerate(agents) if byzantine and a in byzantine}
    rng = random.Random(number)
    lies = _Lies(value)
    honest = [i for i in ids if i not in faulty and agents[i] in accepts]
    collusion = Collusion.split(honest, rng) if any(b == "equivocate" for b, _ in faulty.values()) else None

    def build(i: int, hooks: Hooks, restore: object | None) -> Core:
        return method.build(CoreArgs(i, ids, 1, keyring.signer(i), keyring, hooks, number, restore, config))

    def factory(i: int, restore: object | None) -> Core:
        if i not in faulty:
            return build(i, _hooks(value, accepts.get(agents[i], False)), restore)
        behaviour, sound = faulty[i]
        if behaviour == "equivocate" and collusion is not None:  # one world accepts, the other does not
            return SplitBrainCore(i, (build(i, _hooks(value, True), None), build(i, _hooks(value, False), None)),
                                  collusion)
        # A leader's proposal is its vote (see _hooks): a vote flipper that leads proposes as it votes.
        hooks = _hooks(value, sound, proposes=not sound if behaviour == "vote-against" else sound)
        return ByzantineCore(build(i, hooks, restore), behaviour, keyring.signer(i), ids, lies, rng)

    absent = tuple(Crash(i, 0.0) for i, a in enumerate(agents) if a not in accepts and i not in faulty)
    net = Network(ids, factory, keyring, number, FaultPlan(LinkModel(base_delay=1.0), crashes=absent))
    # Until every honest agent that accepts has decided (the whole cost of a decision), or the time is up.
    accepting = [i for i in honest if accepts[agents[i]]]
    net.run(MAX_TIME, stop=lambda: all(0 in net.decisions[i] for i in accepting))
    decided_at = [net.decided_at[i][0] for i in honest if 0 in net.decided_at.get(i, {})]
    decided = any(net.decisions[i].get(0) == value for i in honest)
    rounds = 1 + max((net.cores[i].rounds_reached() for i in honest if i in net.cores), default=0)
    return RoundOutcome(protocol, decided, net.stats.total_sent, net.stats.total_bytes,
                        min(decided_at) if decided_at else MAX_TIME, rounds)


@dataclass(frozen=True, slots=True)
class _Lies:
    """What a faulty agent's core says instead of the candidate: another placement, or a ghost one."""

    value: PlacementValue

    def alternative(self, slot: int) -> Value:
        return PlacementValue(self.value.job_id, (*(self.value.placement or ()), "byzantine-extra"), "byzantine")

    def invalid(self, slot: int) -> Value:
        return PlacementValue(self.value.job_id, ("ghost-node",), "byzantine invalid")


def _config(protocol: str, agents: Sequence[str], weights: Mapping[str, float] | None,
            quorum: int | None) -> object | None:
    """The core's config when it differs from the default: reputation weights, a quorum override."""
    if protocol == "weighted" and (weights is not None or quorum is not None):
        from llm_sched.protocols.weighted import WeightedConfig

        table = {i: weights[a] for i, a in enumerate(agents)} if weights is not None else {}
        return WeightedConfig(weights=table, quorum_fraction=None if quorum is None else quorum / len(agents))
    if quorum is None:
        return None
    if protocol == "pbft":
        from llm_sched.protocols.pbft import PbftConfig

        return PbftConfig(quorum=quorum)
    from llm_sched.protocols.tendermint import TendermintConfig

    return TendermintConfig(quorum=quorum)


def _hooks(value: PlacementValue, accept: bool, proposes: bool | None = None) -> Hooks:
    """An agent's answers to its core: it accepts the candidate as its vote says, and proposes it
    when it leads as ``proposes`` says (default: as it accepts)."""
    leads_with = accept if proposes is None else proposes

    def propose(slot: int) -> Value:
        # An agent that leads a view puts forward the candidate only if it accepts it (a leader's
        # proposal counts as its own vote), else the agreed "no quorum" value nobody accepts.
        return value if leads_with else reject(slot)

    def validate(slot: int, candidate: Value) -> bool:
        return accept and candidate == value

    def reject(slot: int) -> Value:
        return PlacementValue(value.job_id, None, "no quorum")

    return Hooks(propose, validate, reject, lambda slot: (value, 1.0))
