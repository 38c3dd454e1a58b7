"""Fault plans (YAML) for protocol experiments: load, draw presets, resolve, drive, log.

A fault plan file lists faults; each has a ``type``, ``targets`` (agent ids, or ``{fraction: F}``
drawn from the seed), a ``start`` and an optional ``duration`` in simulated seconds (none: until the
end of the run) and, for some types, an ``intensity``::

    faults:
      - type: partition          # agents 0 and 1 hear only each other for 60 s
        targets: [0, 1]
        start: 10
        duration: 60
      - type: drop               # 20% of the messages to or from 30% of the agents are lost
        targets: {fraction: 0.3}
        start: 0
        duration: 100
        intensity: 0.2

Types and what they mean on the simulated network (:mod:`llm_sched.transport.network`):

- ``crash``: the agents stop at ``start``; with a ``duration`` they restart (from what they had
  persisted) after it, without one they stay down.
- ``partition``: the targets are split off from the other agents (each side hears only itself).
- ``drop``, ``duplicate``, ``corrupt`` (``intensity``: a probability per message, default 0.2),
  ``delay`` (``intensity``: the mean of an exponential extra delay in seconds, default 5) and
  ``slow`` (``intensity``: a fixed extra delay in seconds on the agent's messages in and out,
  default 5): timed link faults on every link of a target, whatever GST says.
- Byzantine behaviours of :mod:`llm_sched.transport.harness`: ``silent``, ``equivocate``,
  ``forge``, ``alter``, ``vote-against``, ``mixed``. The agent is honest before ``start`` and
  after the window, and misbehaves within it. An agent has at most one Byzantine fault.

:func:`resolve` turns a plan into concrete agents (a fraction F of n agents is
``max(1, floor(F * n))`` agents, drawn per fault from the seed) and into what the network
understands: a :class:`~llm_sched.transport.network.FaultPlan` (partitions, crashes with their
restarts, timed :class:`~llm_sched.transport.network.LinkFault` windows) and a map from agent to
its Byzantine behaviour and window. :func:`run_plan` drives a resolved plan on the network with a
protocol core; :func:`fault_log` says, from what the network and the Byzantine wrappers recorded,
when each fault started and ended, whether it was applied and what it did, and
:func:`check_applied` lists the scheduled faults that were not.

Presets (:func:`preset`, :data:`PRESETS`) draw a plan from ``(name, n, seed, horizon)`` and the
fault model the method under test tolerates, deterministically:

========  ======  ============================  ==================  ======================
preset    faults  faulty agents (at least 1)    drop/dup/corrupt p  delay/slow seconds
========  ======  ============================  ==================  ======================
light     1       floor(20% of n)               0.1                 2
medium    2       floor(30% of n)               0.2                 5
heavy     3       floor(40% of n)               0.3                 10
chaos     5       floor(60% of n)               0.5                 20
========  ======  ============================  ==================  ======================

The faulty agents are a seeded sample; they are shared out among the faults so that every one of
them is a target (when there are fewer agents than faults, agents take several faults). Each
fault's type is drawn uniformly: for ``tolerates="byzantine"`` (PBFT, Tendermint) from every type,
for ``tolerates="crash"`` (Raft, Multi-Paxos) from the non-Byzantine ones. Each starts uniformly in
the first half of the horizon and lasts 10-30% of it; a crash restarts with probability 1/2 and
otherwise stays down, and a Byzantine fault lasts to the end with probability 1/2.

Presets test tolerance, not guaranteed failure: at no instant do more than f = floor((n-1)/3)
agents have a Byzantine fault or a crash (a crashed agent is one of the f) for a Byzantine-tolerant
method, or more than f_c = floor((n-1)/2) agents a crash for a crash-tolerant one; a fault that
would break that bound (or give an agent a second Byzantine fault, or crash it twice at once)
becomes a link fault or partition of a type drawn instead. Partitions and link faults always heal.
Explicit plans may exceed the bounds: :func:`over_tolerance` says by how much, for the experiment
runner to report.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

from llm_sched.errors import UserError
from llm_sched.loader import load_yaml, validated
from llm_sched.protocols.messages import AgentId, Core, KeyRing, Message, Output
from llm_sched.protocols.quorum import byzantine_f, crash_f
from llm_sched.transport.network import Crash, FaultPlan, LinkFault, LinkModel, Network, Partition

if TYPE_CHECKING:
    from llm_sched.transport.harness import Schedule

FaultType = Literal[
    "crash", "slow", "partition", "drop", "duplicate", "corrupt", "delay",
    "silent", "equivocate", "forge", "alter", "vote-against", "mixed",
]
FAULT_TYPES: tuple[str, ...] = get_args(FaultType)
BYZANTINE_TYPES = ("silent", "equivocate", "forge", "alter", "vote-against", "mixed")  # harness.BEHAVIOURS
LINK_TYPES = ("drop", "duplicate", "corrupt", "delay", "slow")
NETWORK_TYPES = ("crash", "partition", *LINK_TYPES)
PROBABILITY_TYPES = ("drop", "duplicate", "corrupt")
DEFAULT_INTENSITY = {"drop": 0.2, "duplicate": 0.2, "corrupt": 0.2, "delay": 5.0, "slow": 5.0}

Tolerates = Literal["byzantine", "crash"]

_STRICT = ConfigDict(extra="forbid", frozen=True)


# --- the file ------------------------------------------------------------------------------------


class TargetFraction(BaseModel):
    """``{fraction: F}``: max(1, floor(F * n)) agents drawn from the seed."""

    model_config = _STRICT
    fraction: float

    def count(self, n: int) -> int:
        return max(1, min(n, math.floor(self.fraction * n + 1e-9)))


class FaultSpec(BaseModel):
    """One fault as written in a plan."""

    model_config = _STRICT
    type: FaultType
    targets: tuple[int, ...] | TargetFraction
    start: float = Field(0.0, ge=0, description="simulated seconds from the start of the run")
    duration: float | None = Field(None, gt=0, description="seconds; none: until the end of the run")
    intensity: float | None = Field(None, description="drop/duplicate/corrupt probability, delay/slow seconds")

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("no target: give agent ids such as [0, 2] or {fraction: 0.3}")
            for x in value:
                if isinstance(x, bool) or not isinstance(x, int):
                    raise ValueError(f"agent ids are integers from 0 to n-1, got {x!r}")
                if x < 0:
                    raise ValueError(f"agent ids are integers from 0 to n-1, got {x}")
            if len(set(value)) != len(value):
                raise ValueError(f"an agent is listed twice: {list(value)}")
            return tuple(value)
        if isinstance(value, dict):
            if set(value) != {"fraction"}:
                raise ValueError(f"give a list of agent ids or {{fraction: F}}, found keys {sorted(value)}")
            f = value["fraction"]
            if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= 1:
                raise ValueError(f"fraction must be a number with 0 < fraction <= 1 (0 targets nobody), got {f!r}")
            return TargetFraction(fraction=f)
        if isinstance(value, TargetFraction):
            return value
        raise ValueError(f"give a list of agent ids or {{fraction: F}}, got {value!r}")

    @field_validator("intensity")
    @classmethod
    def _intensity(cls, x: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("type")
        if x is None or kind is None:  # no intensity, or the type itself is wrong (reported there)
            return x
        if kind not in DEFAULT_INTENSITY:
            raise ValueError(f"{kind} takes no intensity; intensity is for: {', '.join(DEFAULT_INTENSITY)}")
        if kind in PROBABILITY_TYPES and not 0 < x <= 1:
            raise ValueError(f"intensity of {kind} is a probability, 0 < intensity <= 1, got {x:g}")
        if kind not in PROBABILITY_TYPES and not x > 0:
            raise ValueError(f"intensity of {kind} is an extra delay in seconds, > 0, got {x:g}")
        return x

    @property
    def level(self) -> float | None:
        """The intensity, or the type's default where one applies."""
        return self.intensity if self.intensity is not None else DEFAULT_INTENSITY.get(self.type)


