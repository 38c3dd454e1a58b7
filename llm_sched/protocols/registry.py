"""The consensus protocols the engine can run: one registry entry per protocol.

The protocol experiments and the scenario graph build their cores here, one factory for both.

An entry says how to build one agent's sans-IO core from what the agent layer offers (the
:class:`Hooks`: propose, validate, an agreed reject, a bid), which fault model the protocol is built
for (``byzantine`` or ``crash``), which message kinds make up one decision in the normal case (to
attribute messages to jobs), the normal-case count from the literature, and how far the protocol had
to go (views, rounds, terms) when it decided.

Adding a method is one :func:`register` call with a :class:`Method`; :func:`register_optional`
at the bottom registers the protocols whose modules may not exist yet, only when they import.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from llm_sched.errors import UserError
from llm_sched.protocols.messages import AgentId, Core, KeyRing, Kind, Propose, Signer, Validate, Value

FaultModel = Literal["byzantine", "crash"]
Bid = Callable[[int], tuple[Value, float]]


@dataclass(frozen=True, slots=True)
class Hooks:
    """What a core may ask its agent: the protocol asks, the agent answers, the check guards."""

    propose: Propose  # the agent's placement (or agreed reject) for a slot
    validate: Validate  # the feasibility check against the agent's view of the cluster
    reject: Propose  # the agreed reject for a slot (placement None), the same value at every agent
    bid: Bid  # the agent's offer for a slot and the score it claims


@dataclass(frozen=True, slots=True)
class CoreArgs:
    """Everything a builder needs for one agent's core."""

    agent: AgentId
    peers: tuple[AgentId, ...]
    slots: int
    signer: Signer
    keyring: KeyRing
    hooks: Hooks
    seed: int
    restore: object | None = None
    config: object | None = None  # a protocol's own config (weights, a quorum override); None: its default

    def timers(self, name: str) -> random.Random:
        """A seeded random stream for a core's randomized timers (distinct after a restart)."""
        return random.Random(f"{self.seed}/{name}-timers/{self.agent}/{self.restore is not None}")


@dataclass(frozen=True, slots=True)
class Method:
    """One protocol as the experiment runner sees it."""

    name: str
    title: str
    fault_model: FaultModel
    build: Callable[[CoreArgs], Core]
    decision_kinds: tuple[Kind, ...]  # the normal-case messages of one decision (carry its slot)
    normal_case: Callable[[int], int] | None  # messages per decision at n agents, from the literature
    formula: str  # that count as a formula, for the summary
    progress_label: str  # what ``position`` counts: views, rounds, terms, ...
    position: Callable[[Core, int], int | None]  # how far the core went when it decided a slot
    position_before: bool = False  # read ``position`` before the step that decides (the core resets it)
    unslotted: tuple[Kind, ...] = ()  # decision kinds whose slot field does not name the slot decided

    @property
    def slotted_kinds(self) -> tuple[Kind, ...]:
        """The decision kinds that can be attributed to a job by their slot field."""
        return tuple(k for k in self.decision_kinds if k not in self.unslotted)

    @property
    def validates(self) -> bool:
        """Whether replicas check proposals (crash-fault protocols accept what the leader sends)."""
        return self.fault_model == "byzantine"


METHODS: dict[str, Method] = {}
ALIASES: dict[str, str] = {"multipaxos": "multi_paxos", "multi-paxos": "multi_paxos"}
OPTIONAL_SKIPPED: dict[str, str] = {}  # method -> why its module did not import (see register_optional)


