"""Messages are immutable, authenticated data; values are opaque and canonically encoded."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_sched.protocols.messages import BROADCAST, NIL, KeyRing, Kind, Message, PlacementValue, digest_of

RING = KeyRing(seed=7, agent_ids=range(4))
VALUE = PlacementValue("job-1", ("gpu-0", "gpu-1"), "fits")


def sample() -> Message:
    vote = RING.signer(2).make(1, Kind.PREPARE, 0, 1, digest_of(VALUE))
    return RING.signer(0).make(1, Kind.PRE_PREPARE, 3, 1, digest_of(VALUE), VALUE, b"extra", (vote,))


def test_signed_message_verifies() -> None:
    msg = sample()
    assert RING.verify(msg)
    assert RING.verify(msg, deep=True)


def test_messages_are_frozen_and_hashable() -> None:
    msg = sample()
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.view = 4  # type: ignore[misc]
    assert hash(msg) == hash(sample())


@pytest.mark.parametrize(
    "change",
    [
        {"sender": 2},
        {"receiver": 3},
        {"kind": Kind.COMMIT},
        {"view": 4},
        {"slot": 2},
        {"digest": digest_of(PlacementValue("job-1", ("cpu-0",)))},
        {"value": PlacementValue("job-1", ("cpu-0",))},
        {"payload": b"extrA"},
        {"proof": ()},
    ],
)
def test_altering_any_field_breaks_the_mac(change: dict[str, object]) -> None:
    assert not RING.verify(dataclasses.replace(sample(), **change))


def test_forged_sender_fails() -> None:
    """A Byzantine agent can only seal with its own key: claiming agent 0 as sender is caught."""
    honest = sample()
    forged = RING.signer(3).seal(dataclasses.replace(honest, digest=NIL))
    assert forged.sender == 0 and not RING.verify(forged)


def test_deep_check_catches_a_bogus_embedded_message() -> None:
    bogus_vote = RING.signer(3).seal(Message(2, BROADCAST, Kind.PREPARE, 0, 1, NIL))  # claims agent 2
    outer = RING.signer(0).make(1, Kind.VIEW_CHANGE, 1, 0, NIL, proof=(bogus_vote,))
    assert RING.verify(outer) and not RING.verify(outer, deep=True)


def test_unknown_sender_and_other_ring_fail() -> None:
    msg = sample()
    assert not KeyRing(seed=8, agent_ids=range(4)).verify(msg)
    assert not KeyRing(seed=7, agent_ids=[1, 2]).verify(msg)


@given(st.data())
def test_any_flipped_bit_on_the_wire_is_detected(data: st.DataObject) -> None:
    msg = sample()
    frame = bytearray(msg.body() + msg.mac)
    bit = data.draw(st.integers(min_value=0, max_value=len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    assert not RING.verify_bytes(msg.sender, bytes(frame[:-32]), bytes(frame[-32:]))


@given(
    st.text(max_size=12),
    st.none() | st.lists(st.text(max_size=6), max_size=4).map(tuple),
    st.text(max_size=12),
)
def test_decision_encoding_is_canonical(job: str, placement: tuple[str, ...] | None, reason: str) -> None:
    a, b = PlacementValue(job, placement, reason), PlacementValue(job, placement, reason)
    assert a.encode() == b.encode() and digest_of(a) == digest_of(b)
    other = PlacementValue(job + "x", placement, reason)
    assert digest_of(other) != digest_of(a)


def test_reject_differs_from_empty_placement() -> None:
    assert digest_of(PlacementValue("j", None)) != digest_of(PlacementValue("j", ()))
    assert digest_of(None) == NIL
