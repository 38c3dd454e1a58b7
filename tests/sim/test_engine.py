"""The discrete-event engine: time order, deterministic ties, ``until``, ``settle``."""

from __future__ import annotations

import math

import pytest

from llm_sched.sim.engine import Engine


def test_events_run_in_time_order_and_move_the_clock() -> None:
    engine = Engine()
    seen: list[tuple[float, str]] = []
    for at, name in [(5.0, "c"), (1.0, "a"), (3.0, "b")]:
        engine.schedule(at, lambda n: seen.append((engine.now, n)), name)
    assert engine.run() == 3
    assert seen == [(1.0, "a"), (3.0, "b"), (5.0, "c")]
    assert engine.now == 5.0
    assert engine.events_processed == 3


def test_simultaneous_events_run_in_scheduling_order() -> None:
    engine = Engine()
    seen: list[int] = []
    for k in range(50):
        engine.schedule(2.0, seen.append, k)
    engine.run()
    assert seen == list(range(50))


def test_events_scheduled_for_now_run_after_those_already_due_now() -> None:
    engine = Engine()
    seen: list[str] = []

    def first(_: object) -> None:
        seen.append("first")
        engine.schedule(engine.now, seen.append, "scheduled by first")

    engine.schedule(1.0, first)
    engine.schedule(1.0, seen.append, "second")
    engine.run()
    assert seen == ["first", "second", "scheduled by first"]


def test_run_until_stops_after_events_due_at_until_and_can_resume() -> None:
    engine = Engine()
    seen: list[float] = []
    for at in (1.0, 2.0, 3.0):
        engine.schedule(at, seen.append, at)
    assert engine.run(until=2.0) == 2
    assert seen == [1.0, 2.0] and engine.now == 2.0
    assert engine.peek() == 3.0 and engine.pending() == 1
    engine.run(until=10.0)
    assert seen == [1.0, 2.0, 3.0] and engine.now == 10.0
    assert engine.peek() == math.inf


def test_scheduling_in_the_past_is_refused() -> None:
    engine = Engine(start=5.0)
    with pytest.raises(ValueError, match="clock already reads 5.0"):
        engine.schedule(4.0, print)


def test_settle_runs_once_per_instant_after_all_its_events() -> None:
    engine = Engine()
    log: list[str] = []
    for at, name in [(1.0, "a1"), (1.0, "a2"), (2.0, "b")]:
        engine.schedule(at, log.append, name)

    def settle() -> None:
        log.append(f"settle@{engine.now:g}")
        if engine.now == 2.0 and "late" not in log:
            engine.schedule(engine.now, log.append, "late")  # same instant: settle again after

    engine.run(settle=settle)
    assert log == ["a1", "a2", "settle@1", "b", "settle@2", "late", "settle@2"]
