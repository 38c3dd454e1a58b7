"""Run one consensus schedule and check it: agreement, validity, termination after healing.

A :class:`Schedule` names a protocol, n agents, the Byzantine agents and their behaviours, the
network's faults and a number of slots. :func:`run_schedule` builds the cores, drives them on a
:class:`~llm_sched.consensus.network.Network`, and returns a :class:`RunResult` whose
``violations`` list is empty when no two honest agents decided differently, every decided value
passed the application's check and was proposed by someone, and no agent changed its mind.
:func:`random_schedule` draws a small random schedule from a seed, for the randomized tests, and
:func:`sweep` runs many of them (in worker processes) and summarizes.

Protocols: ``pbft`` and ``tendermint`` face up to f Byzantine agents; the crash-fault ``raft`` and
``multipaxos`` face up to f_c = floor((n-1)/2) crashes instead, some of them for good (agents that
are down at the end are not expected to finish). Termination is checked after the faults heal.

Byzantine behaviours wrap honest cores (they reuse the honest logic and rewrite what it sends):
``silent``, ``forge`` (extra copies claiming another sender, which fail the MAC check), ``alter``
(proposals carry another value, valid or not), ``vote-against`` (votes name another or an invalid
value), ``mixed`` (one of those per message) and ``equivocate``: a split brain, where the agent
runs one honest core per half of the honest agents, each proposing and voting for a different
value, and colluding Byzantine agents keep their halves consistent through a shared side channel.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from llm_sched.consensus.messages import (
    AgentId,
    Core,
    Decision,
    KeyRing,
    Kind,
    Message,
    Output,
    Propose,
    Signer,
    Value,
    digest_of,
)
from llm_sched.consensus.multipaxos import MultiPaxosCore, PaxosConfig
from llm_sched.consensus.network import Accounting, Crash, FaultPlan, LinkModel, Network, Partition
from llm_sched.consensus.pbft import PbftConfig, PbftCore
from llm_sched.consensus.quorum import byzantine_f, byzantine_quorum, crash_f, majority
from llm_sched.consensus.raft import RaftConfig, RaftCore
from llm_sched.consensus.tendermint import TendermintConfig, TendermintCore

PROTOCOLS = ("pbft", "tendermint")  # Byzantine fault tolerant
CRASH_PROTOCOLS = ("raft", "multipaxos")  # crash fault tolerant: schedules crash agents instead of corrupting them
BEHAVIOURS = ("silent", "equivocate", "forge", "alter", "vote-against", "mixed")
_PROPOSALS = (Kind.PRE_PREPARE, Kind.PROPOSAL, Kind.APPEND, Kind.ACCEPT)
_VOTES = (Kind.PREPARE, Kind.COMMIT, Kind.PREVOTE, Kind.PRECOMMIT)


# --- the application the tests agree on --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToyApp:
    """A scheduler stand-in: slot s places job ``job-s`` on known nodes; agents prefer different ones."""

    nodes: tuple[str, ...] = ("gpu-0", "gpu-1", "cpu-0", "cpu-1", "mem-0")

    def propose_for(self, agent: AgentId) -> Propose:
        """Agent ``agent``'s proposal function: honest, valid, but not the same as its peers'."""
        nodes = self.nodes

        def propose(slot: int) -> Value:
            return Decision(f"job-{slot}", (nodes[(slot + agent) % len(nodes)],), f"agent {agent}")

        return propose

    def validate(self, slot: int, value: Value) -> bool:
        """Feasibility: the right job, and only known nodes (a reject, placement None, is allowed)."""
        if not isinstance(value, Decision) or value.job_id != f"job-{slot}":
            return False
        return value.placement is None or all(p in self.nodes for p in value.placement)

    def alternative(self, slot: int) -> Value:
        """A valid value no honest agent proposes."""
        return Decision(f"job-{slot}", (self.nodes[-1], self.nodes[0]), "byzantine alternative")

    def invalid(self, slot: int) -> Value:
        """A value the feasibility check rejects."""
        return Decision(f"job-{slot}", ("ghost-node",), "byzantine invalid")


# --- Byzantine behaviours ------------------------------------------------------------------------


class ByzantineCore:
    """An honest core whose outgoing messages are rewritten by a behaviour."""

    def __init__(self, inner: Core, behaviour: str, signer: Signer, peers: Sequence[AgentId],
                 app: ToyApp, rng: random.Random) -> None:
        self.node_id = inner.node_id
        self.inner, self.behaviour = inner, behaviour
        self._signer, self._peers, self._app, self._rng = signer, tuple(peers), app, rng
        self._lies: dict[tuple[Kind, int, int], Value] = {}  # one consistent lie per message slot

    def step(self, msg: Message) -> Output:
        return self._rewrite(self.inner.step(msg))

    def tick(self, now: float) -> Output:
        return self._rewrite(self.inner.tick(now))

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline()

    def persisted(self) -> object:
        return self.inner.persisted()

    def _rewrite(self, out: Output) -> Output:
        sent: list[Message] = []
        for m in out.messages:
            behaviour = self.behaviour
            if behaviour == "mixed":
                behaviour = self._rng.choice(("honest", "silent", "forge", "alter", "vote-against"))
            sent += self._apply(behaviour, m)
        return Output(sent, out.decisions)

    def _apply(self, behaviour: str, m: Message) -> list[Message]:
        if behaviour == "silent":
            return []
        if behaviour == "forge":
            others = [p for p in self._peers if p not in (self.node_id, m.receiver)]
            fake = replace(m, sender=self._rng.choice(others), digest=digest_of(self._lie(m)), mac=b"")
            return [m, self._signer.seal(fake)]  # sealed with our own key: receivers reject it
        if behaviour == "alter" and m.kind in _PROPOSALS and m.value is not None:
            lie = self._lie(m)
            return [self._signer.seal(replace(m, value=lie, digest=digest_of(lie)))]
        if behaviour == "vote-against" and m.kind in _VOTES:
            return [self._signer.seal(replace(m, digest=digest_of(self._lie(m))))]
        return [m]

    def _lie(self, m: Message) -> Value:
        key = (m.kind, m.view, m.slot)
        if key not in self._lies:
            pick = self._rng.random() < 0.5
            self._lies[key] = self._app.invalid(m.slot) if pick else self._app.alternative(m.slot)
        return self._lies[key]


@dataclass(slots=True)
class Collusion:
    """The colluders' side channel: which honest agents see which world, and message tags."""

    world_of: dict[AgentId, int]
    tags: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    def split(cls, honest: Sequence[AgentId], rng: random.Random) -> Collusion:
        order = list(honest)
        rng.shuffle(order)
        half = (len(order) + 1) // 2
        return cls({a: int(i >= half) for i, a in enumerate(order)})


