"""The phi-accrual failure detector (Hayashibara et al., SRDS 2004), as Akka and Cassandra use it.

Instead of "alive or dead after a timeout", it says how suspicious a silence is, given the heartbeats
seen so far: phi = -log10(P(a heartbeat arrives later than now)), where the inter-arrival times are
taken as normally distributed with the mean and standard deviation of a sliding window. phi = 1
means a 10% chance that the peer is still alive and merely late, phi = 8 one in 10^8: the threshold
Akka and Cassandra suspect at. The tail uses Akka's logistic approximation of the normal CDF.

Pure and clock-free: the caller passes the time of each heartbeat and of each question, so tests
drive it with made-up times and agents with the monotonic clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

THRESHOLD = 8.0  # Akka's and Cassandra's default suspicion threshold


@dataclass(slots=True)
class PhiAccrual:
    """The detector for one peer. Times are seconds on the caller's monotonic clock."""

    first_estimate: float = 0.2  # the expected heartbeat interval before any interval is seen
    min_std: float = 0.1  # a floor under the standard deviation: very regular heartbeats make phi jumpy
    acceptable_pause: float = 0.0  # added to the mean: a pause this long is not suspicious
    window: int = 1000  # inter-arrival times kept (Akka's max-sample-size)
    _intervals: deque[float] = field(default_factory=deque)
    _sum: float = 0.0
    _squares: float = 0.0
    last: float | None = None

    def heartbeat(self, now: float) -> None:
        """A heartbeat arrived at ``now``."""
        if self.last is None:
            # Bootstrap as Akka does: two intervals around the first estimate, so phi is defined at once.
            self._add(self.first_estimate - self.first_estimate / 4)
            self._add(self.first_estimate + self.first_estimate / 4)
        else:
            self._add(max(0.0, now - self.last))
        self.last = now

    def phi(self, now: float) -> float:
        """Suspicion level at ``now`` (0 before the first heartbeat: nothing is expected yet)."""
        if self.last is None:
            return 0.0
        n = len(self._intervals)
        mean = self._sum / n
        std = max(self.min_std, math.sqrt(max(0.0, self._squares / n - mean * mean)))
        return _phi(now - self.last, mean + self.acceptable_pause, std)

    def suspected(self, now: float, threshold: float = THRESHOLD) -> bool:
        """phi at ``now`` is above ``threshold``."""
        return self.phi(now) > threshold

    def _add(self, interval: float) -> None:
        if len(self._intervals) >= self.window:
            old = self._intervals.popleft()
            self._sum -= old
            self._squares -= old * old
        self._intervals.append(interval)
        self._sum += interval
        self._squares += interval * interval


def _phi(elapsed: float, mean: float, std: float) -> float:
    """-log10 of the probability that a heartbeat is later than ``elapsed`` (Akka's formula)."""
    y = (elapsed - mean) / std
    exponent = -y * (1.5976 + 0.070566 * y * y)
    if elapsed > mean:
        # -log10(e / (1 + e)) written so that a long silence (e underflowing to 0) stays finite.
        return -exponent / math.log(10) + math.log10(1.0 + math.exp(exponent))
    e = math.exp(min(exponent, 700.0))
    return -math.log10(1.0 - 1.0 / (1.0 + e))
