"""The frame every protocol core of this package is built on.

Each core is a sans-IO state machine in the style of etcd's raft: the caller hands it verified
messages (``step``) and the time (``tick``) and gets back the messages to send and the decisions to
record (:class:`~llm_sched.protocols.messages.Output`). The cores differ in their rules, not in that
frame, so the frame lives here once:

- construction: the agent, its peers (sorted, so every agent ranks them alike), the slots to
  decide, its signer, the application's proposal callback, the protocol's config and, for a
  restarted agent, what it persisted. :class:`BftCore` (PBFT, Tendermint, weighted voting and its
  variants, gossip) adds the key ring, to check the certificates peers relay, and the application's
  feasibility guard; :class:`StableLeaderCore` (Raft, Multi-Paxos) the randomness of its election
  timer. A core sets up its own state in ``_setup`` and takes back persisted state in ``_restore``;
- ``step``: only another peer's messages reach the protocol (``_receive``, by default a table of
  handlers by kind); the transport has already checked their MACs;
- ``tick``: the first tick starts the core (``_start``), later ones run what is due (``_on_tick``);
- the decided values by slot, ``done``, and the deadline of a core with a single timer;
- sending: to every other peer (``_send_all``), or that and a local copy (``_broadcast``).

:class:`CoreWrapper` is the frame of what wraps a core (a Byzantine rewrite, an observer): it
passes everything through and sees every output on its way out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from llm_sched.protocols.messages import (
    BROADCAST,
    AgentId,
    Core,
    KeyRing,
    Kind,
    Message,
    Output,
    Propose,
    Signer,
    Validate,
    Value,
)
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum

ConfigT = TypeVar("ConfigT")
SavedT = TypeVar("SavedT")

Handler = Callable[[Any, Message, Output], None]
"""A core's handler of one kind of message: ``handler(core, msg, out)`` (a plain function of the class)."""


class CoreBase(Generic[ConfigT, SavedT]):
    """Wiring, clock, the ``step``/``tick`` skeleton and the decided slots of a core.

    Subclasses set ``DEFAULT_CONFIG`` and implement ``_setup``, ``_restore``, ``_start``,
    ``_on_tick``, ``persisted`` and either ``_handlers`` or ``_receive``.
    """

    DEFAULT_CONFIG: ClassVar[Any]  # the config a core gets when its caller names none
    _handlers: ClassVar[Mapping[Kind, Handler]] = {}

    def __init__(
        self, node_id: AgentId, peers: Sequence[AgentId], slots: int, signer: Signer, propose: Propose,
        config: ConfigT | None,
    ) -> None:
        """The state every core starts with, before its own (``_setup``)."""
        self.node_id = node_id
        self.peers = tuple(sorted(peers))
        self.others = tuple(p for p in self.peers if p != node_id)
        # A set for the check every message goes through (``others`` keeps the rank order).
        self._other_set = frozenset(self.others)
        self.n = len(self.peers)
        self.slots = slots
        self.config: ConfigT = self.DEFAULT_CONFIG if config is None else config
        self._signer, self._propose_fn = signer, propose
        self._decided: dict[int, Value] = {}
        self._now = 0.0
        self._deadline: float | None = None  # a single-timer core's next deadline
        self._started = False

    def _setup(self) -> None:
        """The protocol's own state of an agent that has not started yet."""
        raise NotImplementedError

    def _restore(self, saved: SavedT) -> None:
        """Take back what a crashed agent persisted (see the subclass's ``persisted``)."""
        raise NotImplementedError

    # --- public interface -------------------------------------------------------------------

    @property
    def decided(self) -> dict[int, Value]:
        """Decided values by slot."""
        return dict(self._decided)

    @property
    def done(self) -> bool:
        """Every slot decided."""
        return len(self._decided) >= self.slots

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do (a core with several timers overrides this)."""
        return self._deadline

    def rounds_reached(self) -> int:
        """The view or round this core reached for slot 0, counting the first as 0 (a core with
        views or rounds overrides this): how many times the protocol had to try again."""
        return 0

    def step(self, msg: Message) -> Output:
        """Handle one message whose MAC the transport has already checked."""
        out = Output()
        if msg.sender in self._other_set:  # an unknown sender, or our own copy, changes nothing
            self._receive(msg, out)
        return out

    def tick(self, now: float) -> Output:
        """Advance time: the first tick starts the core, later ones run whatever timer is due.

        Nothing starts before the first tick, so every timer is armed from a time the caller gave.
        """
        self._now = now
        out = Output()
        if not self._started:
            self._started = True
            self._start(out)
        else:
            self._on_tick(out)
        return out

    def persisted(self) -> SavedT:
        """Snapshot of the durable state, what a restarted core is built from."""
        raise NotImplementedError

    # --- what subclasses fill in ------------------------------------------------------------

    def _receive(self, msg: Message, out: Output) -> None:
        """A peer's message: by default, to the handler of its kind (unknown kinds are ignored)."""
        handler = self._handlers.get(msg.kind)
        if handler is not None:
            handler(self, msg, out)

    def _start(self, out: Output) -> None:
        """The first tick: arm the timers and do what an agent does first."""
        raise NotImplementedError

    def _on_tick(self, out: Output) -> None:
        """A later tick: act on every timer that is due at ``self._now``."""
        raise NotImplementedError

    # --- plumbing ---------------------------------------------------------------------------

    def _timer_due(self) -> bool:
        """The single timer is armed and has expired."""
        return self._deadline is not None and self._now >= self._deadline

    def _send_all(
        self, kind: Kind, view: int, slot: int, digest: str, out: Output,
        value: Value | None = None, payload: bytes = b"", proof: tuple[Message, ...] = (),
    ) -> None:
        """One copy to every other peer, in rank order."""
        make = self._signer.make
        for p in self.others:
            out.messages.append(make(p, kind, view, slot, digest, value, payload, proof))

    def _broadcast(
        self, kind: Kind, view: int, slot: int, digest: str, out: Output,
        value: Value | None = None, payload: bytes = b"", proof: tuple[Message, ...] = (),
    ) -> Message:
        """Send to every other peer; return the local copy (addressed to no one in particular),
        which the sender logs as its own vote or proposal."""
        self._send_all(kind, view, slot, digest, out, value, payload, proof)
        return self._signer.make(BROADCAST, kind, view, slot, digest, value, payload, proof)


