"""Run a scenario: cluster, agents, consensus graph, LLM session, one event stream, run files.

Every run writes ``<runs_dir>/<timestamp>-<scenario>/events.jsonl`` and ``summary.json``. The same
seed and cassette give the same events, apart from timestamps and latencies.

Every run is also durable (:mod:`llm_sched.orchestration.durable`): it is a row in the ledger (its id is the run
folder's name), each decision is committed there in one transaction, and the consensus graph
checkpoints each job's steps. :func:`resume_scenario` continues a run that was killed: the same
seed stream, the same final state and, apart from timestamps, the same event log.

Only the process that owns the run writes its folder: it holds the run's lock (:mod:`llm_sched.store.run_lock`)
and checks the ledger's fence (its epoch) before every event it appends and before the summary, so
a process that lost the run writes nothing more. A run folder that was moved resumes where it is
now (the ledger follows it); a copy whose original folder still exists is refused, since both
would write one ledger run.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm_sched.agents.prompts import template_hash
from llm_sched.agents.reputation import Reputation
from llm_sched.agents.specialist import SpecialistAgent, World, issue_keys
from llm_sched.config import MODEL_PROVIDERS, Settings
from llm_sched.core.events import (
    AgentHealth,
    EventBus,
    FaultChanged,
    JobFinished,
    JobStarted,
    JobSubmitted,
    JsonlSink,
    NetworkStatus,
    NodeStateChanged,
    OccupancyReported,
    PhaseStarted,
    PoolOccupancy,
    ScenarioEnded,
    ScenarioStarted,
    Subscriber,
    parse_event,
    read_jsonl,
)
from llm_sched.core.feasibility import commit
from llm_sched.core.model import Job, Pool
from llm_sched.core.signing import PublicKeys
from llm_sched.core.state import ClusterState
from llm_sched.errors import Interrupted, UserError
from llm_sched.execution.base import Executor, Finished, NodeChange, Started, retry_id
from llm_sched.execution.factory import ExecutorChoice, make_executor
from llm_sched.llm.cassettes import cassette_path, read_info, refuse_existing
from llm_sched.llm.factory import LLMSession, ModelChoice, llm_session, preflight, secrets_of
from llm_sched.names import check_name, inside
from llm_sched.orchestration.durable import (
    Progress,
    anchors,
    check_event_log,
    checkpoint_path,
    checkpointer,
    cut_event_log,
    decision_of,
    fingerprint,
)
from llm_sched.orchestration.graph import ConsensusGraph
from llm_sched.orchestration.scenarios import RANDOM_AGENT, Phase, Scenario, with_protocol
from llm_sched.orchestration.summary import summarize
from llm_sched.store.event_chain import check_log
from llm_sched.store.ledger import RESUME_COMMANDS, DecisionRecord, ExecutionRow, Ledger, RunInfo, StoreError, a_kind
from llm_sched.store.run_lock import run_lock
from llm_sched.store.storage_errors import StorageFault


@dataclass(frozen=True)
class RunOptions:
    """How a run treats its model: ``record`` its answers (to ``record_to``, else into the run's
    folder; an existing file only with ``force``), and ``allow_fallback`` to heuristics when the
    configured provider cannot be reached at the start; and where its committed jobs run."""

    record: bool = False
    record_to: Path | None = None
    force: bool = False
    allow_fallback: bool = False
    executor: ExecutorChoice = ExecutorChoice()  # where committed jobs run (sim: the simulated clock)


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    events: list[Any]


def choose_provider(scenario: Scenario, settings: Settings, seed: int | None = None,
                    allow_fallback: bool = False) -> tuple[Settings, str]:
    """The provider for this run and a note on why. The scenario's choice applies unless the user
    chose one (flag or environment); ``auto`` without endpoints replays the scenario's cassette, or
    uses heuristics when there is none or it was recorded with another seed (its prompts would not
    match: the seed draws the background load the prompts state). A live provider that cannot be
    reached stops here, before the run exists, unless ``allow_fallback``."""
    if "provider" not in settings.sources and scenario.provider != "auto":
        settings = settings.model_copy(update={"provider": scenario.provider})
    provider = settings.resolved_provider()
    if provider != "replay":
        try:
            fallback = preflight(settings, allow_fallback)  # a live provider must answer before the run starts
        except UserError as exc:  # the scenario's way out; other modes (campaigns, --peers) have none
            raise UserError(f"{exc} (or give --allow-fallback to run on the agents' heuristics)") from None
        if fallback is not None:
            return settings.model_copy(update={"provider": "heuristic"}), fallback
        return settings, provider
    seed = scenario.seed if seed is None else seed
    cassette = cassette_path(settings.cassettes_dir, scenario.name, settings.replay_provider)
    problem = _replay_problem(cassette, seed, template_hash())
    if problem is None:
        return settings, f"replay ({settings.replay_provider} cassette)"
    if settings.provider == "replay":
        raise UserError(f"--provider replay: {problem} for scenario {scenario.name}")
    return settings.model_copy(update={"provider": "heuristic"}), f"heuristic ({problem})"


def _replay_problem(cassette: Path, seed: int, prompts: str) -> str | None:
    """Why ``cassette`` cannot serve a run with ``seed`` and these prompt templates, or None when it can."""
    if not cassette.is_file():
        return f"no cassette at {cassette}"
    info = read_info(cassette)
    if info.seed != seed:
        return f"the cassette {cassette.name} was recorded with seed {info.seed}, this run uses seed {seed}"
    if info.prompt_template_hash != prompts:
        return (f"the cassette {cassette.name} was recorded from other prompt templates "
                f"({info.prompt_template_hash[:12]}…, now {prompts[:12]}…)")
    return None


def new_run_dir(runs_dir: Path, scenario: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    check_name("scenario", scenario)
    for attempt in range(1000):
        path = inside(runs_dir, runs_dir / f"{stamp}-{scenario}{'' if attempt == 0 else f'-{attempt}'}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise StorageFault(f"cannot create the run folder {path}: {exc.strerror or exc}") from None
    raise UserError(f"could not create a run folder under {runs_dir}")


async def _run_phases(scenario: Scenario, graph: ConsensusGraph, world: World, bus: EventBus, seed: int,
                      progress: Progress, events: JsonlSink, executor: Executor) -> None:
    async with checkpointer(checkpoint_path(progress.ledger.path), progress.run_id) as saver:
        graph.attach(saver)
        progress.saver = saver
        try:
            await _Walk(scenario, graph, world, bus, progress, events, executor).run(seed)
        finally:
            progress.saver = None


@dataclass
class _Walk:
    """One pass over the scenario: jobs arrive on the run's clock, the agents decide each one, the
    executor runs what they commit and says when jobs end; a job it lost goes back to the agents."""

    scenario: Scenario
    graph: ConsensusGraph
    world: World
    bus: EventBus
    progress: Progress
    events: JsonlSink
    executor: Executor
    rows: dict[str, ExecutionRow] = field(default_factory=dict)  # jobs started and not yet ended

    async def run(self, seed: int) -> None:
        active: dict[str, str] = {}
        arrival = 0.0
        for phase in self.scenario.phases:
            self.bus.emit(PhaseStarted(phase=phase.name, description=phase.description))
            _apply_faults(_faults_of(phase, self.scenario, seed), active, self.graph, self.bus)
            for spec in phase.jobs:
                await self._advance(arrival)
                await self._place(spec.job(), arrival)
                arrival += phase.job_interval_s
        await self._advance(float("inf"))
        self.bus.emit(NetworkStatus(agents=[
            AgentHealth(agent=a, pool=ag.pool, reputation=self.world.reputation.scores[a],
                        health=self.world.reputation.health(a))
            for a, ag in self.graph.agents.items()
        ]))

    async def _place(self, job: Job, submitted: float, retry_of: str | None = None) -> None:
        """Submit ``job``, have the agents decide it, start what they commit."""
        progress = self.progress
        self.bus.emit(JobSubmitted(job=job, sim_time=submitted, retry_of=retry_of))
        stored = progress.stored_decision(job.id)
        decision = decision_of(stored) if stored else await self.graph.decide(job, progress.thread(job))
        if decision.outcome == "commit" and decision.placement is not None:
            commit(self.world.state, job, decision.placement)
            started = await self.executor.start(job, decision.placement)
            self._started(started)
        if self.scenario.occupancy_view:
            _report_occupancy(self.world, self.bus, job.id, submitted)
        if stored is None:  # the decision's boundary: commit it with where the run stands
            resume = {"reputation": self.world.reputation.snapshot(), "events_offset": self.events.tell(),
                      "events_seq": self.bus.next_seq, "events_hash": self.events.head}
            await progress.commit(job, decision, submitted, resume)
        else:
            progress.replayed()
            if stored is progress.last:  # the end of what was stored: continue from here
                self.world.reputation.restore(stored.resume["reputation"])
                self.bus.unmute(stored.resume["events_seq"])

    def _started(self, s: Started) -> None:
        self.bus.emit(JobStarted(job_id=s.job_id, nodes=list(s.nodes), sim_time=s.sim_time,
                                 executor=self.executor.name, external_id=s.external_id))
        row = ExecutionRow(s.job_id, self.executor.name, s.external_id, s.nodes, "running", s.sim_time)
        self.rows[s.job_id] = row
        self._record(row)

    def _record(self, row: ExecutionRow) -> None:
        if self.executor.name != "sim":  # the simulated clock's jobs are all in the decisions already
            self.progress.ledger.record_execution(self.progress.run_id, self.progress.epoch, row)

    async def _advance(self, until: float) -> None:
        """Take in what the executor saw up to ``until``: ends release capacity, lost jobs are placed again."""
        while updates := await self.executor.advance(until):
            lost: list[Job] = []
            for update in updates:
                if isinstance(update, NodeChange):
                    self.world.state.set_down(update.node, update.down)
                    self.bus.emit(NodeStateChanged(node=update.node, state="down" if update.down else "up",
                                                   reason=update.reason, sim_time=update.sim_time))
                elif (job := self._ended(update)) is not None:
                    lost.append(job)
            for job in lost:  # after every end seen with it: what those jobs held is free for the retry
                await self._place(job.model_copy(update={"id": retry_id(job.id)}), self.executor.now(),
                                  retry_of=job.id)

    def _ended(self, end: Finished) -> Job | None:
        """Release what the job held; the job, when it must be placed again."""
        job, _ = self.world.state.running[end.job_id]
        self.world.state.release(end.job_id)
        self.bus.emit(JobFinished(job_id=end.job_id, sim_time=end.sim_time, state=end.state,
                                  ran_on=None if end.ran_on is None else list(end.ran_on), reason=end.reason))
        self._record(replace(self.rows.pop(end.job_id), state=end.state, ended=end.sim_time, ran_on=end.ran_on,
                             reason=end.reason))
        return None if end.state == "completed" else job



def _report_occupancy(world: World, bus: EventBus, job_id: str, now: float) -> None:
    pools = [PoolOccupancy.model_validate(world.state.occupancy(p)) for p in sorted(world.state.pools)]
    bus.emit(OccupancyReported(job_id=job_id, sim_time=now, pools=pools))


def _faults_of(phase: Phase, scenario: Scenario, seed: int) -> dict[str, str]:
    """The phase's faults by agent, a ``random`` agent resolved from the run's seed."""
    return {(scenario.random_agent(seed) if f.agent == RANDOM_AGENT else f.agent): f.behaviour for f in phase.faults}


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
    options: RunOptions = RunOptions(),
    subscribers: Iterable[Subscriber] = (),
    runs_dir: Path | None = None,
) -> RunResult:
    """Run ``scenario`` to the end; returns the run folder, the summary and the events."""
    seed = scenario.seed if seed is None else seed
    if options.record and options.record_to is not None:
        refuse_existing(options.record_to, options.force)  # before the run exists, let alone its questions
    settings, provider_note = choose_provider(scenario, settings, seed, options.allow_fallback)
    if options.record and settings.resolved_provider() not in MODEL_PROVIDERS:
        raise UserError(f"--record needs a live model (--provider local, openai, ollama, sambanova or sambastudio); "
                        f"this run would use {provider_note}")
    base = runs_dir or settings.runs_dir
    with Ledger.open(ledger_path(settings, runs_dir)) as ledger:
        run_dir = new_run_dir(base, scenario.name)
        config = {"scenario": scenario.name, "fingerprint": fingerprint(scenario.model_dump(mode="json")),
                  "provider": settings.resolved_provider(), "replay_provider": settings.replay_provider,
                  "provider_note": provider_note, "record": options.record,
                  "allow_fallback": options.allow_fallback,
                  "executor": options.executor.kind,
                  "weighted": scenario.consensus.weighted,
                  "protocol": scenario.consensus.protocol}  # --protocol, if given: a resume runs it again  # how --verify counts the quorum of a certificate
        try:
            epoch = ledger.create_run(run_dir.name, "scenario", scenario.name, settings.resolved_provider(), seed,
                                      config, run_dir.resolve())
        except BaseException:
            run_dir.rmdir()  # still empty: no folder without its ledger run, nothing to resume
            raise
        progress = Progress(ledger, run_dir.name, epoch)
        with run_lock(run_dir, run_dir.name):
            return _execute(scenario, settings, provider_note, seed, run_dir, progress, options, subscribers)


def resume_scenario(
    run_id: str,
    settings: Settings,
    load: Callable[[str], Scenario],
    *,
    subscribers: Iterable[Subscriber] = (),
    runs_dir: Path | None = None,
    expect: str | None = None,
) -> RunResult:
    """Continue the stored run ``run_id`` after its last committed decision (``load`` gives the
    scenario by name; ``expect``, if given, is the scenario the caller means). A completed run is
    not run again: its stored files are returned.

    ``run_id`` is the run's id or a path to its folder (``runs/<id>``, any path with a ``/``): the
    run resumes in the folder named, wherever it was moved or copied to, never in another one."""
    target, named = run_id, _named_folder(run_id)
    try:
        run_id = check_name("run", named.resolve().name if named is not None else run_id)
    except UserError as exc:
        folder = " (nor is it the path of a folder)" if named is None and "/" in target else ""
        raise UserError(f"--resume {target}: {exc}{folder}") from None
    with Ledger.open(ledger_path(settings, runs_dir)) as ledger:
        info = ledger.run(run_id)
        if info is None:
            named_as = "" if named is None else f"--resume {target}: "
            raise StoreError(f"{named_as}no run {run_id} in the ledger {ledger.path} (python main.py --runs lists them)")
        config = info.config
        if info.kind != "scenario":
            how = RESUME_COMMANDS[info.kind].format(target=info.run_dir)
            raise StoreError(f"run {run_id} is {a_kind(info.kind)}; resume it with {how}")
        if expect is not None and expect != config["scenario"]:
            raise UserError(f"run {run_id} is a run of scenario {config['scenario']}, not {expect}")
        if config.get("record"):
            raise UserError(f"run {run_id} was recording a cassette; a partial recording cannot be resumed: record again")
        if config.get("executor", "sim") != "sim" and info.status != "completed":
            raise UserError(f"run {run_id} ran its jobs on the {config['executor']} executor, which a resume cannot "
                            f"take over (the jobs it started are listed by python main.py --show {run_id}); "
                            "start the scenario again")
        run_dir, moved = _run_folder(info, named, runs_dir or settings.runs_dir, ledger.path)
        if info.status == "completed":  # read, not written: any copy of it will do
            if moved:
                ledger.relocate_run(run_id, run_dir.resolve())
            return _stored_result(run_dir, ledger.decisions(run_id))
        if moved is None:
            raise StoreError(f"{run_dir} is a copy of run {run_id}, whose folder {info.run_dir} still exists and is the "
                             f"one the ledger {ledger.path} follows; resume that one (python main.py --resume {run_id}), "
                             "or move it away first to continue this copy instead (both would write one ledger run)")
        scenario = with_protocol(load(config["scenario"]), config.get("protocol"))  # as the run was started
        if fingerprint(scenario.model_dump(mode="json")) != config["fingerprint"]:
            raise UserError(f"scenario {scenario.name} has changed since run {run_id} started; resuming it would "
                            "not reproduce the run. Start a new run instead")
        settings = settings.model_copy(update={"provider": config["provider"],
                                               "replay_provider": config["replay_provider"]})
        with run_lock(run_dir, run_id):  # a second resume stops here, before it touches anything
            stored = ledger.decisions(run_id)
            log = run_dir / "events.jsonl"
            head = check_event_log(log, stored, run_id)  # before the claim: a bad log leaves the ledger as it was
            if moved:
                ledger.relocate_run(run_id, run_dir.resolve())
            _, epoch = ledger.claim_run(run_id, "scenario")  # fence off a writer that lost its lock (killed)
            cut_event_log(log, stored[-1] if stored else None)
            progress = Progress(ledger, run_id, epoch, stored, head=head)
            options = RunOptions(allow_fallback=bool(config.get("allow_fallback")))
            return _execute(scenario, settings, config["provider_note"], info.seed, run_dir, progress, options,
                            subscribers)


def _named_folder(target: str) -> Path | None:
    """The folder ``--resume`` names, when it names one (a path to a folder) rather than a run id; a
    path to no folder is taken as a run id, and refused as one."""
    if os.sep not in target and "/" not in target:
        return None
    folder = Path(target).expanduser()
    return folder if folder.is_dir() else None


def _run_folder(info: RunInfo, named: Path | None, runs_dir: Path, ledger: Path) -> tuple[Path, bool | None]:
    """The folder a resume works in, and whether the ledger must be told the run moved there (None:
    the folder is a copy and the ledger's folder still exists).

    A named folder is the one. A run id means the folder of that name in the runs folder when the
    ledger lives there too (the runs folder was moved or copied with its ledger), else the folder the
    ledger holds for it. A folder other than the ledger's, while the ledger's still exists, is a copy
    sharing one ledger run with it, unless it sits beside the ledger (then the ledger is a copy too)."""
    stored = Path(info.run_dir) if info.run_dir else None
    beside_ledger = ledger.resolve().parent
    if named is not None:
        folder = named
    else:
        folder = runs_dir / info.run_id
        if not folder.is_dir() or (stored is not None and stored.is_dir() and folder.resolve().parent != beside_ledger):
            folder = stored if stored is not None else folder
        if not folder.is_dir():
            raise StoreError(f"the folder of run {info.run_id}, {folder}, is gone; its decisions are in the ledger "
                             f"(python main.py --show {info.run_id}) but the run cannot be resumed")
    if stored is not None and stored.is_dir() and os.path.samefile(folder, stored):
        return folder, False
    if stored is not None and stored.is_dir() and folder.resolve().parent != beside_ledger:
        return folder, None
    return folder, True


def ledger_path(settings: Settings, runs_dir: Path | None = None) -> Path:
    """The ledger a run uses: the setting, else ``llm_sched.db`` in the runs folder."""
    if settings.ledger is not None or runs_dir is None:
        return settings.ledger_path
    return runs_dir / "llm_sched.db"


def _execute(scenario: Scenario, settings: Settings, provider_note: str, seed: int, run_dir: Path,
             progress: Progress, options: RunOptions, subscribers: Iterable[Subscriber]) -> RunResult:
    resumed = bool(progress.stored)
    sink = JsonlSink(run_dir / "events.jsonl", secrets=secrets_of(settings), head=progress.head,
                     fence=progress.fence)
    bus = EventBus([sink, progress.journal, *subscribers], muted=resumed)
    started = time.monotonic()
    status = "failed"
    executor = make_executor(options.executor, run_dir / "jobs")
    try:
        with _session(scenario, settings, seed, run_dir, options) as session:
            graph, world = _build(scenario, seed, session, bus, progress, executor.pools())
            source = session.source.model_dump()
            if session.source.kind == "heuristic":
                source["detail"] = provider_note  # why the heuristics answer
            bus.emit(ScenarioStarted(scenario=scenario.name, seed=seed, provider=provider_note, source=source,
                                     agents={a: ag.specialty for a, ag in graph.agents.items()},
                                     n=graph.n, f=graph.f, quorum=graph.quorum, method=scenario.consensus.method,
                                     weighted=graph.weighted, protocol=graph.protocol,
                                     pools={a: ag.pool for a, ag in graph.agents.items() if ag.pool},
                                     executor=executor.name))
            asyncio.run(_run_phases(scenario, graph, world, bus, seed, progress, sink, executor))
        bus.emit(ScenarioEnded(scenario=scenario.name, wall_s=round(time.monotonic() - started, 3)))
        sink.close()
        events: list[Any] = bus.events if not resumed else _read_events(run_dir)
        progress.fence()  # a process that lost the run leaves its summary to the new owner
        summary = _write_summary(run_dir, events)
        status = "completed"  # only now: a run killed before this point is resumed, not taken as done
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the decisions made so far are stored: resume with "
                          f"python main.py --resume {progress.run_id}") from None
    finally:
        executor.close()  # a run that stops early leaves no job of its own running
        sink.close()
        progress.ledger.finish_run(progress.run_id, progress.epoch, status)  # type: ignore[arg-type]
    return RunResult(run_dir, summary, events)


def _session(scenario: Scenario, settings: Settings, seed: int, run_dir: Path, options: RunOptions) -> Any:
    """The run's LLM session; a recording goes to ``record_to`` or into the run's folder."""
    record_to = None
    if options.record:
        record_to = options.record_to or run_dir / f"{scenario.name}-{settings.resolved_provider()}.yaml"
    cassette = cassette_path(settings.cassettes_dir, scenario.name, settings.replay_provider)
    # No bus for the client: the graph emits each call with the answer it belongs to, in a fixed order.
    return llm_session(settings, scenario=scenario.name, seed=seed, agents=len(scenario.cluster.agents),
                       record_to=record_to, force=options.force, allow_fallback=options.allow_fallback,
                       cassette=cassette, recording_metadata={"prompt_template_hash": template_hash()},
                       probe=False,  # choose_provider checked the run's provider before the run was created
                       agent_models={a.id: ModelChoice(a.provider, a.model) for a in scenario.cluster.agents
                                     if a.provider or a.model})


def _read_events(run_dir: Path) -> list[Any]:
    return [parse_event(r) for r in read_jsonl(run_dir / "events.jsonl")]


def _write_summary(run_dir: Path, events: list[Any]) -> dict[str, Any]:
    summary = summarize(events)
    tmp = run_dir / "summary.json.tmp"
    try:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        tmp.replace(run_dir / "summary.json")  # whole or not at all
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageFault(f"could not write {run_dir / 'summary.json'}: {exc.strerror or exc}. The run's decisions and "
                           f"events are stored; fix this and resume the run with --resume") from None
    return summary


def _stored_result(run_dir: Path, stored: list[DecisionRecord]) -> RunResult:
    """A completed run as its files hold them, once its event log is found whole (its chain intact,
    every committed decision in it, ending with the run's end)."""
    log = run_dir / "events.jsonl"
    check_log(log, anchors(stored), complete=True, decisions=len(stored))
    events = _read_events(run_dir)
    return RunResult(run_dir, _write_summary(run_dir, events), events)


def _build(scenario: Scenario, seed: int, session: LLMSession, bus: EventBus, progress: Progress,
           pools: list[Pool] | None = None) -> tuple[ConsensusGraph, World]:
    """The agents and their world: the scenario's cluster, or the executor's (``pools``: a Slurm
    cluster's partitions), where an agent whose pool is not there watches none of its own (it
    still proposes and votes on every pool)."""
    state = scenario.cluster.build_state(seed) if pools is None else ClusterState(scenario.cluster.described(pools))
    bidding = scenario.consensus.method == "bidding"
    pool_of = {a.id: a.pool if a.pool in state.pools else None for a in scenario.cluster.agents}
    if bidding and None in pool_of.values():
        missing = sorted(a for a, p in pool_of.items() if p is None)
        raise UserError(f"scenario {scenario.name} decides by bidding, and agents {', '.join(missing)} have no pool "
                        f"on this cluster to bid on (pools: {', '.join(sorted(state.pools))})")
    world = World(state, Reputation.fresh(list(pool_of)), {p: a for a, p in pool_of.items() if p}, scenario.name)
    # Each agent asks the model its scenario gives it (the run's unless it names its own).
    agents = {a.id: SpecialistAgent(a.id, a.specialty, world, session.client_for(a.id), pool=pool_of[a.id],
                                    bidding=bidding)
              for a in scenario.cluster.agents}
    # Fresh key pairs for this process (key epoch = its ledger epoch); the public halves go to the
    # ledger before any vote is signed, so every certificate of the run can be checked later.
    # Votes checkpointed by an earlier process of the run are checked with its keys: every stored epoch.
    progress.ledger.record_keys(progress.run_id, progress.epoch, issue_keys(agents, progress.run_id,
                                                                           progress.epoch).table())
    keys = PublicKeys(progress.run_id, progress.ledger.keys(progress.run_id))
    return ConsensusGraph(agents, world, bus, weighted=scenario.consensus.weighted, keys=keys,
                          protocol=scenario.consensus.decided_by), world
