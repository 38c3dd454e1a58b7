"""The executor's queue and retries, on an in-memory job log: the real :class:`FederationExecutor`
follows a log that members (one :class:`Replica` reading a :class:`JobLog`, deciding one entry per
instance) decide; an executor double starts jobs and says when they end. The bus drops a message id it
has seen, as JetStream does within its duplicate window. The whole path on NATS and processes is in
test_executor_restart.py and test_slurm_federation.py; these pin the rules down where a bus cannot."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llm_sched.execution.base import Finished, NodeChange, Started, Update
from llm_sched.federation import executor as executor_module
from llm_sched.federation.execution import ExecutionPlan
from llm_sched.federation.executor import ExecutorOptions, FederationExecutor
from llm_sched.federation.keys import init_keys, read_genesis
from llm_sched.federation.replica import JobLog, Replica
from llm_sched.federation.spec import Federation, load_federation
from llm_sched.orchestration.scenarios import JobSpec

CLUSTER = """\
agents:
  - {id: a1, specialty: compute, pool: p1}
  - {id: a2, specialty: general, pool: p2}
  - {id: a3, specialty: memory, pool: p1}
  - {id: a4, specialty: storage, pool: p2}
pools:
  - {id: p1, specialty: compute, nodes: {count: 2, prefix: n1-, per_node: {cores: 16, memory_gb: 64}, load: [0.0, 0.0]}}
  - {id: p2, specialty: general, nodes: {count: 1, prefix: n2-, per_node: {cores: 16, memory_gb: 64}, load: [0.0, 0.0]}}
"""
FEDERATION = """\
name: three-nodes
seed: 1
provider: heuristic
cluster: cluster.yaml
phases:
  - name: none
    jobs:
      - {id: unused, kind: physics, nodes: 1, cores: 16, memory_gb: 8, runtime_s: 60}
"""


class Bus:
    """The job log: entries in order; a message id seen before is dropped and the answer says so."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.ids: set[str] = set()

    def publish(self, data: bytes, msg_id: str) -> Any:
        if msg_id in self.ids:
            return SimpleNamespace(seq=0, duplicate=True)
        self.ids.add(msg_id)
        self.entries.append(data)
        return SimpleNamespace(seq=len(self.entries), duplicate=False)

    def submit(self, spec: JobSpec, msg_id: str | None = None) -> None:
        body = {"job": spec.model_dump(), "arrival": float(len(self.entries)), "submitted": 0.0}
        self.publish(json.dumps(body).encode(), msg_id or spec.id)

    def ids_in_order(self) -> list[str]:
        out = []
        for data in self.entries:
            body = json.loads(data)
            report = body.get("report", {})
            out.append(body["job"]["id"] if "job" in body else f"!{report.get('ended') or report.get('node')}")
        return out


class Members:
    """Every honest member alike: decides each entry of the log as a batch of one, in order."""

    def __init__(self, fed: Federation, data: Path, bus: Bus) -> None:
        genesis = read_genesis(fed, data)
        self.bus, self.log = bus, JobLog(genesis.reports)
        self.replica = Replica(genesis.initial_state(fed), "general", executed=True)
        self.batches: list[Any] = []

    def decide(self) -> None:
        while len(self.batches) < len(self.bus.entries):
            position = len(self.batches) + 1
            logged = [self.log.entry(position, self.bus.entries[position - 1])]
            batch = self.replica.propose(logged)
            assert self.replica.validate(batch, logged)
            self.replica.apply(batch, logged)
            self.batches.append(batch)


class Double:
    """An executor double: starts whatever it is given; ends and node changes come from the test."""

    name = "double"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.next: list[Update] = []
        self.told_down: set[str] | None = None

    def now(self) -> float:
        return 0.0

    async def start(self, job: Any, placement: Any) -> Started:
        self.started.append(job.id)
        return Started(job.id, placement.nodes, str(len(self.started)), 0.0)

    async def advance(self, until: float) -> list[Update]:
        happened, self.next = self.next, []
        return happened

    def reported_down(self, nodes: set[str]) -> None:
        self.told_down = set(nodes)

    def abandon(self, external_id: str) -> None: ...

    def close(self) -> None: ...


class World:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "cluster.yaml").write_text(CLUSTER)
        (tmp_path / "three.yaml").write_text(FEDERATION)
        self.fed = load_federation(str(tmp_path / "three.yaml"), tmp_path)
        self.data = tmp_path / "fed"
        init_keys(self.fed, self.data, ExecutionPlan(executor="local", time_scale=0.001,
                                                     pools=list(self.fed.initial_state().pools.values())))
        self.bus = Bus()
        self.members = Members(self.fed, self.data, self.bus)
        monkeypatch.setattr(executor_module, "publish_entry",
                            lambda js, subject, data, msg_id: _done(self.bus.publish(data, msg_id)))
        monkeypatch.setattr(executor_module, "next_arrival", lambda js, fed: _done(float(len(self.bus.entries))))

    def executor(self) -> tuple[FederationExecutor, Double]:
        """An executor process, as ``run`` sets it up (its ledger in the data folder)."""
        ex = FederationExecutor(self.fed, ExecutorOptions(("nats://unused",), self.data))
        ex.executor.close()
        double = Double()
        ex.executor = double  # type: ignore[assignment]
        ex.ledger, ex.epoch = ex._open_ledger()
        ex.js = None
        bus, members = self.bus, self.members

        async def record(number: int) -> Any:
            if number >= len(members.batches):
                return None
            return SimpleNamespace(batch=members.batches[number])

        async def entry(position: int) -> bytes:
            return bus.entries[position - 1]

        async def log_span() -> tuple[int, int]:
            return 1, len(bus.entries)

        ex._record, ex._entry, ex._log_span = record, entry, log_span  # type: ignore[method-assign]
        return ex, double

    def poll(self, ex: FederationExecutor, times: int = 1) -> None:
        """What one loop of ``run`` does, ``times`` over, the members deciding what came in between."""
        async def loop() -> None:
            for _ in range(times):
                self.members.decide()
                await ex._take_decisions()
                await ex._file(await ex.executor.advance(0.0))
                self.members.decide()
                await ex._take_decisions()

        asyncio.run(loop())

    def start(self, ex: FederationExecutor, decided: bool = True) -> None:
        """What ``run`` does before its loop (a restart); ``decided``: the members decided all before."""
        async def begin() -> None:
            if decided:
                self.members.decide()
            ex.reports = await ex._last_report_number()
            await ex._take_decisions(replay=True)
            await ex._undecided_retries()
            ex.executor.reported_down(set(ex.down))
            await ex._abandon_unfollowed()
            await ex._submit_waiting()

        asyncio.run(begin())


