"""``federation up`` makes the streams and buckets on a bus whose servers may have just started: a
cluster of three elects its JetStream leaders first, which on a loaded machine takes seconds. A
timeout there is asked again, and one that lasts is a message, not a traceback (seen on a fresh
clone's test run: `nats: timeout` with a traceback)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from llm_sched.errors import UserError
from llm_sched.federation import launcher
from llm_sched.federation.launcher import LAYOUT_ATTEMPTS, Bus
from tests.federation.test_replica import seven


class _Connection:
    def jetstream(self, timeout: float) -> object:
        return object()

    async def drain(self) -> None: ...


def _bus_that_times_out(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    calls: list[int] = []

    async def connect(*_: Any, **__: Any) -> _Connection:
        return _Connection()

    async def ensure_layout(*_: Any) -> None:
        calls.append(1)
        if len(calls) <= times:
            raise nats.errors.TimeoutError

    async def no_wait(_: float) -> None: ...

    monkeypatch.setattr(launcher, "connect", connect)
    monkeypatch.setattr(launcher, "ensure_layout", ensure_layout)
    monkeypatch.setattr(launcher.asyncio, "sleep", no_wait)
    return calls


def test_a_bus_still_electing_its_leaders_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _bus_that_times_out(monkeypatch, times=2)
    asyncio.run(launcher._layout(seven(), Bus("nats://127.0.0.1:1", replicas=3)))
    assert len(calls) == 3


def test_a_bus_that_never_answers_is_a_message_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _bus_that_times_out(monkeypatch, times=LAYOUT_ATTEMPTS)
    with pytest.raises(UserError, match=r"the bus at nats://127.0.0.1:1 did not make the federation's streams and "
                                        r"buckets \(6 attempts; the last: TimeoutError: nats: timeout\); if its "
                                        r"servers were just started, run the command again"):
        asyncio.run(launcher._layout(seven(), Bus("nats://127.0.0.1:1", replicas=3)))
    assert len(calls) == LAYOUT_ATTEMPTS


