"""Protocol messages as bytes on a real bus, and back.

JSON, one object per message, with certificates (``proof``) nested. Decoding rebuilds exactly the
:class:`~llm_sched.protocols.messages.Message` that was encoded, so the receiver's signature check
covers what the sender signed; decoding never trusts the bytes: anything malformed is a
:class:`WireError`, which the transport counts and drops like a message with a bad signature.

Only the scheduler's values travel: :class:`PlacementValue` and :class:`PlacementBatch`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from llm_sched.protocols.messages import Kind, Message, PlacementBatch, PlacementValue, Value

MAX_PROOF_DEPTH = 4  # certificates inside view changes inside a new view; deeper is not a message of ours


class WireError(ValueError):
    """Bytes that are not a message of this protocol."""


def encode(msg: Message) -> bytes:
    """The message as compact JSON bytes."""
    return json.dumps(_to_data(msg), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(data: bytes) -> Message:
    """The message encoded in ``data``; :class:`WireError` when it is not one."""
    return message_from_data(parse_json(data, "a protocol message"))


def parse_json(data: bytes | str, what: str = "JSON") -> Any:
    """JSON read from the bus, where anyone allowed on it may have written anything; :class:`WireError`
    when it is not JSON, or nests deeper than Python parses (RecursionError)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not {what} ({type(exc).__name__})") from None


def message_to_data(msg: Message) -> dict[str, Any]:
    """The message as JSON data (what :func:`encode` writes), for records that embed messages."""
    return _to_data(msg)


def message_from_data(data: Any) -> Message:
    """The message of :func:`message_to_data` data; :class:`WireError` when it is not one."""
    try:
        return _from_data(data, 0)
    except WireError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise WireError(f"not a protocol message ({type(exc).__name__})") from None


def value_to_data(value: Value | None) -> Any:
    """A value as JSON data: a placement ``["p", job, nodes|null, reason]`` or a batch ``["b", first, [...]]``."""
    if value is None:
        return None
    if isinstance(value, PlacementValue):
        return ["p", *_entry(value)]
    if isinstance(value, PlacementBatch):
        return ["b", value.first, [_entry(e) for e in value.entries], list(value.skip)]
    raise TypeError(f"no wire form for {type(value).__name__}")


def value_from_data(data: Any) -> Value | None:
    """The value of :func:`value_to_data` (WireError when malformed)."""
    if data is None:
        return None
    if not isinstance(data, list) or not data:
        raise WireError("a value must be a list")
    if data[0] == "p" and len(data) == 4:
        return _placement(data[1:])
    if data[0] == "b" and len(data) == 4 and _is_int(data[1]) and isinstance(data[2], list) \
            and isinstance(data[3], list) and all(_is_int(m) for m in data[3]):
        return PlacementBatch(data[1], tuple(_placement(e) for e in data[2]), tuple(data[3]))
    raise WireError("unknown value form")


def _entry(v: PlacementValue) -> list[Any]:
    return [v.job_id, None if v.placement is None else list(v.placement), v.reason]


def _placement(e: Any) -> PlacementValue:
    if not isinstance(e, list) or len(e) != 3:
        raise WireError("a placement must be [job, nodes, reason]")
    job, nodes, reason = e
    if not _is_text(job) or not _is_text(reason):
        raise WireError("a placement's job and reason must be text")
    if nodes is not None and (not isinstance(nodes, list) or not all(_is_text(n) for n in nodes)):
        raise WireError("a placement's nodes must be a list of names")
    return PlacementValue(job, None if nodes is None else tuple(nodes), reason)


def _is_text(x: Any) -> bool:
    """A string that encodes as UTF-8: JSON's escapes can spell a lone surrogate (``"\\ud800"``), which
    json.loads accepts but which no canonical encoding (signature, digest, re-encoding) can take."""
    if not isinstance(x, str):
        return False
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _to_data(m: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"s": m.sender, "r": m.receiver, "k": m.kind.value, "v": m.view, "n": m.slot,
                            "d": m.digest, "m": m.mac.hex()}
    if m.value is not None:
        data["x"] = value_to_data(m.value)
    if m.payload:
        data["p"] = base64.b64encode(m.payload).decode("ascii")
    if m.proof:
        data["f"] = [_to_data(p) for p in m.proof]
    return data


def _from_data(data: Any, depth: int) -> Message:
    if not isinstance(data, dict):
        raise WireError("a message must be an object")
    if depth > MAX_PROOF_DEPTH:
        raise WireError("certificates nested too deep")
    ints = [data["s"], data["r"], data["v"], data["n"]]
    if not all(_is_int(i) for i in ints) or not _is_text(data["d"]) or not isinstance(data["m"], str):
        raise WireError("a message's numbers and digest have the wrong types")
    proof = tuple(_from_data(p, depth + 1) for p in data.get("f", ()))
    payload = base64.b64decode(data["p"], validate=True) if "p" in data else b""
    return Message(data["s"], data["r"], Kind(data["k"]), data["v"], data["n"], data["d"],
                   value_from_data(data.get("x")), payload, proof, bytes.fromhex(data["m"]))
