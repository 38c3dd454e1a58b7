"""Quorum arithmetic against docs/REFERENCE.md, and the intersection property it exists for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum, crash_f, majority, min_intersection

# n, f, q (Byzantine), majority (crash): the table in REFERENCE.md, "Quorums".
REFERENCE = [
    (4, 1, 3, 3),
    (5, 1, 4, 3),
    (6, 1, 4, 4),
    (7, 2, 5, 4),
    (10, 3, 7, 6),
]


@pytest.mark.parametrize(("n", "f", "q", "maj"), REFERENCE)
def test_reference_table(n: int, f: int, q: int, maj: int) -> None:
    assert byzantine_f(n) == f
    assert byzantine_quorum(n) == q
    assert majority(n) == maj


@pytest.mark.parametrize(("n", "fc"), [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (7, 3), (10, 4)])
def test_crash_bound(n: int, fc: int) -> None:
    assert crash_f(n) == fc


def test_rejects_empty_group() -> None:
    with pytest.raises(ValueError):
        byzantine_quorum(0)


@given(st.integers(min_value=1, max_value=500))
def test_two_byzantine_quorums_share_an_honest_agent(n: int) -> None:
    f, q = byzantine_f(n), byzantine_quorum(n)
    assert min_intersection(n, q) >= f + 1  # so at least one member of the overlap is honest
    assert q <= n - f  # and the honest agents alone can still form a quorum


@given(st.integers(min_value=1, max_value=500))
def test_two_majorities_intersect(n: int) -> None:
    assert min_intersection(n, majority(n)) >= 1
    assert majority(n) <= n - crash_f(n)


@given(st.integers(min_value=4, max_value=200))
def test_one_below_the_quorum_can_miss_the_honest_overlap(n: int) -> None:
    """Why q and not q-1 whenever n + f + 1 is even: two (q-1)-quorums may overlap in f agents."""
    f, q = byzantine_f(n), byzantine_quorum(n)
    if (n + f + 1) % 2 == 0:
        assert min_intersection(n, q - 1) <= f