class FaultPlanSpec(BaseModel):
    """A fault plan file as written (or drawn by :func:`preset`)."""

    model_config = _STRICT
    name: str = ""
    description: str = ""
    faults: list[FaultSpec] = Field(default_factory=list)
    _path: Path | None = PrivateAttr(default=None)

    @property
    def where(self) -> str:
        """How errors name this plan: its file, or its name."""
        return str(self._path) if self._path is not None else f"fault plan {self.name or '(unnamed)'}"


def load_fault_plan(path: str | Path, n: int | None = None) -> FaultPlanSpec:
    """Read and validate a fault plan file; with ``n``, also check agent ids against 0..n-1."""
    path = Path(path)
    plan: FaultPlanSpec = validated(FaultPlanSpec, load_yaml(path, "fault plan"), path, "fault plan")
    plan._path = path
    if n is not None:
        check_plan(plan, n)
    return plan


def check_plan(plan: FaultPlanSpec, n: int) -> None:
    """Checks that need n: ids within 0..n-1, a partition that leaves someone out (UserError)."""
    if n < 1:
        raise UserError(f"{plan.where}: need at least one agent, got n={n}")
    for i, fault in enumerate(plan.faults):
        if isinstance(fault.targets, tuple):
            outside = [a for a in fault.targets if a >= n]
            if outside:
                raise UserError(f"{plan.where}: faults.{i}.targets: agent {outside[0]} is outside 0..{n - 1} "
                                f"(the run has {n} agents)")
            if fault.type == "partition" and len(fault.targets) == n:
                raise UserError(f"{plan.where}: faults.{i}.targets: a partition of every agent splits off "
                                "nobody; leave at least one agent on the other side")
        elif fault.type == "partition" and fault.targets.count(n) == n:
            raise UserError(f"{plan.where}: faults.{i}.targets: fraction {fault.targets.fraction} of {n} agents "
                            "is every agent; a partition must leave at least one on the other side")


