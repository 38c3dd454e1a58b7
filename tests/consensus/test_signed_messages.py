"""Ed25519-signed protocol messages: who can sign what, what the signature covers, and that the PBFT
core runs unchanged over them and over the wire codec."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from llm_sched.protocols.messages import BROADCAST, Kind, Message, PlacementBatch, PlacementValue, digest_of
from llm_sched.protocols.signed_messages import (
    Ed25519KeyRing,
    Ed25519Signer,
    load_private_pem,
    private_pem,
    public_hex,
    public_key,
)
from llm_sched.transport import wire
from tests.federation.pbft_memory import BASE_TIMEOUT_MS, member_keys, proposal_of, run_instance

KEYS = member_keys(4)
CONTEXT = b"fed/0"
VALUE = PlacementValue("j1", ("n1", "n2"), "pool-a")


def ring_of(agent: int | None, context: bytes = CONTEXT) -> Ed25519KeyRing:
    """Every public key; the private key of ``agent`` only (None: a verifier holding none)."""
    own = None if agent is None else (agent, KEYS[agent])
    return Ed25519KeyRing({i: k.public_key() for i, k in enumerate(KEYS)}, own, context)


def signed(agent: int = 0, receiver: int = 1, **fields: object) -> Message:
    base = {"kind": Kind.PRE_PREPARE, "view": 0, "slot": 0, "digest": digest_of(VALUE), "value": VALUE,
            "payload": b"p", "proof": ()}
    return ring_of(agent).signer(agent).make(receiver, **{**base, **fields})


def test_a_message_signed_by_its_sender_verifies() -> None:
    msg = signed(0)
    assert ring_of(None).verify(msg)
    assert ring_of(3).verify(msg, deep=True)


def test_a_forged_sender_does_not_verify() -> None:
    honest = signed(0)
    forged = ring_of(0).signer(0).seal(dataclasses.replace(honest, sender=1))  # claims B, sealed with A's key
    assert forged.sender == 1
    assert not ring_of(None).verify(forged)


def test_an_unknown_sender_does_not_verify() -> None:
    assert not ring_of(None).verify(dataclasses.replace(signed(0), sender=9))


def test_changing_the_receiver_keeps_the_signature_valid() -> None:
    msg = signed(0, receiver=1)
    for receiver in (2, 3, BROADCAST):
        assert ring_of(None).verify(dataclasses.replace(msg, receiver=receiver))


@pytest.mark.parametrize("change", [
    {"view": 1},
    {"slot": 1},
    {"digest": digest_of(PlacementValue("j1", ("n3",)))},
    {"value": PlacementValue("j1", ("n3",))},
    {"value": PlacementBatch(1, (VALUE,))},
    {"value": None},
    {"payload": b"q"},
    {"kind": Kind.PREPARE},
], ids=lambda c: next(iter(c)))
def test_changing_a_signed_field_breaks_the_signature(change: dict[str, object]) -> None:
    assert not ring_of(None).verify(dataclasses.replace(signed(0), **change))


def test_changing_an_embedded_proof_breaks_the_signature() -> None:
    vote = signed(1, kind=Kind.PREPARE, value=None)
    other = signed(2, kind=Kind.PREPARE, value=None)
    msg = signed(0, kind=Kind.VIEW_CHANGE, value=None, proof=(vote,))
    assert ring_of(None).verify(msg, deep=True)
    for proof in ((), (other,), (vote, other), (dataclasses.replace(vote, view=5),)):
        assert not ring_of(None).verify(dataclasses.replace(msg, proof=proof))


def test_a_deep_check_catches_a_forged_message_inside_a_certificate() -> None:
    forged_vote = ring_of(0).signer(0).seal(dataclasses.replace(signed(0, kind=Kind.PREPARE), sender=2))
    msg = signed(0, kind=Kind.VIEW_CHANGE, value=None, proof=(forged_vote,))
    assert ring_of(None).verify(msg)  # the outer signature only says who assembled it
    assert not ring_of(None).verify(msg, deep=True)


def test_a_message_of_another_instance_does_not_verify() -> None:
    msg = signed(0)
    assert ring_of(None, CONTEXT).verify(msg)
    assert not ring_of(None, b"fed/1").verify(msg)
    assert not ring_of(None, b"other-fed/0").verify(msg)


def test_the_signer_of_an_agent_whose_key_the_ring_lacks_raises_key_error() -> None:
    with pytest.raises(KeyError):
        ring_of(0).signer(1)
    with pytest.raises(KeyError):
        ring_of(None).signer(0)


def test_the_repr_of_a_signer_shows_no_key_material() -> None:
    key = KEYS[0]
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    signer = ring_of(0).signer(0)
    for text in (repr(signer), str(signer)):
        assert raw.hex() not in text and raw.hex().upper() not in text
        assert private_pem(key).decode() not in text
        assert "agent_id=0" in text  # it names the agent, nothing more


class _CountingKey:
    """An Ed25519 private key that counts its signatures."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key, self.signatures = key, 0

    def sign(self, data: bytes) -> bytes:
        self.signatures += 1
        return self.key.sign(data)


