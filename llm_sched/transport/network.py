"""A deterministic simulated network that drives sans-IO cores with simulated time only.

One event heap (time, sequence number) holds deliveries, timer ticks, crashes, restarts and
callbacks; ties break by insertion order, and every random choice comes from one seeded
``random.Random`` in event order, so the same seed gives the same history (see
:meth:`Network.history_hash`).

Per message, in this order: loss (before GST), a partition cutting the link at send or delivery
time, a delay of ``base + Exp(jitter)`` plus any slow-agent penalty (reordering falls out of the
random delays), duplication and corruption (before GST). A corrupted frame gets one bit flipped;
the receiver's transport checks the MAC over the received bytes and discards it, as it does any
forged message. Crashed agents lose their volatile state; on restart the core is rebuilt from what
it had persisted (``Core.persisted()``, taken at the crash: persistence happens before every send).

Timed link faults (:class:`LinkFault`, used by fault plans in ``llm_sched.experiments.faults``) act only on the
links of their agents during their window, before or after GST: a drop before the partition check,
an extra copy, a damaged frame, an extra delay. They draw from the same random stream only while one
applies, so runs without them keep their history. The network records what its faults did: crashes,
restarts and the start and end of every partition and link fault in ``fault_events``, and per fault
the messages it affected in ``Accounting.fault_effects``.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from llm_sched.protocols.messages import AgentId, Core, KeyRing, Message, Output, Value, digest_of

CoreFactory = Callable[[AgentId, object | None], Core]
"""Builds an agent's core: ``factory(agent, None)`` at start, ``factory(agent, persisted)`` on restart."""


@dataclass(frozen=True, slots=True)
class LinkModel:
    """Every link's behaviour; probabilities apply only before GST."""

    base_delay: float = 1.0
    jitter: float = 0.0  # mean of the exponential extra delay
    drop: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0


@dataclass(frozen=True, slots=True)
class Partition:
    """During [start, end) only agents in the same group hear each other."""

    start: float
    end: float
    groups: tuple[frozenset[AgentId], ...]

    def cuts(self, a: AgentId, b: AgentId, t: float) -> bool:
        """True when the link a-b is down at time t."""
        if not self.start <= t < self.end:
            return False
        return not any(a in g and b in g for g in self.groups)


@dataclass(frozen=True, slots=True)
class LinkFault:
    """During [start, end) messages to or from ``agents`` suffer ``kind`` (whatever GST says).

    ``drop``, ``duplicate``, ``corrupt``: the probability per message; ``delay``: the mean of an
    exponential extra delay per message; ``slow``: a fixed extra delay per slow endpoint, as
    :attr:`FaultPlan.slow` but only for the window.
    """

    kind: str
    start: float
    end: float
    agents: frozenset[AgentId]
    intensity: float

    def covers(self, a: AgentId, b: AgentId, t: float) -> bool:
        """True when the link a-b is affected at time t."""
        return self.start <= t < self.end and (a in self.agents or b in self.agents)


@dataclass(frozen=True, slots=True)
class Crash:
    """The agent stops at ``at`` and, unless ``restart_at`` is None, comes back then."""

    node: AgentId
    at: float
    restart_at: float | None = None


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """All network faults of one run. After ``gst`` links only delay (partial synchrony)."""

    link: LinkModel = LinkModel()
    gst: float = 0.0
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    slow: tuple[tuple[AgentId, float], ...] = ()  # (agent, extra delay on its messages in and out)
    link_faults: tuple[LinkFault, ...] = ()

    @property
    def heal_time(self) -> float:
        """When the network is stable for good: GST, the last partition's or link fault's end, the
        last crash and the last restart (an agent that stays down is a fault that no longer changes)."""
        ends = [self.gst, *(p.end for p in self.partitions), *(c.at for c in self.crashes)]
        ends += [lf.end for lf in self.link_faults]
        ends += [c.restart_at for c in self.crashes if c.restart_at is not None]
        return max(ends)


@dataclass(slots=True)
class Accounting:
    """Exact message and byte counts, by message kind where it matters."""

    sent: Counter[str] = field(default_factory=Counter)
    sent_bytes: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # by reason: loss, partition, crashed, link-fault
    duplicated: int = 0
    corrupted: int = 0  # frames the network damaged
    rejected: int = 0  # frames a receiver discarded because the MAC failed (damaged or forged)
    # messages each fault affected: "partition:<i>" and "link:<i>" (index in the FaultPlan),
    # "down:<agent>" (deliveries lost because the agent was crashed)
    fault_effects: Counter[str] = field(default_factory=Counter)

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.sent_bytes.values())


_DELIVER, _TICK, _CRASH, _RESTART, _CALL = range(5)


