"""Decision records: what the decision stream holds, and the offline check of their certificates.

One record per consensus instance: the batch of placements decided, the view it was decided in, and
its certificate: the q (or more) COMMIT messages of distinct members for that batch, each signed by
its member's Ed25519 key over the federation, the instance and the message. Anyone holding the
genesis checks a record with nothing else (:func:`check_record`): no trust in whoever published it.

Member ``i`` has core id ``(i - instance) mod n`` in instance ``instance``, so that the primary of view
0 (core id 0) rotates from job batch to job batch and a dead member leads only its share of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from llm_sched.protocols.messages import Kind, Message, PlacementBatch, digest_of
from llm_sched.protocols.signed_messages import Ed25519KeyRing
from llm_sched.transport import wire


def core_id(member: int, instance: int, n: int) -> int:
    """A member's id in the core of one instance."""
    return (member - instance) % n


def member_of(core: int, instance: int, n: int) -> int:
    """The member behind a core id of one instance."""
    return (core + instance) % n


def context(federation: str, instance: int) -> bytes:
    """What every signature of one instance also covers."""
    return f"{federation}/{instance}".encode()


def instance_ring(federation: str, instance: int, public: Sequence[Ed25519PublicKey],
                  own: tuple[int, Ed25519PrivateKey] | None = None) -> Ed25519KeyRing:
    """The key ring of one instance: core ids to the members' public keys (and this member's key)."""
    n = len(public)
    ids = {core_id(m, instance, n): key for m, key in enumerate(public)}
    mine = None if own is None else (core_id(own[0], instance, n), own[1])
    return Ed25519KeyRing(ids, mine, context(federation, instance))


@dataclass(frozen=True, slots=True)
class Record:
    """One decided instance."""

    instance: int
    view: int
    batch: PlacementBatch
    commits: tuple[Message, ...]
    decider: str  # the member that published it (any member may; the certificate is what counts)

    def encode(self) -> bytes:
        return json.dumps({"instance": self.instance, "view": self.view, "batch": wire.value_to_data(self.batch),
                           "commits": [json.loads(wire.encode(m)) for m in self.commits],
                           "decider": self.decider}, separators=(",", ":")).encode()

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(e.job_id for e in self.batch.entries)


def decode_record(data: bytes) -> Record:
    """A record from the stream; ``wire.WireError`` when malformed."""
    try:
        body = json.loads(data)
        batch = wire.value_from_data(body["batch"])
        commits = tuple(wire.decode(json.dumps(c).encode()) for c in body["commits"])
        instance, view, decider = body["instance"], body["view"], body["decider"]
    except wire.WireError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise wire.WireError(f"not a decision record ({type(exc).__name__})") from None
    numbers_ok = all(isinstance(x, int) and not isinstance(x, bool) for x in (instance, view))  # true is no 1
    if not isinstance(batch, PlacementBatch) or not numbers_ok:
        raise wire.WireError("a decision record's batch, instance or view has the wrong type")
    return Record(instance, view, batch, commits, str(decider))


def check_record(record: Record, federation: str, public: Sequence[Ed25519PublicKey], quorum: int) -> str | None:
    """What is wrong with ``record``'s certificate (None: it proves that a quorum committed its batch)."""
    ring = instance_ring(federation, record.instance, public)
    digest = digest_of(record.batch)
    signers: set[int] = set()
    for m in record.commits:
        if m.kind is not Kind.COMMIT or m.view != record.view or m.slot != 0:
            return f"a certificate message is a {m.kind.value} of view {m.view}, not a commit of view {record.view}"
        if m.digest != digest:
            return "a commit is for another batch (digest mismatch)"
        if not ring.verify(m):
            return f"the commit of core id {m.sender} does not carry its member's signature"
        signers.add(m.sender)
    if len(signers) < quorum:
        return f"{len(signers)} distinct signed commits, fewer than the quorum of {quorum} of {len(public)}"
    return None
