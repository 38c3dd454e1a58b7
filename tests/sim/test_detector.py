"""The phi-accrual failure detector: a late heartbeat is tolerated, a stopped process is suspected."""

from __future__ import annotations

import math
import random

import pytest

from llm_sched.sim.detector import DetectorConfig, PhiAccrualDetector, detection_time


def jittered(detector: PhiAccrualDetector, beats: int, seed: int = 7, jitter: float = 0.05) -> float:
    """Feed ``beats`` heartbeats about 1 s apart (normal jitter); returns the last arrival time."""
    rng = random.Random(seed)
    t = 0.0
    for _ in range(beats):
        detector.heartbeat(t)
        t += max(0.01, rng.gauss(1.0, jitter))
    return detector.last or 0.0


def test_phi_is_zero_before_any_heartbeat_and_grows_while_none_comes() -> None:
    d = PhiAccrualDetector()
    assert d.phi(100.0) == 0.0
    last = jittered(d, 200)
    values = [d.phi(last + x) for x in (0.5, 1.0, 1.2, 1.4, 1.6, 2.0)]
    assert values == sorted(values) and values[0] < 0.5
    assert d.phi(last + 60) == math.inf  # the probability underflows: certainly gone


def test_a_late_heartbeat_within_normal_jitter_is_not_suspected() -> None:
    d = PhiAccrualDetector(threshold=8.0)
    last = jittered(d, 200)
    mean, std = d.stats()
    assert mean == pytest.approx(1.0, abs=0.02)
    assert std == pytest.approx(0.1)  # the 50 ms jitter is below Akka's 100 ms floor
    # Three deviations late: rare but normal; phi stays far below 8 (about 2.9).
    assert d.phi(last + mean + 3 * std) < 3.5
    assert not d.suspects(last + mean + 3 * std)
    # It arrives: the detector is calm again.
    d.heartbeat(last + mean + 3 * std)
    assert d.phi(last + mean + 3 * std + 0.5) < 0.1


def test_a_stopped_process_is_suspected_within_a_bounded_time() -> None:
    d = PhiAccrualDetector(threshold=8.0)
    last = jittered(d, 200)
    at = d.suspicion_time()
    # Solved exactly: phi crosses the threshold at that instant, not before.
    assert d.phi(at) == pytest.approx(8.0, abs=1e-6)
    assert not d.suspects(at - 0.01) and d.suspects(at + 0.01)
    # mean + 5.6 deviations: well under two heartbeat intervals after the last heartbeat.
    assert last + 1.0 < at < last + 2.0


def test_noisier_heartbeats_take_longer_to_suspect() -> None:
    calm, noisy = PhiAccrualDetector(), PhiAccrualDetector()
    jittered(calm, 200, jitter=0.05)
    jittered(noisy, 200, jitter=0.4)
    assert noisy.suspicion_time() - noisy.last > calm.suspicion_time() - calm.last  # type: ignore[operator]


def test_heartbeats_must_not_go_backwards() -> None:
    d = PhiAccrualDetector()
    d.heartbeat(5.0)
    with pytest.raises(ValueError):
        d.heartbeat(4.0)
    with pytest.raises(ValueError):
        PhiAccrualDetector().suspicion_time()


def test_detection_time_is_seeded_and_bounded() -> None:
    config = DetectorConfig()
    delays = [detection_time(random.Random(s), 1000.0, config) - 1000.0 for s in range(200)]
    assert delays == [detection_time(random.Random(s), 1000.0, config) - 1000.0 for s in range(200)]
    # The last heartbeat came up to one interval before the failure; suspicion follows it by
    # mean + 5.6 deviations, about 1.56 s: the delay after the failure lies in (0.5, 1.7).
    assert all(0.5 < d < 1.7 for d in delays)
    assert 0.9 < sum(delays) / len(delays) < 1.2