class Network:
    """Runs agents' cores over simulated links; ``run(until)`` advances simulated time."""

    def __init__(
        self,
        agents: Sequence[AgentId],
        factory: CoreFactory,
        keyring: KeyRing,
        seed: int,
        faults: FaultPlan = FaultPlan(),
        on_send: Callable[[Message], None] | None = None,
    ) -> None:
        self.agents = tuple(agents)
        self.faults = faults
        self.stats = Accounting()
        self.now = 0.0
        self.decisions: dict[AgentId, dict[int, Value]] = {a: {} for a in self.agents}
        self.decided_at: dict[AgentId, dict[int, float]] = {a: {} for a in self.agents}
        self.conflicts: list[tuple[AgentId, int, Value, Value]] = []  # one agent deciding twice
        # (time, event, subject): crash/restart (agent), partition-start/-end and link-start/-end (index)
        self.fault_events: list[tuple[float, str, int]] = []
        self._factory, self._keyring, self._on_send = factory, keyring, on_send
        self._rng = random.Random(seed)
        self._slow = dict(faults.slow)
        self._heap: list[tuple[float, int, int, AgentId, object]] = []
        self._seq = 0
        self._ticks: dict[AgentId, set[float]] = {a: set() for a in self.agents}
        self._persisted: dict[AgentId, object] = {}
        self._hash = hashlib.sha256()
        self._decided_since_check = False
        self.cores: dict[AgentId, Core] = {}
        for a in self.agents:
            self.cores[a] = factory(a, None)
            self._push(0.0, _TICK, a, None)
        for c in faults.crashes:
            self._push(c.at, _CRASH, c.node, None)
            if c.restart_at is not None:
                self._push(c.restart_at, _RESTART, c.node, None)
        for kind, windows in (("partition", faults.partitions), ("link", faults.link_faults)):
            for i, w in enumerate(windows):
                for edge, t in (("start", w.start), ("end", w.end)):
                    if t != float("inf"):
                        self._push(t, _CALL, -1, self._recorder(t, f"{kind}-{edge}", i))

    # --- public interface -------------------------------------------------------------------

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Process every event up to and including time ``until``.

        ``stop``, if given, is asked after each event that produced a decision; a true answer ends
        the run early (the randomized harness stops once every honest agent has decided).
        """
        heap = self._heap
        while heap and heap[0][0] <= until:
            if stop is not None and self._decided_since_check:
                self._decided_since_check = False
                if stop():
                    return
            t, _, etype, node, data = heapq.heappop(heap)
            self.now = t
            if etype == _DELIVER:
                msg, origin, corrupted = cast(tuple[Message, AgentId, bool], data)
                self._deliver(t, msg, origin, corrupted)
            elif etype == _TICK:
                self._ticks[node].discard(t)
                core = self.cores.get(node)
                if core is not None:
                    self._hash.update(struct.pack("!dBi", t, _TICK, node))
                    self._handle(node, t, core.tick(t))
            elif etype == _CRASH:
                self._crash(t, node)
            elif etype == _RESTART:
                self._restart(t, node)
            else:
                assert callable(data)
                data()
        self.now = max(self.now, until)

    def call_at(self, t: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at simulated time t (for observers such as a snapshot at GST)."""
        self._push(t, _CALL, -1, fn)

    def history_hash(self) -> str:
        """Digest of every delivery, tick, crash, restart and decision so far, with their times."""
        return self._hash.copy().hexdigest()

    def is_up(self, node: AgentId) -> bool:
        """False while the agent is crashed."""
        return node in self.cores

    # --- events ---------------------------------------------------------------------------------

    def _recorder(self, t: float, event: str, subject: int) -> Callable[[], None]:
        return lambda: self.fault_events.append((t, event, subject))

    def _push(self, t: float, etype: int, node: AgentId, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, etype, node, data))

    def _deliver(self, t: float, msg: Message, origin: AgentId, corrupted: bool) -> None:
        node = msg.receiver
        core = self.cores.get(node)
        if core is None:
            self.stats.dropped["crashed"] += 1
            self.stats.fault_effects[f"down:{node}"] += 1
            return
        if self._cut(origin, node, t):
            self.stats.dropped["partition"] += 1
            return
        if not self._authentic(msg, corrupted):
            self.stats.rejected += 1
            return
        self.stats.delivered[msg.kind] += 1
        self._hash.update(struct.pack("!dBi", t, _DELIVER, node))
        self._hash.update(msg.mac)
        out = core.tick(t)  # the core learns the time before it handles the message
        out.extend(core.step(msg))
        self._handle(node, t, out)

    def _authentic(self, msg: Message, corrupted: bool) -> bool:
        """The receiver's MAC check over the bytes that actually arrived."""
        if not corrupted:
            return self._keyring.verify(msg)
        frame = bytearray(msg.body() + msg.mac)
        bit = self._rng.randrange(len(frame) * 8)
        frame[bit // 8] ^= 1 << (bit % 8)
        body, mac = bytes(frame[: -len(msg.mac)]), bytes(frame[-len(msg.mac) :])
        return self._keyring.verify_bytes(msg.sender, body, mac)

    def _handle(self, node: AgentId, t: float, out: Output) -> None:
        for msg in out.messages:
            self._send(t, msg, node)
        for slot, value in out.decisions:
            self._record_decision(node, t, slot, value)
        core = self.cores.get(node)
        deadline = core.next_deadline() if core is not None else None
        if deadline is not None:
            at = max(deadline, t)
            if at not in self._ticks[node]:
                self._ticks[node].add(at)
                self._push(at, _TICK, node, None)

    def _record_decision(self, node: AgentId, t: float, slot: int, value: Value) -> None:
        held = self.decisions[node].get(slot)
        if held is not None:
            if held != value:
                self.conflicts.append((node, slot, held, value))
            return
        self.decisions[node][slot] = value
        self.decided_at[node][slot] = t
        self._decided_since_check = True
        self._hash.update(f"{t!r}|decide|{node}|{slot}|{digest_of(value)}".encode())

    def _send(self, t: float, msg: Message, origin: AgentId) -> None:
        """Account for one message and schedule its fate. ``origin`` is the agent that really
        sent it (a forged message claims another ``sender``); links and delays follow the origin."""
        stats, faults, rng = self.stats, self.faults, self._rng
        stats.sent[msg.kind] += 1
        stats.sent_bytes[msg.kind] += msg.size()
        if self._on_send is not None:
            self._on_send(msg)
        if msg.receiver not in self._ticks or msg.receiver == origin:
            stats.dropped["unroutable"] += 1
            return
        lossy = t < faults.gst
        if lossy and faults.link.drop and rng.random() < faults.link.drop:
            stats.dropped["loss"] += 1
            return
        timed = self._link_faults(origin, msg.receiver, t) if faults.link_faults else ()
        for i, lf in timed:
            if lf.kind == "drop" and rng.random() < lf.intensity:
                stats.dropped["link-fault"] += 1
                stats.fault_effects[f"link:{i}"] += 1
                return
        if self._cut(origin, msg.receiver, t):
            stats.dropped["partition"] += 1
            return
        copies = 2 if lossy and faults.link.duplicate and rng.random() < faults.link.duplicate else 1
        for i, lf in timed:
            if lf.kind == "duplicate" and rng.random() < lf.intensity:
                copies += 1
                stats.fault_effects[f"link:{i}"] += 1
        stats.duplicated += copies - 1
        for _ in range(copies):
            corrupted = bool(lossy and faults.link.corrupt and rng.random() < faults.link.corrupt)
            delay = self._delay(origin, msg.receiver)
            for i, lf in timed:
                if lf.kind == "corrupt" and not corrupted and rng.random() < lf.intensity:
                    corrupted = True
                    stats.fault_effects[f"link:{i}"] += 1
                elif lf.kind == "delay":
                    delay += rng.expovariate(1.0 / lf.intensity)
                    stats.fault_effects[f"link:{i}"] += 1
                elif lf.kind == "slow":
                    delay += lf.intensity * ((origin in lf.agents) + (msg.receiver in lf.agents))
                    stats.fault_effects[f"link:{i}"] += 1
            stats.corrupted += corrupted
            self._push(t + delay, _DELIVER, msg.receiver, (msg, origin, corrupted))

    def _delay(self, origin: AgentId, receiver: AgentId) -> float:
        link = self.faults.link
        delay = link.base_delay
        if link.jitter > 0:
            delay += self._rng.expovariate(1.0 / link.jitter)
        return delay + self._slow.get(origin, 0.0) + self._slow.get(receiver, 0.0)

    def _link_faults(self, a: AgentId, b: AgentId, t: float) -> list[tuple[int, LinkFault]]:
        return [(i, lf) for i, lf in enumerate(self.faults.link_faults) if lf.covers(a, b, t)]

    def _cut(self, a: AgentId, b: AgentId, t: float) -> bool:
        for i, p in enumerate(self.faults.partitions):
            if p.cuts(a, b, t):
                self.stats.fault_effects[f"partition:{i}"] += 1
                return True
        return False

    def _crash(self, t: float, node: AgentId) -> None:
        core = self.cores.pop(node, None)
        if core is not None:
            self._persisted[node] = core.persisted()
            self._hash.update(struct.pack("!dBi", t, _CRASH, node))
            self.fault_events.append((t, "crash", node))

    def _restart(self, t: float, node: AgentId) -> None:
        if node in self.cores:
            return
        core = self._factory(node, self._persisted.get(node))
        self.cores[node] = core
        self._hash.update(struct.pack("!dBi", t, _RESTART, node))
        self.fault_events.append((t, "restart", node))
        self._handle(node, t, core.tick(t))