# --- resolution ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedFault:
    """One fault with concrete agents and times (``end`` is inf when it lasts to the end)."""

    index: int
    type: str
    targets: tuple[AgentId, ...]
    start: float
    end: float
    intensity: float | None = None

    @property
    def byzantine(self) -> bool:
        return self.type in BYZANTINE_TYPES

    def label(self) -> str:
        return f"fault {self.index} ({self.type} on {list(self.targets)})"


@dataclass(frozen=True, slots=True)
class ByzantineWindow:
    """An agent's Byzantine behaviour during [start, end)."""

    behaviour: str
    start: float
    end: float
    fault: int  # index in the plan

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class ResolvedFaults:
    """A plan for n agents: the network's :class:`FaultPlan` and the Byzantine agents' windows.

    ``elements`` maps each fault index to where it went: ``("partition", i)``, ``("link", i)``
    (indexes in ``network.partitions`` / ``network.link_faults``) or ``("crash", i)`` per target.
    """

    n: int
    seed: int
    faults: tuple[ResolvedFault, ...]
    network: FaultPlan
    byzantine: Mapping[AgentId, ByzantineWindow]
    elements: Mapping[int, tuple[tuple[str, int], ...]]
    where: str = "fault plan"

    def byzantine_pairs(self) -> tuple[tuple[AgentId, str], ...]:
        """``(agent, behaviour)`` as :class:`~llm_sched.transport.harness.Schedule` takes them."""
        return tuple(sorted((a, w.behaviour) for a, w in self.byzantine.items()))


