"""Commands (`federation up`, `submit`) and the executor make the streams and buckets on a bus whose
servers may have just started: a cluster of three elects its JetStream leaders first, which on a
loaded machine takes seconds. A timeout there is asked again, and one that lasts is a message, not a
traceback (seen on a fresh clone's test run: `nats: timeout` with a traceback from `federation up`)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from llm_sched.errors import UserError
from llm_sched.federation import bus
from llm_sched.federation.bus import LAYOUT_ATTEMPTS, layout_for
from tests.federation.test_replica import seven


def _bus_that_times_out(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    calls: list[int] = []

    async def ensure_layout(*_: Any) -> None:
        calls.append(1)
        if len(calls) <= times:
            raise nats.errors.TimeoutError

    async def no_wait(_: float) -> None: ...

    monkeypatch.setattr(bus, "ensure_layout", ensure_layout)
    monkeypatch.setattr(asyncio, "sleep", no_wait)
    return calls


def test_a_bus_still_electing_its_leaders_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _bus_that_times_out(monkeypatch, times=2)
    asyncio.run(layout_for(object(), seven().subjects, 3, "nats://127.0.0.1:1"))
    assert len(calls) == 3


def test_a_bus_that_never_answers_is_a_message_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _bus_that_times_out(monkeypatch, times=LAYOUT_ATTEMPTS)
    with pytest.raises(UserError, match=r"the bus at nats://127.0.0.1:1 did not make the federation's streams and "
                                        r"buckets \(6 attempts; the last: TimeoutError: nats: timeout\); if its "
                                        r"servers were just started, run the command again"):
        asyncio.run(layout_for(object(), seven().subjects, 3, "nats://127.0.0.1:1"))
    assert len(calls) == LAYOUT_ATTEMPTS
