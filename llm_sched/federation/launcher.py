"""Start and stop a federation on this host: the bus, one process per agent, and the record of both.

Under the data folder (``--data``, default ``runs/federation``)::

    DATA/bus.json                   the servers: names, client URLs, pids (what `down` stops)
    DATA/bus/s1/ ...                each server's config, JetStream store and log
    DATA/federation.json            the federation file, the bus URL and each agent's pid
    DATA/genesis.json, agents/NAME/ keys, ledgers and each agent's log (agent.log)

A process is stopped only if its command line is still the one started (a pid reused by another
program is left alone).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.federation.bus import REQUEST_TIMEOUT, connect, layout_for, server_list
from llm_sched.federation.execution import ExecutionPlan
from llm_sched.federation.keys import agent_dir, init_keys
from llm_sched.federation.spec import Federation
from llm_sched.transport.nats_server import ServerProcess, Tenant, servers_url, start_cluster, start_server

BUS_FILE = "bus.json"
FEDERATION_FILE = "federation.json"


@dataclass(frozen=True)
class Bus:
    """The servers a federation uses, as recorded in ``bus.json`` (or given by NATS_URL)."""

    url: str
    pids: tuple[int, ...] = ()
    replicas: int = 1
    creds: Path | None = None  # the tenant's credentials file, on a bus with tenants


def start_bus(data: Path, servers: int, tenants: Sequence[str] = ()) -> tuple[Bus, list[ServerProcess]]:
    """One server, or a cluster of ``servers`` (3: it survives the loss of one), under ``data/bus``.

    With ``tenants``, each is a NATS account of its own (subjects, streams and buckets invisible to the
    others) with a generated password, written only to ``data/tenants/NAME.json`` (mode 0600)."""
    if servers not in (1, 3):
        raise UserError(f"--servers {servers}: a federation's bus has 1 server or a cluster of 3")
    accounts = [Tenant(name, name, secrets.token_urlsafe(24)) for name in tenants]
    folder = data / "bus"
    procs = ([start_server(folder, tenants=accounts)] if servers == 1 else
             start_cluster(folder, size=servers, tenants=accounts))
    bus = Bus(servers_url(procs), tuple(p.process.pid for p in procs), min(servers, 3))
    for t in accounts:
        _write_private(data / "tenants" / f"{t.name}.json",
                       {"tenant": t.name, "user": t.user, "password": t.password, "url": bus.url})
    write_json(data / BUS_FILE, {"url": bus.url, "pids": list(bus.pids), "replicas": bus.replicas,
                                 "tenants": [t.name for t in accounts],
                                 "servers": [{"name": p.name, "url": p.client_url, "pid": p.process.pid,
                                              "config": str(p.config_path)} for p in procs]})
    return bus, procs


def _write_private(path: Path, body: object) -> None:
    """A file only its owner can read, written whole (a secret is never half on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)


def read_bus(data: Path, nats_url: str | None, creds: Path | None = None) -> Bus:
    """The bus of a federation: ``nats_url`` (NATS_URL) if given, else the one recorded under ``data``
    (``bus.json`` of a bus started there, or the bus ``federation up --nats`` was given); the credentials
    ``creds`` if given, else those ``federation up`` was given."""
    recorded = _read_record(data / FEDERATION_FILE) or {}
    creds = creds.resolve() if creds else (Path(recorded["creds"]) if recorded.get("creds") else None)
    if nats_url:
        return Bus(nats_url, replicas=int(recorded.get("replicas", 1)), creds=creds)
    body = _read_record(data / BUS_FILE)
    if body is not None:
        try:
            return Bus(str(body["url"]), tuple(int(p) for p in body["pids"]), int(body.get("replicas", 1)), creds)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{data / BUS_FILE} is not a bus record; stop its servers by hand and remove it") from None
    if recorded.get("bus"):
        return Bus(str(recorded["bus"]), replicas=int(recorded.get("replicas", 1)), creds=creds)
    raise UserError(f"no bus recorded in {data}: start one with `llm-sched bus --data {data}` or "
                    f"`llm-sched federation up FILE --data {data}`, or set NATS_URL")


def _read_record(path: Path) -> dict | None:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise UserError(f"{path} is not a federation record; remove it and start again") from None
    return body if isinstance(body, dict) else None