def resolve(
    plan: FaultPlanSpec,
    n: int,
    seed: int,
    *,
    horizon: float | None = None,
    link: LinkModel = LinkModel(),
    gst: float = 0.0,
) -> ResolvedFaults:
    """Concrete agents for every fault and the network's view of the plan.

    Fractions become agents from ``random.Random(f"faults/{seed}/{index}")``, so a fault's agents
    do not depend on the other faults. Open-ended faults end at ``horizon`` (inf without one; a
    crash without a duration never restarts). ``link`` and ``gst`` are the run's background link
    model, unchanged. Raises :class:`UserError` for ids outside 0..n-1, a partition of everyone, an
    agent with two Byzantine faults, or two crashes of one agent that overlap.
    """
    check_plan(plan, n)
    end_of_run = math.inf if horizon is None else horizon
    faults: list[ResolvedFault] = []
    for i, spec in enumerate(plan.faults):
        if isinstance(spec.targets, TargetFraction):
            rng = random.Random(f"faults/{seed}/{i}")
            targets = tuple(sorted(rng.sample(range(n), spec.targets.count(n))))
        else:
            targets = tuple(sorted(spec.targets))
        end = spec.start + spec.duration if spec.duration is not None else max(end_of_run, spec.start)
        faults.append(ResolvedFault(i, spec.type, targets, spec.start, end, spec.level))

    partitions: list[Partition] = []
    crashes: list[Crash] = []
    links: list[LinkFault] = []
    byzantine: dict[AgentId, ByzantineWindow] = {}
    elements: dict[int, tuple[tuple[str, int], ...]] = {}
    for f in faults:
        spec = plan.faults[f.index]
        if f.type == "partition":
            rest = frozenset(range(n)) - frozenset(f.targets)
            elements[f.index] = (("partition", len(partitions)),)
            partitions.append(Partition(f.start, f.end, (frozenset(f.targets), rest)))
        elif f.type == "crash":
            restart = f.start + spec.duration if spec.duration is not None else None
            elements[f.index] = tuple(("crash", len(crashes) + j) for j in range(len(f.targets)))
            for a in f.targets:
                for c in crashes:
                    if c.node == a and _overlap(c.at, c.restart_at, f.start, restart):
                        raise UserError(f"{plan.where}: faults.{f.index}.targets: agent {a} is already crashed "
                                        f"from {c.at:g} then; crashes of one agent must not overlap")
                crashes.append(Crash(a, f.start, restart))
        elif f.type in LINK_TYPES:
            assert f.intensity is not None
            elements[f.index] = (("link", len(links)),)
            links.append(LinkFault(f.type, f.start, f.end, frozenset(f.targets), f.intensity))
        else:
            elements[f.index] = ()
            for a in f.targets:
                if a in byzantine:
                    raise UserError(f"{plan.where}: faults.{f.index}.targets: agent {a} already has a Byzantine "
                                    f"fault (faults.{byzantine[a].fault}); an agent has at most one")
                byzantine[a] = ByzantineWindow(f.type, f.start, f.end, f.index)
    network = FaultPlan(link, gst, tuple(partitions), tuple(crashes), (), tuple(links))
    return ResolvedFaults(n, seed, tuple(faults), network, byzantine, elements, plan.where)


def _overlap(a0: float, a1: float | None, b0: float, b1: float | None) -> bool:
    return a0 < (math.inf if b1 is None else b1) and b0 < (math.inf if a1 is None else a1)


# --- tolerance -----------------------------------------------------------------------------------


def tolerance(n: int, tolerates: Tolerates) -> int:
    """Faulty agents a method tolerates at once: f = floor((n-1)/3) or f_c = floor((n-1)/2)."""
    return byzantine_f(n) if tolerates == "byzantine" else crash_f(n)


def most_at_once(faults: Sequence[ResolvedFault], types: Sequence[str]) -> int:
    """The largest number of distinct agents with an active fault of one of ``types`` at one instant."""
    windows = [f for f in faults if f.type in types]
    worst = 0
    for t in {f.start for f in windows}:
        worst = max(worst, len({a for f in windows if f.start <= t < f.end for a in f.targets}))
    return worst


