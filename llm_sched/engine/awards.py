"""The simulator agents' certified awards, packed for storage and checked offline.

A campaign stores, for every agents run, the public keys and one compact row per award: job, vote
round, placement (pools and node shares) and the quorum's signatures. The digest is not stored: the
check recomputes it from the placement, so a row whose placement was edited fails on every
signature. The quorum is counted from the number of agents, never read from the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_sched.core.decisions import Certificate, Signature
from llm_sched.core.signing import PublicKeys, placement_digest
from llm_sched.protocols.certificate import check_certificate
from llm_sched.protocols.quorum import byzantine_quorum


@dataclass(frozen=True, slots=True)
class CertifiedAward:
    """One award the agents decided: the job's attempt (the vote round), the placement, its certificate."""

    job_id: str
    round: int
    pool: str  # "p0+p3"
    nodes: tuple[str, ...]  # node shares: "p0:4", "p3:2"
    certificate: Certificate


def pack(context: str, keys: Sequence[tuple[int, str, str]], awards: Sequence[CertifiedAward]) -> dict[str, Any]:
    """What is stored of one agents run: its signing context, public keys and awards (plain JSON)."""
    return {"context": context, "keys": [list(k) for k in keys],
            "awards": [[a.job_id, a.round, a.pool, list(a.nodes),
                        [[s.agent, s.key_epoch, s.signature] for s in a.certificate.signatures]] for a in awards]}


def packed_keys(packed: dict[str, Any]) -> PublicKeys:
    """The public keys of a :func:`pack` record (KeyError, TypeError or ValueError when malformed)."""
    return PublicKeys(packed["context"], [(int(e), str(a), str(k)) for e, a, k in packed["keys"]])


def check_packed(packed: dict[str, Any], decisions: int) -> tuple[int, str | None]:
    """(awards checked, the first problem or None) of a :func:`pack` record whose run counted
    ``decisions`` decisions: each must carry a valid certificate of the run's members."""
    try:
        keys = packed_keys(packed)
        rows = packed["awards"]
    except (KeyError, TypeError, ValueError) as exc:
        return 0, f"the stored keys or awards are malformed ({exc})"
    members = keys.agents(0)
    if not members:
        return 0, "no public keys stored"
    if len(rows) != decisions:
        return 0, f"{decisions} decisions counted but {len(rows)} certified awards stored"
    for count, row in enumerate(rows):
        try:
            job_id, round_no, pool, nodes, sigs = row
            cert = Certificate(job_id=job_id, round=round_no, digest=placement_digest(job_id, pool, nodes),
                               quorum=byzantine_quorum(len(members)), voters=len(members),
                               signatures=tuple(Signature(agent=a, key_epoch=e, signature=s) for a, e, s in sigs))
        except (TypeError, ValueError) as exc:
            return count, f"award {count + 1} is malformed ({exc})"
        problem = check_certificate(cert, keys, job_id, pool, nodes, members)
        if problem is not None:
            return count, f"job {job_id} (round {round_no}): {problem}"
    return len(rows), None