def agent_command(fed: Federation, name: str, data: Path, bus: Bus) -> list[str]:
    """The command line of one agent process."""
    creds = ["--creds", str(bus.creds)] if bus.creds is not None else []  # a path: the secret stays in its file
    return [sys.executable, "-m", "llm_sched", "agent", "--name", name, "--federation", str(fed.path),
            "--data", str(data), "--nats", bus.url, "--replicas", str(bus.replicas), *creds]


def start_agent(fed: Federation, name: str, data: Path, bus: Bus) -> subprocess.Popen[bytes]:
    """Start one agent process, its output appended to its log; it runs on after this process exits."""
    folder = agent_dir(data, name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "agent.log", "ab") as logfile:
        return subprocess.Popen(agent_command(fed, name, data, bus), stdout=logfile, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def executor_command(fed: Federation, data: Path, bus: Bus) -> list[str]:
    """The command line of the federation's executor process."""
    creds = ["--creds", str(bus.creds)] if bus.creds is not None else []
    return [sys.executable, "-m", "llm_sched", "execute", "--federation", str(fed.path), "--data", str(data),
            "--nats", bus.url, *creds]


def start_executor(fed: Federation, data: Path, bus: Bus) -> subprocess.Popen[bytes]:
    """Start the executor process (its log: ``DATA/executor/executor.log``); it runs on after this process exits."""
    folder = data / "executor"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "executor.log", "ab") as logfile:
        return subprocess.Popen(executor_command(fed, data, bus), stdout=logfile, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def prepare(fed: Federation, data: Path, bus: Bus, execution: ExecutionPlan | None = None) -> None:
    """Make the keys that are missing (and the genesis, with ``execution``) and the streams and buckets."""
    init_keys(fed, data, execution)
    asyncio.run(_layout(fed, bus))


async def _layout(fed: Federation, bus: Bus) -> None:
    nc = await connect(server_list(bus.url), f"{fed.name}/up", creds=bus.creds)
    try:
        await layout_for(nc.jetstream(timeout=REQUEST_TIMEOUT * 5), fed.subjects, bus.replicas, bus.url)
    finally:
        await nc.drain()


def up(fed: Federation, data: Path, bus: Bus, execution: ExecutionPlan | None = None) -> dict[str, int]:
    """Make the keys and the streams, start every agent (and, with ``execution``, the executor process),
    record their pids; returns name -> pid of the agents."""
    prepare(fed, data, bus, execution)
    pids = {m.name: start_agent(fed, m.name, data, bus).pid for m in fed.members}
    executor = start_executor(fed, data, bus).pid if execution is not None else None
    write_json(data / FEDERATION_FILE, {"file": str(fed.path), "federation": fed.name, "bus": bus.url,
                                        "replicas": bus.replicas, "creds": None if bus.creds is None else str(bus.creds),
                                        "agents": pids, "executor": executor})
    return pids


def down(data: Path, timeout: float = 10.0) -> list[str]:
    """Stop the agents (SIGTERM: each writes its final status) and then the bus; returns what was stopped."""
    stopped = []
    fed_path, bus_path = data / FEDERATION_FILE, data / BUS_FILE
    if fed_path.exists():
        record = json.loads(fed_path.read_text())
        if record.get("executor") and _terminate(int(record["executor"]), "llm_sched", timeout):
            stopped.append("executor")  # first: it cancels the jobs it started while the bus is up
        stopped += [f"agent {n}" for n, pid in record.get("agents", {}).items()
                    if _terminate(int(pid), "llm_sched", timeout)]
    if bus_path.exists():
        pids = json.loads(bus_path.read_text()).get("pids", [])
        stopped += [f"server pid {pid}" for pid in pids if _terminate(int(pid), "nats-server", timeout)]
    if not fed_path.exists() and not bus_path.exists():
        raise UserError(f"nothing to stop: {data} holds no {FEDERATION_FILE} or {BUS_FILE}")
    return stopped


def _terminate(pid: int, expect: str, timeout: float) -> bool:
    """SIGTERM ``pid`` if its command line still names ``expect``, SIGKILL after ``timeout``."""
    if expect not in command_line(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expect not in command_line(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True


def command_line(pid: int) -> str:
    """The process's command line, or "" when it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return ""
    return "" if state == "Z" else raw.replace(b"\0", b" ").decode(errors="replace")


def write_json(path: Path, body: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)