class SplitBrainCore:
    """Equivocation: one honest core per world; each world's honest agents see only their core."""

    def __init__(self, node_id: AgentId, worlds: tuple[Core, Core], collusion: Collusion) -> None:
        self.node_id = node_id
        self.worlds, self.collusion = worlds, collusion

    def tick(self, now: float) -> Output:
        out = Output()
        for w, core in enumerate(self.worlds):
            out.extend(self._route(w, core.tick(now)))
        return out

    def step(self, msg: Message) -> Output:
        world = self.collusion.world_of.get(msg.sender, self.collusion.tags.get(msg.mac))
        out = Output()
        for w, core in enumerate(self.worlds):
            if world is None or world == w:
                out.extend(self._route(w, core.step(msg)))
        return out

    def next_deadline(self) -> float | None:
        times = [t for t in (c.next_deadline() for c in self.worlds) if t is not None]
        return min(times) if times else None

    def persisted(self) -> object:
        return self.worlds[0].persisted()

    def _route(self, w: int, out: Output) -> Output:
        kept = []
        for m in out.messages:
            receiver_world = self.collusion.world_of.get(m.receiver)
            if receiver_world is None:  # a fellow colluder: tell it which world this belongs to
                self.collusion.tags[m.mac] = w
                kept.append(m)
            elif receiver_world == w:
                kept.append(m)
        return Output(kept, [])