def over_tolerance(resolved: ResolvedFaults, tolerates: Tolerates) -> list[str]:
    """What in a resolved plan exceeds what the method tolerates (empty: within its bound)."""
    n = resolved.n
    problems = []
    if tolerates == "byzantine":
        worst, cap = most_at_once(resolved.faults, (*BYZANTINE_TYPES, "crash")), byzantine_f(n)
        if worst > cap:
            problems.append(f"{worst} agents Byzantine or crashed at once; n={n} tolerates f={cap}")
    else:
        byz = sorted({a for f in resolved.faults if f.byzantine for a in f.targets})
        if byz:
            problems.append(f"Byzantine faults on agents {byz}; a crash-fault method tolerates none")
        worst, cap = most_at_once(resolved.faults, ("crash",)), crash_f(n)
        if worst > cap:
            problems.append(f"{worst} agents crashed at once; n={n} tolerates f_c={cap}")
    return problems


# --- presets -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preset:
    """How many faults, on what share of the agents, and how hard the link faults hit."""

    faults: int
    percent: int  # of the agents, floor, at least one
    probability: float  # drop / duplicate / corrupt
    seconds: float  # delay / slow

    def agents(self, n: int) -> int:
        return max(1, n * self.percent // 100)


PRESETS: dict[str, Preset] = {
    "light": Preset(1, 20, 0.1, 2.0),
    "medium": Preset(2, 30, 0.2, 5.0),
    "heavy": Preset(3, 40, 0.3, 10.0),
    "chaos": Preset(5, 60, 0.5, 20.0),
}


def preset(name: str, n: int, seed: int, horizon: float, tolerates: Tolerates = "byzantine") -> FaultPlanSpec:
    """Draw the plan of a preset (see the module docstring); the same arguments give the same plan."""
    if name not in PRESETS:
        raise UserError(f"unknown fault preset {name!r}; presets are: {', '.join(PRESETS)}")
    if n < 1 or not horizon > 0:
        raise UserError(f"fault preset {name}: need n >= 1 and horizon > 0, got n={n}, horizon={horizon}")
    p = PRESETS[name]
    if tolerates not in get_args(Tolerates):
        raise UserError(f"fault preset {name}: tolerates must be one of {', '.join(get_args(Tolerates))}, "
                        f"got {tolerates!r}")
    rng = random.Random(f"faults-preset/{name}/{n}/{seed}/{float(horizon)!r}/{tolerates}")
    faulty = rng.sample(range(n), p.agents(n))
    groups = _share_out(faulty, p.faults, rng)
    capped = (*BYZANTINE_TYPES, "crash") if tolerates == "byzantine" else ("crash",)
    cap = tolerance(n, tolerates)
    types = FAULT_TYPES if tolerates == "byzantine" else NETWORK_TYPES
    placed: list[ResolvedFault] = []
    specs: list[FaultSpec] = []
    for i, group in enumerate(groups):
        kind = rng.choice(types)
        start = _tidy(rng.uniform(0.0, horizon / 2))
        duration: float | None = _tidy(rng.uniform(0.1, 0.3) * horizon)
        if kind == "crash" or kind in BYZANTINE_TYPES:
            duration = duration if rng.random() < 0.5 else None
        end = start + duration if duration is not None else horizon
        trial = ResolvedFault(i, kind, tuple(group), start, end)
        if not _fits(trial, placed, capped, cap, n):
            kind = rng.choice([t for t in LINK_TYPES + ("partition",) if t != "partition" or len(group) < n])
            duration = duration or _tidy(0.2 * horizon)
            trial = ResolvedFault(i, kind, tuple(group), start, start + duration)
        placed.append(trial)
        level = p.probability if kind in PROBABILITY_TYPES else p.seconds if kind in ("delay", "slow") else None
        specs.append(FaultSpec(type=kind, targets=tuple(sorted(group)), start=start, duration=duration,
                               intensity=level))
    return FaultPlanSpec(name=f"{name}-n{n}-seed{seed}", description=f"preset {name} ({tolerates})", faults=specs)


def _tidy(x: float) -> float:
    """Tenths of a second, for readable plans, unless that would round a positive time to 0."""
    r = round(x, 1)
    return r if r > 0 or x == 0 else x


def _share_out(agents: list[AgentId], k: int, rng: random.Random) -> list[list[AgentId]]:
    """k non-empty groups covering every agent: a random split, or one agent each, cycling."""
    if len(agents) < k:
        return [[agents[i % len(agents)]] for i in range(k)]
    cuts = sorted(rng.sample(range(1, len(agents)), k - 1))
    return [agents[a:b] for a, b in zip([0, *cuts], [*cuts, len(agents)], strict=True)]


def _fits(trial: ResolvedFault, placed: Sequence[ResolvedFault], capped: Sequence[str], cap: int, n: int) -> bool:
    if trial.type == "partition":
        return len(trial.targets) < n
    if trial.type not in capped:
        return True
    mine = set(trial.targets)
    for f in placed:
        if not mine & set(f.targets):
            continue
        if trial.byzantine and f.byzantine:
            return False  # one Byzantine fault per agent
        if trial.type == "crash" == f.type and trial.start < f.end and f.start < trial.end:
            return False  # one crash of an agent at a time
    return most_at_once([*placed, trial], capped) <= cap


# --- driving a plan ------------------------------------------------------------------------------


@dataclass(slots=True)
class ByzantineActivity:
    """What the Byzantine wrappers did, per agent: when the behaviour was first in force (at the
    window's start, or when the agent came back from a crash within it), when it was first seen
    past the window, and how many messages it withheld, rewrote or forged."""

    first: dict[AgentId, float] = field(default_factory=dict)
    after: dict[AgentId, float] = field(default_factory=dict)  # first time seen past the window
    changed: dict[AgentId, int] = field(default_factory=dict)


class TimedByzantine:
    """A Byzantine agent that is honest outside its window.

    Rewriting behaviours (:class:`~llm_sched.transport.harness.ByzantineCore`) rewrite only what
    the honest core sends within the window. Equivocation
    (:class:`~llm_sched.transport.harness.SplitBrainCore`) runs both worlds from the start, feeding
    each every message; outside the window only the first world's messages go out, to everyone.
    """

    def __init__(self, core: Core, window: ByzantineWindow, activity: ByzantineActivity) -> None:
        self.node_id = core.node_id
        self.core, self.window, self.activity = core, window, activity
        self._now = 0.0

    def tick(self, now: float) -> Output:
        self._now = now
        return self._run(lambda c: c.tick(now))

    def step(self, msg: Message) -> Output:
        return self._run(lambda c: c.step(msg))

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()

    def persisted(self) -> object:
        return self.core.persisted()

    def _run(self, call: Callable[[Core], Output]) -> Output:
        from llm_sched.transport.harness import ByzantineCore, SplitBrainCore

        me, act, core = self.node_id, self.activity, self.core
        if not self.window.active(self._now):
            if self._now >= self.window.end and me in act.first:
                act.after.setdefault(me, self._now)
            if isinstance(core, ByzantineCore):
                return call(core.inner)
            if isinstance(core, SplitBrainCore):
                outs = [call(w) for w in core.worlds]
                return outs[0]
            return call(core)
        act.first.setdefault(me, self._now)
        if isinstance(core, ByzantineCore):
            honest = call(core.inner)
            out = core._rewrite(honest)  # the behaviour's own rewriting, applied to what honesty sends
            sent, meant = {id(m) for m in out.messages}, {id(m) for m in honest.messages}
            changed = len(meant - sent) + len(sent - meant)  # withheld, plus rewritten or forged
            act.changed[me] = act.changed.get(me, 0) + changed
            return out
        out = call(core)
        if isinstance(core, SplitBrainCore):
            act.changed[me] = act.changed.get(me, 0) + len(out.messages)
        return out


def make_factory(schedule: Schedule, keyring: KeyRing, resolved: ResolvedFaults,
                 activity: ByzantineActivity) -> Callable[[AgentId, object | None], Core]:
    """The harness's core factory with the plan's Byzantine agents active only in their windows."""
    from llm_sched.transport.harness import make_factory as harness_factory

    base = harness_factory(replace(schedule, byzantine=resolved.byzantine_pairs()), keyring)

    def factory(agent: AgentId, restore: object | None) -> Core:
        core = base(agent, restore)
        window = resolved.byzantine.get(agent)
        return core if window is None else TimedByzantine(core, window, activity)

    return factory


@dataclass(slots=True)
class FaultRun:
    """A plan driven on the network: the network (decisions, accounting, events) and the log."""

    network: Network
    activity: ByzantineActivity
    resolved: ResolvedFaults
    honest: tuple[AgentId, ...]

    def log(self) -> list[FaultRecord]:
        return fault_log(self.resolved, self.network, self.activity)


def run_plan(resolved: ResolvedFaults, protocol: str, slots: int, until: float) -> FaultRun:
    """Drive ``protocol`` (a harness protocol name) on n agents under the plan up to ``until``."""
    from llm_sched.transport.harness import Schedule

    schedule = Schedule(protocol, resolved.n, slots, resolved.seed, resolved.byzantine_pairs(), resolved.network,
                        until)
    keyring = KeyRing(resolved.seed, range(resolved.n))
    activity = ByzantineActivity()
    net = Network(range(resolved.n), make_factory(schedule, keyring, resolved, activity), keyring,
                  resolved.seed, resolved.network)
    for agent, window in resolved.byzantine.items():
        net.call_at(window.start, record_window_edge(net, agent, window, activity))
        if window.end != math.inf:
            net.call_at(window.end, record_window_edge(net, agent, window, activity))
    net.run(until)
    return FaultRun(net, activity, resolved, schedule.honest)


def record_window_edge(net: Network, agent: AgentId, window: ByzantineWindow,
                       activity: ByzantineActivity) -> Callable[[], None]:
    """The callback to schedule (``net.call_at``) at each edge of a Byzantine window, the start and,
    if finite, the end: when called, it records in ``activity`` that the agent, running and wrapped
    in a :class:`TimedByzantine` for that window, turned Byzantine (``first``) or honest again
    (``after``). A crashed or unwrapped agent records nothing (the wrapper records on its own when
    the agent comes back within the window). :func:`run_plan` and the experiment runner use it.
    """

    def record() -> None:
        core = net.cores.get(agent)
        if not isinstance(core, TimedByzantine) or core.window != window:
            return  # crashed (the wrapper records when it comes back within the window) or not wrapped
        if window.active(net.now):
            activity.first.setdefault(agent, net.now)
        elif agent in activity.first:
            activity.after.setdefault(agent, net.now)

    return record


# --- the fault log -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One scheduled fault and, after a run, what the run recorded of it.

    ``started_at``/``ended_at`` and ``applied`` come from the network's events (crashes, restarts,
    partition and link windows) or the Byzantine wrappers' activity (:func:`run_plan` records the
    window's edges while the agent is up and wrapped); without a run they are None.
    ``ended_at`` None after a run means the fault was still on when the run ended. ``effects``
    counts what it did: ``dropped`` (partition), ``affected`` (link faults), ``lost_deliveries``
    (crash), ``messages_changed`` (Byzantine).
    """

    fault: int
    type: str
    targets: tuple[AgentId, ...]
    start: float
    end: float
    started_at: float | None = None
    ended_at: float | None = None
    applied: bool | None = None
    effects: Mapping[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the fault, its observed (or else scheduled) times, whether applied, what it did."""
        state = {None: "scheduled", True: "applied", False: "NOT applied"}[self.applied]
        if self.started_at is None:
            times = f"{self.start:g}-{self.end:g}"
        else:
            times = f"{self.started_at:g}-" + ("end" if self.ended_at is None else f"{self.ended_at:g}")
        line = f"fault {self.fault} {self.type} on {list(self.targets)} {times}: {state}"
        what = ", ".join(f"{k} {v:g}" for k, v in self.effects.items())
        return f"{line} ({what})" if what else line


