"""One member of a federation as its own process on NATS: ``llm-sched agent --name NAME --federation FILE``.

What it does, in order:
1. loads its private key and the genesis (every member's public key), opens its own ledger (SQLite,
   ``DATA/agents/NAME/ledger.db``; a restart takes the next epoch, fencing off a zombie of itself);
2. joins: registers in the registry bucket (a TTL entry it refreshes), starts heartbeats, and waits
   for the formation record, the membership agreed before the first decision (the first member to
   see every member registered writes it by compare-and-set; after ``FORMATION_WAIT`` seconds a
   quorum is enough);
3. catches up: every instance already in the decision stream is checked (its certificate, against the
   genesis) and applied, and written to its ledger if missing;
4. decides: one PBFT instance after another, each placing the next batch of jobs of the job log. The
   core is :class:`~llm_sched.protocols.pbft.PbftCore`, unchanged; this module is its transport
   (NATS) and its clock (milliseconds of the monotonic clock). A broadcast is signed once and
   published once; messages for later instances wait, those for earlier ones are dropped. A member
   that falls behind (a lost message, a restart) adopts the instance from the decision stream.
5. on SIGTERM writes its final status to the status bucket and stops.

Failure detection: every member's heartbeats feed a phi-accrual detector per peer; when the primary of
the current view is suspected (phi > 8), this member's view-change timer is run out at once instead
of waiting for it, so a dead primary costs one view change, not a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from llm_sched.agents.reputation import PENALTY_SILENCE, REWARD_GOOD_CONDUCT, Reputation
from llm_sched.federation.bus import REQUEST_TIMEOUT, connect, ensure_layout, registered
from llm_sched.federation.keys import agent_dir, load_private_key, read_genesis
from llm_sched.federation.records import (
    Record,
    check_record,
    core_id,
    decode_record,
    instance_ring,
    member_of,
    valid_skip,
)
from llm_sched.federation.replica import JobLog, LoggedJob, Replica
from llm_sched.federation.spec import Federation, Member
from llm_sched.protocols.messages import Kind, Message, Output, PlacementBatch, Value
from llm_sched.protocols.pbft import PbftConfig, PbftCore
from llm_sched.protocols.quorum import byzantine_f
from llm_sched.store.ledger import DecisionRecord, Ledger
from llm_sched.transport import wire
from llm_sched.transport.phi_accrual import THRESHOLD, PhiAccrual

log = logging.getLogger("llm_sched.federation.agent")

FORMATION_WAIT = 20.0  # seconds to wait for every member before forming with a quorum
POLL = 0.5  # seconds between looks at the streams when nothing was announced (a lost notice)
MAX_AHEAD = 64  # instances ahead of ours whose messages are kept
MAX_KEPT = 4096  # messages kept for one later instance (a flood is dropped, not stored)


@dataclass(frozen=True)
class AgentOptions:
    """How an agent runs; the defaults suit a loopback bus on a small machine."""

    servers: tuple[str, ...]
    data: Path
    replicas: int = 1
    base_timeout_ms: float = 500.0
    heartbeat_s: float = 0.2
    registry_every_s: float = 1.0
    batch_max: int = 16
    creds: Path | None = None  # a tenant's credentials file on a bus with tenants


@dataclass
class Counters:
    """What this member sent and received (protocol messages, counted per receiver as in-process)."""

    published: int = 0  # NATS publishes of protocol messages
    sent: int = 0  # messages as the core produced them (one per receiver)
    sent_bytes: int = 0
    received: int = 0
    dropped: int = 0  # bad signature or malformed
    stale: int = 0  # for an instance already decided here
    decided_here: int = 0  # instances this member's own core decided
    adopted: int = 0  # instances taken from the decision stream
    view_changes: int = 0  # instances decided in a view above 0
    fast_forwards: int = 0  # view-change timers run out early because the primary was suspected
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


class _Instance:
    """One PBFT instance as this member runs it: the core, its key ring and its clock."""

    def __init__(self, agent: AgentProcess, number: int, first: int) -> None:
        fed, n = agent.fed, agent.fed.n
        self.number, self.first, self.agent = number, first, agent
        self.skip = agent.skip_next  # the exclusion the last batch agreed: who leads this instance last
        self.ring = instance_ring(fed.name, number, agent.public, (agent.me.index, agent.private), self.skip)
        me = core_id(agent.me.index, number, n, self.skip)
        self.me = me
        self.core = PbftCore(me, tuple(range(n)), 1, self.ring.signer(me), self.ring, self._propose, self._validate,
                             PbftConfig(base_timeout=agent.options.base_timeout_ms))
        self.started = time.monotonic()
        self.offset = 0.0  # ms added to the clock when a suspected primary's timer was run out
        self.forwarded_view = -1
        self.held: list[Message] = []  # proposals naming jobs not yet read from the job log

    def now(self) -> float:
        return (time.monotonic() - self.started) * 1000.0 + self.offset

    def primary_member(self) -> int:
        return self.member(self.core.primary(self.core.view))

    def member(self, core: int) -> int:
        return member_of(core, self.number, self.agent.fed.n, self.skip)

    def _propose(self, slot: int) -> Value:
        batch = self.agent.replica.propose(self.agent.next_jobs(self.first))
        return replace(batch, skip=self.agent.exclusions())

    def _validate(self, slot: int, value: Value) -> bool:
        if not isinstance(value, PlacementBatch) or value.first != self.first:
            return False
        if not valid_skip(value.skip, self.agent.fed.n):
            return False
        jobs = self.agent.jobs_between(value.first, value.last)
        return jobs is not None and self.agent.replica.validate(value, jobs)


class AgentProcess:
    """One member: its state, its connection and its loops."""

    def __init__(self, fed: Federation, member: Member, options: AgentOptions) -> None:
        self.fed, self.me, self.options = fed, member, options
        self.private = load_private_key(options.data, member.name)
        genesis = read_genesis(fed, options.data)
        self.public = genesis.public
        # The executor's key (its reports are taken, no one else's); a job id is taken by its first entry.
        self.job_log = JobLog(genesis.reports)
        self.subjects = fed.subjects
        self.replica = Replica(genesis.initial_state(fed), member.specialty, executed=genesis.execution is not None)
        self.jobs: dict[int, LoggedJob] = {}
        self.instance = 0  # the instance being decided (all before it are applied)
        self.current: _Instance | None = None
        self.inbox: asyncio.Queue[tuple[int, Message] | None] = asyncio.Queue()
        self.ahead: dict[int, list[Message]] = {}
        self.records: dict[int, Record] = {}  # instance -> a record seen on the bus, not yet checked
        self.detectors = {m.index: PhiAccrual(first_estimate=options.heartbeat_s) for m in fed.members
                          if m.index != member.index}
        # Suspicion feeds reputation (the agents' own rules: a silence penalty each second a peer is
        # suspected, the good-conduct reward each second it is heard), and an excluded peer (below 0.5,
        # back at 0.6) is proposed to lead last (at most f of them).
        self.names = {m.index: m.name for m in fed.members}
        self.reputation = Reputation.fresh([self.names[i] for i in self.detectors])
        self.skip_next: tuple[int, ...] = ()
        self.counters = Counters()
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.started_at = time.time()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")  # SQLite stays on one thread
        self._ledger_queue: asyncio.Queue[list[DecisionRecord]] = asyncio.Queue()
        self._fetching = asyncio.Lock()

    # --- jobs ---------------------------------------------------------------------------------

    def next_jobs(self, first: int) -> list[LoggedJob]:
        """The jobs from position ``first`` on that this member has read, at most a batch."""
        out = []
        for p in range(first, first + self.options.batch_max):
            if p not in self.jobs:
                break
            out.append(self.jobs[p])
        return out

    def jobs_between(self, first: int, last: int) -> list[LoggedJob] | None:
        """Jobs ``first``..``last``, or None while one of them has not been read yet."""
        if any(p not in self.jobs for p in range(first, last + 1)):
            return None
        return [self.jobs[p] for p in range(first, last + 1)]

    def exclusions(self) -> tuple[int, ...]:
        """The peers this member proposes to exclude from leading: those its reputation excludes, the
        worst first, at most f, in member order (what every member checks a proposal against)."""
        index = {name: i for i, name in self.names.items()}
        low = sorted((self.reputation.scores[a], index[a]) for a in self.reputation.excluded)
        return tuple(sorted(i for _, i in low[: byzantine_f(self.fed.n)]))

    # --- the process ----------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.ledger, self.epoch = await loop.run_in_executor(self._db, self._open_ledger)
        self.nc = await connect(self.options.servers, f"{self.fed.name}/{self.me.name}", patient=True,
                                creds=self.options.creds)
        self.js = self.nc.jetstream(timeout=REQUEST_TIMEOUT)
        await self._bind()
        await self._subscribe()
        tasks = [_watched(c) for c in (self._heartbeats(), self._register(), self._poll(), self._ledger_writer())]
        log.info("agent %s (member %d of %d) up, ledger epoch %d", self.me.name, self.me.index, self.fed.n, self.epoch)
        try:
            await self._form()
            # From now on every member is expected to be heard: one that never was is as suspicious as
            # one that fell silent (the detector starts as if a heartbeat had just arrived).
            now = time.monotonic()
            for detector in self.detectors.values():
                if detector.last is None:
                    detector.heartbeat(now)
            decide = _watched(self._decide())
            await self.stopping.wait()
            decide.cancel()
        finally:
            await self._final_status()
            for t in tasks:
                t.cancel()
            await self._flush_ledger()
            await self.nc.drain()
            await loop.run_in_executor(self._db, self.ledger.close)
            self._db.shutdown()
        return 0

    async def _bind(self) -> None:
        """The streams and buckets, again and again while the bus fails over (a restart may land in it)."""
        attempt = 0
        while True:
            try:
                await ensure_layout(self.js, self.subjects, self.options.replicas)
                self.registry = await self.js.key_value(self.subjects.registry_bucket)
                self.status = await self.js.key_value(self.subjects.status_bucket)
                return
            except Exception as exc:  # timeouts, no responders: a server lost, a leader being elected
                attempt += 1
                log.warning("the bus is not serving the federation's streams yet (%s); retrying", type(exc).__name__)
                await asyncio.sleep(min(2.0, 0.2 * attempt))

    def _open_ledger(self) -> tuple[Ledger, int]:
        folder = agent_dir(self.options.data, self.me.name)
        folder.mkdir(parents=True, exist_ok=True)
        ledger = Ledger.open(folder / "ledger.db")
        if ledger.run(self.fed.name) is None:
            epoch = ledger.create_run(self.fed.name, "federation", self.fed.name, "heuristic", self.fed.seed,
                                      {"member": self.me.name, "file": str(self.fed.path)})
        else:
            _, epoch = ledger.claim_run(self.fed.name, "federation")
        return ledger, epoch

    async def _subscribe(self) -> None:
        s = self.subjects
        await self.nc.subscribe(s.to(self.me.index), cb=self._on_protocol)
        await self.nc.subscribe(s.broadcast, cb=self._on_protocol)
        await self.nc.subscribe(s.heartbeats, cb=self._on_heartbeat)
        await self.nc.subscribe(s.jobs, cb=self._on_job_notice)
        await self.nc.subscribe(s.decided_all, cb=self._on_record)

    # --- formation ------------------------------------------------------------------------------

    async def _form(self) -> None:
        """Wait for the formation record; write it when every member (or, late, a quorum) is registered."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        deadline = time.monotonic() + FORMATION_WAIT
        while not self.stopping.is_set():
            try:
                await self.status.get("formation")
                return
            except KeyNotFoundError:
                pass
            except Exception as exc:  # the bus failing over: ask again
                log.warning("reading the formation record failed (%s)", type(exc).__name__)
                await asyncio.sleep(0.25)
                continue
            try:
                present = await self._registered()
            except Exception as exc:
                log.warning("reading the registry failed (%s)", type(exc).__name__)
                await asyncio.sleep(0.25)
                continue
            if len(present) == self.fed.n or (time.monotonic() > deadline and len(present) >= self.fed.quorum):
                record = {"members": [m.name for m in self.fed.members], "present": sorted(present),
                          "formed_by": self.me.name, "at": time.time()}
                try:
                    await self.status.create("formation", json.dumps(record).encode())
                    log.info("formed the federation with %d of %d members present", len(present), self.fed.n)
                except KeyWrongLastSequenceError:
                    pass  # another member wrote it first: the same membership
                except Exception as exc:  # the bus failing over: look again (the record may have landed)
                    log.warning("writing the formation record failed (%s)", type(exc).__name__)
                    await asyncio.sleep(0.25)
                    continue
                return
            await asyncio.sleep(0.25)

    async def _registered(self) -> set[str]:
        return set(await registered(self.registry, [m.name for m in self.fed.members]))

    # --- the decision loop ----------------------------------------------------------------------

    async def _decide(self) -> None:
        await self._catch_up()
        while not self.stopping.is_set():
            first = self.replica.applied + 1
            if await self._adopt(self.instance):
                continue
            if first not in self.jobs:
                self.wake.clear()
                await self._fetch_jobs()
                if first not in self.jobs:
                    await self._sleep_or_wake(POLL)
                    continue
            await self._run_instance(first)

    async def _run_instance(self, first: int) -> None:
        inst = _Instance(self, self.instance, first)
        self.current = inst
        self._send(inst, inst.core.tick(inst.now()))
        for m in self.ahead.pop(inst.number, []):
            self._deliver(inst, m)
        while inst.number == self.instance and not self.stopping.is_set():
            self._forward_if_primary_suspected(inst)
            self._send(inst, inst.core.tick(inst.now()))
            if inst.number != self.instance:
                break
            if inst.number in self.records and await self._adopt(inst.number):
                break
            deadline = inst.core.next_deadline()
            timeout = POLL if deadline is None else max(0.0, min(POLL, (deadline - inst.now()) / 1000.0))
            try:
                item = await asyncio.wait_for(self.inbox.get(), timeout)
            except TimeoutError:
                self._retry_held(inst)
                continue
            if item is None:
                self._retry_held(inst)
            elif item[0] == inst.number:
                self._deliver(inst, item[1])
        self.current = None

    def _deliver(self, inst: _Instance, msg: Message) -> None:
        """A message of this instance from the bus: addressed as in-process, its signature checked, stepped."""
        if msg.sender == inst.me:
            return  # our own broadcast
        msg = _addressed(msg, inst.me)
        if not inst.ring.verify(msg):
            self.counters.dropped += 1
            return
        self._step(inst, msg)

    def _step(self, inst: _Instance, msg: Message) -> None:
        if self._names_unread_jobs(msg):
            inst.held.append(msg)  # the proposal waits for the job log, as PBFT waits for a request body
            return
        self._send(inst, inst.core.tick(inst.now()))
        self._send(inst, inst.core.step(msg))

    def _retry_held(self, inst: _Instance) -> None:
        held, inst.held = inst.held, []
        for m in held:
            self._step(inst, m)

    def _names_unread_jobs(self, msg: Message) -> bool:
        values = [msg.value, *(p.value for p in msg.proof)]
        return any(isinstance(v, PlacementBatch) and self.jobs_between(v.first, v.last) is None for v in values)

    def _forward_if_primary_suspected(self, inst: _Instance) -> None:
        """Suspicion feeds view change: run the timer out when this view's primary is suspected."""
        view, primary = inst.core.view, inst.primary_member()
        if primary == self.me.index or inst.forwarded_view >= view:
            return
        detector = self.detectors[primary]
        if detector.suspected(time.monotonic()):
            deadline = inst.core.next_deadline()
            if deadline is not None and deadline > inst.now():
                inst.offset += deadline - inst.now()
                inst.forwarded_view = view
                self.counters.fast_forwards += 1

    def _send(self, inst: _Instance, out: Output) -> None:
        """Publish what the core produced (a broadcast once) and apply its decision."""
        groups: dict[bytes, list[Message]] = {}
        for m in out.messages:
            groups.setdefault(m.mac, []).append(m)
        for copies in groups.values():
            self._publish(inst, copies)
        for _slot, value in out.decisions:
            if isinstance(value, PlacementBatch) and inst.number == self.instance:
                self._decided(inst, value)

    def _publish(self, inst: _Instance, copies: list[Message]) -> None:
        header = f"{inst.number}\n".encode()
        receivers = {m.receiver for m in copies}
        everyone = set(range(self.fed.n)) - {inst.me}
        if receivers == everyone:
            data = header + wire.encode(copies[0])
            asyncio.ensure_future(self.nc.publish(self.subjects.broadcast, data))
            self.counters.published += 1
            self.counters.sent_bytes += len(data) * len(copies)
        else:
            for m in copies:
                data = header + wire.encode(m)
                asyncio.ensure_future(self.nc.publish(self.subjects.to(inst.member(m.receiver)), data))
                self.counters.published += 1
                self.counters.sent_bytes += len(data)
        self.counters.sent += len(copies)

    def _decided(self, inst: _Instance, batch: PlacementBatch) -> None:
        cert = inst.core.persisted().decided[0]
        commits = tuple(m for m in cert.messages if m.kind is Kind.COMMIT)
        # Every member that decides files its own record (its own message id): a record seen on the bus
        # may never have reached the stream (its publisher killed mid-publish, a server lost), and only
        # the stream lets a member that missed the decision catch up.
        record = Record(inst.number, cert.view, batch, commits, self.me.name, inst.skip)
        asyncio.ensure_future(self._publish_record(record))
        if self.jobs_between(batch.first, batch.last) is None:
            # Decided from a peer's certificate before this member read those jobs: apply it the way
            # a record is adopted, once the job log has been read.
            self.records[inst.number] = record
            self.inbox.put_nowait(None)
            return
        self.counters.decided_here += 1
        self.counters.view_changes += cert.view > 0
        self.counters.latencies_ms.append((time.monotonic() - inst.started) * 1000.0)
        self._apply(record)

    def _apply(self, record: Record) -> None:
        jobs = self.jobs_between(record.batch.first, record.batch.last)
        assert jobs is not None  # a decided or checked batch names only jobs already read
        self.replica.apply(record.batch, jobs)
        self.skip_next = record.batch.skip
        self.instance = record.instance + 1
        self.records.pop(record.instance, None)
        self._ledger_queue.put_nowait(self._ledger_rows(record, jobs))
        self.wake.set()

    async def _publish_record(self, record: Record) -> None:
        headers = {"Nats-Msg-Id": f"{record.instance}/{self.me.name}"}
        attempt = 0
        while not self.stopping.is_set():
            try:
                await self.js.publish(self.subjects.decided(record.instance), record.encode(), headers=headers)
                return
            except Exception as exc:  # a server lost mid-publish: retry, the message id makes it once
                attempt += 1
                log.warning("publishing the record of instance %d failed (%s); retrying", record.instance,
                            type(exc).__name__)
                await asyncio.sleep(min(2.0, 0.2 * attempt))

    # --- catching up from the decision stream -----------------------------------------------------

    async def _catch_up(self) -> None:
        """Apply every instance the decision stream already holds (a restart, a late start)."""
        while await self._adopt(self.instance, fetch=True):
            pass
        log.info("caught up: %d instances, %d jobs applied", self.instance, self.replica.applied)

    async def _adopt(self, number: int, fetch: bool = False) -> bool:
        """Take instance ``number`` from the decision stream if a checked record of it is there."""
        record = self.records.get(number)
        if record is None and fetch:
            record = await self._fetch_record(number)
        if record is None:
            return False
        problem = check_record(record, self.fed.name, self.public, self.fed.quorum)
        if problem is None and record.skip != self.skip_next:
            problem = f"its leader order excludes {list(record.skip)}, the agreed one {list(self.skip_next)}"
        if problem is not None or record.batch.first != self.replica.applied + 1:
            log.warning("record of instance %d refused: %s", number, problem or "it does not follow the last batch")
            self.records.pop(number, None)
            return False
        if self.jobs_between(record.batch.first, record.batch.last) is None:
            await self._fetch_jobs()
            if self.jobs_between(record.batch.first, record.batch.last) is None:
                return False
        if number != self.instance or record.batch.first != self.replica.applied + 1:
            return False  # decided here while the job log was read: nothing to adopt
        self.counters.adopted += 1
        self._apply(record)
        return True

    async def _fetch_record(self, number: int) -> Record | None:
        """A checked record of instance ``number`` from the stream (each decider files one), or None."""
        from nats.js.errors import NotFoundError

        subject, seq = self.subjects.decided(number), 1
        while True:
            try:
                msg = await self.js.get_msg(self.subjects.decisions_stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return None
            except Exception as exc:  # the bus is failing over: try again at the next poll
                log.warning("reading the decision stream failed (%s)", type(exc).__name__)
                return None
            seq = msg.seq + 1
            try:
                record = decode_record(msg.data or b"")
            except wire.WireError as exc:
                log.warning("a malformed record of instance %d in the stream: %s", number, exc)
                continue
            if record.instance == number and check_record(record, self.fed.name, self.public, self.fed.quorum) is None:
                return record

    async def _fetch_jobs(self) -> None:
        """Read the job log from the first position not yet read until its end."""
        async with self._fetching:  # one reader at a time: two would read the same positions
            await self._read_jobs()

    async def _read_jobs(self) -> None:
        from nats.js.errors import NotFoundError

        while True:
            position = max(self.jobs, default=0) + 1
            try:
                msg = await self.js.get_msg(self.subjects.jobs_stream, seq=position)
            except NotFoundError:
                return
            except Exception as exc:
                log.warning("reading the job log failed (%s)", type(exc).__name__)
                return
            self.jobs[position] = self.job_log.entry(position, msg.data or b"")
            if self.current is not None and self.current.held:
                self.inbox.put_nowait(None)  # the instance loop retries what waited for these jobs

    # --- bus callbacks --------------------------------------------------------------------------

    async def _on_protocol(self, msg) -> None:  # noqa: ANN001
        head, _, body = msg.data.partition(b"\n")
        try:
            number = int(head)
            decoded = wire.decode(body)
        except (ValueError, wire.WireError):
            self.counters.dropped += 1
            return
        self.counters.received += 1
        if number < self.instance:
            self.counters.stale += 1
            return
        # Checked and stepped by the decision task: a later instance's leader order (hence who signs as
        # which core id) is known only once the batch before it is decided.
        if self.current is not None and self.current.number == number:
            self.inbox.put_nowait((number, decoded))
        elif number - self.instance <= MAX_AHEAD:
            kept = self.ahead.setdefault(number, [])
            if len(kept) < MAX_KEPT:
                kept.append(decoded)

    async def _on_heartbeat(self, msg) -> None:  # noqa: ANN001
        try:
            body = wire.parse_json(msg.data)
            index, instance = int(body["a"]), int(body["i"])
        except (wire.WireError, ValueError, KeyError, TypeError):
            return
        if index in self.detectors:
            self.detectors[index].heartbeat(time.monotonic())
            if instance > self.instance:
                self.wake.set()

    async def _on_job_notice(self, msg) -> None:  # noqa: ANN001
        self.wake.set()
        if self.current is not None:
            await self._fetch_jobs()

    async def _on_record(self, msg) -> None:  # noqa: ANN001
        tail = msg.subject.rsplit(".", 1)[-1]
        if tail.isdigit() and int(tail) < self.instance:
            return  # applied already: every decider files a record, most arrive after ours
        try:
            record = decode_record(msg.data)
        except wire.WireError:
            return
        if record.instance >= self.instance:
            self.records.setdefault(record.instance, record)
            self.wake.set()
            if self.current is not None and record.instance == self.instance:
                self.inbox.put_nowait(None)  # wake the instance loop: it adopts the record

    # --- periodic work --------------------------------------------------------------------------

    async def _sleep_or_wake(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _poll(self) -> None:
        """Cover lost notices: look at the streams when stuck (a reconnect drops what was in flight)."""
        last, since = -1, time.monotonic()
        while True:
            await asyncio.sleep(POLL)
            if self.instance != last:
                last, since = self.instance, time.monotonic()
                continue
            if time.monotonic() - since >= POLL:
                record = await self._fetch_record(self.instance)
                if record is not None:
                    self.records.setdefault(record.instance, record)
                    self.inbox.put_nowait(None)
                await self._fetch_jobs()
                self.wake.set()

    async def _heartbeats(self) -> None:
        subject = self.subjects.heartbeat(self.me.index)
        while True:
            data = json.dumps({"a": self.me.index, "i": self.instance}).encode()
            try:
                await self.nc.publish(subject, data)
            except Exception:  # reconnecting: heartbeats resume with the connection
                pass
            await asyncio.sleep(self.options.heartbeat_s)

    def _update_reputation(self) -> None:
        now = time.monotonic()
        for i, detector in self.detectors.items():
            if detector.suspected(now):
                self.reputation.adjust(self.names[i], -PENALTY_SILENCE, "suspected: phi above 8")
            else:
                self.reputation.adjust(self.names[i], REWARD_GOOD_CONDUCT, "heard")
        self.reputation.update_exclusions()

    async def _register(self) -> None:
        while True:
            self._update_reputation()
            try:
                await self.registry.put(self.me.name, json.dumps(self.snapshot()).encode())
            except Exception as exc:
                log.warning("registry update failed (%s)", type(exc).__name__)
            await asyncio.sleep(self.options.registry_every_s)

    def snapshot(self) -> dict[str, object]:
        """What this member says of itself and of its peers: progress, suspicion, counters."""
        now = time.monotonic()
        names = {m.index: m.name for m in self.fed.members}
        view = self.current.core.view if self.current is not None else 0
        c = self.counters
        lat = sorted(c.latencies_ms)
        return {
            "member": self.me.name, "index": self.me.index, "pid": os.getpid(), "host": socket.gethostname(),
            "epoch": self.epoch, "instance": self.instance, "view": view, "applied": self.replica.applied,
            "leader": names[member_of(0, self.instance, self.fed.n, self.skip_next)],
            "reputation": dict(sorted(self.reputation.scores.items())),
            "excluded": [names[i] for i in self.skip_next],
            "phi": {names[i]: round(min(d.phi(now), 1e6), 2) for i, d in sorted(self.detectors.items())},
            "suspected": [names[i] for i, d in sorted(self.detectors.items()) if d.phi(now) > THRESHOLD],
            "decided_here": c.decided_here, "adopted": c.adopted, "view_changes": c.view_changes,
            "fast_forwards": c.fast_forwards, "sent": c.sent, "published": c.published, "received": c.received,
            "dropped": c.dropped, "stale": c.stale,
            "p50_ms": round(lat[len(lat) // 2], 2) if lat else None, "started": self.started_at,
        }

    async def _final_status(self) -> None:
        try:
            body = {**self.snapshot(), "stopped": time.time()}
            await self.status.put(f"final.{self.me.name}", json.dumps(body).encode())
        except Exception as exc:
            log.warning("could not write the final status (%s)", type(exc).__name__)

    # --- the ledger, kept in step on its own thread ----------------------------------------------

    def _ledger_rows(self, record: Record, jobs: list[LoggedJob]) -> list[DecisionRecord]:
        rows = []
        cert = {"instance": record.instance, "view": record.view,
                "commits": [wire.message_to_data(m) for m in record.commits]}
        for entry, logged in zip(record.batch.entries, jobs, strict=True):
            placement = entry.placement or ()
            pool = self.replica.state.pool_of.get(placement[0]) if placement else None
            if logged.refused:  # not a job nor a signed report: decided as nothing, and kept as such
                outcome, spec = "refused", {"refused": logged.refused}
            elif logged.report:
                outcome, spec = "reported", logged.report.model_dump()
            else:
                outcome, spec = ("committed" if placement else "rejected"), logged.spec.model_dump()  # type: ignore[union-attr]
            rows.append(DecisionRecord(
                job_id=entry.job_id, seq=logged.position - 1, outcome=outcome,
                pool=pool, nodes=tuple(placement), proposer=None, reason=entry.reason, rounds=record.view + 1,
                accepts=len(record.commits), voters=self.fed.n, job_spec=spec,
                submitted_at=logged.arrival, certificate=cert))
        return rows

    async def _ledger_writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            rows = await self._ledger_queue.get()
            await loop.run_in_executor(self._db, self._write_rows, rows)

    def _write_rows(self, rows: list[DecisionRecord]) -> None:
        for row in rows:
            self.ledger.record_decision(self.fed.name, self.epoch, row)

    async def _flush_ledger(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._ledger_queue.empty():
            await loop.run_in_executor(self._db, self._write_rows, self._ledger_queue.get_nowait())


def _watched(coro) -> asyncio.Task:  # noqa: ANN001
    """A task whose death is logged at once (an unobserved exception would vanish until exit)."""
    task = asyncio.create_task(coro)

    def report(t: asyncio.Task) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("task %s died", t.get_coro().__name__, exc_info=t.exception())

    task.add_done_callback(report)
    return task


def _addressed(msg: Message, receiver: int) -> Message:
    """The message as the core would have received it in-process (the receiver is not signed)."""
    if msg.receiver == receiver:
        return msg
    return Message(msg.sender, receiver, msg.kind, msg.view, msg.slot, msg.digest, msg.value, msg.payload, msg.proof,
                   msg.mac)




def run_agent(fed: Federation, name: str, options: AgentOptions) -> int:
    """Run member ``name`` until SIGTERM; its log lines go to stderr (the launcher files them)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = AgentProcess(fed, fed.member(name), options)
    return asyncio.run(agent.run())
