"""The phi-accrual failure detector (Hayashibara, Defago, Yared, Katayama; SRDS 2004).

A monitor records the arrival time of each heartbeat from one process. From a window of recent
inter-arrival times it estimates their distribution, a normal one of mean ``mu`` and standard
deviation ``sigma`` (as Akka and Cassandra's accrual detectors do), and turns the time since the
last heartbeat into a suspicion level::

    phi(t) = -log10( P(X > t - last) ),   X ~ Normal(mu + acceptable_pause, max(sigma, min_std))

phi grows without bound while no heartbeat comes; the process is suspected once phi reaches the
threshold (shared/docs/REFERENCE.md: heartbeat every 1 s, threshold 8). A threshold of 8 means a
live process is wrongly suspected about once in 10^8 heartbeats, if the normal model holds.

Because phi only grows between two heartbeats, the instant it reaches the threshold has a closed
form, ``last + mu + pause + sigma * z`` with ``z`` the standard normal quantile of ``1 - 10^-threshold``
(:meth:`PhiAccrualDetector.suspicion_time`). The simulator uses it to place detection events without
simulating every heartbeat of a months-long trace: :func:`detection_time` feeds a detector a seeded,
jittered history of heartbeats up to a failure and solves for the instant of suspicion.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Heartbeat and detector settings. Times in seconds.

    ``interval`` and ``threshold`` follow REFERENCE.md (1 s, 8). ``min_std`` is Akka's floor on the
    estimated deviation (100 ms), so a perfectly regular history does not make the detector
    hair-triggered. ``jitter`` is the standard deviation of the simulated inter-arrival times
    (network and scheduling noise) used by :func:`detection_time`.
    """

    interval: float = 1.0  # seconds between heartbeats
    threshold: float = 8.0  # phi at which a peer is suspected
    window: int = 100  # heartbeats the estimate remembers
    min_std: float = 0.1
    acceptable_pause: float = 0.0
    jitter: float = 0.05

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.threshold <= 0 or self.window < 1 or self.min_std <= 0:
            raise ValueError(f"invalid detector settings: {self}")


class PhiAccrualDetector:
    """Suspicion level of one monitored process from the arrival times of its heartbeats.

    Before the first inter-arrival time is known, the window is primed as Akka does: two samples
    at ``first_interval`` plus and minus a quarter of it (mean ``first_interval``, deviation a quarter
    of it), so a new detector is cautious rather than trigger-happy.
    """

    __slots__ = ("_intervals", "acceptable_pause", "last", "min_std", "threshold")

    def __init__(
        self,
        threshold: float = 8.0,
        window: int = 100,
        min_std: float = 0.1,
        acceptable_pause: float = 0.0,
        first_interval: float = 1.0,
    ) -> None:
        if window < 2:
            raise ValueError(f"window must hold at least 2 intervals, got {window}")
        self.threshold = threshold
        self.min_std = min_std
        self.acceptable_pause = acceptable_pause
        self.last: float | None = None  # arrival time of the latest heartbeat
        spread = first_interval / 4
        self._intervals: deque[float] = deque(
            (first_interval - spread, first_interval + spread), maxlen=window
        )

    @classmethod
    def from_config(cls, config: DetectorConfig) -> PhiAccrualDetector:
        """A detector with the threshold, window and floors of ``config``."""
        return cls(config.threshold, config.window, config.min_std, config.acceptable_pause, config.interval)

    def heartbeat(self, t: float) -> None:
        """Record a heartbeat arriving at time ``t`` (times must not go backwards)."""
        if self.last is not None:
            if t < self.last:
                raise ValueError(f"heartbeat at {t} is earlier than the previous one at {self.last}")
            self._intervals.append(t - self.last)
        self.last = t

    def stats(self) -> tuple[float, float]:
        """Mean and standard deviation (floored at ``min_std``) of the inter-arrival window."""
        values = self._intervals
        n = len(values)
        mean = math.fsum(values) / n
        var = math.fsum((v - mean) ** 2 for v in values) / n
        return mean, max(math.sqrt(var), self.min_std)

    def phi(self, t: float) -> float:
        """Suspicion level at time ``t``: -log10 of the probability that a heartbeat is this late.

        0 before any heartbeat has arrived; ``inf`` once the probability underflows.
        """
        if self.last is None:
            return 0.0
        mean, std = self.stats()
        z = (t - self.last - mean - self.acceptable_pause) / std
        p_later = 0.5 * math.erfc(z / math.sqrt(2.0))
        return -math.log10(p_later) if p_later > 0.0 else math.inf

    def suspects(self, t: float) -> bool:
        """True when ``phi(t)`` has reached the threshold."""
        return self.phi(t) >= self.threshold

    def suspicion_time(self) -> float:
        """The instant phi reaches the threshold if no further heartbeat arrives (exact)."""
        if self.last is None:
            raise ValueError("no heartbeat recorded yet")
        mean, std = self.stats()
        z = -_STANDARD_NORMAL.inv_cdf(10.0 ** -self.threshold)
        return self.last + mean + self.acceptable_pause + std * z


def detection_time(rng: random.Random, failed_at: float, config: DetectorConfig) -> float:
    """When a monitor suspects a process that stopped at ``failed_at``.

    The process sent a heartbeat every ``config.interval`` seconds; arrivals jitter (normal,
    ``config.jitter``). The last heartbeat before the failure arrived a uniform fraction of an
    interval earlier (the failure's phase). A window's worth of history ending there is drawn from
    ``rng``, fed to a :class:`PhiAccrualDetector`, and the suspicion instant solved exactly.
    Never earlier than ``failed_at``.
    """
    last = failed_at - rng.uniform(0.0, config.interval)
    gaps = [max(1e-3, rng.gauss(config.interval, config.jitter)) for _ in range(config.window)]
    detector = PhiAccrualDetector.from_config(config)
    t = last - math.fsum(gaps)
    detector.heartbeat(t)
    for gap in gaps:
        t += gap
        detector.heartbeat(t)
    detector.last = last  # the sum of the gaps puts t there, up to rounding
    return max(failed_at, detector.suspicion_time())
