"""Real faults on a running federation, on a schedule from a file: ``llm-sched chaos SCHEDULE``.

A schedule (YAML) lists actions at times in seconds from the start of the chaos run::

    actions:
      - {at: 1.0, action: kill, name: gpu-b}                 # SIGKILL an agent process
      - {at: 1.0, action: cut, name: memory, seconds: 2}     # cut it off: paused (SIGSTOP), resumed after 2 s
      - {at: 1.5, action: kill, target: server, name: s1}    # SIGKILL one NATS server
      - {at: 4.0, action: restart, name: gpu-b}              # start the agent again (it catches up)
      - {at: 5.0, action: restart, target: server, name: s1} # start the server again on its store

Actions: ``kill`` (SIGKILL), ``stop`` (SIGSTOP: a slow node), ``cont`` (SIGCONT), ``cut`` (stop, then
cont after ``seconds``), ``restart`` (after a kill). Targets: ``agent`` (the default; a member's name)
or ``server`` (``s1``, ``s2``, ... of the bus ``federation up`` started). The processes are found in
the data folder's records (``federation.json``, ``bus.json``) and a pid is signalled only while its
command line is still the one recorded (a reused pid is left alone); restarts update the records.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_sched.errors import UserError
from llm_sched.federation.launcher import BUS_FILE, FEDERATION_FILE, command_line, read_bus, start_agent, write_json
from llm_sched.federation.spec import Federation
from llm_sched.loader import load_yaml, validated
from llm_sched.names import Name
from llm_sched.transport.nats_server import relaunch

Action = Literal["kill", "stop", "cont", "cut", "restart"]
_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "cont": signal.SIGCONT}


class ChaosAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    at: float = Field(ge=0, le=86_400, allow_inf_nan=False, description="seconds from the start of the run")
    action: Action
    target: Literal["agent", "server"] = "agent"
    name: Name
    seconds: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False, description="how long a cut lasts")

    @model_validator(mode="after")
    def _cut_needs_seconds(self) -> ChaosAction:
        if (self.action == "cut") != (self.seconds is not None):
            raise ValueError("'seconds' goes with action 'cut' (how long the agent stays cut off), and only with it")
        if self.target == "server" and self.action not in ("kill", "restart", "stop", "cont"):
            raise ValueError(f"a server can be killed, stopped, continued or restarted, not {self.action!r}")
        return self


class ChaosSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actions: list[ChaosAction] = Field(min_length=1)


def load_schedule(path: Path, fed: Federation) -> list[ChaosAction]:
    """The schedule's actions in time order (a cut becomes a stop and a cont); UserError naming the problem."""
    schedule = validated(ChaosSchedule, load_yaml(path, "chaos schedule"), path, "chaos schedule")
    members = {m.name for m in fed.members}
    steps: list[ChaosAction] = []
    for i, a in enumerate(schedule.actions, 1):
        if a.target == "agent" and a.name not in members:
            raise UserError(f"{path}: action {i} names agent {a.name!r}, which is not in federation {fed.name}; "
                            f"its agents are: {', '.join(sorted(members))}")
        if a.action == "cut":
            steps.append(a.model_copy(update={"action": "stop", "seconds": None}))
            steps.append(a.model_copy(update={"action": "cont", "at": a.at + (a.seconds or 0), "seconds": None}))
        else:
            steps.append(a)
    return sorted(steps, key=lambda a: a.at)


def run_schedule(actions: list[ChaosAction], fed: Federation, data: Path, say: Callable[[str], None] = print) -> int:
    """Carry the actions out at their times; returns how many were carried out (the rest are reported)."""
    start, done = time.monotonic(), 0
    for a in actions:
        time.sleep(max(0.0, start + a.at - time.monotonic()))
        outcome = _carry_out(a, fed, data)
        say(f"{time.monotonic() - start:7.2f} s  {a.action} {a.target} {a.name}: {outcome}")
        done += outcome.startswith("done")
    return done


def _carry_out(a: ChaosAction, fed: Federation, data: Path) -> str:
    if a.target == "agent":
        return _agent_action(a, fed, data)
    return _server_action(a, data)


def _agent_action(a: ChaosAction, fed: Federation, data: Path) -> str:
    record = _read(data / FEDERATION_FILE)
    pid = int(record.get("agents", {}).get(a.name, 0))
    if a.action == "restart":
        if pid and "llm_sched" in command_line(pid):
            return "skipped (still running)"
        record.setdefault("agents", {})[a.name] = start_agent(fed, a.name, data, read_bus(data, None)).pid
        write_json(data / FEDERATION_FILE, record)
        return f"done (pid {record['agents'][a.name]})"
    return _signal(pid, "llm_sched", _SIGNALS[a.action])


def _server_action(a: ChaosAction, data: Path) -> str:
    record = _read(data / BUS_FILE)
    entry = next((s for s in record.get("servers", []) if s.get("name") == a.name), None)
    if entry is None:
        raise UserError(f"the bus under {data} has no server {a.name!r} (servers: "
                        f"{', '.join(s.get('name', '?') for s in record.get('servers', []))})")
    if a.action == "restart":
        if "nats-server" in command_line(int(entry["pid"])):
            return "skipped (still running)"
        entry["pid"] = relaunch(Path(entry["config"]).parent)
        record["pids"] = [s["pid"] for s in record["servers"]]
        write_json(data / BUS_FILE, record)
        return f"done (pid {entry['pid']})"
    return _signal(int(entry["pid"]), "nats-server", _SIGNALS[a.action])


def _signal(pid: int, expect: str, sig: signal.Signals) -> str:
    if not pid or expect not in command_line(pid):
        return "skipped (not running)"
    os.kill(pid, sig)
    return f"done (pid {pid})"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: start the federation with `llm-sched federation up FILE`") from None
    except ValueError:
        raise UserError(f"{path} is not a federation record") from None

