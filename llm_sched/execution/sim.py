"""The ``sim`` executor: jobs end when their runtime has passed on the simulated clock (never fail)."""

from __future__ import annotations

import heapq
import math

from llm_sched.core.model import Job, Placement
from llm_sched.execution.base import Executor, Finished, Started, Update


class SimExecutor(Executor):
    name = "sim"

    def __init__(self) -> None:
        self._now = 0.0
        self._ends: list[tuple[float, str]] = []

    def now(self) -> float:
        return self._now

    async def start(self, job: Job, placement: Placement) -> Started:
        heapq.heappush(self._ends, (self._now + job.runtime_s, job.id))
        return Started(job.id, placement.nodes, None, self._now)

    async def advance(self, until: float) -> list[Update]:
        ended: list[Update] = []
        while self._ends and self._ends[0][0] <= until:
            end, job_id = heapq.heappop(self._ends)
            ended.append(Finished(job_id, "completed", end))
        if math.isfinite(until):
            self._now = max(self._now, until)
        elif ended:
            self._now = max(self._now, ended[-1].sim_time)  # type: ignore[union-attr]
        return ended

    @property
    def running(self) -> int:
        return len(self._ends)
