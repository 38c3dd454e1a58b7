"""The phi-accrual failure detector, driven with made-up times (seconds)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_sched.transport.phi_accrual import THRESHOLD, PhiAccrual


def beating(intervals: list[float], **options: float) -> PhiAccrual:
    """A detector that saw a heartbeat at 0 and then one after each interval."""
    d = PhiAccrual(**options)  # type: ignore[arg-type]
    t = 0.0
    d.heartbeat(t)
    for gap in intervals:
        t += gap
        d.heartbeat(t)
    return d


def regular(count: int = 50, every: float = 0.2) -> PhiAccrual:
    return beating([every] * count)


def test_phi_is_zero_before_any_heartbeat() -> None:
    d = PhiAccrual()
    assert d.phi(0.0) == 0.0 and d.phi(1e6) == 0.0
    assert not d.suspected(1e6)


def test_phi_stays_low_right_after_regular_heartbeats() -> None:
    d = regular()
    last = d.last
    assert last is not None
    for silence in (0.0, 0.05, 0.1, 0.2):
        assert d.phi(last + silence) < 1.0
    assert not d.suspected(last + 0.3)


def test_one_heartbeat_is_enough_to_judge_a_silence() -> None:
    d = PhiAccrual(first_estimate=0.2)
    d.heartbeat(10.0)
    assert d.phi(10.05) < 1.0
    assert d.suspected(12.0)


def test_phi_rises_monotonically_with_silence() -> None:
    d = regular()
    last = d.last
    assert last is not None
    phis = [d.phi(last + k * 0.01) for k in range(0, 1000)]
    assert all(b >= a for a, b in zip(phis, phis[1:], strict=False))
    assert phis[-1] > phis[0]


def test_phi_crosses_the_threshold_after_a_few_standard_deviations_of_silence() -> None:
    d = regular(every=0.2)  # mean 0.2 s, the standard deviation at its floor of 0.1 s
    last = d.last
    assert last is not None
    assert not d.suspected(last + 0.3)  # mean + 1 std
    assert d.suspected(last + 2.0)  # mean + 18 std
    crossing = next(k * 0.01 for k in range(1000) if d.phi(last + k * 0.01) > THRESHOLD)
    assert 0.2 + 2 * 0.1 < crossing < 0.2 + 8 * 0.1


def test_irregular_heartbeats_make_suspicion_slower() -> None:
    steady = regular(count=60, every=0.5)
    jittery = beating([0.1, 0.9] * 30)  # the same mean, a larger spread
    for silence in (1.0, 1.5, 2.0):
        assert jittery.phi(jittery.last + silence) < steady.phi(steady.last + silence)  # type: ignore[operator]
    assert steady.suspected(steady.last + 1.5) and not jittery.suspected(jittery.last + 1.5)  # type: ignore[operator]


def test_an_acceptable_pause_delays_suspicion() -> None:
    strict, lenient = regular(), beating([0.2] * 50, acceptable_pause=3.0)
    assert strict.suspected(strict.last + 2.0)  # type: ignore[operator]
    assert not lenient.suspected(lenient.last + 2.0)  # type: ignore[operator]


@pytest.mark.parametrize("silence", [10.0, 3600.0, 86_400.0 * 365, 1e9])
def test_a_very_long_silence_gives_a_large_finite_phi(silence: float) -> None:
    d = regular()
    phi = d.phi(d.last + silence)  # type: ignore[operator]
    assert math.isfinite(phi) and phi > 1_000
    assert d.suspected(d.last + silence)  # type: ignore[operator]


def test_a_question_about_a_time_before_the_last_heartbeat_is_not_suspicious() -> None:
    d = regular()
    assert 0.0 <= d.phi(d.last - 100.0) < 1.0  # type: ignore[operator]


def test_the_window_drops_old_intervals() -> None:
    # Long gaps first, then more short ones than the window holds: only the short ones count.
    forgetful = beating([5.0] * 20 + [0.2] * 30, window=10)
    fresh = beating([0.2] * 30, window=10)
    remembering = beating([5.0] * 20 + [0.2] * 30, window=1000)
    silence = 1.5
    assert forgetful.phi(forgetful.last + silence) == pytest.approx(fresh.phi(fresh.last + silence))  # type: ignore[operator]
    assert forgetful.suspected(forgetful.last + silence)  # type: ignore[operator]
    assert not remembering.suspected(remembering.last + silence)  # type: ignore[operator]


def test_a_heartbeat_ends_the_suspicion() -> None:
    d = regular()
    late = d.last + 5.0  # type: ignore[operator]
    assert d.suspected(late)
    d.heartbeat(late)
    assert not d.suspected(late + 0.1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=0, max_size=40), st.floats(-1e3, 1e12))
def test_phi_is_a_finite_non_negative_number_for_any_history(intervals: list[float], later: float) -> None:
    d = beating(intervals, window=16)
    phi = d.phi(d.last + later)  # type: ignore[operator]
    assert math.isfinite(phi) and phi >= 0.0
