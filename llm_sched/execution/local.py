"""The ``local`` executor: each committed job runs as one process per node it was placed on.

The nodes are the scenario's, so they do not exist here: each process stands for the job's share
on one node (it is told the node's name, writes it to the job's output like Slurm's
``$SLURMD_NODENAME``, and runs for the job's runtime on the scaled clock). No shell is involved:
job ids and node names reach the processes as arguments and file names made safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from llm_sched.core.model import Job, Placement
from llm_sched.execution.base import Executor, Finished, Started, Update, WallClock, job_file, reported_nodes

# The stand-in payload: report the node, then work (sleep) for the job's scaled runtime.
_PAYLOAD = "import sys, time; open(sys.argv[2], 'a').write(sys.argv[1] + '\\n'); time.sleep(float(sys.argv[3]))"
POLL_S = 0.05


@dataclass
class _Running:
    job: Job
    placement: Placement
    processes: list[subprocess.Popen[bytes]]
    output: Path


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, folder: Path, time_scale: float) -> None:
        self.folder = folder
        self.clock = WallClock(time_scale)
        self._running: dict[str, _Running] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def now(self) -> float:
        return self.clock.now()

    async def start(self, job: Job, placement: Placement) -> Started:
        output = job_file(self.folder, job.id, ".nodes")
        seconds = f"{self.clock.wall(job.runtime_s):.3f}"
        processes = [subprocess.Popen([sys.executable, "-c", _PAYLOAD, node, str(output), seconds],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for node in placement.nodes]
        self._running[job.id] = _Running(job, placement, processes, output)
        return Started(job.id, placement.nodes, ",".join(str(p.pid) for p in processes), self.now())

    async def advance(self, until: float) -> list[Update]:
        while True:
            ended = self._collect()
            if ended or (not self._running and not math.isfinite(until)) or self.now() >= until:
                return ended
            await asyncio.sleep(POLL_S)

    def _collect(self) -> list[Update]:
        ended: list[Update] = []
        for job_id, run in list(self._running.items()):
            codes = [p.poll() for p in run.processes]
            if any(c is None for c in codes):
                continue
            del self._running[job_id]
            failed = [n for n, c in zip(run.placement.nodes, codes, strict=True) if c != 0]
            state = "failed" if failed else "completed"
            reason = f"exit codes {codes} on {', '.join(failed)}" if failed else ""
            ended.append(Finished(job_id, state, self.now(), reported_nodes(run.output), reason))
        return ended

    @property
    def running(self) -> int:
        return len(self._running)

    def abandon(self, external_id: str) -> None:
        for pid in external_id.split(","):
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        for run in self._running.values():
            for p in run.processes:
                p.kill()
                p.wait()
        self._running.clear()

