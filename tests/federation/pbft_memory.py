"""PBFT cores run in memory as the federation's agents run them: one slot, one Ed25519 key ring per
core (every public key, only its own private key), and every message through the wire codec and a
signature check before ``step``. Delivery is FIFO; time (ms) jumps to the next deadline when the
network is quiet."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from llm_sched.federation.records import core_id, instance_ring
from llm_sched.protocols.messages import Message, Output, PlacementValue, Value
from llm_sched.protocols.pbft import PbftConfig, PbftCore
from llm_sched.protocols.signed_messages import Ed25519KeyRing
from llm_sched.transport import wire

FEDERATION = "test-fed"
BASE_TIMEOUT_MS = 1_000.0


def member_keys(n: int, seed: str = "keys") -> list[Ed25519PrivateKey]:
    """Deterministic private keys of n members (tests only)."""
    return [Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"{seed}/{i}".encode()).digest()) for i in range(n)]


def publics(keys: list[Ed25519PrivateKey]) -> list[Ed25519PublicKey]:
    return [k.public_key() for k in keys]


def proposal_of(member: int) -> PlacementValue:
    """What member ``member`` proposes when it is primary: different for each, so the decided value
    shows whose proposal won."""
    return PlacementValue("job-1", (f"node-{member}",), f"member {member}")


@dataclass
class Run:
    cores: dict[int, PbftCore]  # core id -> core (crashed ones included, never stepped)
    rings: dict[int, Ed25519KeyRing]
    sent: list[Message]  # every message decoded from the wire, in delivery order
    now: float

    def decided(self, cid: int) -> Value | None:
        return self.cores[cid].decided.get(0)


def run_instance(
    keys: list[Ed25519PrivateKey],
    *,
    instance: int = 0,
    crashed: Collection[int] = (),
    propose: Callable[[int], Value] = proposal_of,
    federation: str = FEDERATION,
    max_rounds: int = 50,
) -> Run:
    """One consensus instance among len(keys) members; ``crashed`` are core ids that never run.

    ``propose(member)`` is the member's proposal; every value is valid.
    """
    n = len(keys)
    public = publics(keys)
    cores: dict[int, PbftCore] = {}
    rings: dict[int, Ed25519KeyRing] = {}
    for member, key in enumerate(keys):
        cid = core_id(member, instance, n)
        ring = instance_ring(federation, instance, public, (member, key))
        rings[cid] = ring
        cores[cid] = PbftCore(cid, tuple(range(n)), 1, ring.signer(cid), ring,
                              lambda _slot, member=member: propose(member), lambda _slot, _value: True,
                              PbftConfig(base_timeout=BASE_TIMEOUT_MS))
    live = [cid for cid in sorted(cores) if cid not in crashed]
    queue: deque[bytes] = deque()
    sent: list[Message] = []

    def send(out: Output) -> None:
        queue.extend(wire.encode(m) for m in out.messages)

    now = 0.0
    for cid in live:
        send(cores[cid].tick(now))
    for _ in range(max_rounds):
        while queue:
            msg = wire.decode(queue.popleft())
            sent.append(msg)
            if msg.receiver not in live:
                continue
            assert rings[msg.receiver].verify(msg), f"a message from {msg.sender} failed its signature check"
            core = cores[msg.receiver]
            send(core.tick(now))
            send(core.step(msg))
        if all(cores[c].done for c in live):
            break
        deadlines = [d for c in live if (d := cores[c].next_deadline()) is not None]
        if not deadlines:
            break
        now = max(now, min(deadlines))
        for cid in live:
            send(cores[cid].tick(now))
    return Run(cores, rings, sent, now)
