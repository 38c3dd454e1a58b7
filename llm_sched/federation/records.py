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
from llm_sched.protocols.quorum import byzantine_f
from llm_sched.protocols.signed_messages import Ed25519KeyRing
from llm_sched.transport import wire


def leader_order(instance: int, n: int, skip: Sequence[int] = ()) -> tuple[int, ...]:
    """The members in core-id order for one instance: a rotation starting at ``instance mod n``, with the
    members in ``skip`` (excluded from leading, as the last batch agreed) moved to the end."""
    rotation = [(instance + i) % n for i in range(n)]
    return tuple([m for m in rotation if m not in skip] + [m for m in rotation if m in skip])


def core_id(member: int, instance: int, n: int, skip: Sequence[int] = ()) -> int:
    """A member's id in the core of one instance (core id 0 leads view 0, 1 view 1, ...)."""
    return leader_order(instance, n, skip).index(member)


def member_of(core: int, instance: int, n: int, skip: Sequence[int] = ()) -> int:
    """The member behind a core id of one instance."""
    return leader_order(instance, n, skip)[core]


def context(federation: str, instance: int) -> bytes:
    """What every signature of one instance also covers."""
    return f"{federation}/{instance}".encode()


def instance_ring(federation: str, instance: int, public: Sequence[Ed25519PublicKey],
                  own: tuple[int, Ed25519PrivateKey] | None = None, skip: Sequence[int] = ()) -> Ed25519KeyRing:
    """The key ring of one instance: core ids to the members' public keys (and this member's key)."""
    order = leader_order(instance, len(public), skip)
    ids = {core: public[member] for core, member in enumerate(order)}
    mine = None if own is None else (order.index(own[0]), own[1])
    return Ed25519KeyRing(ids, mine, context(federation, instance))


def valid_skip(skip: Sequence[int], n: int) -> bool:
    """An exclusion list a member accepts: distinct members, sorted, at most f of them (so that at
    least n - f members still lead, whatever a faulty primary proposes)."""
    return (list(skip) == sorted(set(skip)) and all(0 <= m < n for m in skip)
            and len(skip) <= byzantine_f(n))


@dataclass(frozen=True, slots=True)
class Record:
    """One decided instance."""

    instance: int
    view: int
    batch: PlacementBatch
    commits: tuple[Message, ...]
    decider: str  # the member that published it (any member may; the certificate is what counts)
    skip: tuple[int, ...] = ()  # the exclusion in force for this instance (the previous batch's)

    def encode(self) -> bytes:
        return json.dumps({"instance": self.instance, "view": self.view, "batch": wire.value_to_data(self.batch),
                           "commits": [wire.message_to_data(m) for m in self.commits],
                           "decider": self.decider, "skip": list(self.skip)}, separators=(",", ":")).encode()

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(e.job_id for e in self.batch.entries)


def decode_record(data: bytes) -> Record:
    """A record from the stream; ``wire.WireError`` when malformed."""
    body = wire.parse_json(data, "a decision record")
    try:
        batch = wire.value_from_data(body["batch"])
        commits = tuple(wire.message_from_data(c) for c in body["commits"])
        instance, view, decider = body["instance"], body["view"], body["decider"]
        skip = body.get("skip", [])
    except wire.WireError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: a batch nested too deep
        raise wire.WireError(f"not a decision record ({type(exc).__name__})") from None
    numbers_ok = all(isinstance(x, int) and not isinstance(x, bool) for x in (instance, view))  # true is no 1
    skip_ok = isinstance(skip, list) and all(isinstance(m, int) and not isinstance(m, bool) for m in skip)
    if not isinstance(batch, PlacementBatch) or not numbers_ok or not skip_ok:
        raise wire.WireError("a decision record's batch, instance, view or skip has the wrong type")
    return Record(instance, view, batch, commits, str(decider), tuple(skip))


def check_record(record: Record, federation: str, public: Sequence[Ed25519PublicKey], quorum: int) -> str | None:
    """What is wrong with ``record``'s certificate (None: it proves that a quorum committed its batch)."""
    if not valid_skip(record.skip, len(public)):
        return f"the record's exclusion list {list(record.skip)} is not one a member accepts"
    ring = instance_ring(federation, record.instance, public, skip=record.skip)
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
