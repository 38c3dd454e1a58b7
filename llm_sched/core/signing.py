"""Signed votes: one Ed25519 key pair per agent per run session, and the statement a vote signs.

A vote says "in run R, agent A accepts (or rejects) placement D for job J in round r". Its signature
covers exactly the canonical bytes of that statement (CometBFT signs its votes the same way), so a
vote cannot be moved to another run, job, round or placement, nor turned from a reject into an
accept, without its signature failing. Anyone holding the run's public keys can check it offline.

Private keys live only in memory, in the agent that owns them: they are never written, printed or
logged. A resumed run issues new keys (the run's next *key epoch*: the ledger epoch of the process
that signs), and the public keys of every epoch are stored with the run, so every certificate stays
checkable after the process that made it is gone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

STATEMENT_TAG = "llm-sched/vote/v1"  # domain separation: these bytes are a vote, of this format
SIGNATURE_HEX = 128  # an Ed25519 signature is 64 bytes


def _canonical(fields: Sequence[object]) -> bytes:
    # JSON of a fixed-order list: no dict ordering, no whitespace, UTF-8. Equal fields, equal bytes.
    return json.dumps(list(fields), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def placement_digest(job_id: str, pool: str, nodes: Sequence[str]) -> str:
    """Hex SHA-256 naming one placement of one job: what votes and certificates refer to."""
    return hashlib.sha256(_canonical([job_id, pool, list(nodes)])).hexdigest()


def vote_statement(run: str, agent: str, job_id: str, round_no: int, digest: str, accept: bool) -> bytes:
    """The bytes a vote's signature covers."""
    return _canonical([STATEMENT_TAG, run, agent, job_id, round_no, digest, accept])


class VoteKey:
    """One agent's private key for one key epoch of one run. Only its agent holds it."""

    __slots__ = ("agent", "run", "epoch", "_private")

    def __init__(self, agent: str, run: str, epoch: int) -> None:
        self.agent, self.run, self.epoch = agent, run, epoch
        self._private = Ed25519PrivateKey.generate()

    def public_hex(self) -> str:
        """The public half, as stored with the run."""
        return self._private.public_key().public_bytes_raw().hex()

    def sign(self, job_id: str, round_no: int, digest: str, accept: bool, *, agent: str | None = None) -> str:
        """Hex signature of this agent's vote. ``agent`` names another agent only in the hands of a
        forger: the statement then claims that agent, but the signature is still made with this key,
        which is exactly what the other agent's public key rejects."""
        statement = vote_statement(self.run, agent or self.agent, job_id, round_no, digest, accept)
        return self._private.sign(statement).hex()

    def __repr__(self) -> str:  # never the key itself
        return f"VoteKey(agent={self.agent!r}, run={self.run!r}, epoch={self.epoch})"


class PublicKeys:
    """A run's public keys by (key epoch, agent): checks any signed vote of the run."""

    def __init__(self, run: str, keys: Iterable[tuple[int, str, str]] = ()) -> None:
        self.run = run
        self._keys: dict[tuple[int, str], Ed25519PublicKey] = {}
        self._hex: dict[tuple[int, str], str] = {}
        for epoch, agent, public in keys:
            self.add(epoch, agent, public)

    @classmethod
    def of(cls, run: str, keys: Mapping[str, VoteKey]) -> PublicKeys:
        """The public halves of ``keys`` (agent -> its key)."""
        return cls(run, [(k.epoch, agent, k.public_hex()) for agent, k in keys.items()])

    def add(self, epoch: int, agent: str, public_hex: str) -> None:
        """Learn one agent's key of one epoch; a malformed key is a ValueError naming the agent."""
        try:
            raw = bytes.fromhex(public_hex)
            self._keys[(epoch, agent)] = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise ValueError(f"the public key of agent {agent} (key epoch {epoch}) is not an Ed25519 key") from None
        self._hex[(epoch, agent)] = public_hex

    def table(self) -> list[tuple[int, str, str]]:
        """Every (epoch, agent, public key hex), in order: what is stored with the run."""
        return [(epoch, agent, self._hex[(epoch, agent)]) for epoch, agent in sorted(self._hex)]

    def agents(self, epoch: int) -> list[str]:
        """The agents holding a key of ``epoch``: the run's members then."""
        return sorted(agent for e, agent in self._keys if e == epoch)

    def verify(self, agent: str, epoch: int, job_id: str, round_no: int, digest: str, accept: bool,
               signature: str) -> bool:
        """True when ``signature`` is ``agent``'s, made with its key of ``epoch``, over exactly this vote."""
        key = self._keys.get((epoch, agent))
        if key is None or len(signature) != SIGNATURE_HEX:
            return False
        try:
            key.verify(bytes.fromhex(signature), vote_statement(self.run, agent, job_id, round_no, digest, accept))
        except (InvalidSignature, ValueError):
            return False
        return True
