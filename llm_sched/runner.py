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
    AgentHealth,
    EventBus,
    FaultChanged,
    JobFinished,
    JobSubmitted,
    JsonlSink,
    NetworkStatus,
    OccupancyReported,
    PhaseStarted,
    PoolOccupancy,
    ScenarioEnded,
    ScenarioStarted,
    Subscriber,
)
from llm_sched.llm.cassettes import cassette_path, read_metadata
from llm_sched.llm.factory import llm_session, secrets_of
from llm_sched.scenarios import RANDOM_AGENT, Phase, Scenario
from llm_sched.summary import summarize


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    events: list[Any]


def choose_provider(scenario: Scenario, settings: Settings, seed: int | None = None) -> tuple[Settings, str]:
    """The provider for this run and a note on why. The scenario's choice applies unless the user
    chose one (flag or environment); ``auto`` without endpoints replays the scenario's cassette, or
    uses heuristics when there is none or it was recorded with another seed (its prompts would not
    match: the seed draws the background load the prompts state)."""
    if "provider" not in settings.sources and scenario.provider != "auto":
        settings = settings.model_copy(update={"provider": scenario.provider})
    provider = settings.resolved_provider()
    if provider != "replay":
        return settings, provider
    seed = scenario.seed if seed is None else seed
    cassette = cassette_path(settings.cassettes_dir, scenario.name, settings.replay_provider)
    problem = _replay_problem(cassette, seed)
    if problem is None:
        return settings, f"replay ({settings.replay_provider} cassette)"
    if settings.provider == "replay":
        raise UserError(f"--provider replay: {problem} for scenario {scenario.name}")
    return settings.model_copy(update={"provider": "heuristic"}), f"heuristic ({problem})"


def _replay_problem(cassette: Path, seed: int) -> str | None:
    """Why ``cassette`` cannot serve a run with ``seed``, or None when it can."""
    if not cassette.is_file():
        return f"no cassette at {cassette}"
    recorded = read_metadata(cassette).get("seed")
    if recorded is not None and recorded != seed:
        return f"the cassette {cassette.name} was recorded with seed {recorded}, this run uses seed {seed}"
    return None


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


async def _run_phases(scenario: Scenario, graph: ConsensusGraph, world: World, bus: EventBus, seed: int) -> None:
    clock = _Clock()
    active: dict[str, str] = {}
    for phase in scenario.phases:
        bus.emit(PhaseStarted(phase=phase.name, description=phase.description))
        _apply_faults(_faults_of(phase, scenario, seed), active, graph, bus)
        for spec in phase.jobs:
            job = spec.job()
            _release_until(clock, world, bus)
            bus.emit(JobSubmitted(job=job, sim_time=clock.now))
            decision = await graph.decide(job)
            if decision.outcome == "commit" and decision.placement is not None:
                world.state.commit(job, decision.placement)
                heapq.heappush(clock.ends, (clock.now + job.runtime_s, job.id))
            if scenario.occupancy_view:
                _report_occupancy(world, bus, job.id, clock.now)
            clock.now += phase.job_interval_s
    _release_until(clock, world, bus, until=float("inf"))
    bus.emit(NetworkStatus(agents=[
        AgentHealth(agent=a, pool=ag.pool, reputation=world.reputation.scores[a], health=world.reputation.health(a))
        for a, ag in graph.agents.items()
    ]))


def _report_occupancy(world: World, bus: EventBus, job_id: str, now: float) -> None:
    pools = [PoolOccupancy.model_validate(world.state.occupancy(p)) for p in sorted(world.state.pools)]
    bus.emit(OccupancyReported(job_id=job_id, sim_time=now, pools=pools))


def _faults_of(phase: Phase, scenario: Scenario, seed: int) -> dict[str, str]:
    """The phase's faults by agent, a ``random`` agent resolved from the run's seed."""
    return {(scenario.random_agent(seed) if f.agent == RANDOM_AGENT else f.agent): f.behaviour for f in phase.faults}


def _release_until(clock: _Clock, world: World, bus: EventBus, until: float | None = None) -> None:
    limit = clock.now if until is None else until
    while clock.ends and clock.ends[0][0] <= limit:
        end, job_id = heapq.heappop(clock.ends)
        world.state.release(job_id)
        bus.emit(JobFinished(job_id=job_id, sim_time=end))


def _apply_faults(wanted: dict[str, str], active: dict[str, str], graph: ConsensusGraph, bus: EventBus) -> None:
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
    settings, provider_note = choose_provider(scenario, settings, seed)
    run_dir = new_run_dir(runs_dir or settings.runs_dir, scenario.name)
    sink = JsonlSink(run_dir / "events.jsonl", secrets=secrets_of(settings))
    bus = EventBus([sink, *subscribers])
    started = time.monotonic()
    try:
        with llm_session(settings, scenario=scenario.name, seed=seed, record=record, recorded_how=recorded_how) as llm:
            graph, world = _build(scenario, seed, llm, bus)
            bus.emit(ScenarioStarted(scenario=scenario.name, seed=seed, provider=provider_note,
                                     agents={a: ag.specialty for a, ag in graph.agents.items()},
                                     n=graph.n, f=graph.f, quorum=graph.quorum, method=scenario.consensus.method,
                                     weighted=graph.weighted,
                                     pools={a: ag.pool for a, ag in graph.agents.items() if ag.pool}))
            asyncio.run(_run_phases(scenario, graph, world, bus, seed))
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
    bidding = scenario.consensus.method == "bidding"
    agents = {a.id: SpecialistAgent(a.id, a.specialty, world, llm, pool=a.pool, bidding=bidding)
              for a in scenario.cluster.agents}
    return ConsensusGraph(agents, world, bus, weighted=scenario.consensus.weighted), world
