"""Run a scenario: cluster, agents, consensus graph, LLM session, one event stream, run files.

Every run writes ``<runs_dir>/<timestamp>-<scenario>/events.jsonl`` and ``summary.json``. The same
seed and cassette give the same events, apart from timestamps and latencies.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm_sched.agents.reputation import Reputation
from llm_sched.agents.specialist import SpecialistAgent, World
from llm_sched.config import Settings
from llm_sched.consensus.graph import ConsensusGraph
from llm_sched.errors import UserError
from llm_sched.events import (
    EventBus,
    FaultChanged,
    JobFinished,
    JobSubmitted,
    JsonlSink,
    PhaseStarted,
    ScenarioEnded,
    ScenarioStarted,
    Subscriber,
)
from llm_sched.llm.cassettes import cassette_path
from llm_sched.llm.factory import llm_session, secrets_of
from llm_sched.scenarios import Phase, Scenario
from llm_sched.summary import summarize


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    events: list[Any]


def choose_provider(scenario: Scenario, settings: Settings) -> tuple[Settings, str]:
    """The provider for this run and a note on why. The scenario's choice applies unless the user
    chose one (flag or environment); ``auto`` without endpoints replays the scenario's cassette, or
    uses heuristics when there is none."""
    if "provider" not in settings.sources and scenario.provider != "auto":
        settings = settings.model_copy(update={"provider": scenario.provider})
    provider = settings.resolved_provider()
    if provider != "replay":
        return settings, provider
    cassette = cassette_path(settings.cassettes_dir, scenario.name, settings.replay_provider)
    if cassette.is_file():
        return settings, f"replay ({settings.replay_provider} cassette)"
    if settings.provider == "replay":
        raise UserError(f"--provider replay: no cassette for scenario {scenario.name} at {cassette}")
    return settings.model_copy(update={"provider": "heuristic"}), f"heuristic (no cassette at {cassette})"


def new_run_dir(runs_dir: Path, scenario: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        path = runs_dir / f"{stamp}-{scenario}{'' if attempt == 0 else f'-{attempt}'}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise UserError(f"could not create a run folder under {runs_dir}")


class _Clock:
    """Simulated time: job arrivals in order, running jobs released when they end."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ends: list[tuple[float, str]] = []


async def _run_phases(scenario: Scenario, graph: ConsensusGraph, world: World, bus: EventBus) -> None:
    clock = _Clock()
    active: dict[str, str] = {}
    for phase in scenario.phases:
        bus.emit(PhaseStarted(phase=phase.name, description=phase.description))
        _apply_faults(phase, active, graph, bus)
        for spec in phase.jobs:
            job = spec.job()
            _release_until(clock, world, bus)
            bus.emit(JobSubmitted(job=job, sim_time=clock.now))
            decision = await graph.decide(job)
            if decision.outcome == "commit" and decision.placement is not None:
                world.state.commit(job, decision.placement)
                heapq.heappush(clock.ends, (clock.now + job.runtime_s, job.id))
            clock.now += phase.job_interval_s
    _release_until(clock, world, bus, until=float("inf"))


def _release_until(clock: _Clock, world: World, bus: EventBus, until: float | None = None) -> None:
    limit = clock.now if until is None else until
    while clock.ends and clock.ends[0][0] <= limit:
        end, job_id = heapq.heappop(clock.ends)
        world.state.release(job_id)
        bus.emit(JobFinished(job_id=job_id, sim_time=end))


def _apply_faults(phase: Phase, active: dict[str, str], graph: ConsensusGraph, bus: EventBus) -> None:
    wanted = {f.agent: f.behaviour for f in phase.faults}
    for agent, behaviour in sorted(active.items()):
        if wanted.get(agent) != behaviour:
            graph.agents[agent].behaviour = None
            bus.emit(FaultChanged(agent=agent, behaviour=behaviour, active=False))
    for agent, behaviour in sorted(wanted.items()):
        if active.get(agent) != behaviour:
            graph.agents[agent].behaviour = behaviour
            bus.emit(FaultChanged(agent=agent, behaviour=behaviour, active=True))
    active.clear()
    active.update(wanted)


def run_scenario(
    scenario: Scenario,
    settings: Settings,
    *,
    seed: int | None = None,
    record: bool = False,
    recorded_how: str = "live endpoint",
    subscribers: Iterable[Subscriber] = (),
    runs_dir: Path | None = None,
) -> RunResult:
    """Run ``scenario`` to the end; returns the run folder, the summary and the events."""
    seed = scenario.seed if seed is None else seed
    settings, provider_note = choose_provider(scenario, settings)
    run_dir = new_run_dir(runs_dir or settings.runs_dir, scenario.name)
    sink = JsonlSink(run_dir / "events.jsonl", secrets=secrets_of(settings))
    bus = EventBus([sink, *subscribers])
    started = time.monotonic()
    try:
        with llm_session(settings, scenario=scenario.name, seed=seed, record=record, recorded_how=recorded_how) as llm:
            graph, world = _build(scenario, seed, llm, bus)
            bus.emit(ScenarioStarted(scenario=scenario.name, seed=seed, provider=provider_note,
                                     agents={a: ag.specialty for a, ag in graph.agents.items()},
                                     n=graph.n, f=graph.f, quorum=graph.quorum))
            asyncio.run(_run_phases(scenario, graph, world, bus))
        bus.emit(ScenarioEnded(scenario=scenario.name, wall_s=round(time.monotonic() - started, 3)))
    finally:
        sink.close()
    summary = summarize(bus.events)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return RunResult(run_dir, summary, bus.events)


def _build(scenario: Scenario, seed: int, llm: Any, bus: EventBus) -> tuple[ConsensusGraph, World]:
    state = scenario.cluster.build_state(seed)
    agent_ids = [a.id for a in scenario.cluster.agents]
    world = World(state, Reputation.fresh(agent_ids), {a.pool: a.id for a in scenario.cluster.agents}, scenario.name)
    agents = {a.id: SpecialistAgent(a.id, a.specialty, world, llm) for a in scenario.cluster.agents}
    return ConsensusGraph(agents, world, bus), world
