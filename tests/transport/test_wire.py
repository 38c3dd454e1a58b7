"""The wire codec: messages survive the round trip exactly (so signatures still check), and anything
that is not a message of ours is a WireError, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_sched.protocols.messages import BROADCAST, Kind, Message, PlacementBatch, PlacementValue, digest_of
from llm_sched.protocols.signed_messages import Ed25519KeyRing
from llm_sched.transport import wire
from tests.federation.pbft_memory import member_keys

KEYS = member_keys(3)
CONTEXT = b"fed/7"
BATCH = PlacementBatch(5, (PlacementValue("j5", ("n1", "n2"), "pool (score 0.912)"),
                           PlacementValue("j6", None, "no capacity: too big"),
                           PlacementValue("j7", ("nø-ü",), "")))


def ring(agent: int | None = None) -> Ed25519KeyRing:
    own = None if agent is None else (agent, KEYS[agent])
    return Ed25519KeyRing({i: k.public_key() for i, k in enumerate(KEYS)}, own, CONTEXT)


def make(agent: int, receiver: int, kind: Kind, **fields: Any) -> Message:
    return ring(agent).signer(agent).make(receiver, kind, fields.pop("view", 0), fields.pop("slot", 0),
                                          fields.pop("digest", ""), **fields)


def certificate_message() -> Message:
    """A view change carrying a pre-prepare of a batch and votes, itself inside a new view."""
    pp = make(0, 1, Kind.PRE_PREPARE, digest=digest_of(BATCH), value=BATCH)
    votes = tuple(make(a, 2, Kind.PREPARE, digest=digest_of(BATCH)) for a in (1, 2))
    vc = make(1, BROADCAST, Kind.VIEW_CHANGE, view=1, proof=(pp, *votes))
    return make(1, 2, Kind.NEW_VIEW, view=1, proof=(vc,), payload=b"\x00\xffbytes")


MESSAGES = {
    "placement": make(0, 1, Kind.PRE_PREPARE, digest=digest_of(BATCH.entries[0]), value=BATCH.entries[0]),
    "reject": make(0, 1, Kind.PRE_PREPARE, digest=digest_of(BATCH.entries[1]), value=BATCH.entries[1]),
    "batch": make(0, 2, Kind.PRE_PREPARE, view=3, slot=2, digest=digest_of(BATCH), value=BATCH),
    "payload": make(2, 0, Kind.SYNC, payload=bytes(range(256))),
    "nested": certificate_message(),
    "unsigned": Message(1, BROADCAST, Kind.COMMIT, 0, 0, "d"),
}


def as_data(msg: Message) -> dict[str, Any]:
    return json.loads(wire.encode(msg))


def from_data(data: Any) -> Message:
    return wire.decode(json.dumps(data).encode())


@pytest.mark.parametrize("name", MESSAGES)
def test_a_message_survives_the_round_trip_equal(name: str) -> None:
    msg = MESSAGES[name]
    again = wire.decode(wire.encode(msg))
    assert again == msg
    assert again.body() == msg.body() and again.mac == msg.mac


def test_a_decoded_message_still_verifies_with_its_certificate() -> None:
    again = wire.decode(wire.encode(MESSAGES["nested"]))
    assert ring().verify(again, deep=True)
    assert ring(2).verify(wire.decode(wire.encode(MESSAGES["batch"])))


@pytest.mark.parametrize("path, new", [
    (("s",), 1),
    (("m",), "00" * 64),
    (("v",), 9),
    (("n",), 9),
    (("d",), "00"),
    (("k",), "commit"),
    (("p",), "AAAA"),
    (("x", 2, 0, 1, 0), "n9"),
    (("x", 1), 6),
    (("f", 0, "v"), 2),
], ids=lambda x: "/".join(map(str, x)) if isinstance(x, tuple) else "")
def test_a_field_altered_in_the_json_does_not_verify(path: tuple[Any, ...], new: Any) -> None:
    msg = MESSAGES["nested"] if path[0] == "f" else MESSAGES["batch"] if path[0] == "x" else MESSAGES["payload"]
    data = as_data(msg)
    node = data
    for step in path[:-1]:
        node = node[step]
    assert node[path[-1]] != new
    node[path[-1]] = new
    altered = from_data(data)
    assert not ring().verify(altered, deep=True)


def test_the_receiver_altered_in_the_json_still_verifies() -> None:
    data = as_data(MESSAGES["batch"])
    data["r"] = 1
    assert ring().verify(from_data(data))


# --- malformed input -------------------------------------------------------------------------


def nested_proof(depth: int) -> dict[str, Any]:
    data = as_data(MESSAGES["unsigned"])
    for _ in range(depth):
        data = {**as_data(MESSAGES["unsigned"]), "f": [data]}
    return data


def test_the_deepest_certificate_nesting_allowed_decodes() -> None:
    assert from_data(nested_proof(wire.MAX_PROOF_DEPTH)).proof


VALID = as_data(MESSAGES["batch"])

MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "not json": b"not json at all",
    "truncated": wire.encode(MESSAGES["batch"])[:-3],
    "invalid utf-8": b'{"s": "\xff\xfe"}',
    "a list": b"[1, 2, 3]",
    "a number": b"42",
    "null": b"null",
    "missing field": json.dumps({k: v for k, v in VALID.items() if k != "d"}).encode(),
    "sender as text": json.dumps({**VALID, "s": "0"}).encode(),
    "sender as float": json.dumps({**VALID, "s": 0.0}).encode(),
    "bool where int": json.dumps({**VALID, "v": True}).encode(),
    "bool slot": json.dumps({**VALID, "n": False}).encode(),
    "digest as number": json.dumps({**VALID, "d": 7}).encode(),
    "mac as list": json.dumps({**VALID, "m": [1]}).encode(),
    "unknown kind": json.dumps({**VALID, "k": "shout"}).encode(),
    "kind as list": json.dumps({**VALID, "k": ["commit"]}).encode(),
    "bad hex mac": json.dumps({**VALID, "m": "zz"}).encode(),
    "odd hex mac": json.dumps({**VALID, "m": "abc"}).encode(),
    "bad base64": json.dumps({**VALID, "p": "***"}).encode(),
    "base64 as number": json.dumps({**VALID, "p": 12}).encode(),
    "value as text": json.dumps({**VALID, "x": "p"}).encode(),
    "empty value": json.dumps({**VALID, "x": []}).encode(),
    "unknown value form": json.dumps({**VALID, "x": ["q", 1, []]}).encode(),
    "placement too short": json.dumps({**VALID, "x": ["p", "j1", None]}).encode(),
    "placement nodes as text": json.dumps({**VALID, "x": ["p", "j1", "n1", ""]}).encode(),
    "placement node as number": json.dumps({**VALID, "x": ["p", "j1", [1], ""]}).encode(),
    "placement job as null": json.dumps({**VALID, "x": ["p", None, None, ""]}).encode(),
    "batch first as bool": json.dumps({**VALID, "x": ["b", True, []]}).encode(),
    "batch entries as object": json.dumps({**VALID, "x": ["b", 1, {"a": 1}]}).encode(),
    "batch entry malformed": json.dumps({**VALID, "x": ["b", 1, [["j1"]]]}).encode(),
    "proof as number": json.dumps({**VALID, "f": 3}).encode(),
    "proof as text": json.dumps({**VALID, "f": "abc"}).encode(),
    "proof of numbers": json.dumps({**VALID, "f": [1, 2]}).encode(),
    "proof nested too deep": json.dumps(nested_proof(wire.MAX_PROOF_DEPTH + 1)).encode(),
    "lone surrogate digest": json.dumps({**VALID, "d": "\ud800"}).encode(),
    "lone surrogate job": json.dumps({**VALID, "x": ["p", "j\udfff", None, ""]}).encode(),
    "lone surrogate node": json.dumps({**VALID, "x": ["b", 1, [["j1", ["\ud800"], ""]]]}).encode(),
    "json nested very deep": b"[" * 100_000 + b"]" * 100_000,
    "object nested very deep": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_input_is_a_wire_error(name: str) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(MALFORMED[name])


def test_a_wire_error_is_a_value_error() -> None:
    assert issubclass(wire.WireError, ValueError)


def test_a_value_of_another_type_has_no_wire_form() -> None:
    with pytest.raises(TypeError):
        wire.value_to_data(3.5)  # type: ignore[arg-type]


# --- random input: a WireError or a message, never anything else --------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["s", "r", "k", "v", "n", "d", "m", "x", "p", "f"]


def decodes_or_wire_error(data: bytes) -> None:
    try:
        msg = wire.decode(data)
    except wire.WireError:
        return
    # A message that decoded is one the rest of the stack can handle without raising.
    assert isinstance(msg, Message)
    wire.encode(msg)
    ring().verify(msg, deep=True)
    digest_of(msg.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_to_a_wire_error_or_a_message(data: bytes) -> None:
    decodes_or_wire_error(data)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_decodes_to_a_wire_error_or_a_message(value: Any) -> None:
    decodes_or_wire_error(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["batch", "nested", "payload"]), st.sampled_from(FIELDS), json_values, st.booleans())
def test_a_valid_message_with_one_field_replaced_by_random_json_is_handled(
        name: str, key: str, value: Any, nest: bool) -> None:
    data = as_data(MESSAGES[name])
    if nest and data.get("f"):
        data["f"][0][key] = value
    else:
        data[key] = value
    decodes_or_wire_error(json.dumps(data).encode())