def fault_log(resolved: ResolvedFaults, net: Network | None = None,
              activity: ByzantineActivity | None = None) -> list[FaultRecord]:
    """A record per fault; with the network after a run, from what it actually recorded.

    A fault counts as applied when the network recorded its start (a partition or link window
    opening, every target's crash at its time) and, if it was due to end before the run's last
    time, its end (the window closing, every restart). A Byzantine fault is applied when every
    target ran with the behaviour in force within its window (``activity``; without it, ``applied``
    stays None): at the window's start, or on coming back from a crash within it.
    """
    records = []
    for f in resolved.faults:
        base = FaultRecord(f.index, f.type, f.targets, f.start, f.end)
        if net is None:
            records.append(base)
        elif f.byzantine:
            records.append(_byzantine_record(base, f, activity))
        elif f.type == "crash":
            records.append(_crash_record(base, f, resolved, net))
        else:
            records.append(_window_record(base, f, resolved, net))
    return records


def _window_record(base: FaultRecord, f: ResolvedFault, resolved: ResolvedFaults, net: Network) -> FaultRecord:
    (kind, i), = resolved.elements[f.index]
    events = {(event, subject): t for t, event, subject in net.fault_events}
    started, ended = events.get((f"{kind}-start", i)), events.get((f"{kind}-end", i))
    due_end = f.end <= net.now
    applied = started is not None and (ended is not None or not due_end)
    counter = "dropped" if kind == "partition" else "affected"
    return replace(base, started_at=started, ended_at=ended, applied=applied,
                   effects={counter: net.stats.fault_effects[f"{kind}:{i}"]})