def test_a_broadcast_of_n_minus_1_copies_is_signed_once() -> None:
    counting = _CountingKey(KEYS[0])
    signer = Ed25519Signer(0, counting, CONTEXT)  # type: ignore[arg-type]
    copies = [signer.make(p, Kind.PREPARE, 0, 0, digest_of(VALUE)) for p in (1, 2, 3)]
    assert counting.signatures == 1
    assert len({m.mac for m in copies}) == 1
    assert all(ring_of(None).verify(m) for m in copies)
    signer.make(1, Kind.COMMIT, 0, 0, digest_of(VALUE))
    assert counting.signatures == 2  # a different message is signed anew


def test_keys_survive_their_file_and_genesis_forms() -> None:
    key = load_private_pem(private_pem(KEYS[0]))
    ring = Ed25519KeyRing({0: public_key(public_hex(KEYS[0]))}, (0, key), CONTEXT)
    assert ring_of(None).verify(ring.signer(0).make(1, Kind.COMMIT, 0, 0, "d"))
    with pytest.raises(ValueError):
        public_key("not hex")


# --- the cores run unchanged over Ed25519 and the wire ------------------------------------------


@pytest.mark.parametrize("n", [4, 7])
def test_the_cores_run_unchanged_over_ed25519_and_the_wire(n: int) -> None:
    run = run_instance(member_keys(n))
    assert {run.decided(c) for c in run.cores} == {proposal_of(0)}
    assert run.now < BASE_TIMEOUT_MS  # no view change was needed
    assert {m.kind for m in run.sent} == {Kind.PRE_PREPARE, Kind.PREPARE, Kind.COMMIT}


def test_with_one_backup_crashed_the_other_three_of_four_still_decide() -> None:
    run = run_instance(member_keys(4), crashed={2})
    assert run.decided(2) is None
    assert {run.decided(c) for c in (0, 1, 3)} == {proposal_of(0)}


@pytest.mark.parametrize("n", [4, 7])
def test_with_the_primary_crashed_the_others_change_view_and_decide_alike(n: int) -> None:
    run = run_instance(member_keys(n), crashed={0})
    live = [c for c in run.cores if c != 0]
    assert {run.decided(c) for c in live} == {proposal_of(1)}  # the primary of view 1
    assert all(run.cores[c].view == 1 for c in live)
    assert run.now >= BASE_TIMEOUT_MS
    new_views = [m for m in run.sent if m.kind is Kind.NEW_VIEW]
    assert new_views and all(m.proof for m in new_views)
    assert all(run.rings[c].verify(m, deep=True) for m in new_views for c in live)  # certificates checked offline


def test_the_cores_of_a_later_instance_decide_the_proposal_of_its_rotated_primary() -> None:
    run = run_instance(member_keys(4), instance=3)
    assert {run.decided(c) for c in run.cores} == {proposal_of(3)}  # member 3 has core id 0 in instance 3


def test_a_message_of_one_instance_is_refused_by_the_cores_of_another() -> None:
    keys = member_keys(4)
    first, second = run_instance(keys, instance=0), run_instance(keys, instance=4)  # same core ids, other context
    replayed = [m for m in first.sent if m.receiver == 1]
    assert replayed and not any(second.rings[1].verify(m) for m in replayed)


def test_a_wire_round_trip_of_a_core_message_keeps_it_equal_and_verifiable() -> None:
    run = run_instance(member_keys(4))
    for m in run.sent:
        again = wire.decode(wire.encode(m))
        assert again == m and run.rings[m.receiver].verify(again)