# --- schedules -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """One run: who is Byzantine and how, the network's faults, how many slots to decide."""

    protocol: str
    n: int
    slots: int
    seed: int
    byzantine: tuple[tuple[AgentId, str], ...] = ()
    faults: FaultPlan = FaultPlan()
    until: float = 20_000.0
    quorum: int | None = None
    fast_path: bool = False

    @property
    def honest(self) -> tuple[AgentId, ...]:
        bad = {a for a, _ in self.byzantine}
        return tuple(a for a in range(self.n) if a not in bad)


@dataclass(slots=True)
class RunResult:
    """Outcome of one schedule: decisions of honest agents, accounting, checks."""

    schedule: Schedule
    decisions: dict[AgentId, dict[int, Value]]
    stats: Accounting
    history_hash: str
    violations: list[str]
    undecided: dict[AgentId, list[int]]
    views_after_heal: int  # PBFT views / Tendermint rounds used after the network healed
    end_time: float

    @property
    def safe(self) -> bool:
        return not self.violations

    @property
    def terminated(self) -> bool:
        return not self.undecided

    @property
    def within_bound(self) -> bool:
        """Healing took at most f+1 views (PBFT) or rounds per height (Tendermint).

        Crash-fault protocols elect with randomized timers and have no such bound: always true.
        """
        if self.schedule.protocol in CRASH_PROTOCOLS:
            return True
        return self.views_after_heal <= byzantine_f(self.schedule.n) + 1


def _build_core(s: Schedule, agent: AgentId, keyring: KeyRing, propose: Propose, restore: object | None) -> Core:
    app = ToyApp()
    peers = tuple(range(s.n))
    signer = keyring.signer(agent)
    if s.protocol == "pbft":
        cfg = PbftConfig(fast_path=s.fast_path, quorum=s.quorum)
        return PbftCore(agent, peers, s.slots, signer, keyring, propose, app.validate, cfg, restore)  # type: ignore[arg-type]
    if s.protocol == "tendermint":
        tcfg = TendermintConfig(quorum=s.quorum)
        return TendermintCore(agent, peers, s.slots, signer, keyring, propose, app.validate, tcfg, restore)  # type: ignore[arg-type]
    if s.protocol == "multipaxos":
        timers = random.Random(f"{s.seed}/paxos-timers/{agent}/{restore is not None}")
        pcfg = PaxosConfig(quorum=s.quorum)
        return MultiPaxosCore(agent, peers, s.slots, signer, propose, timers, pcfg, restore)  # type: ignore[arg-type]
    if s.protocol == "raft":
        timers = random.Random(f"{s.seed}/raft-timers/{agent}/{restore is not None}")
        rcfg = RaftConfig(quorum=s.quorum)
        return RaftCore(agent, peers, s.slots, signer, propose, timers, rcfg, restore)  # type: ignore[arg-type]
    raise ValueError(f"unknown protocol {s.protocol!r}")


def make_factory(s: Schedule, keyring: KeyRing) -> Callable[[AgentId, object | None], Core]:
    """The network's core factory for a schedule, Byzantine wrappers included."""
    app = ToyApp()
    behaviours = dict(s.byzantine)
    rng = random.Random(f"{s.seed}/byzantine")
    collusion = Collusion.split(s.honest, rng)

    def factory(agent: AgentId, restore: object | None) -> Core:
        behaviour = behaviours.get(agent)
        if behaviour is None:
            return _build_core(s, agent, keyring, app.propose_for(agent), restore)
        if behaviour == "equivocate":
            worlds = (
                _build_core(s, agent, keyring, app.propose_for(agent), None),
                _build_core(s, agent, keyring, app.alternative, None),
            )
            return SplitBrainCore(agent, worlds, collusion)
        inner = _build_core(s, agent, keyring, app.propose_for(agent), restore)
        return ByzantineCore(inner, behaviour, keyring.signer(agent), range(s.n), app, rng)

    return factory


