"""The federation's executor, killed and started again, on the local executor: four agent processes on
NATS place eight one-node jobs on a cluster of four nodes, so four run and four wait for room at the
executor. The executor is killed (SIGKILL) while the first four run; started again, it reads every
decision again, starts nothing twice, stops and reports lost the jobs it no longer follows (placed again
as retries), and still runs the waiting jobs once their room is back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llm_sched.config import PROJECT_ROOT
from llm_sched.federation.launcher import command_line
from llm_sched.store.ledger import Ledger

CLUSTER = """\
agents:
  - {id: a1, specialty: compute, pool: p1}
  - {id: a2, specialty: general, pool: p2}
  - {id: a3, specialty: memory, pool: p3}
  - {id: a4, specialty: storage, pool: p4}
pools:
"""
POOL = ("  - {{id: p{k}, specialty: {s}, nodes: {{count: 1, prefix: n{k}-, "
        "per_node: {{cores: 16, memory_gb: 64, storage_gb: 100}}, load: [0.0, 0.0]}}}}\n")
JOBS = "".join(f"      - {{id: w{k}, kind: physics, nodes: 1, cores: 16, memory_gb: 8, runtime_s: 4000}}\n"
               for k in range(1, 9))
FEDERATION = f"""\
name: four-small
description: four agents, four one-node pools, eight jobs of a whole node each
seed: 3
provider: heuristic
cluster: cluster.yaml
phases:
  - name: eight jobs
    job_interval_s: 60
    jobs:
{JOBS}"""


def _llm_sched(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llm_sched", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT)


SEEN: dict[str, Any] = {}  # what status last showed, for the message of a timeout


def _status(data: Path) -> dict[str, Any]:
    got = _llm_sched("status", "--json", "--data", str(data))
    body = json.loads(got.stdout) if got.returncode == 0 else {}
    SEEN.update(executor=body.get("executor"), decided=body.get("decided"), submitted=body.get("submitted"),
                error=got.stderr[-300:])
    return body


def _wait(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; status last showed {SEEN}")


def test_a_killed_executor_started_again_starts_nothing_twice_and_runs_what_waits(tmp_path: Path) -> None:
    specialties = ("compute", "general", "memory", "storage")
    (tmp_path / "cluster.yaml").write_text(CLUSTER + "".join(POOL.format(k=k, s=s)
                                                             for k, s in enumerate(specialties, 1)))
    fed_file, data = tmp_path / "four-small.yaml", tmp_path / "fed"
    fed_file.write_text(FEDERATION)
    # 4,000 s of the jobs' time at 0.0012: each job runs 4.8 s.
    up = _llm_sched("federation", "up", str(fed_file), "--data", str(data), "--executor", "local",
                    "--time-scale", "0.0012")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert _llm_sched("submit", str(fed_file), "--data", str(data)).returncode == 0

        def four_run_four_wait() -> Any:
            ex = _status(data).get("executor") or {}
            return ex if ex.get("running") == 4 and ex.get("waiting") == 4 else None

        _wait("four jobs running and four waiting", four_run_four_wait)
        record = json.loads((data / "federation.json").read_text())
        os.kill(int(record["executor"]), signal.SIGKILL)
        _wait("the executor gone", lambda: "llm_sched" not in command_line(int(record["executor"])))
        with open(data / "executor" / "executor.log", "ab") as log:  # started again as `federation up` does
            again = subprocess.Popen([sys.executable, "-m", "llm_sched", "execute", "--federation", str(fed_file),
                                      "--data", str(data), "--nats", record["bus"]], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        record["executor"] = again.pid
        (data / "federation.json").write_text(json.dumps(record))  # so that `federation down` stops it

        def settled() -> Any:
            body = _status(data)
            ex = body.get("executor") or {}
            done = (ex.get("completed") == 8 and ex.get("running") == 0 and ex.get("waiting") == 0
                    and body.get("decided") == body.get("submitted"))
            return body if done else None

        status = _wait("every job run to completion", settled, timeout=150)
    finally:
        _llm_sched("federation", "down", "--data", str(data))

    with Ledger.open(data / "executor" / "llm_sched.db") as ledger:
        rows = ledger.executions("four-small")
    started = [r.job_id for r in rows]
    assert len(started) == len(set(started))  # nothing started twice
    lost = {r.job_id for r in rows if r.state == "lost"}
    assert len(lost) == 4 and all("restarted" in r.reason for r in rows if r.state == "lost")
    completed = {r.job_id for r in rows if r.state == "completed"}
    # Each of the eight jobs ran to completion once: the lost four as retries, the waiting four too.
    roots = sorted(job.split(".r")[0] for job in completed)
    assert roots == [f"w{k}" for k in range(1, 9)], sorted(completed)
    # Lost or waiting, each ran as its first retry: the waiting ones were submitted only for the room
    # the lost ones' retries, submitted first, left over.
    assert all(job.endswith(".r1") for job in completed), sorted(completed)
    assert status["invalid"] == [] and status["conflicts"] == []
