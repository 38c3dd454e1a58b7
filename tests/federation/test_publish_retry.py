"""A publish whose answer is lost with a server lands all the same: its retry is answered "duplicate".
That is this call's own entry, not one someone else published (a fresh clone's chaos test counted a
job it had submitted itself as "already in the job log, not submitted again")."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
from nats.js.api import PubAck

from llm_sched.federation.client import publish_entry


class _FailingOver:
    """A stream that takes the first publish but loses its answer, then dedups by message id."""

    def __init__(self, seen_before: set[str] | None = None) -> None:
        self.ids: dict[str, int] = {i: n for n, i in enumerate(seen_before or (), start=1)}
        self.lost_answers = 1

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> PubAck:
        msg_id = headers["Nats-Msg-Id"]
        duplicate = msg_id in self.ids
        seq = self.ids.setdefault(msg_id, len(self.ids) + 1)
        if self.lost_answers:
            self.lost_answers -= 1
            raise nats.errors.TimeoutError
        return PubAck(stream="JOBS", seq=seq, duplicate=duplicate)


def _publish(js: Any, msg_id: str) -> PubAck:
    return asyncio.run(publish_entry(js, "jobs", b"{}", msg_id))


def test_an_entry_whose_answer_was_lost_counts_as_this_calls_own() -> None:
    ack = _publish(_FailingOver(), "j1")
    assert ack.seq == 1 and not ack.duplicate


def test_an_id_published_before_the_call_is_still_a_duplicate() -> None:
    js = _FailingOver({"j1"})
    js.lost_answers = 0
    ack = _publish(js, "j1")
    assert ack.seq == 1 and ack.duplicate