def run_schedule(s: Schedule) -> RunResult:
    """Run a schedule to its end (or until every honest agent decided every slot) and check it."""
    keyring = KeyRing(s.seed, range(s.n))
    proposed: dict[int, set[Value]] = {}

    def observe(m: Message) -> None:
        if m.kind in _PROPOSALS and m.value is not None:
            proposed.setdefault(m.slot, set()).add(m.value)

    net = Network(range(s.n), make_factory(s, keyring), keyring, s.seed, s.faults, observe)
    honest = s.honest
    heal = s.faults.heal_time
    at_heal: dict[AgentId, tuple[int, int]] = {}
    net.call_at(heal, lambda: at_heal.update({a: _position(net, s, a) for a in honest if net.is_up(a)}))

    def all_decided() -> bool:  # agents crashed for good are not expected to finish
        return net.now >= heal and all(len(net.decisions[a]) >= s.slots for a in honest if net.is_up(a))

    net.run(s.until, stop=all_decided)
    decisions = {a: dict(net.decisions[a]) for a in honest}
    violations = check_agreement(decisions) + check_validity(decisions, proposed, ToyApp().validate)
    violations += [f"integrity: agent {a} decided slot {slot} twice" for a, slot, _, _ in net.conflicts if a in honest]
    undecided = {a: [x for x in range(s.slots) if x not in decisions[a]] for a in honest if net.is_up(a)}
    undecided = {a: xs for a, xs in undecided.items() if xs}
    used = _views_used(net, s, at_heal)
    return RunResult(s, decisions, net.stats, net.history_hash(), violations, undecided, used, net.now)


