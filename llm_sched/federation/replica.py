"""What every member computes the same way: the cluster after the decided jobs, and the rules a batch
of placements is proposed and checked by.

The job log (a JetStream stream) orders the jobs; a decision places a batch of consecutive jobs.
Applying the decided batches in log order gives every member the same state, so a member's checks
are the same as every honest member's. Time is the jobs' own: a job arrives at its ``arrival``
(seconds from the first job, set at submission) and, once placed, holds its nodes for ``runtime_s``;
before a job is placed, every job that has ended by its arrival gives its nodes back. No wall clock
enters, so two members that applied the same decisions agree on the state to the node.

A batch is checked on the real state and every change is undone afterwards (an undo log), which is
far cheaper than copying a cluster of thousands of nodes for each proposal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llm_sched.agents.heuristics import placement_options, why_infeasible
from llm_sched.core.feasibility import check_placement
from llm_sched.core.model import Job, Placement
from llm_sched.core.state import ClusterState
from llm_sched.federation.execution import REFUSED, Report, ReportKey, report_entry
from llm_sched.orchestration.scenarios import JobSpec
from llm_sched.protocols.messages import PlacementBatch, PlacementValue
from llm_sched.transport import wire

NO_CAPACITY = "no capacity: "  # the reason of an agreed reject starts so


@dataclass(frozen=True, slots=True)
class LoggedJob:
    """A job as the job log holds it: its position (1, 2, ...), spec and arrival time; or, in a
    federation whose decisions run on an executor, the executor's report at that position."""

    position: int
    spec: JobSpec | None
    arrival: float
    report: Report | None = None
    refused: str = ""  # why the entry is neither a job nor a report signed by the executor
    retry_of: str = ""  # the job the executor submitted this one again for, as the entry says

    @property
    def job(self) -> Job:
        assert self.spec is not None, "a report is not a job"
        return self.spec.job()

    @property
    def entry_id(self) -> str:
        if self.refused:
            return f"{REFUSED}{self.position}"
        return self.report.entry_id if self.report is not None else self.job.id


def logged_entry(position: int, data: bytes, reports: ReportKey | None = None) -> LoggedJob:
    """An entry of the job log as read from the stream: a job, an executor's report (taken only with
    the signature of the executor ``reports`` names), or a refused entry; never an exception.

    Whoever may publish on the bus can append anything to the log. Every member reads the same bytes
    and the same genesis, so every member refuses the same entries, and the members decide a refused
    entry as an agreed reject that changes nothing (a forged report cannot free a running job's nodes
    or take a node out of service)."""
    try:
        body = wire.parse_json(data)
        arrival = float(body["arrival"])
        if not math.isfinite(arrival):
            raise ValueError("arrival is not a finite number")
        if "report" in body:  # the executor's: a job ended, a node went down or came back
            report = Report.model_validate(body["report"])
            if reports is None:
                return LoggedJob(position, None, 0.0, refused="a report, and this federation runs on no executor")
            if not reports.signed(report, body.get("signature")):
                return LoggedJob(position, None, 0.0, refused="a report without the executor's valid signature")
            return LoggedJob(position, None, arrival, report)
        retry_of = body.get("retry_of")
        return LoggedJob(position, JobSpec.model_validate(body["job"]), arrival,
                         retry_of=retry_of if isinstance(retry_of, str) and len(retry_of) <= 64 else "")
    except wire.WireError as exc:
        return LoggedJob(position, None, 0.0, refused=f"neither a job nor a report ({exc})")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        return LoggedJob(position, None, 0.0, refused=f"neither a job nor a report ({type(exc).__name__})")


class JobLog:
    """The job log's entries as every member reads them: :func:`logged_entry`, and a job whose id an
    earlier entry already took is refused too.

    A job id names one job: the ledger keeps one decision per id, and a running job is known by it.
    A second job under the same id (the same file submitted again after the bus's duplicate window,
    or anyone on the bus) would otherwise make a second decision under it, which no ledger takes,
    and a second reservation that hides the first. Which entry came first is the log's order, the
    same for every reader, so every member refuses the same entries. Entries must be read in order."""

    def __init__(self, reports: ReportKey | None = None) -> None:
        self.reports = reports
        self._first: dict[str, int] = {}  # job id -> the position that took it

    def entry(self, position: int, data: bytes) -> LoggedJob:
        logged = logged_entry(position, data, self.reports)
        if logged.spec is None:
            return logged
        first = self._first.setdefault(logged.spec.id, position)
        if first != position:
            return LoggedJob(position, None, 0.0, refused=f"job {logged.spec.id} is already at position {first} "
                                                          "of the job log")
        return logged


def refused_entry(logged: LoggedJob) -> PlacementValue:
    """The one batch entry a member accepts for a refused entry: nothing placed, and why."""
    return PlacementValue(logged.entry_id, None, f"refused: {logged.refused}")


