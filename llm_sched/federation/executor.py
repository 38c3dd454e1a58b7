"""The federation's executor process: runs what the members decide, and files what happened.

``llm-sched execute --federation FILE`` (``federation up --executor slurm`` starts it) reads the
decision stream in instance order, checks each record's certificate against the genesis (a record
that does not check starts nothing), and hands every committed placement to the executor the genesis
names, on exactly the nodes decided. What the executor then sees goes back into the job log as
reports (:mod:`llm_sched.federation.execution`): a job that ended releases its nodes at every member,
a node that went down leaves their cluster, and a job that failed or was lost with its node is
submitted again as ``<id>.r1``, ``.r2``... for the members to place anew. A job the members rejected
for want of room now waits here and is submitted again the same way once it fits
(:mod:`llm_sched.federation.waiting`).

Its own ledger (``DATA/executor/llm_sched.db``) holds every job it started: the Slurm job id, the
nodes, how it ended and the nodes the job itself reported. A restarted executor starts nothing twice:
a job its ledger holds as running, which no process follows any more, is stopped and reported lost
(and so placed again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

from llm_sched.core.model import Placement
from llm_sched.errors import UserError
from llm_sched.execution.base import Executor, Finished, NodeChange, Update, retry_id
from llm_sched.execution.factory import ExecutorChoice, make_executor
from llm_sched.federation.bus import REQUEST_TIMEOUT, connect, layout_for
from llm_sched.federation.client import next_arrival, publish_entry
from llm_sched.federation.execution import ExecutionPlan, Report, sign_report
from llm_sched.federation.keys import load_executor_key, read_genesis
from llm_sched.federation.records import Record, check_record, decode_record
from llm_sched.federation.replica import JobLog, LoggedJob, logged_entry
from llm_sched.federation.spec import Federation
from llm_sched.federation.waiting import WaitingJobs
from llm_sched.orchestration.scenarios import JobSpec
from llm_sched.store.ledger import ExecutionRow, Ledger
from llm_sched.transport import wire

log = logging.getLogger("llm_sched.executor")
POLL_S = 0.25  # wall seconds between two looks at the decision stream and the executor
MAX_RETRY_IDS = 100  # retry ids tried for one job before giving up (each taken by some other entry)


@dataclass(frozen=True)
class ExecutorOptions:
    servers: tuple[str, ...]
    data: Path
    creds: Path | None = None


def executor_dir(data: Path) -> Path:
    return data / "executor"


class FederationExecutor:
    """Follows the decision stream and one executor; files reports and retries in the job log."""

    def __init__(self, fed: Federation, options: ExecutorOptions) -> None:
        genesis = read_genesis(fed, options.data)
        if genesis.execution is None:
            raise UserError(f"federation {fed.name} under {options.data} decides without an executor; start it "
                            f"with `llm-sched federation up FILE --executor slurm|local`")
        self.fed, self.options, self.plan = fed, options, genesis.execution
        self.public = genesis.public
        self.key = load_executor_key(options.data)  # signs its reports: the members take no other
        self.report_key = genesis.reports
        self.job_log = JobLog(genesis.reports)  # the job log as the members read it, in order
        self.pool_of = genesis.initial_state(fed).pool_of
        self.executor: Executor = make_executor(_choice(self.plan), executor_dir(options.data) / "jobs")
        self.stopping = asyncio.Event()
        self.instance = 0  # the next instance to read
        self.rows: dict[str, ExecutionRow] = {}  # jobs started and not yet ended
        self.specs: dict[str, JobSpec] = {}  # by job id, for a retry
        self.reports = 0
        self.waiting = WaitingJobs(lambda: genesis.initial_state(fed))
        self.down: set[str] = set()  # nodes the executor last saw down
        self.pending: dict[str, JobSpec] = {}  # jobs it submitted again, not yet decided
        self.taken: set[str] = set()  # retry ids the bus had already seen from someone else
        self.decided_upto = 0  # the last job log position the decisions read so far cover
        self.counts = {"started": 0, "completed": 0, "failed": 0, "lost": 0, "nodes_down": 0}

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.ledger, self.epoch = self._open_ledger()
        self.nc = await connect(self.options.servers, f"{self.fed.name}/executor", patient=True,
                                creds=self.options.creds)
        self.js = self.nc.jetstream(timeout=REQUEST_TIMEOUT)
        await layout_for(self.js, self.fed.subjects, 1, ", ".join(self.options.servers))
        self.status = await self.js.key_value(self.fed.subjects.status_bucket)
        try:
            self.reports = await self._last_report_number()  # a restart numbers its reports on
            # What is decided already (a restart: started before, or not yet); what waits is submitted
            # once the jobs an earlier process left running are stopped and their nodes free.
            await self._take_decisions(replay=True)
            await self._undecided_retries()
            self.executor.reported_down(set(self.down))  # its next look reports what changed since
            await self._abandon_unfollowed()
            await self._submit_waiting()
            while not self.stopping.is_set():
                await self._take_decisions()
                await self._file(await self.executor.advance(self.executor.now() + POLL_S / self.plan.time_scale))
                await self._publish_status()
        finally:
            self.executor.close()  # stopped with the federation: no job of ours runs on unwatched
            await self._publish_status()
            await self.nc.drain()
            self.ledger.close()
        return 0

    # --- what the members decided -----------------------------------------------------------------

    async def _take_decisions(self, replay: bool = False) -> None:
        """Start what the members placed and queue what they rejected for want of room. ``replay``: a
        (re)started executor reads every decision; the node reports among them are what the members
        know of the nodes, and nothing is submitted yet."""
        fresh = False  # a job that waits, rejected for the first time
        while (record := await self._record(self.instance)) is not None:
            jobs = [self.job_log.entry(p, await self._entry(p)) for p in range(record.batch.first, record.batch.last + 1)]
            for entry, logged in zip(record.batch.entries, jobs, strict=True):
                if replay and logged.report is not None and logged.report.node is not None:
                    self._node_is(logged.report.node, bool(logged.report.down))
                if logged.spec is None:
                    continue
                self.specs[logged.spec.id] = logged.spec  # a retry of it needs its spec
                ours = self.pending.pop(logged.spec.id, None) is not None
                if logged.retry_of:
                    self.waiting.submitted_again(logged.retry_of)
                if entry.placement is None:
                    if self.waiting.rejected(logged.spec, entry.reason):
                        log.info("job %s waits for room", logged.spec.id)
                        fresh = fresh or not ours
                elif entry.job_id not in self.done:
                    await self._start(logged, tuple(entry.placement))
            self.instance += 1
            self.decided_upto = record.batch.last
        # Room may have come back before a new rejection was read. A retry of ours rejected again
        # waits for the next end or node back up: asking again at once, on the same view of the
        # room, could go on for ever where the members see less room than this executor guesses.
        if fresh and not replay:
            await self._submit_waiting()

    async def _undecided_retries(self) -> None:
        """Retries an earlier process submitted that the members have not decided yet: pending, and
        the jobs they were for wait no more (else a restart would submit them a second time)."""
        for position in range(self.decided_upto + 1, (await self._log_span())[1] + 1):
            logged = self.job_log.entry(position, await self._entry(position))
            if logged.spec is not None and logged.retry_of:
                self.waiting.submitted_again(logged.retry_of)
                self.pending[logged.spec.id] = logged.spec

    async def _start(self, logged: LoggedJob, nodes: tuple[str, ...]) -> None:
        job = logged.job
        placement = Placement(job_id=job.id, pool=self.pool_of[nodes[0]], nodes=nodes)
        started = await self.executor.start(job, placement)
        row = ExecutionRow(job.id, self.executor.name, started.external_id, nodes, "running", started.sim_time)
        self.rows[job.id] = row
        self.done.add(job.id)
        self.ledger.record_execution(self.fed.name, self.epoch, row)
        self.counts["started"] += 1
        log.info("job %s started on %s (%s %s)", job.id, ",".join(nodes), self.executor.name, started.external_id)

    async def _record(self, number: int) -> Record | None:
        """The first record of instance ``number`` in the stream whose certificate checks, or None yet."""
        from nats.js.errors import NotFoundError

        subject, seq = self.fed.subjects.decided(number), 1
        while True:
            try:
                msg = await self.js.get_msg(self.fed.subjects.decisions_stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return None
            seq = msg.seq + 1
            try:
                record = decode_record(msg.data or b"")
            except wire.WireError:
                continue
            problem = check_record(record, self.fed.name, self.public, self.fed.quorum)
            if problem is None and record.instance == number:
                return record
            log.warning("record of instance %d refused: %s", number, problem)

    async def _log_span(self) -> tuple[int, int]:
        """The first and the last position the job log holds."""
        state = (await self.js.stream_info(self.fed.subjects.jobs_stream)).state
        return state.first_seq, state.last_seq

    async def _entry(self, position: int) -> bytes:
        msg = await self.js.get_msg(self.fed.subjects.jobs_stream, seq=position)
        return msg.data or b""

    async def _logged(self, position: int) -> LoggedJob:
        return logged_entry(position, await self._entry(position), self.report_key)

    async def _last_report_number(self) -> int:
        """The number of the last report of ours in the job log (0: none): the next one is above it."""
        from nats.js.errors import NotFoundError

        first, last = await self._log_span()
        for position in range(last, max(first, 1) - 1, -1):
            try:
                logged = await self._logged(position)
            except NotFoundError:
                continue
            if logged.report is not None:
                return logged.report.number
        return 0

    # --- what the executor saw ----------------------------------------------------------------------

    async def _file(self, updates: list[Update]) -> None:
        """Report what the executor saw, in its order; then the lost jobs again, after every end seen
        with them (what those held is free for the retries at every member)."""
        lost = []
        for update in updates:
            if isinstance(update, NodeChange):
                self.counts["nodes_down"] += update.down
                self._node_is(update.node, update.down)
                log.info("node %s %s (%s)", update.node, "down" if update.down else "back up", update.reason)
                await self._report(Report(node=update.node, down=update.down, number=self.reports + 1,
                                          reason=update.reason[:300]))
            elif await self._ended(update):
                lost.append(update.job_id)
        for job_id in lost:
            await self._retry(job_id)
        if updates:
            await self._submit_waiting()

    def _node_is(self, node: str, down: bool) -> None:
        (self.down.add if down else self.down.discard)(node)

    async def _ended(self, end: Finished) -> bool:
        """Record and report the end; whether the job must be placed again."""
        row = replace(self.rows.pop(end.job_id), state=end.state, ended=end.sim_time, ran_on=end.ran_on,
                      reason=end.reason)
        self.ledger.record_execution(self.fed.name, self.epoch, row)
        self.counts[end.state] += 1
        log.info("job %s %s%s", end.job_id, end.state, f" ({end.reason})" if end.reason else "")
        await self._report(Report(ended=end.job_id, state=end.state, number=self.reports + 1,
                                  reason=end.reason[:300]))
        return end.state != "completed"

    async def _report(self, report: Report) -> None:
        self.reports = report.number
        body = {"report": report.model_dump(), "signature": sign_report(report, self.fed.name, self.key),
                "arrival": await next_arrival(self.js, self.fed), "submitted": time.time()}
        await publish_entry(self.js, self.fed.subjects.jobs, json.dumps(body).encode(), report.entry_id)

    async def _retry(self, job_id: str) -> None:
        """The job again, under a new id, for the members to place anew."""
        await self._submit_again(self.specs[job_id])

    async def _submit_waiting(self) -> None:
        """The waiting jobs that fit beside what runs now, again under new ids."""
        running = [(self.specs[job_id].job(), row.nodes) for job_id, row in self.rows.items() if job_id in self.specs]
        ahead = [spec.job() for spec in self.pending.values()]
        for spec in self.waiting.ready(running, self.down, ahead):
            await self._submit_again(spec)

    async def _submit_again(self, spec: JobSpec) -> None:
        """``spec`` again under its next retry id that no entry has taken (a user may have named a job
        so; the bus drops a message id it saw within the hour, which says so in its answer)."""
        again_id = retry_id(spec.id)
        for _ in range(MAX_RETRY_IDS):
            if again_id in self.specs or again_id in self.pending or again_id in self.taken:
                again_id = retry_id(again_id)
                continue
            again = spec.model_copy(update={"id": again_id})
            body = {"job": again.model_dump(), "arrival": await next_arrival(self.js, self.fed),
                    "submitted": time.time(), "retry_of": spec.id}
            ack = await publish_entry(self.js, self.fed.subjects.jobs, json.dumps(body).encode(), again.id)
            if not ack.duplicate:
                self.pending[again.id] = again
                log.info("job %s submitted again as %s", spec.id, again.id)
                return
            self.taken.add(again_id)
        log.warning("job %s not submitted again: its next %d retry ids are taken", spec.id, MAX_RETRY_IDS)

    # --- its own record -------------------------------------------------------------------------

    def _open_ledger(self) -> tuple[Ledger, int]:
        folder = executor_dir(self.options.data)
        folder.mkdir(parents=True, exist_ok=True)
        ledger = Ledger.open(folder / "llm_sched.db")
        if ledger.run(self.fed.name) is None:
            epoch = ledger.create_run(self.fed.name, "federation", self.fed.name, self.plan.executor, self.fed.seed,
                                      {"executor": self.plan.executor, "time_scale": self.plan.time_scale}, folder)
        else:
            _, epoch = ledger.claim_run(self.fed.name, "federation")
        rows = ledger.executions(self.fed.name)
        self.done = {r.job_id for r in rows}  # never started twice
        self.unfollowed = [r for r in rows if r.state == "running"]
        return ledger, epoch

    async def _abandon_unfollowed(self) -> None:
        """Jobs an earlier executor process started and never saw end: stopped, and reported lost."""
        for row in self.unfollowed:
            if row.external_id:
                self.executor.abandon(row.external_id)
            self.rows[row.job_id] = row
        await self._file([Finished(row.job_id, "lost", self.executor.now(), None,
                                   "the executor restarted and no longer followed it") for row in self.unfollowed])

    async def _publish_status(self) -> None:
        body = {**self.counts, "running": len(self.rows), "waiting": len(self.waiting), "instance": self.instance,
                "reports": self.reports, "executor": self.executor.name, "updated": time.time()}
        try:
            await self.status.put("executor", json.dumps(body).encode())
        except Exception as exc:  # the bus is failing over: the next poll writes it again
            log.warning("could not write the executor's status (%s)", type(exc).__name__)


def _choice(plan: ExecutionPlan) -> ExecutorChoice:
    return ExecutorChoice(kind=plan.executor, time_scale=plan.time_scale,
                          slurm_conf=Path(plan.slurm_conf) if plan.slurm_conf else None)


def run_executor(fed: Federation, options: ExecutorOptions) -> int:
    """Run the federation's executor until SIGTERM; its log lines go to stderr (the launcher files them)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(FederationExecutor(fed, options).run())
