"""Quorum arithmetic shared by every protocol core.

All functions are pure and total for ``n >= 1``; they are the single source of the thresholds the
cores and the tests use (see docs/REFERENCE.md, "Quorums").
"""

from __future__ import annotations


def _check(n: int) -> None:
    if n < 1:
        raise ValueError(f"need at least one agent, got n={n}")


def byzantine_f(n: int) -> int:
    """Largest number of Byzantine agents n agents tolerate: floor((n-1)/3)."""
    _check(n)
    return (n - 1) // 3


def crash_f(n: int) -> int:
    """Largest number of crashed agents n agents tolerate: floor((n-1)/2)."""
    _check(n)
    return (n - 1) // 2


def byzantine_quorum(n: int) -> int:
    """Byzantine quorum ceil((n + f + 1) / 2): any two such quorums share at least f+1 agents.

    It equals 2f+1 when n = 3f+1 and is larger otherwise (n=5: q=4, not 3, because two quorums of
    3 out of 5 may share only the one Byzantine agent). It keeps an honest agent in every
    intersection while n - f >= q honest agents can still form a quorum on their own.
    """
    f = byzantine_f(n)
    return -(-(n + f + 1) // 2)


def majority(n: int) -> int:
    """Crash-fault quorum: floor(n/2) + 1; any two majorities intersect."""
    _check(n)
    return n // 2 + 1


def min_intersection(n: int, q: int) -> int:
    """Fewest agents two quorums of size q out of n can share (pigeonhole: 2q - n, never negative)."""
    _check(n)
    return max(0, 2 * q - n)


def weighted_quorum_fraction(n: int) -> float:
    """Share of the total weight a reputation-weighted Byzantine quorum needs: q/n.

    With equal weights it is exactly the Byzantine quorum q (4 of 6, 5 of 7). When weights are
    reputations, an agent caught lying loses weight, so it takes more honest weight to outvote it.
    """
    return byzantine_quorum(n) / n


def weighted_quorum_met(accepting: float, total: float, n: int) -> bool:
    """True when the accepting weight reaches q/n of the total weight (a tolerance for float sums)."""
    return total > 0 and accepting >= weighted_quorum_fraction(n) * total - 1e-9
