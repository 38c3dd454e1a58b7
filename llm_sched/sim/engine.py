"""A minimal discrete-event engine: one heap of timed callbacks and a simulated clock.

SimPy-sized in spirit but without processes or generators: an event is a plain callable that
takes one payload argument. Entries are ``(time, seq, event, data)`` tuples; ``seq`` grows
monotonically, so events due at the same time run in the order they were scheduled and the
heap never has to compare two callables. Nothing here reads the wall clock or polls.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

Event = Callable[[Any], None]
"""An event handler: called with the payload given to :meth:`Engine.schedule`."""


class Engine:
    """A discrete-event loop with a simulated clock ``now`` (seconds, or any unit the caller uses)."""

    __slots__ = ("now", "events_processed", "_heap", "_seq")

    def __init__(self, start: float = 0.0) -> None:
        """Create an engine whose clock reads ``start``."""
        self.now: float = start
        self.events_processed: int = 0
        self._heap: list[tuple[float, int, Event, Any]] = []
        # A C-level counter: cheaper than ``self._seq += 1`` in the hot path.
        self._seq = itertools.count()

    def schedule(self, at: float, event: Event, data: Any = None) -> None:
        """Run ``event(data)`` when the clock reaches ``at``.

        Events due at the same time run in scheduling order (first scheduled, first run).
        Raises ValueError if ``at`` lies in the past, because that would make time run backwards.
        """
        if at < self.now:
            raise ValueError(f"cannot schedule at t={at}: the clock already reads {self.now}")
        heapq.heappush(self._heap, (at, next(self._seq), event, data))

    def pending(self) -> int:
        """Number of events scheduled but not yet run."""
        return len(self._heap)

    def peek(self) -> float:
        """Time of the next event, or ``math.inf`` when nothing is scheduled."""
        return self._heap[0][0] if self._heap else math.inf

    def run(self, until: float | None = None, settle: Callable[[], None] | None = None) -> int:
        """Run events in time order until none remain or the next one is due after ``until``.

        Events due exactly at ``until`` are run. When ``until`` is given the clock ends at
        ``until`` (if it got that far without running out of events, it is moved there).

        ``settle``, if given, is called each time the events due at the current instant are
        all done, before the clock moves on: the place for decisions that must see every
        simultaneous change at once (a scheduling pass after all arrivals and ends at time t).
        Events it schedules for the current instant run next, followed by another ``settle``.
        Returns the number of events run by this call.
        """
        heap = self._heap
        pop = heapq.heappop
        limit = math.inf if until is None else until
        count = 0
        # Hot loops: locals only, one tuple unpack per event.
        if settle is None:
            while heap and heap[0][0] <= limit:
                at, _, event, data = pop(heap)
                self.now = at
                event(data)
                count += 1
        else:
            while heap and heap[0][0] <= limit:
                at, _, event, data = pop(heap)
                self.now = at
                event(data)
                count += 1
                if not heap or heap[0][0] != at:
                    settle()
        if until is not None and self.now < until:
            self.now = until
        self.events_processed += count
        return count
