"""Protocol messages as immutable, authenticated data.

A :class:`Message` is a frozen value. Its ``mac`` is an HMAC-SHA256 over a canonical, length-prefixed
encoding of every other field, keyed with the *sender's* key from a seeded :class:`KeyRing`. The ring
stands in for a public-key infrastructure: any agent can check any message (so certificates made of
other agents' messages are transferable, as PBFT's view change and Tendermint's commit proofs need),
but only the code handed an agent's :class:`Signer` can produce that agent's messages. A forged
sender, an altered field or a flipped bit on the wire therefore fails :meth:`KeyRing.verify`.

Values are opaque application data: anything frozen and hashable with a canonical ``encode()``. The
consensus layer only ever looks at their digest; :class:`PlacementValue` is the scheduler's value type.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

AgentId = int
BROADCAST: AgentId = -1
"""Receiver of a message that is not addressed to one peer (for example one embedded in a proof)."""

NIL = ""
"""Digest of "no value" (Tendermint's nil vote, an empty certificate slot)."""


@runtime_checkable
class Value(Protocol):
    """An application value the agents agree on: frozen, hashable, canonically encodable."""

    def encode(self) -> bytes:
        """Canonical bytes: equal values encode equally, different values differently."""
        ...


@dataclass(frozen=True, slots=True)
class PlacementValue:
    """The scheduler's value: where job ``job_id`` runs, or ``placement=None`` for an agreed reject."""

    job_id: str
    placement: tuple[str, ...] | None
    reason: str = ""

    def encode(self) -> bytes:
        # JSON of a fixed-order list is canonical: no dict ordering, no whitespace, UTF-8.
        fields = [self.job_id, None if self.placement is None else list(self.placement), self.reason]
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class PlacementBatch:
    """Placements of consecutive jobs decided together in one slot (PBFT's request batching): the
    jobs at positions ``first``, ``first + 1``, ... of the job log, one entry each, in that order."""

    first: int
    entries: tuple[PlacementValue, ...]
    # Members excluded from leading the next slot (suspected, low reputation): agreed with the batch,
    # so every member computes the same order of primaries.
    skip: tuple[int, ...] = ()

    def encode(self) -> bytes:
        fields = [self.first, [[e.job_id, None if e.placement is None else list(e.placement), e.reason]
                               for e in self.entries], list(self.skip)]
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @property
    def last(self) -> int:
        """The position of the batch's last job."""
        return self.first + len(self.entries) - 1


def digest_of(value: Value | None) -> str:
    """Hex SHA-256 of the value's canonical encoding; :data:`NIL` for no value."""
    if value is None:
        return NIL
    return hashlib.sha256(value.encode()).hexdigest()


class Kind(StrEnum):
    """Every message type of every core; one enum so the network can account by kind."""

    # PBFT
    PRE_PREPARE = "pre-prepare"
    PREPARE = "prepare"
    COMMIT = "commit"
    VIEW_CHANGE = "view-change"
    NEW_VIEW = "new-view"
    DECIDED = "decided"  # catch-up: commit certificates sent to a lagging replica
    # Tendermint
    PROPOSAL = "proposal"
    PREVOTE = "prevote"
    PRECOMMIT = "precommit"
    SYNC = "sync"  # "I am stuck at (height, round)": ask peers to re-send what they hold
    SYNC_REPLY = "sync-reply"  # a bundle of already-signed messages answering a SYNC
    # Raft
    REQUEST_VOTE = "request-vote"
    VOTE = "vote"
    APPEND = "append-entries"  # carrying one log entry
    APPEND_REPLY = "append-reply"
    HEARTBEAT = "heartbeat"  # an AppendEntries without entries
    HEARTBEAT_REPLY = "heartbeat-reply"
    # Multi-Paxos
    PAXOS_PREPARE = "paxos-prepare"
    PROMISE = "promise"
    ACCEPT = "accept"
    ACCEPTED = "accepted"
    REJECT = "reject"  # a higher ballot was promised
    LEARN = "learn"  # the leader's periodic message: decided values, and "I am alive"
    LEARN_ACK = "learn-ack"
    # Weighted voting, and the commit phases bidding and negotiation share with it
    WEIGHTED_PROPOSAL = "weighted-proposal"
    WEIGHTED_VOTE = "weighted-vote"  # accept or reject, to the coordinator
    LOCK_CERT = "lock-cert"  # the coordinator's certificate of accepting votes
    COMMIT_VOTE = "commit-vote"
    COMMIT_CERT = "commit-cert"  # the coordinator's certificate of commit votes: decide
    ROUND_FAILED = "round-failed"  # rejections that leave no quorum: next round at once
    NEW_ROUND = "new-round"  # "I moved to this round", with my lock certificate
    # Contract-net bidding
    ANNOUNCE = "announce"
    BID = "bid"
    AWARD = "award"
    # Negotiation
    OFFER = "offer"
    COUNTER = "counter"  # a rejection carrying a counter-proposal
    # Gossip
    GOSSIP_PROPOSAL = "gossip-proposal"  # an original, never sent on its own
    GOSSIP_VOTE = "gossip-vote"  # an original, never sent on its own
    GOSSIP = "gossip"  # a push: signed originals the receiver may lack
    GOSSIP_PULL = "gossip-pull"  # "this is what I hold, send me the rest"


def _frame(parts: Iterable[bytes]) -> bytes:
    """Length-prefix each part so no two different field lists share an encoding."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


@dataclass(frozen=True, slots=True)
class Message:
    """One point-to-point protocol message.

    ``view`` is PBFT's view or Tendermint's round; ``slot`` is the sequence number or height.
    ``value`` is carried only by proposals (and re-proposals); ``digest`` names the value voted on.
    ``payload`` holds protocol scalars (e.g. Tendermint's validRound); ``proof`` holds other agents'
    signed messages (certificates), each still verifiable on its own.
    """

    sender: AgentId
    receiver: AgentId
    kind: Kind
    view: int
    slot: int
    digest: str
    value: Value | None = None
    payload: bytes = b""
    proof: tuple[Message, ...] = ()
    mac: bytes = b""
    # Memo of body(): not a field of the message (no init, equality, hash or repr), only a cache,
    # because certificates are re-encoded every time a message embedding them is checked.
    _body: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def body(self) -> bytes:
        """Canonical encoding of every field except ``mac``: what the MAC covers."""
        cached = self._body
        if cached is None:
            head = f"{self.sender}|{self.receiver}|{self.kind}|{self.view}|{self.slot}|{self.digest}"
            value = b"\x00" if self.value is None else b"\x01" + self.value.encode()
            nested = [m.body() + m.mac for m in self.proof]
            cached = _frame([head.encode(), value, self.payload, *nested])
            object.__setattr__(self, "_body", cached)
        return cached

    def size(self) -> int:
        """Bytes on the wire: the body plus the MAC."""
        return len(self.body()) + len(self.mac)


@dataclass(frozen=True, slots=True)
class Cert:
    """A quorum certificate: a value for one slot in one view (or round), and the signed messages
    that back it. PBFT: the pre-prepare plus the prepares or commits; weighted voting (and bidding
    and negotiation) locks on the accepting votes. Each message is still verifiable on its own."""

    view: int
    slot: int
    digest: str
    value: Value
    messages: tuple[Message, ...]


def _key(seed: int | str, agent: AgentId) -> bytes:
    return hashlib.sha256(f"llm-sched/keyring/{seed}/{agent}".encode()).digest()


class Signer:
    """Produces messages from one agent; the only holder of that agent's key."""

    __slots__ = ("agent_id", "_key")

    def __init__(self, agent_id: AgentId, key: bytes) -> None:
        self.agent_id = agent_id
        self._key = key

    def make(
        self,
        receiver: AgentId,
        kind: Kind,
        view: int,
        slot: int,
        digest: str,
        value: Value | None = None,
        payload: bytes = b"",
        proof: tuple[Message, ...] = (),
    ) -> Message:
        """A message from this agent, MAC included."""
        unsigned = Message(self.agent_id, receiver, kind, view, slot, digest, value, payload, proof)
        return self.seal(unsigned)

    def seal(self, msg: Message) -> Message:
        """Recompute ``msg``'s MAC with this agent's key, whatever sender it claims.

        Honest code only seals its own messages; a Byzantine wrapper may seal a message claiming
        another sender, which is exactly a forgery the receivers' check rejects.
        """
        body = msg.body()
        sealed = Message(
            msg.sender, msg.receiver, msg.kind, msg.view, msg.slot, msg.digest,
            msg.value, msg.payload, msg.proof, hmac.digest(self._key, body, "sha256"),
        )
        object.__setattr__(sealed, "_body", body)  # same fields, same encoding
        return sealed


class KeyRing:
    """Deterministic per-agent keys derived from a seed; verifies any agent's messages."""

    __slots__ = ("_keys", "_good")

    def __init__(self, seed: int | str, agent_ids: Iterable[AgentId]) -> None:
        self._keys = {a: _key(seed, a) for a in agent_ids}
        # Frames already found authentic. Certificates travel many times inside other messages;
        # remembering (sender, body, mac) keeps re-checking them cheap and changes no answer.
        self._good: set[tuple[AgentId, bytes, bytes]] = set()

    def signer(self, agent_id: AgentId) -> Signer:
        """The signer of one agent (hand it only to that agent's core)."""
        return Signer(agent_id, self._keys[agent_id])

    def verify_bytes(self, sender: AgentId, body: bytes, mac: bytes) -> bool:
        """Check raw wire bytes against a MAC, as a receiver does before decoding a frame."""
        if (sender, body, mac) in self._good:
            return True
        key = self._keys.get(sender)
        if key is None or not hmac.compare_digest(hmac.digest(key, body, "sha256"), mac):
            return False
        self._good.add((sender, body, mac))
        return True

    def verify(self, msg: Message, deep: bool = False) -> bool:
        """True when ``msg`` was produced by its claimed sender, unaltered.

        With ``deep`` every embedded proof message is checked too; cores do that before relying
        on a certificate, because the outer MAC only proves who *assembled* the certificate.
        """
        if not self.verify_bytes(msg.sender, msg.body(), msg.mac):
            return False
        return not deep or all(self.verify(m, deep=True) for m in msg.proof)


# --- The interface every protocol core offers (etcd-raft style: messages in, messages out) ---------

Propose = Callable[[int], Value]
"""The application's proposal for a slot, asked when this agent leads it."""

Validate = Callable[[int, Value], bool]
"""The application's feasibility guard: an honest core never votes for a value it rejects."""


@dataclass(slots=True)
class Output:
    """What one ``step`` or ``tick`` asks the caller to do: send these, record these decisions."""

    messages: list[Message] = field(default_factory=list)
    decisions: list[tuple[int, Value]] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        """Append another output (used by wrappers that drive several inner calls)."""
        self.messages.extend(other.messages)
        self.decisions.extend(other.decisions)


class Core(Protocol):
    """A sans-IO consensus state machine.

    The caller owns time and transport: it calls ``tick(now)`` at least at every
    ``next_deadline()`` and before each ``step`` (so the core knows the time when it arms a timer),
    verifies each message's MAC before ``step``, sends ``Output.messages`` and records
    ``Output.decisions``. ``persisted()`` is what a real agent writes to disk before sending; a
    restarted core is built from it.
    """

    node_id: AgentId

    def step(self, msg: Message) -> Output: ...

    def tick(self, now: float) -> Output: ...

    def next_deadline(self) -> float | None: ...

    def persisted(self) -> object: ...