def _crash_record(base: FaultRecord, f: ResolvedFault, resolved: ResolvedFaults, net: Network) -> FaultRecord:
    crashes = [resolved.network.crashes[i] for _, i in resolved.elements[f.index]]
    seen = set((t, event, node) for t, event, node in net.fault_events)
    crashed = [c for c in crashes if (c.at, "crash", c.node) in seen]
    due = [c for c in crashes if c.restart_at is not None and c.restart_at <= net.now]
    restarted = [c for c in due if (c.restart_at, "restart", c.node) in seen]
    applied = len(crashed) == len(crashes) and len(restarted) == len(due)
    started = min((c.at for c in crashed), default=None)
    ended = max((c.restart_at for c in restarted if c.restart_at is not None), default=None)
    if len(restarted) < len(crashes):
        ended = None  # someone still down at the end of the run
    lost = sum(net.stats.fault_effects[f"down:{a}"] for a in f.targets)
    return replace(base, started_at=started, ended_at=ended, applied=applied,
                   effects={"lost_deliveries": lost})


def _byzantine_record(base: FaultRecord, f: ResolvedFault, activity: ByzantineActivity | None) -> FaultRecord:
    if activity is None:
        return base
    firsts = [activity.first[a] for a in f.targets if a in activity.first]
    afters = [activity.after[a] for a in f.targets if a in activity.after]
    applied = len(firsts) == len(f.targets)
    return replace(base, started_at=min(firsts, default=None),
                   ended_at=max(afters) if len(afters) == len(f.targets) else None, applied=applied,
                   effects={"messages_changed": sum(activity.changed.get(a, 0) for a in f.targets)})


def check_applied(log: Sequence[FaultRecord]) -> list[str]:
    """The scheduled faults a run did not apply, or could not confirm (``applied`` None), one line
    each; empty when every scheduled fault was applied."""
    return [r.describe() for r in log if r.applied is not True]
