"""Decision records: the offline check of their certificates against the genesis, their wire form,
and the rotation of core ids per instance."""

from __future__ import annotations

import dataclasses
import json
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_sched.federation.records import (
    Record,
    check_record,
    context,
    core_id,
    decode_record,
    instance_ring,
    member_of,
)
from llm_sched.protocols.messages import BROADCAST, Kind, Message, PlacementBatch, PlacementValue, digest_of
from llm_sched.protocols.quorum import byzantine_quorum
from llm_sched.protocols.signed_messages import Ed25519Signer
from llm_sched.transport import wire
from tests.federation.pbft_memory import FEDERATION, member_keys, publics, run_instance

N = 7
Q = byzantine_quorum(N)  # 5
KEYS = member_keys(N)
PUBLIC = publics(KEYS)
INSTANCE = 3


def batch_of(member: int) -> PlacementBatch:
    return PlacementBatch(11, (PlacementValue("j11", (f"node-{member}",), f"member {member}"),
                               PlacementValue("j12", None, "no capacity: nothing fits")))


def record_of_run(instance: int = INSTANCE, crashed: tuple[int, ...] = ()) -> Record:
    """The record a member publishes after a real PBFT run over Ed25519 and the wire (as the agent
    builds it: the COMMIT messages of its decision's certificate)."""
    run = run_instance(KEYS, instance=instance, crashed=crashed, propose=batch_of)
    deciders = [c for c in run.cores if c not in crashed]
    cert = run.cores[deciders[0]].persisted().decided[0]
    commits = tuple(m for m in cert.messages if m.kind is Kind.COMMIT)
    assert isinstance(cert.value, PlacementBatch)
    return Record(instance, cert.view, cert.value, commits, f"member-{member_of(deciders[0], instance, N)}")


@cache
def good() -> Record:
    return record_of_run()


def signed_by(member: int, kind: Kind = Kind.COMMIT, view: int = 0, digest: str | None = None,
              instance: int = INSTANCE) -> Message:
    """A vote signed directly with a member's key in an instance's ring."""
    ring = instance_ring(FEDERATION, instance, PUBLIC, (member, KEYS[member]))
    cid = core_id(member, instance, N)
    return ring.signer(cid).make(BROADCAST, kind, view, 0, digest_of(good().batch) if digest is None else digest)


def check(record: Record) -> str | None:
    return check_record(record, FEDERATION, PUBLIC, Q)


# --- accepted certificates --------------------------------------------------------------------


def test_the_certificate_of_a_real_run_is_accepted() -> None:
    record = good()
    assert len({m.sender for m in record.commits}) >= Q
    assert record.batch == batch_of(INSTANCE)  # member 3 leads view 0 of instance 3
    assert check(record) is None


def test_the_certificate_of_a_view_change_is_accepted() -> None:
    crashed_primary = core_id(INSTANCE, INSTANCE, N)  # core id 0
    record = record_of_run(crashed=(crashed_primary,))
    assert record.view == 1 and record.batch == batch_of(member_of(1, INSTANCE, N))
    assert check(record) is None


def test_a_certificate_of_commits_signed_directly_is_accepted() -> None:
    commits = tuple(signed_by(m) for m in range(N))
    assert check(dataclasses.replace(good(), view=0, commits=commits)) is None
    assert check(dataclasses.replace(good(), view=0, commits=commits[2:2 + Q])) is None


def test_the_check_needs_nothing_but_the_genesis_and_survives_the_wire() -> None:
    again = decode_record(good().encode())
    assert check_record(again, FEDERATION, publics(member_keys(N)), Q) is None


# --- refused certificates ---------------------------------------------------------------------


def test_fewer_than_a_quorum_of_commits_is_refused() -> None:
    short = dataclasses.replace(good(), commits=good().commits[: Q - 1])
    problem = check(short)
    assert problem is not None and "fewer than the quorum" in problem and str(Q) in problem


def test_a_commit_duplicated_to_pad_the_count_is_refused() -> None:
    commits = good().commits[: Q - 1]
    padded = dataclasses.replace(good(), commits=(*commits, commits[0]))
    assert len(padded.commits) == Q
    problem = check(padded)
    assert problem is not None and f"{Q - 1} distinct" in problem


def test_a_commit_signed_by_a_key_not_in_the_genesis_is_refused() -> None:
    stranger = member_keys(1, seed="stranger")[0]
    victim = good().commits[0]
    forged = Ed25519Signer(victim.sender, stranger, context(FEDERATION, INSTANCE)).seal(victim)
    assert forged.mac != victim.mac
    problem = check(dataclasses.replace(good(), commits=(forged, *good().commits[1:])))
    assert problem is not None and "signature" in problem


def test_a_commit_whose_sender_was_rewritten_is_refused() -> None:
    commits = list(good().commits)
    unused = next(c for c in range(N) if c not in {m.sender for m in commits})
    commits[0] = dataclasses.replace(commits[0], sender=unused)
    problem = check(dataclasses.replace(good(), commits=tuple(commits)))
    assert problem is not None and "signature" in problem