def register(method: Method) -> Method:
    """Add a method to the registry (a later registration of the same name replaces it)."""
    METHODS[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def canonical(name: str) -> str:
    """The registry name for ``name`` (case and the ``multipaxos`` spelling forgiven)."""
    key = name.strip().lower().replace(" ", "_")
    return ALIASES.get(key, key)


def get_method(name: str) -> Method:
    key = canonical(name)
    if key in OPTIONAL_SKIPPED:
        raise UserError(f"method {name!r} is not available: its module did not import ({OPTIONAL_SKIPPED[key]}); "
                        f"methods are: {', '.join(METHODS)}")
    if key not in METHODS:
        raise UserError(f"unknown method {name!r}; methods are: {', '.join(METHODS)}")
    return METHODS[key]


# --- the four protocols of llm_sched.protocols ---------------------------------------------------


def _pbft(a: CoreArgs) -> Core:
    from llm_sched.protocols.pbft import PbftCore

    return PbftCore(a.agent, a.peers, a.slots, a.signer, a.keyring, a.hooks.propose, a.hooks.validate,
                    config=a.config, restore=a.restore)  # type: ignore[arg-type]


def _tendermint(a: CoreArgs) -> Core:
    from llm_sched.protocols.tendermint import TendermintCore

    return TendermintCore(a.agent, a.peers, a.slots, a.signer, a.keyring, a.hooks.propose, a.hooks.validate,
                          config=a.config, restore=a.restore)  # type: ignore[arg-type]


def _multi_paxos(a: CoreArgs) -> Core:
    from llm_sched.protocols.multipaxos import MultiPaxosCore

    return MultiPaxosCore(a.agent, a.peers, a.slots, a.signer, a.hooks.propose, a.timers("paxos"),
                          restore=a.restore)  # type: ignore[arg-type]


def _raft(a: CoreArgs) -> Core:
    from llm_sched.protocols.raft import RaftCore

    return RaftCore(a.agent, a.peers, a.slots, a.signer, a.hooks.propose, a.timers("raft"),
                    restore=a.restore)  # type: ignore[arg-type]


def _attr(name: str) -> Callable[[Core, int], int | None]:
    def position(core: Core, slot: int) -> int | None:
        value = getattr(core, name, None)
        return value if isinstance(value, int) else None

    return position


def _pbft_view(core: Core, slot: int) -> int | None:
    views = getattr(core, "decided_views", None)  # the view each slot was decided in, where offered
    if isinstance(views, dict) and slot in views:
        return views[slot]
    return _attr("view")(core, slot)


def _none(core: Core, slot: int) -> int | None:
    return None


def _tendermint_round(core: Core, slot: int) -> int | None:
    rounds = getattr(core, "decided_rounds", None)
    return rounds.get(slot) if isinstance(rounds, dict) else None


def _paxos_round(core: Core, slot: int) -> int | None:
    promised, n = getattr(core, "promised", None), getattr(core, "n", None)
    return promised // n if isinstance(promised, int) and isinstance(n, int) and n else None


register(Method(
    "pbft", "PBFT (Castro and Liskov 1999)", "byzantine", _pbft,
    (Kind.PRE_PREPARE, Kind.PREPARE, Kind.COMMIT), lambda n: 2 * n * (n - 1), "2n(n-1)",
    "view", _pbft_view,
))
register(Method(
    "tendermint", "Tendermint (Buchman, Kwon, Milosevic 2018)", "byzantine", _tendermint,
    (Kind.PROPOSAL, Kind.PREVOTE, Kind.PRECOMMIT), lambda n: (n - 1) * (2 * n + 1), "(n-1)(2n+1)",
    "round", _tendermint_round,
))
register(Method(
    "multi_paxos", "Multi-Paxos (Lamport 2001)", "crash", _multi_paxos,
    (Kind.ACCEPT, Kind.ACCEPTED), lambda n: 2 * (n - 1), "2(n-1)",
    "ballot round", _paxos_round,
))
register(Method(
    "raft", "Raft (Ongaro and Ousterhout 2014)", "crash", _raft,
    (Kind.APPEND, Kind.APPEND_REPLY), lambda n: 2 * (n - 1), "2(n-1)",
    "term", _attr("term"), unslotted=(Kind.APPEND_REPLY,),  # replies name a log index, not a slot
))


# --- protocols registered when their modules import ----------------------------------------------
# Registration point for further methods: a module that fails to import (not written yet, or
# mid-edit) is skipped, and the method is simply not offered. ``OPTIONAL_SKIPPED`` says why.

def register_optional(name: str, make: Callable[[], Method]) -> None:
    """Register ``make()`` unless building it fails (its module is missing or broken)."""
    try:
        register(make())
    except Exception as exc:  # noqa: BLE001 - any import-time failure means "not available"
        OPTIONAL_SKIPPED[name] = f"{type(exc).__name__}: {exc}"


def _weighted() -> Method:
    from llm_sched.protocols.weighted import WeightedCore

    def build(a: CoreArgs) -> Core:
        return WeightedCore(a.agent, a.peers, a.slots, a.signer, a.keyring, a.hooks.propose, a.hooks.validate,
                            config=a.config, restore=a.restore)  # type: ignore[arg-type]

    return Method("weighted", "reputation-weighted voting (equal weights)", "byzantine", build,
                  _VOTING_KINDS, lambda n: 5 * (n - 1), "5(n-1)", "round", _attr("round"), position_before=True)


def _bidding() -> Method:
    from llm_sched.protocols.bidding import BiddingCore

    def build(a: CoreArgs) -> Core:
        return BiddingCore(a.agent, a.peers, a.slots, a.signer, a.keyring, a.hooks.bid, a.hooks.validate,
                           restore=a.restore)  # type: ignore[arg-type]

    kinds = (Kind.ANNOUNCE, Kind.BID, Kind.AWARD, *_VOTING_KINDS[1:])
    return Method("bidding", "contract-net bidding with a quorum vote (Smith 1980)", "byzantine", build,
                  kinds, lambda n: 7 * (n - 1), "7(n-1)", "round", _attr("round"), position_before=True)


def _negotiation() -> Method:
    from llm_sched.protocols.negotiation import NegotiationCore

    def build(a: CoreArgs) -> Core:
        return NegotiationCore(a.agent, a.peers, a.slots, a.signer, a.keyring, a.hooks.propose, a.hooks.validate,
                               a.hooks.reject, restore=a.restore)  # type: ignore[arg-type]

    kinds = (Kind.OFFER, *_VOTING_KINDS[1:])
    return Method("negotiation", "negotiation by counter-proposals with a quorum vote", "byzantine", build,
                  kinds, lambda n: 5 * (n - 1), "5(n-1)", "round", _attr("round"), position_before=True)


def _gossip() -> Method:
    from llm_sched.protocols.gossip import GossipCore

    def build(a: CoreArgs) -> Core:
        return GossipCore(a.agent, a.peers, a.slots, a.signer, a.keyring, a.hooks.propose, a.hooks.validate,
                          a.timers("gossip"), restore=a.restore)  # type: ignore[arg-type]

    # An envelope may carry originals of several slots: it is counted per run, not per job.
    return Method("gossip", "epidemic voting (push-pull gossip, fanout 2)", "byzantine", build,
                  (Kind.GOSSIP,), lambda n: n * (n - 1), "n(n-1)", "round", _none, unslotted=(Kind.GOSSIP,))


_VOTING_KINDS = (Kind.WEIGHTED_PROPOSAL, Kind.WEIGHTED_VOTE, Kind.LOCK_CERT, Kind.COMMIT_VOTE, Kind.COMMIT_CERT)

register_optional("weighted", _weighted)
register_optional("bidding", _bidding)
register_optional("negotiation", _negotiation)
register_optional("gossip", _gossip)