async def _done(value: Any) -> Any:
    return value


def job(job_id: str, nodes: int = 1) -> JobSpec:
    return JobSpec.model_validate({"id": job_id, "kind": "physics", "nodes": nodes, "cores": 16,
                                   "memory_gb": 8.0, "runtime_s": 60.0})


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


def three_running_and_d_waiting(world: World) -> tuple[FederationExecutor, Double]:
    ex, double = world.executor()
    world.start(ex)
    for name in ("a", "b", "c", "d"):
        world.bus.submit(job(name))
    world.poll(ex)
    assert double.started == ["a", "b", "c"] and len(ex.waiting) == 1
    return ex, double


def test_a_job_without_room_waits_and_runs_as_its_retry_once_a_node_is_free(world: World) -> None:
    ex, double = three_running_and_d_waiting(world)
    double.next = [Finished("a", "completed", 1.0)]
    world.poll(ex)
    assert double.started == ["a", "b", "c", "d.r1"] and len(ex.waiting) == 0


def test_a_retry_rejected_again_waits_for_the_next_end_instead_of_going_in_again_at_once(world: World) -> None:
    # The members hold a node down that this executor thinks is up (say, a report it never saw):
    # each retry is rejected, and asking again at once on the same guess went on for ever.
    ex, double = world.executor()
    world.start(ex)
    world.bus.submit(job("wide", nodes=2))  # only p1 has two nodes
    world.members.replica.state.set_down("n1-01", True)
    world.poll(ex, times=5)
    assert world.bus.ids_in_order() == ["wide", "wide.r1"] and len(ex.waiting) == 1
    world.members.replica.state.set_down("n1-01", False)
    world.bus.submit(job("small"))
    world.poll(ex)
    double.next = [Finished("small", "completed", 1.0)]
    world.poll(ex, times=3)
    assert "wide.r2" in double.started  # the next end asked again, and it fitted


def test_a_retry_id_a_user_took_is_passed_over(world: World) -> None:
    ex, double = world.executor()
    world.start(ex)
    world.bus.submit(job("x.r1"), msg_id="an hour ago")  # a user's own job named like a retry, long before
    world.bus.submit(job("b"))
    world.bus.submit(job("c"))
    world.bus.submit(job("x"))  # no room: waits
    world.poll(ex)
    double.next = [Finished("b", "completed", 1.0)]
    world.poll(ex)
    assert "x.r2" in double.started and len(ex.waiting) == 0 and ex.pending == {}


def test_a_retry_id_the_bus_has_seen_from_someone_else_is_passed_over(world: World) -> None:
    ex, double = world.executor()
    world.start(ex)
    for name in ("b", "c", "d"):
        world.bus.submit(job(name))
    world.bus.submit(job("x"))  # no room: waits
    world.poll(ex)
    world.bus.ids.add("x.r1")  # someone published x.r1 within the bus's window, not yet in the log
    double.next = [Finished("b", "completed", 1.0)]
    world.poll(ex)
    assert "x.r2" in double.started and ex.taken == {"x.r1"} and ex.pending == {}


def test_a_restarted_executor_learns_what_the_members_hold_down_and_what_it_submitted(world: World) -> None:
    ex, double = world.executor()
    world.start(ex)
    double.next = [NodeChange("n2-01", True, 0.0, "down")]
    world.poll(ex)
    for name in ("a", "b", "c"):
        world.bus.submit(job(name))
    world.poll(ex)
    assert double.started == ["a", "b"] and len(ex.waiting) == 1
    double.next = [Finished("a", "completed", 1.0)]
    world.poll(ex)
    assert double.started == ["a", "b", "c.r1"]
    # Killed and started again: the replay gives the nodes the members hold down to the executor (its
    # next look then reports a node repaired meanwhile) and finds c's retry already in the log.
    again, double_again = world.executor()
    world.start(again)
    assert again.down == {"n2-01"} and double_again.told_down == {"n2-01"}
    assert len(again.waiting) == 0 and double_again.started == []


def test_a_retry_submitted_before_a_restart_and_not_yet_decided_is_not_submitted_again(world: World) -> None:
    ex, double = three_running_and_d_waiting(world)
    double.next = [Finished("a", "completed", 1.0)]
    asyncio.run(ex._file(asyncio.run(double.advance(0.0))))  # the end filed and d.r1 submitted: killed here
    assert world.bus.ids_in_order()[-1] == "d.r1"
    world.bus.ids.clear()  # more than the bus's hour later: it no longer drops a message id it saw
    again, double_again = world.executor()
    world.start(again, decided=False)  # the members have not decided d.r1 yet
    world.poll(again, times=2)
    assert [i for i in world.bus.ids_in_order() if i.startswith("d.")] == ["d.r1"]
    assert "d.r1" in double_again.started and len(again.waiting) == 0 and again.pending == {}