def test_a_batch_altered_after_signing_is_refused() -> None:
    altered = PlacementBatch(11, (PlacementValue("j11", ("node-x",)), good().batch.entries[1]))
    problem = check(dataclasses.replace(good(), batch=altered))
    assert problem is not None and "digest mismatch" in problem


def test_commits_for_another_batch_are_refused_even_if_signed() -> None:
    other = digest_of(batch_of(0))
    commits = tuple(signed_by(m, digest=other) for m in range(Q))
    problem = check(dataclasses.replace(good(), view=0, commits=commits))
    assert problem is not None and "digest mismatch" in problem


@pytest.mark.parametrize("instance", [INSTANCE + 1, INSTANCE + N, 0])
def test_a_record_replayed_into_another_instance_is_refused(instance: int) -> None:
    # INSTANCE + N maps every member to the same core id: only the signed context tells them apart.
    problem = check(dataclasses.replace(good(), instance=instance))
    assert problem is not None and "signature" in problem


def test_a_record_of_another_federation_is_refused() -> None:
    assert check_record(good(), "another-" + FEDERATION, PUBLIC, Q) is not None


def test_a_prepare_in_the_certificate_is_refused() -> None:
    commits = (signed_by(0, kind=Kind.PREPARE), *(signed_by(m) for m in range(1, N)))
    problem = check(dataclasses.replace(good(), view=0, commits=commits))
    assert problem is not None and "prepare" in problem and "not a commit" in problem


def test_a_commit_of_another_view_in_the_certificate_is_refused() -> None:
    commits = (signed_by(0, view=1), *(signed_by(m) for m in range(1, N)))
    problem = check(dataclasses.replace(good(), view=0, commits=commits))
    assert problem is not None and "view 1" in problem


def test_a_record_claiming_another_view_than_its_commits_is_refused() -> None:
    assert check(dataclasses.replace(good(), view=good().view + 1)) is not None


def test_a_commit_of_another_slot_is_refused() -> None:
    ring = instance_ring(FEDERATION, INSTANCE, PUBLIC, (0, KEYS[0]))
    other_slot = ring.signer(core_id(0, INSTANCE, N)).make(BROADCAST, Kind.COMMIT, 0, 1, digest_of(good().batch))
    commits = (other_slot, *(signed_by(m) for m in range(1, N)))
    assert check(dataclasses.replace(good(), view=0, commits=commits)) is not None


# --- the wire form ----------------------------------------------------------------------------


def test_a_record_survives_its_encoding() -> None:
    record = good()
    again = decode_record(record.encode())
    assert again == record
    assert again.job_ids == ("j11", "j12")


def body() -> dict[str, object]:
    return json.loads(good().encode())


JUNK = {
    "empty": b"",
    "not json": b"garbage",
    "a list": b"[]",
    "an empty object": b"{}",
    "no commits": json.dumps({k: v for k, v in body().items() if k != "commits"}).encode(),
    "a placement for a batch": json.dumps({**body(), "batch": ["p", "j1", None, ""]}).encode(),
    "a batch of junk": json.dumps({**body(), "batch": ["b", 1, 2]}).encode(),
    "no batch": json.dumps({**body(), "batch": None}).encode(),
    "instance as text": json.dumps({**body(), "instance": "3"}).encode(),
    "instance as bool": json.dumps({**body(), "instance": True}).encode(),
    "view as float": json.dumps({**body(), "view": 0.0}).encode(),
    "commits as number": json.dumps({**body(), "commits": 5}).encode(),
    "a commit of junk": json.dumps({**body(), "commits": [{"s": 1}]}).encode(),
    "a commit with a bad mac": json.dumps({**body(), "commits": [{**body()["commits"][0], "m": "xyz"}]}).encode(),  # type: ignore[index]
    "nested very deep": b'{"batch":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "invalid utf-8": b'{"decider": "\xff"}',
}


@pytest.mark.parametrize("name", JUNK)
def test_decoding_junk_is_a_wire_error(name: str) -> None:
    with pytest.raises(wire.WireError):
        decode_record(JUNK[name])


# --- core ids -----------------------------------------------------------------------------------


@given(st.integers(1, 50), st.integers(0, 10_000), st.integers(0, 49))
def test_core_id_and_member_of_are_inverse(n: int, instance: int, member: int) -> None:
    member %= n
    cid = core_id(member, instance, n)
    assert 0 <= cid < n
    assert member_of(cid, instance, n) == member
    assert core_id(member_of(member, instance, n), instance, n) == member


@pytest.mark.parametrize("start", [0, 1, 17])
def test_the_primary_of_view_0_rotates_over_every_member_across_n_instances(start: int) -> None:
    primaries = [member_of(0, instance, N) for instance in range(start, start + N)]
    assert sorted(primaries) == list(range(N))


def test_an_instance_ring_hands_a_member_only_its_own_core_signer() -> None:
    ring = instance_ring(FEDERATION, INSTANCE, PUBLIC, (2, KEYS[2]))
    mine = core_id(2, INSTANCE, N)
    assert ring.signer(mine).agent_id == mine
    with pytest.raises(KeyError):
        ring.signer((mine + 1) % N)
    with pytest.raises(KeyError):
        instance_ring(FEDERATION, INSTANCE, PUBLIC).signer(0)
