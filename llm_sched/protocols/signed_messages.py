"""Protocol messages signed with Ed25519: the key ring of agents that run as separate processes.

The seeded :class:`~llm_sched.protocols.messages.KeyRing` stands in for a public-key infrastructure
inside one process: every key derives from a seed, so whoever knows the seed could sign for anyone.
Across processes on a message bus that is not good enough: a Byzantine process would forge another
agent's prepare or commit. Here each agent holds its own Ed25519 private key and every process holds
only the others' public keys (the federation's *genesis*), so only an agent can produce its messages,
and a certificate made of its messages is checkable by anyone, offline.

The cores do not change: :class:`Ed25519Signer` and :class:`Ed25519KeyRing` are drop-in subclasses of
the seeded ones (``make``, ``seal``, ``verify``, ``signer``).

What the signature covers: every field of the message except the receiver (the receiver-free body,
under a domain tag). A vote, a proposal or a certificate says the same thing to every peer, as
CometBFT's signed votes do; the receiver is routing. That lets one signature serve all n-1 copies of a
broadcast, and lets a transport publish a broadcast once.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from llm_sched.protocols.messages import BROADCAST, AgentId, KeyRing, Message, Signer

MESSAGE_TAG = b"llm-sched/message/v1\x00"  # domain separation from vote statements (core.signing)


def signed_body(msg: Message, context: bytes = b"") -> bytes:
    """What a message's signature covers: the tag, the context (which federation and consensus
    instance: a message cannot be replayed into another) and the body without the receiver."""
    head = MESSAGE_TAG + len(context).to_bytes(4, "big") + context
    if msg.receiver == BROADCAST:
        return head + msg.body()
    neutral = Message(msg.sender, BROADCAST, msg.kind, msg.view, msg.slot, msg.digest, msg.value, msg.payload,
                      msg.proof)
    return head + neutral.body()


def public_hex(key: Ed25519PrivateKey) -> str:
    """The raw public key, hex: what the genesis lists for an agent."""
    return key.public_key().public_bytes_raw().hex()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM, for the agent's own key file (mode 0600)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key(hex_key: str) -> Ed25519PublicKey:
    """A public key from its hex form; ValueError when it is not one."""
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))


def load_private_pem(data: bytes) -> Ed25519PrivateKey:
    """An agent's private key from its key file; ValueError when it is not an Ed25519 key."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


class Ed25519Signer(Signer):
    """Produces one agent's messages; the only holder of its private key."""

    __slots__ = ("_private", "_context", "_last")

    def __init__(self, agent_id: AgentId, private: Ed25519PrivateKey, context: bytes = b"") -> None:
        super().__init__(agent_id, b"")
        self._private, self._context = private, context
        # The last (signed bytes, signature): a broadcast is n-1 copies with the same signed bytes.
        self._last: tuple[bytes, bytes] = (b"", b"")

    def seal(self, msg: Message) -> Message:
        """Sign ``msg`` with this agent's key, whatever sender it claims (a forgery then fails)."""
        signed = signed_body(msg, self._context)
        if self._last[0] != signed:
            self._last = (signed, self._private.sign(signed))
        return Message(msg.sender, msg.receiver, msg.kind, msg.view, msg.slot, msg.digest, msg.value, msg.payload,
                       msg.proof, self._last[1])

    def __repr__(self) -> str:  # never the key
        return f"Ed25519Signer(agent_id={self.agent_id})"


class Ed25519KeyRing(KeyRing):
    """The public keys of a set of agents (core id -> key), and this process's own signer if any."""

    __slots__ = ("_public", "_own", "_context")

    def __init__(self, public: Mapping[AgentId, Ed25519PublicKey], own: tuple[AgentId, Ed25519PrivateKey] | None = None,
                 context: bytes = b"") -> None:
        self._keys = {}
        self._good = set()
        self._public, self._own, self._context = dict(public), own, context

    def signer(self, agent_id: AgentId) -> Signer:
        """This process's signer; no other agent's key is here to hand out."""
        if self._own is None or self._own[0] != agent_id:
            raise KeyError(f"this process holds no private key of agent {agent_id}")
        return Ed25519Signer(agent_id, self._own[1], self._context)

    def verify_bytes(self, sender: AgentId, body: bytes, mac: bytes) -> bool:
        """``mac`` is ``sender``'s Ed25519 signature over ``body`` (already the signed bytes)."""
        if (sender, body, mac) in self._good:
            return True
        key = self._public.get(sender)
        if key is None or len(mac) != 64:
            return False
        try:
            key.verify(mac, body)
        except InvalidSignature:
            return False
        self._good.add((sender, body, mac))
        return True

    def verify(self, msg: Message, deep: bool = False) -> bool:
        """True when ``msg`` carries its claimed sender's signature over everything but the receiver."""
        if not self.verify_bytes(msg.sender, signed_body(msg, self._context), msg.mac):
            return False
        return not deep or all(self.verify(m, deep=True) for m in msg.proof)
