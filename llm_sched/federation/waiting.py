"""The jobs a federation on an executor keeps waiting: rejected for want of room now, placed later.

The members decide one job log entry at a time, and a job that no pool can take when its entry is
decided is an agreed reject (``NO_CAPACITY``). On a real cluster a user expects such a job to wait
until nodes come back, as Slurm's pending queue does. The executor sees every end and every node
that comes back, so it keeps the queue: each job rejected for want of room that the whole cluster
could take (all nodes free and up) waits here in the order it was rejected, and whenever nodes come
back, the waiting jobs that fit alongside the running ones (taken in that order, each one's room
kept from the next) go into the job log again under a retry id (``<id>.r1``, ``.r2``..., the first
not taken) for the members to decide like any job. A job that no longer fits when its retry is decided (a new job took
the room first) is rejected again and waits again. A job the whole cluster could never take stays
rejected.

What fits is only the executor's guess from what it runs; the members decide as ever, on their
own state, so nothing here can place a job where it does not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llm_sched.agents.heuristics import placement_options
from llm_sched.core.model import Job, Placement
from llm_sched.core.state import ClusterState
from llm_sched.federation.replica import NO_CAPACITY
from llm_sched.orchestration.scenarios import JobSpec


def _fits(state: ClusterState, job: Job) -> Placement | None:
    options = placement_options(state, job, "general", {}, limit=1)
    return options[0].placement if options else None


class WaitingJobs:
    """Jobs rejected for want of room now, oldest first; ``cluster()`` gives a fresh empty cluster."""

    def __init__(self, cluster: Callable[[], ClusterState]) -> None:
        self.cluster = cluster
        self._waiting: dict[str, JobSpec] = {}  # the id it was rejected under -> the job

    def __len__(self) -> int:
        return len(self._waiting)

    def rejected(self, spec: JobSpec, reason: str) -> bool:
        """Take a job the members rejected; whether it waits (no room now, but room on the whole cluster)."""
        if not reason.startswith(NO_CAPACITY) or _fits(self.cluster(), spec.job()) is None:
            return False
        self._waiting[spec.id] = spec
        return True

    def submitted_again(self, rejected_id: str) -> None:
        """A retry of ``rejected_id`` is in the job log: that job waits no more (a restarted executor
        learns this way which retries it had submitted)."""
        self._waiting.pop(rejected_id, None)

    def ready(self, running: Iterable[tuple[Job, tuple[str, ...]]], down: Iterable[str],
              ahead: Iterable[Job] = ()) -> list[JobSpec]:
        """The waiting jobs that fit now beside ``running`` on nodes not ``down``, oldest first, each
        with the room of those before it taken, and first that of the jobs ``ahead`` (submitted and
        not yet decided: the members place them first). They wait no more; the caller submits each
        again under a new id, and one rejected again waits again."""
        state = self.cluster()
        for job, nodes in running:
            state.reserve(job, Placement(job_id=job.id, pool=state.pool_of[nodes[0]], nodes=nodes))
        for node in down:
            if node in state.nodes:
                state.set_down(node, True)
        for job in ahead:
            if (placement := _fits(state, job)) is not None:
                state.reserve(job, placement)
        ready = []
        for rejected_id, spec in list(self._waiting.items()):
            placement = _fits(state, spec.job())
            if placement is not None:
                state.reserve(spec.job(), placement)
                ready.append(spec)
                del self._waiting[rejected_id]
        return ready
