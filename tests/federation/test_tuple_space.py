"""The coordination space on a real nats-server: each member its own connection, as separate agents are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from llm_sched.federation.bus import connect
from llm_sched.federation.tuple_space import (
    ANY,
    TupleSpace,
    announce,
    assign,
    barrier,
    bid,
    commit,
    matches,
    take_assignment,
)
from llm_sched.transport.nats_server import ServerProcess, start_server

BUCKET = "FED_TEST_SPACE"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("nats"))
    try:
        yield s
    finally:
        s.stop()


class Members:
    """Open spaces (one NATS connection each) on one bucket; all closed at the end."""

    def __init__(self, url: str, bucket: str) -> None:
        self.url, self.bucket, self.open = url, bucket, []

    async def join(self, name: str) -> TupleSpace:
        nc = await connect([self.url], name)
        space = await TupleSpace.open(nc.jetstream(timeout=5), self.bucket)
        self.open.append((nc, space))
        return space

    async def close(self) -> None:
        for nc, space in self.open:
            await space.close()
            await nc.drain()


@pytest.fixture
async def members(server: ServerProcess, request: pytest.FixtureRequest) -> AsyncIterator[Members]:
    group = Members(server.client_url, f"{BUCKET}_{request.node.name[:40].upper().replace('-', '_')}")
    group.bucket = "".join(c if c.isalnum() or c == "_" else "_" for c in group.bucket)
    try:
        yield group
    finally:
        await group.close()


def test_a_pattern_matches_by_value_type_or_anything() -> None:
    assert matches(("bid", "j1", 3), ("bid", ANY, int))
    assert not matches(("bid", "j1", 3), ("bid", ANY, str))
    assert not matches(("bid", "j1", True), ("bid", ANY, int))  # true is not a number here
    assert not matches(("bid", "j1"), ("bid", ANY, ANY))  # length counts
    assert not matches(("bid", 1), ("bid", 1.0))  # 1 and 1.0 are different fields


async def test_a_tuple_is_taken_exactly_once_when_members_race_for_it(members: Members) -> None:
    spaces = [await members.join(f"m{i}") for i in range(4)]
    await spaces[0].out("task", "j1")
    await asyncio.wait_for(spaces[3].rd("task", "j1"), 5)  # every member sees it before the race

    async def take(space: TupleSpace) -> bool:
        try:
            await space.in_("task", ANY, timeout=1.5)
            return True
        except TimeoutError:
            return False

    won = await asyncio.gather(*(take(s) for s in spaces))
    assert sorted(won) == [False, False, False, True]
    assert all(s.count("task", ANY) == 0 for s in spaces)


async def test_rd_leaves_the_tuple_and_in_waits_for_one_written_later(members: Members) -> None:
    a, b = await members.join("a"), await members.join("b")
    await a.out("config", "quorum", 5)
    assert await b.rd("config", "quorum", int, timeout=5) == ("config", "quorum", 5)
    assert await a.rd("config", ANY, ANY, timeout=5) == ("config", "quorum", 5)  # still there
    waiting = asyncio.create_task(b.in_("result", "j9", ANY, timeout=5))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await a.out("result", "j9", "ok")
    assert await waiting == ("result", "j9", "ok")
    with pytest.raises(TimeoutError):
        await b.in_("result", "j9", ANY, timeout=0.3)  # taken: gone


async def test_a_barrier_releases_nobody_until_every_party_has_arrived(members: Members) -> None:
    spaces = [await members.join(f"p{i}") for i in range(3)]
    first = [asyncio.create_task(barrier(s, "phase-1", 3, f"p{i}", timeout=10)) for i, s in enumerate(spaces[:2])]
    await asyncio.sleep(0.5)
    assert not any(t.done() for t in first)  # two of three arrived: both still wait
    await barrier(spaces[2], "phase-1", 3, "p2", timeout=10)
    await asyncio.wait_for(asyncio.gather(*first), 5)


async def test_each_phase_of_a_job_is_assigned_once_to_the_best_bid_and_committed(members: Members) -> None:
    coordinator = await members.join("coordinator")
    workers = {name: await members.join(name) for name in ("w-a", "w-b", "w-c")}
    scores = {"w-a": 0.4, "w-b": 0.9, "w-c": 0.9}  # a tie at the top: the first name wins
    for phase in ("stage", "compute"):
        await announce(coordinator, "job-7", phase)
        await asyncio.gather(*(bid(s, "job-7", phase, n, scores[n]) for n, s in workers.items()))
        winner = await assign(coordinator, "job-7", phase, bidders=3, timeout=10)
        assert winner == "w-b"
        taken = await asyncio.gather(*(take_assignment(s, "job-7", phase, n, timeout=1.0) for n, s in workers.items()))
        assert taken == [False, True, False]  # only the winner holds the assignment, once
        await commit(workers[winner], "job-7", phase, winner, f"{phase} ok")
        done = await coordinator.rd("done", "job-7", phase, ANY, ANY, timeout=5)
        assert done == ("done", "job-7", phase, "w-b", f"{phase} ok")
        assert coordinator.count("bid", "job-7", phase, ANY, ANY) == 0  # the bids were consumed


async def test_what_is_no_tuple_in_the_bucket_is_passed_over(members: Members) -> None:
    # Anyone allowed on the bus may write into the bucket: bytes that are no JSON, or JSON nested
    # deeper than Python parses. The space's follower passes over them and goes on.
    a = await members.join("a")
    nc = await connect([members.url], "intruder")
    try:
        kv = await nc.jetstream(timeout=5).key_value(members.bucket)
        await kv.put("junk1", b"\x00 not json")
        await kv.put("junk2", b"[" * 100_000 + b"]" * 100_000)
    finally:
        await nc.drain()
    await a.out("after", "junk", 1)
    assert await a.rd("after", ANY, ANY, timeout=5) == ("after", "junk", 1)
    b = await members.join("b")  # a member that reads the bucket from its start
    assert await b.rd("after", ANY, ANY, timeout=5) == ("after", "junk", 1)
