"""A shared coordination space (Linda's tuple space) on a JetStream KV bucket, and what is built on it.

- ``out(*fields)`` writes a tuple; ``rd(*pattern)`` reads a matching one and leaves it; ``in_(*pattern)``
  takes one. A pattern holds values (equal), types (``int``, ``str``: any value of it) or :data:`ANY`.
- Taking is a compare-and-set on the entry's revision (``delete(key, last=revision)``): when several
  members race for one tuple, exactly one delete succeeds and the others look again. Nothing is
  locked, and a member that dies holds nothing.
- Each space keeps a local index of the live tuples from a watch on the bucket (one consumer per
  member, kept open), so reads cost no request; only writes and takes go to the bus.

On top: :func:`barrier` (every party writes its arrival, all wait until ``parties`` arrivals are
there) and the phases of a multi-phase job (:func:`announce`, :func:`bid`, :func:`assign`,
:func:`take_assignment`, :func:`commit`): the coordinator announces, workers bid, the coordinator
waits for the bids (a barrier on them), takes them all and assigns the job to the best, the winner
takes its assignment (once), executes and commits its result.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from llm_sched.errors import UserError
from llm_sched.transport import wire

Scalar = str | int | float | bool | None
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's "wrong last sequence" error codes


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
"""A pattern field that matches any value."""


def matches(fields: Sequence[Scalar], pattern: Sequence[Any]) -> bool:
    """Whether a tuple matches a pattern (same length; each field equal, of the type, or ANY)."""
    if len(fields) != len(pattern):
        return False
    for value, want in zip(fields, pattern, strict=True):
        if want is ANY:
            continue
        if isinstance(want, type):
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                return False
        elif value != want or type(value) is not type(want):
            return False
    return True


class TupleSpace:
    """One member's handle on a shared space (open it with :meth:`open`; ``close`` when done)."""

    def __init__(self, kv) -> None:  # noqa: ANN001
        self._kv = kv
        self._live: dict[str, tuple[tuple[Scalar, ...], int]] = {}  # key -> (tuple, revision)
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._watcher = None
        self._task: asyncio.Task | None = None

    @classmethod
    async def open(cls, js, bucket: str, replicas: int = 1) -> TupleSpace:  # noqa: ANN001
        """The space in ``bucket`` (made if missing), with its index caught up with the bucket."""
        from nats.js.errors import BucketNotFoundError

        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(bucket=bucket, history=1, replicas=replicas)
        space = cls(kv)
        space._watcher = await kv.watchall()
        space._task = asyncio.create_task(space._follow())
        await asyncio.wait_for(space._ready.wait(), 10)
        return space

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._watcher is not None:
            await self._watcher.stop()

    async def _follow(self) -> None:
        """Keep the index in step with the bucket: puts add a tuple, deletes remove it."""
        async for entry in self._watcher:  # type: ignore[union-attr]
            if entry is None:  # the watch has delivered what the bucket held when it started
                self._ready.set()
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self._live.pop(entry.key, None)
            else:
                try:
                    self._live[entry.key] = (tuple(wire.parse_json(entry.value)), entry.revision)
                except (wire.WireError, TypeError):  # not a tuple of ours: someone else wrote it
                    self._live.pop(entry.key, None)
            self._ready.set()
            self._changed.set()

    # --- Linda's three operations ---------------------------------------------------------------

    async def out(self, *fields: Scalar) -> None:
        """Write a tuple (JSON scalars; the first, if an identifier, files it under its name)."""
        for f in fields:
            if not isinstance(f, (str, int, float, bool)) and f is not None:
                raise UserError(f"a tuple holds text, numbers, true/false or null, not {type(f).__name__}")
        tag = fields[0] if fields and isinstance(fields[0], str) and _TAG.match(fields[0]) else "_"
        await self._kv.create(f"t.{tag}.{uuid.uuid4().hex}", json.dumps(list(fields)).encode())

    async def rd(self, *pattern: Any, timeout: float | None = None) -> tuple[Scalar, ...]:
        """A matching tuple, left in the space (the oldest); waits up to ``timeout`` (TimeoutError)."""
        key = await self._wait_for(lambda: self._oldest(pattern), timeout)
        return self._live[key][0]

    async def in_(self, *pattern: Any, timeout: float | None = None) -> tuple[Scalar, ...]:
        """Take a matching tuple (the oldest this member can win); waits up to ``timeout`` (TimeoutError)."""
        from nats.js.errors import BadRequestError

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            key = await self._wait_for(lambda: self._oldest(pattern), remaining)
            fields, revision = self._live[key]
            try:
                await self._kv.delete(key, last=revision)  # compare-and-set: only one taker wins
            except BadRequestError as exc:  # KeyWrongLastSequenceError is one; nats-py's delete raises the base
                if exc.err_code not in _WRONG_LAST_SEQUENCE:
                    raise
                self._live.pop(key, None)  # taken (or changed) by another member: look again
                continue
            self._live.pop(key, None)
            return fields

    def count(self, *pattern: Any) -> int:
        """How many live tuples match (from the index)."""
        return sum(1 for fields, _ in self._live.values() if matches(fields, pattern))

    def all(self, *pattern: Any) -> list[tuple[Scalar, ...]]:
        """Every live matching tuple, oldest first (from the index)."""
        return [f for f, _ in sorted(self._live.values(), key=lambda fr: fr[1]) if matches(f, pattern)]

    async def wait_until(self, check: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``check()`` holds over the index (TimeoutError after ``timeout``)."""
        await self._wait_for(lambda: "ok" if check() else None, timeout)

    def _oldest(self, pattern: Sequence[Any]) -> str | None:
        found = [(rev, key) for key, (fields, rev) in self._live.items() if matches(fields, pattern)]
        return min(found)[1] if found else None

    async def _wait_for(self, find: Callable[[], str | None], timeout: float | None) -> str:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._changed.clear()
            found = find()
            if found is not None:
                return found
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("no matching tuple in the space")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                raise TimeoutError("no matching tuple in the space") from None


# --- coordination built on the space --------------------------------------------------------------


async def barrier(space: TupleSpace, name: str, parties: int, member: str, timeout: float | None = None) -> None:
    """Arrive at barrier ``name`` and wait until ``parties`` members have arrived."""
    await space.out("barrier", name, member)
    await space.wait_until(lambda: len({f[2] for f in space.all("barrier", name, ANY)}) >= parties, timeout)


async def announce(space: TupleSpace, job: str, phase: str) -> None:
    """Phase 1: the coordinator announces one phase of a job."""
    await space.out("announce", job, phase)


async def bid(space: TupleSpace, job: str, phase: str, worker: str, score: float) -> None:
    """Phase 2: a worker that read the announcement offers to run the phase."""
    await space.rd("announce", job, phase, timeout=10)
    await space.out("bid", job, phase, worker, float(score))


async def assign(space: TupleSpace, job: str, phase: str, bidders: int, timeout: float | None = None) -> str:
    """Phase 3: once ``bidders`` bids are in, take them all and assign the phase to the best (ties: by name)."""
    await space.wait_until(lambda: space.count("bid", job, phase, str, float) >= bidders, timeout)
    bids = [await space.in_("bid", job, phase, str, float, timeout=5) for _ in range(bidders)]
    winner = max(bids, key=lambda b: (b[4], _reverse(str(b[3]))))[3]
    await space.in_("announce", job, phase, timeout=5)
    await space.out("assign", job, phase, winner)
    return str(winner)


async def take_assignment(space: TupleSpace, job: str, phase: str, worker: str, timeout: float | None = None) -> bool:
    """Phase 4: the worker takes its assignment (exactly once); False when it was not the one assigned."""
    try:
        await space.in_("assign", job, phase, worker, timeout=timeout)
    except TimeoutError:
        return False
    return True


async def commit(space: TupleSpace, job: str, phase: str, worker: str, result: Scalar) -> None:
    """Phase 5: the worker commits the phase's result."""
    await space.out("done", job, phase, worker, result)


def _reverse(name: str) -> tuple[int, ...]:
    """A key that sorts names backwards, so ``max`` prefers the first name on equal scores."""
    return tuple(-ord(c) for c in name)