class BftCore(CoreBase[ConfigT, SavedT]):
    """A core for Byzantine peers: it checks the signed messages that certificates are made of
    (``_keyring``) and never votes for a value the application's guard rejects (``_validate``)."""

    def __init__(
        self, node_id: AgentId, peers: Sequence[AgentId], slots: int, signer: Signer,
        keyring: KeyRing, propose: Propose, validate: Validate,
        config: ConfigT | None = None, restore: SavedT | None = None,
    ) -> None:
        """The frame, then the protocol's own state (``_setup``), then what a restarted agent
        persisted (``_restore``): the order a real agent rebuilds itself in."""
        super().__init__(node_id, peers, slots, signer, propose, config)
        self._keyring, self._validate = keyring, validate
        self._setup()
        if restore is not None:
            self._restore(restore)

    def _byzantine_quorum(self, quorum: int | None) -> None:
        """For cores that count agents: up to f = floor((n-1)/3) faulty, quorums of q agents
        (``quorum`` overrides q only to show that a smaller one is unsafe)."""
        self.f = byzantine_f(self.n)
        self.q = quorum or byzantine_quorum(self.n)


# Roles of a stable-leader core.
FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"


@dataclass(frozen=True, slots=True)
class StableLeaderConfig:
    """Timers in simulated time units; ``window`` bounds the undecided values in flight."""

    election_timeout: float = 50.0  # drawn uniformly from [T, 2T) each time the timer is armed
    heartbeat: float = 15.0
    window: int = 4
    quorum: int | None = None  # overrides the majority only to show that a smaller one is unsafe


class StableLeaderCore(CoreBase[StableLeaderConfig, SavedT]):
    """A crash-fault core with a stable leader (Raft, Multi-Paxos) and one timer: armed at the
    first tick; when due, the leader sends a heartbeat and anyone else stands for leader.

    The election timeout is drawn from ``_rng`` (seeded by the caller) so that candidacies rarely
    collide, yet a run replays exactly. Subclasses keep ``role`` and implement ``_finished``,
    ``_heartbeat`` and ``_stand_for_leader``, and call ``_arm`` whenever the timer should restart.
    """

    DEFAULT_CONFIG: ClassVar[StableLeaderConfig] = StableLeaderConfig()
    role: str

    def __init__(
        self, node_id: AgentId, peers: Sequence[AgentId], slots: int, signer: Signer,
        propose: Propose, rng: random.Random,
        config: StableLeaderConfig | None = None, restore: SavedT | None = None,
    ) -> None:
        """As :class:`BftCore`'s: the frame, ``_setup``, then ``_restore``."""
        super().__init__(node_id, peers, slots, signer, propose, config)
        self._rng = rng
        self.role = FOLLOWER
        self._setup()
        if restore is not None:
            self._restore(restore)

    def _start(self, out: Output) -> None:
        """The first tick arms the election timer: every agent starts as a follower."""
        self._arm()

    def _on_tick(self, out: Output) -> None:
        """A due timer starts an election or, for the leader, a heartbeat."""
        if self._timer_due():
            if self.role == LEADER:
                self._heartbeat(out)
            else:
                self._stand_for_leader(out)

    def _arm(self) -> None:
        """Restart the timer: the leader's heartbeat period (no timer once it has finished), else
        a fresh election timeout (none for a follower at rest)."""
        if self.role == LEADER:
            self._deadline = None if self._finished() else self._now + self.config.heartbeat
        elif self._at_rest():
            self._deadline = None
        else:
            t = self.config.election_timeout
            self._deadline = self._now + t + self._rng.random() * t

    def _at_rest(self) -> bool:
        """Nothing left to decide: a follower starts no election."""
        return self.done and self.role == FOLLOWER

    def _finished(self) -> bool:
        """Leader: everything decided and known to every follower, so heartbeats may stop."""
        raise NotImplementedError

    def _heartbeat(self, out: Output) -> None:
        raise NotImplementedError

    def _stand_for_leader(self, out: Output) -> None:
        raise NotImplementedError


class CoreWrapper:
    """A core seen from outside: time and messages pass through to ``inner``, and every output it
    returns goes through ``_rewrite`` on its way out (by default unchanged)."""

    def __init__(self, inner: Core) -> None:
        self.inner, self.node_id = inner, inner.node_id

    def step(self, msg: Message) -> Output:
        return self._rewrite(self.inner.step(msg))

    def tick(self, now: float) -> Output:
        return self._rewrite(self.inner.tick(now))

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline()

    def persisted(self) -> object:
        return self.inner.persisted()

    def _rewrite(self, out: Output) -> Output:
        return out