def _position(net: Network, s: Schedule, agent: AgentId) -> tuple[int, int]:
    """(slot in progress, view or round) of an honest agent, for the after-healing measure."""
    core = net.cores[agent]
    if isinstance(core, PbftCore):
        return (min((x for x in range(s.slots) if x not in core.decided), default=s.slots), core.view)
    if isinstance(core, RaftCore):
        return (0, core.term)
    if isinstance(core, MultiPaxosCore):
        return (0, core.promised // core.n)
    assert isinstance(core, TendermintCore)
    return (core.height, core.round)


def _views_used(net: Network, s: Schedule, at_heal: Mapping[AgentId, tuple[int, int]]) -> int:
    """New views (PBFT) or rounds (Tendermint, per height) that honest agents entered after healing.

    PBFT: the highest final view minus the highest view an honest agent had reached at healing
    (Raft: terms; Multi-Paxos: ballot rounds). Tendermint: per height decided after healing, its
    decision round minus the highest round an honest agent had reached in that height at healing
    (0 for heights not yet started then).
    """
    cores = [net.cores[a] for a in s.honest if a in net.cores]
    if not at_heal or not cores:
        return 0
    return max(0, _new_views(cores, at_heal))


def _new_views(cores: Sequence[Core], at_heal: Mapping[AgentId, tuple[int, int]]) -> int:
    """The measure of :func:`_views_used` per protocol (may be negative if a leader died)."""
    if isinstance(cores[0], PbftCore):
        return max(c.view for c in cores if isinstance(c, PbftCore)) - max(v for _, v in at_heal.values())
    if isinstance(cores[0], RaftCore):  # terms (elections) after healing
        return max(c.term for c in cores if isinstance(c, RaftCore)) - max(v for _, v in at_heal.values())
    if isinstance(cores[0], MultiPaxosCore):  # ballot rounds after healing
        final = max(c.promised // c.n for c in cores if isinstance(c, MultiPaxosCore))
        return final - max(v for _, v in at_heal.values())
    start: dict[int, int] = {}
    for h, r in at_heal.values():
        start[h] = max(start.get(h, 0), r)
    first = min(h for h, _ in at_heal.values())
    used = 0
    for c in cores:
        assert isinstance(c, TendermintCore)
        for h, r in c.decided_rounds.items():
            if h >= first:
                used = max(used, r - start.get(h, 0))
    return used


def check_agreement(decisions: Mapping[AgentId, Mapping[int, Value]]) -> list[str]:
    """No two agents decided different values for one slot."""
    first: dict[int, tuple[AgentId, Value]] = {}
    problems = []
    for a in sorted(decisions):
        for slot, value in sorted(decisions[a].items()):
            b, other = first.setdefault(slot, (a, value))
            if other != value:
                problems.append(f"agreement: slot {slot}: agent {b} decided {other!r}, agent {a} {value!r}")
    return problems


def check_validity(
    decisions: Mapping[AgentId, Mapping[int, Value]],
    proposed: Mapping[int, set[Value]],
    validate: Callable[[int, Value], bool],
) -> list[str]:
    """Every decided value passes the application's check and was proposed by some agent."""
    problems = []
    for a in sorted(decisions):
        for slot, value in sorted(decisions[a].items()):
            if not validate(slot, value):
                problems.append(f"validity: agent {a} decided an invalid value for slot {slot}: {value!r}")
            elif value not in proposed.get(slot, set()):
                problems.append(f"validity: agent {a} decided a value nobody proposed for slot {slot}")
    return problems


# --- random schedules ----------------------------------------------------------------------------


def random_schedule(
    seed: int,
    protocol: str,
    *,
    extra_byzantine: int = 0,
    sizes: Sequence[int] = (4, 4, 5, 7),
    quorum_delta: int = 0,
    fast_path: bool = False,
) -> Schedule:
    """A small random schedule: f (+ ``extra_byzantine``) Byzantine agents, lossy links, a healing
    partition, maybe a crash and restart and a slow agent. ``quorum_delta`` shrinks the quorum."""
    rng = random.Random(f"schedule/{protocol}/{seed}")
    n = rng.choice(list(sizes))
    if protocol in CRASH_PROTOCOLS:
        return _random_crash_schedule(rng, seed, protocol, n, quorum_delta)
    k = min(n, byzantine_f(n) + extra_byzantine)
    bad = sorted(rng.sample(range(n), k))
    colluding = extra_byzantine > 0 or quorum_delta < 0 or rng.random() < 0.3
    byzantine = tuple((a, "equivocate" if colluding else rng.choice(BEHAVIOURS)) for a in bad)
    honest = [a for a in range(n) if a not in bad]
    quorum = byzantine_quorum(n) + quorum_delta if quorum_delta else None
    return Schedule(
        protocol=protocol, n=n, slots=rng.randint(1, 3), seed=seed, byzantine=byzantine,
        faults=_random_faults(rng, n, honest), quorum=quorum, fast_path=fast_path,
    )


def _random_crash_schedule(rng: random.Random, seed: int, protocol: str, n: int, quorum_delta: int) -> Schedule:
    """Crash model: up to f_c = floor((n-1)/2) agents crash, some for good, on lossy links."""
    faults = _random_faults(rng, n, range(n))
    crashes = list(faults.crashes)
    for a in rng.sample(range(n), rng.randint(0, crash_f(n))):
        if any(c.node == a for c in crashes):
            continue
        at = rng.uniform(0.0, 150.0)
        crashes.append(Crash(a, at, at + rng.uniform(5.0, 100.0) if rng.random() < 0.5 else None))
    down_for_good = [c for c in crashes if c.restart_at is None]
    if len(down_for_good) > crash_f(n):
        crashes.remove(down_for_good[-1])
    quorum = majority(n) + quorum_delta if quorum_delta else None
    return Schedule(protocol=protocol, n=n, slots=rng.randint(1, 3), seed=seed,
                    faults=replace(faults, crashes=tuple(crashes)), quorum=quorum)


def _random_faults(rng: random.Random, n: int, honest: Sequence[AgentId]) -> FaultPlan:
    link = LinkModel(
        base_delay=1.0,
        jitter=rng.choice((0.0, 0.5, 2.0, 5.0)),
        drop=rng.choice((0.0, 0.0, 0.05, 0.2)),
        duplicate=rng.choice((0.0, 0.1)),
        corrupt=rng.choice((0.0, 0.05)),
    )
    partitions: tuple[Partition, ...] = ()
    if rng.random() < 0.5:
        start = rng.uniform(0.0, 40.0)
        members = list(range(n))
        rng.shuffle(members)
        cut = rng.randint(1, n - 1)
        groups = (frozenset(members[:cut]), frozenset(members[cut:]))
        partitions = (Partition(start, start + rng.uniform(10.0, 150.0), groups),)
    crashes: tuple[Crash, ...] = ()
    if honest and rng.random() < 0.3:
        at = rng.uniform(0.0, 80.0)
        crashes = (Crash(rng.choice(list(honest)), at, at + rng.uniform(5.0, 100.0)),)
    slow: tuple[tuple[AgentId, float], ...] = ()
    if rng.random() < 0.3:
        slow = ((rng.randrange(n), rng.uniform(1.0, 10.0)),)
    gst = rng.uniform(0.0, 120.0)
    return FaultPlan(link, gst, partitions, crashes, slow)


# --- many seeds ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SweepResult:
    """Summary of many random schedules of one protocol."""

    protocol: str
    runs: int = 0
    violating: list[tuple[int, str]] = field(default_factory=list)  # (seed, first violation)
    undecided: list[int] = field(default_factory=list)  # seeds where an honest agent did not finish
    slow_healing: list[int] = field(default_factory=list)  # seeds needing more than f+1 views/rounds
    views_after_heal: Counter[int] = field(default_factory=Counter)
    messages: int = 0
    seconds: float = 0.0


_Outcome = tuple[int, list[str], bool, int, bool, int]


def _run_seed(args: tuple[str, int, dict[str, object]]) -> _Outcome:
    protocol, seed, options = args
    r = run_schedule(random_schedule(seed, protocol, **options))  # type: ignore[arg-type]
    return seed, r.violations[:1], r.terminated, r.views_after_heal, r.within_bound, r.stats.total_sent


def sweep(
    protocol: str,
    seeds: Iterable[int],
    *,
    workers: int = 1,
    stop_at_violation: bool = False,
    **options: object,
) -> SweepResult:
    """Run :func:`random_schedule` for each seed (in ``workers`` processes) and summarize.

    ``options`` go to :func:`random_schedule` (``extra_byzantine``, ``quorum_delta``, ...).
    With ``stop_at_violation`` the sweep runs in this process and ends at the first violation.
    """
    started = time.perf_counter()
    result = SweepResult(protocol)
    jobs = [(protocol, seed, dict(options)) for seed in seeds]
    if workers > 1 and not stop_at_violation:
        with ProcessPoolExecutor(workers) as pool:
            outcomes: Iterable[_Outcome] = list(
                pool.map(_run_seed, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
            )
    else:
        outcomes = map(_run_seed, jobs)
    for seed, violations, terminated, used, within, messages in outcomes:
        result.runs += 1
        result.messages += messages
        result.views_after_heal[used] += 1
        if not terminated:
            result.undecided.append(seed)
        if not within:
            result.slow_healing.append(seed)
        if violations:
            result.violating.append((seed, violations[0]))
            if stop_at_violation:
                break
    result.seconds = time.perf_counter() - started
    return result
