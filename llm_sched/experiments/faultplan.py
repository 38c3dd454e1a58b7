"""One repetition's faults, as one fault plan for :mod:`llm_sched.experiments.faults`.

Three sources, in this order (a fault's index in the plan is its id in the fault log):

1. ``file``: the plan of ``--faults FILE``, unchanged (so its ``{fraction: F}`` targets are drawn
   exactly as they would be on their own);
2. ``byzantine`` / ``crash``: the experiment's ``--byzantine`` agents (Byzantine from start to
   end, behaviours assigned in turn) and ``--crash`` agents (down once, at a seeded time in the
   first half of ``fault_horizon``, for ``crash_downtime``), drawn per repetition among the agents
   the file does not already make Byzantine or crash; the same agents for every method;
3. ``preset``: ``--intensity``, drawn per repetition by :func:`llm_sched.experiments.faults.preset` over the
   agents that are not already Byzantine or crashed, for the fault model the method tolerates
   (``byzantine`` for PBFT and Tendermint, ``crash`` for Raft and Multi-Paxos). A preset fault that
   would take the run past what the method tolerates (counting the faults above) becomes a link
   fault, as the presets themselves do.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.experiments.config import ExperimentConfig
from llm_sched.experiments.faults import (
    BYZANTINE_TYPES,
    LINK_TYPES,
    PRESETS,
    PROBABILITY_TYPES,
    FaultPlanSpec,
    FaultSpec,
    ResolvedFaults,
    Tolerates,
    load_fault_plan,
    most_at_once,
    preset,
    resolve,
    tolerance,
)
from llm_sched.protocols.messages import AgentId


def repetition_seed(seed: int, repetition: int) -> int:
    """The seed of one repetition: the same for every method, so methods face the same draws."""
    digest = hashlib.sha256(f"llm-sched/experiment/{seed}/{repetition}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


@dataclass(frozen=True, slots=True)
class RepetitionPlan:
    """The resolved faults of one repetition for one fault model, and where each fault came from."""

    repetition: int
    seed: int
    tolerates: Tolerates
    spec: FaultPlanSpec
    sources: tuple[str, ...]
    resolved: ResolvedFaults

    @property
    def byzantine_agents(self) -> dict[AgentId, str]:
        return {a: w.behaviour for a, w in sorted(self.resolved.byzantine.items())}

    @property
    def crashed_agents(self) -> list[AgentId]:
        return sorted({c.node for c in self.resolved.network.crashes})


def plan_repetition(config: ExperimentConfig, repetition: int, tolerates: Tolerates) -> RepetitionPlan:
    """Build and resolve the plan of one repetition (raises UserError when it cannot be built)."""
    n, seed = config.agents, repetition_seed(config.seed, repetition)
    specs: list[FaultSpec] = []
    sources: list[str] = []
    file_plan = load_fault_plan(Path(config.faults), n) if config.faults else None
    taken: set[AgentId] = set()
    if file_plan is not None:
        specs += file_plan.faults
        sources += ["file"] * len(file_plan.faults)
        for f in resolve(file_plan, n, seed).faults:
            if f.byzantine or f.type == "crash":
                taken.update(f.targets)
    free = [a for a in range(n) if a not in taken]
    b, c = config.byzantine, config.crash
    if len(free) < b + c:
        raise UserError(f"{config.faults}: the fault plan makes {len(taken)} of {n} agents Byzantine or crashed; "
                        f"{b} more Byzantine (--byzantine) and {c} crashed (--crash) do not fit")
    rng = random.Random(f"experiment-faulty/{seed}")
    chosen = rng.sample(free, b + c)
    for k, agent in enumerate(sorted(chosen[:b])):
        specs.append(FaultSpec(type=config.behaviour_of(k), targets=(agent,), start=0.0))  # type: ignore[arg-type]
        sources.append("byzantine")
    for agent in sorted(chosen[b:]):
        start = round(rng.uniform(0.0, config.fault_horizon / 2), 1)
        specs.append(FaultSpec(type="crash", targets=(agent,), start=start, duration=config.crash_downtime))
        sources.append("crash")
    if config.intensity is not None:
        healthy = [a for a in range(n) if a not in chosen]
        drawn = _preset(config, healthy, seed, tolerates, specs)
        specs += drawn
        sources += ["preset"] * len(drawn)
    name = f"{config.name}-rep{repetition}-{tolerates}"
    plan = FaultPlanSpec(name=name, description=f"repetition {repetition} of {config.name}", faults=specs)
    return RepetitionPlan(repetition, seed, tolerates, plan, tuple(sources), resolve(plan, n, seed))


def _preset(config: ExperimentConfig, healthy: list[AgentId], seed: int, tolerates: Tolerates,
            before: list[FaultSpec]) -> list[FaultSpec]:
    """The preset over the healthy agents (ids mapped back), kept within the method's tolerance."""
    assert config.intensity is not None
    if not healthy:
        raise UserError(f"--intensity {config.intensity}: every agent is already Byzantine or crashed; "
                        "no agent is left to draw the preset's faults on")
    drawn = preset(config.intensity, len(healthy), seed, config.fault_horizon, tolerates)
    level = PRESETS[config.intensity]
    capped = (*BYZANTINE_TYPES, "crash") if tolerates == "byzantine" else ("crash",)
    cap = tolerance(config.agents, tolerates)
    rng = random.Random(f"experiment-preset/{seed}/{tolerates}")
    kept: list[FaultSpec] = []
    for spec in drawn.faults:
        targets = tuple(healthy[i] for i in spec.targets) if isinstance(spec.targets, tuple) else spec.targets
        spec = spec.model_copy(update={"targets": targets})
        if spec.type in capped and not _fits(config.agents, seed, [*before, *kept, spec], capped, cap):
            kind = rng.choice(LINK_TYPES)
            intensity = level.probability if kind in PROBABILITY_TYPES else level.seconds
            spec = FaultSpec(type=kind, targets=spec.targets, start=spec.start,
                             duration=spec.duration or round(0.2 * config.fault_horizon, 1), intensity=intensity)
        kept.append(spec)
    return kept


def _fits(n: int, seed: int, specs: list[FaultSpec], capped: tuple[str, ...], cap: int) -> bool:
    """Whether the plan resolves (one Byzantine fault per agent, crashes of one agent apart) and
    never has more than ``cap`` agents with a fault of the capped types at once."""
    try:
        resolved = resolve(FaultPlanSpec(faults=specs), n, seed)
    except UserError:
        return False
    return most_at_once(resolved.faults, capped) <= cap
