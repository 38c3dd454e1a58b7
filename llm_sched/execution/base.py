"""What an executor is: where committed placements run, and what it tells the run back.

The run (:mod:`llm_sched.orchestration.runner`) hands every committed placement to one executor and
asks it what happened up to a time: jobs that ended (completed, failed, or lost with a node) and
nodes that went down or came back. Capacity is released only when the executor says a job ended; a
failed or lost job goes back to the agents. Times are the run's simulated seconds: the ``sim``
executor jumps its clock, the real ones (``local``, ``slurm``) map wall time onto it by a scale.
"""

from __future__ import annotations

import hashlib
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from llm_sched.core.model import Job, Placement, Pool
from llm_sched.names import inside

EXECUTORS = ("sim", "local", "slurm")
EndState = Literal["completed", "failed", "lost"]


@dataclass(frozen=True)
class Started:
    """A job handed to the executor: its nodes, its id there (Slurm job id, process ids), when."""

    job_id: str
    nodes: tuple[str, ...]
    external_id: str | None
    sim_time: float


@dataclass(frozen=True)
class Finished:
    """A job that ended: ``completed``, or ``failed``/``lost`` (it goes back to the agents).
    ``ran_on`` is what the job itself reported (Slurm: each node's ``$SLURMD_NODENAME``)."""

    job_id: str
    state: EndState
    sim_time: float
    ran_on: tuple[str, ...] | None = None
    reason: str = ""


@dataclass(frozen=True)
class NodeChange:
    """A node the executor saw go down (it takes no job) or come back."""

    node: str
    down: bool
    sim_time: float
    reason: str = ""


Update = Finished | NodeChange


class Executor(ABC):
    """Runs committed placements; reports ends and node changes in the order they happened."""

    name: ClassVar[str]

    @abstractmethod
    def now(self) -> float:
        """The run's clock, in simulated seconds."""

    @abstractmethod
    async def start(self, job: Job, placement: Placement) -> Started:
        """Start ``job`` on exactly the placement's nodes."""

    @abstractmethod
    async def advance(self, until: float) -> list[Update]:
        """What happened up to ``until`` (``inf``: until no job runs), oldest first. An empty list
        means nothing more happened and the clock stands at ``until``; a real executor returns as
        soon as something happens, so the run can act on it (a lost job placed again) at once."""

    @property
    @abstractmethod
    def running(self) -> int:
        """Jobs started and not yet seen ending."""

    def pools(self) -> list[Pool] | None:
        """The cluster as the executor sees it (Slurm: its partitions), or None: the scenario's."""
        return None

    def close(self) -> None:
        """Stop what is still running (a run that stops early leaves nothing behind)."""

    def abandon(self, external_id: str) -> None:
        """Stop a job an earlier process of this executor started (its id there), which no one follows now."""

    def reported_down(self, nodes: set[str]) -> None:
        """The nodes an earlier process of this executor last reported down: what ``advance`` then
        reports is every difference from them (a node repaired meanwhile comes back up)."""


class WallClock:
    """Simulated seconds from wall time: ``scale`` wall seconds per simulated second."""

    def __init__(self, scale: float) -> None:
        if not 0 < scale <= 1000:
            raise ValueError(f"time scale must be in (0, 1000] wall seconds per simulated second, got {scale}")
        self.scale = scale
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) / self.scale

    def wall(self, sim_seconds: float) -> float:
        """Wall seconds that ``sim_seconds`` take."""
        return sim_seconds * self.scale


def job_file(folder: Path, job_id: str, suffix: str) -> Path:
    """A file for ``job_id`` inside ``folder``: job ids are the submitter's text, so the name keeps
    only safe characters and, when any were dropped, a digest of the id (two ids never share a file)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)[:48].lstrip(".") or "job"
    if safe != job_id:
        safe += "-" + hashlib.sha256(job_id.encode()).hexdigest()[:10]
    return inside(folder, folder / f"{safe}{suffix}")


_RETRY = re.compile(r"^(?P<root>.+)\.r(?P<n>[0-9]+)$")


def retry_id(job_id: str) -> str:
    """The id a failed or lost job is placed again under: ``<id>.r1``, then ``.r2``... (each decision
    is its own ledger row); within the 64 characters of a job id."""
    match = _RETRY.match(job_id)
    root, n = (match["root"], int(match["n"]) + 1) if match else (job_id, 1)
    suffix = f".r{n}"
    return root[: 64 - len(suffix)] + suffix


def reported_nodes(output: Path) -> tuple[str, ...] | None:
    """The node names a job's payload wrote to ``output`` (one per line, each once), or None when it
    wrote nothing readable (it never started)."""
    try:
        return tuple(sorted(set(output.read_text(encoding="utf-8").split())))
    except OSError:
        return None