class Replica:
    """One member's state machine over the decided batches."""

    def __init__(self, state: ClusterState, specialty: str, executed: bool = False) -> None:
        self.state = state
        self.specialty = specialty
        # On an executor, jobs end when its reports say so, not after their runtime in the jobs' time.
        self.executed = executed
        self.applied = 0  # position of the last job applied
        self.last_report = 0  # the number of the last executor report taken
        self._ends: dict[str, float] = {}  # running job -> when it ends
        self._undo: list[Callable[[], None]] | None = None

    # --- the three things a member does -----------------------------------------------------

    def propose(self, jobs: Sequence[LoggedJob]) -> PlacementBatch:
        """This member's placements for ``jobs`` (the next ones of the log, in order): its best option
        for each, or the agreed reject when no pool can take it; the state is left as it was."""
        entries = []
        with self._trial():
            for logged in jobs:
                entries.append(self._place_best(logged))
        return PlacementBatch(jobs[0].position, tuple(entries))

    def validate(self, batch: PlacementBatch, jobs: Sequence[LoggedJob]) -> bool:
        """Whether ``batch`` places exactly ``jobs`` (the next of the log), each feasibly, or rejects
        only what no pool can take; the state is left as it was."""
        if batch.first != self.applied + 1 or len(batch.entries) != len(jobs) or not jobs:
            return False
        with self._trial():
            return all(self._accepts(entry, logged) for entry, logged in zip(batch.entries, jobs, strict=True))

    def apply(self, batch: PlacementBatch, jobs: Sequence[LoggedJob]) -> None:
        """Apply a decided batch (it was checked by a quorum; applied unchecked but in order)."""
        if batch.first != self.applied + 1:
            raise ValueError(f"batch starts at job {batch.first}, expected {self.applied + 1}")
        for entry, logged in zip(batch.entries, jobs, strict=True):
            if logged.report is not None:
                self._take_report(logged.report)
            elif not logged.refused:
                self._release_until(logged.arrival)
                if entry.placement is not None:
                    self._reserve(logged, self._placement(entry))
            self.applied = logged.position

    # --- rules ----------------------------------------------------------------------------------

    def _place_best(self, logged: LoggedJob) -> PlacementValue:
        if logged.refused:
            return refused_entry(logged)
        if logged.report is not None:
            self._take_report(logged.report)
            return report_entry(logged.report)
        self._release_until(logged.arrival)
        job = logged.job
        options = placement_options(self.state, job, self.specialty, {}, limit=1)
        if not options:
            return PlacementValue(job.id, None, NO_CAPACITY + why_infeasible(self.state, job))
        placement = options[0].placement
        self._reserve(logged, placement)
        return PlacementValue(job.id, tuple(placement.nodes), f"{placement.pool} (score {options[0].score:.3f})")

    def _accepts(self, entry: PlacementValue, logged: LoggedJob) -> bool:
        if logged.refused:
            return entry == refused_entry(logged)
        if logged.report is not None:  # the report's own entry, nothing else
            self._take_report(logged.report)
            return entry == report_entry(logged.report)
        self._release_until(logged.arrival)
        job = logged.job
        if entry.job_id != job.id:
            return False
        if entry.placement is None:  # a reject is right only when no pool can take the job, and says why
            return (entry.reason == NO_CAPACITY + why_infeasible(self.state, job)
                    and not placement_options(self.state, job, self.specialty, {}, limit=1))
        placement = self._placement(entry)
        if placement is None or not check_placement(self.state, job, placement).ok:
            return False
        self._reserve(logged, placement)
        return True

    def _placement(self, entry: PlacementValue) -> Placement | None:
        nodes = entry.placement or ()
        if not nodes or nodes[0] not in self.state.pool_of:
            return None
        return Placement(job_id=entry.job_id, pool=self.state.pool_of[nodes[0]], nodes=tuple(nodes))

    # --- changes, with an undo log while trying -------------------------------------------------

    def _reserve(self, logged: LoggedJob, placement: Placement) -> None:
        job = logged.job
        self.state.reserve(job, placement)
        self._ends[job.id] = logged.arrival + job.runtime_s
        if self._undo is not None:
            self._undo.append(lambda: self._unreserve(job.id))

    def _unreserve(self, job_id: str) -> None:
        self.state.release(job_id)
        del self._ends[job_id]

    def _take_report(self, report: Report) -> None:
        """What the executor saw: the job's nodes come back, or the node leaves (or rejoins) service.
        A report of a job this state does not hold (never placed, already ended) changes nothing, nor
        does one numbered at or below a report taken before (a signed report published again)."""
        if report.number <= self.last_report:
            return
        last, self.last_report = self.last_report, report.number
        if self._undo is not None:
            self._undo.append(lambda: setattr(self, "last_report", last))
        if report.node is not None:
            was_down = report.node in self.state.down
            if report.node in self.state.nodes and was_down != report.down:
                self.state.set_down(report.node, bool(report.down))
                if self._undo is not None:
                    self._undo.append(lambda: self.state.set_down(report.node, was_down))  # type: ignore[arg-type]
            return
        if report.ended in self.state.running:
            job, placement = self.state.running[report.ended]
            end = self._ends.pop(report.ended)
            self.state.release(report.ended)
            if self._undo is not None:
                self._undo.append(lambda: self._rerun(job, placement, end))

    def _release_until(self, now: float) -> None:
        if self.executed:
            return
        for job_id in sorted(j for j, end in self._ends.items() if end <= now):
            job, placement = self.state.running[job_id]
            end = self._ends.pop(job_id)
            self.state.release(job_id)
            if self._undo is not None:
                self._undo.append(lambda job=job, placement=placement, end=end: self._rerun(job, placement, end))

    def _rerun(self, job: Job, placement: Placement, end: float) -> None:
        self.state.reserve(job, placement)
        self._ends[job.id] = end

    def _trial(self) -> _Trial:
        return _Trial(self)


class _Trial:
    """A block whose changes to the replica are undone at its end, in reverse order."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def __enter__(self) -> None:
        self.replica._undo = []

    def __exit__(self, *exc: object) -> None:
        undo, self.replica._undo = self.replica._undo or [], None
        for step in reversed(undo):
            step()
