"""A whole experiment: prepare everything (and fail before any run), run every method x repetition,
aggregate, write the output folder, show progress and the summary.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_sched.config import REMOTE_PROVIDERS, Settings
from llm_sched.domain import Job
from llm_sched.experiments import metrics, output
from llm_sched.experiments.agents import Advisor, AgentProfile
from llm_sched.experiments.config import ExperimentConfig
from llm_sched.experiments.faultplan import RepetitionPlan, plan_repetition
from llm_sched.experiments.jobs import make_jobs
from llm_sched.experiments.methods import OPTIONAL_SKIPPED, get_method
from llm_sched.experiments.run import RunInputs, run_one
from llm_sched.scenarios import ClusterSpec, _read_yaml, _validated


@dataclass
class Prepared:
    """Everything a run needs, built (and checked) before the first run starts."""

    config: ExperimentConfig
    cluster: ClusterSpec
    jobs: tuple[Job, ...]
    profiles: tuple[AgentProfile, ...]
    plans: dict[tuple[str, int], RepetitionPlan]  # (fault model, repetition) -> plan


@dataclass
class ExperimentResult:
    folder: Path
    files: list[Path]
    summaries: dict[str, dict[str, Any]]
    notes: list[str]
    wall_s: float
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def prepare(config: ExperimentConfig) -> Prepared:
    """Cluster, jobs, agents and every repetition's fault plan; any problem is a UserError now."""
    path = Path(config.cluster or "")
    cluster: ClusterSpec = _validated(ClusterSpec, _read_yaml(path), path)
    jobs = tuple(make_jobs(config.jobs, config.seed, config.oversized_every, cluster.build_state(config.seed)))
    profiles = agent_profiles(config, cluster)
    plans = {}
    for model in dict.fromkeys(get_method(m).fault_model for m in config.methods):
        for rep in range(config.repetitions):
            plans[(model, rep)] = plan_repetition(config, rep, model)  # type: ignore[arg-type]
    return Prepared(config, cluster, jobs, profiles, plans)


def agent_profiles(config: ExperimentConfig, cluster: ClusterSpec) -> tuple[AgentProfile, ...]:
    """Agent i takes the cluster's specialties in turn; ``hybrid`` gives a seeded half of them an LLM."""
    specialties = [a.specialty for a in cluster.agents]
    n = config.agents
    if config.agent_mode == "hybrid":
        order = list(range(n))
        random.Random(f"experiment-hybrid/{config.seed}").shuffle(order)
        llm = set(order[: (n + 1) // 2])
        modes = ["llm" if i in llm else "heuristic" for i in range(n)]
    else:
        modes = [config.agent_mode] * n
    return tuple(AgentProfile(i, f"{specialties[i % len(specialties)]}-{i}", specialties[i % len(specialties)],
                              modes[i]) for i in range(n))


@contextmanager
def llm_advisor(config: ExperimentConfig, settings: Settings) -> Iterator[tuple[Advisor | None, dict[str, Any]]]:
    """The LLM behind llm-mode agents, or None (heuristics) with the reason why."""
    if config.agent_mode == "heuristic":
        yield None, {"used": False, "reason": "agent mode heuristic: no LLM is asked"}
        return
    from llm_sched.llm.cassettes import cassette_path
    from llm_sched.llm.factory import llm_session

    scenario = f"experiment-{config.name}"
    provider = settings.resolved_provider()
    replayable = provider == "replay" and cassette_path(settings.cassettes_dir, scenario,
                                                        settings.replay_provider).is_file()
    if provider not in REMOTE_PROVIDERS and not replayable:
        why = ("the provider is heuristic" if provider == "heuristic" else
               f"no LLM endpoint is configured and there is no recorded cassette for {scenario}")
        yield None, {"used": False, "provider": provider,
                     "reason": f"agent mode {config.agent_mode}: {why}; every agent falls back to its heuristic "
                               "(0 LLM calls made)"}
        return
    with llm_session(settings, scenario=scenario, seed=config.seed) as client:
        if client is None:
            yield None, {"used": False, "provider": provider, "reason": "no LLM client: heuristics answer"}
            return
        advisor = Advisor(client, scenario)
        try:
            yield advisor, {"used": True, "provider": client.provider, "model": client.transport.model}
        finally:
            advisor.close()


def run_experiment(config: ExperimentConfig, settings: Settings, *, view: Any = None,
                   clock: Callable[[], float] = time.perf_counter) -> ExperimentResult:
    """Prepare, run every method x repetition, aggregate and write; ``view`` renders (may be None)."""
    started = clock()
    prepared = prepare(config)
    folder = output.output_dir(config.out, settings.runs_dir)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in config.methods}
    logs: dict[str, list[list[dict[str, Any]]]] = {m: [] for m in config.methods}
    walls: dict[str, list[float]] = {m: [] for m in config.methods}
    llm_wall = 0.0
    with llm_advisor(config, settings) as (advisor, llm_info):
        if view is not None:
            view.header(header_lines(prepared, llm_info), f"experiment {config.name}")
        inputs = RunInputs(prepared.cluster.build_state, prepared.jobs, prepared.profiles, config.max_time, advisor)
        total = len(config.methods) * config.repetitions
        with view.progress(total) if view is not None else nullcontext(lambda _: None) as advance:
            for name in config.methods:
                method = get_method(name)
                for rep in range(config.repetitions):
                    t0 = clock()
                    outcome = run_one(inputs, method, prepared.plans[(method.fault_model, rep)])
                    walls[name].append(round(clock() - t0, 6))
                    llm_wall += outcome.llm.latency_wall_s
                    runs[name].append(outcome.record)
                    logs[name].append(outcome.fault_log)
                    advance(f"{name} repetition {rep + 1}/{config.repetitions}")
    summaries = metrics.summarize(config, runs, logs)
    notes = [s["note"] for s in summaries.values()]
    if not llm_info.get("used", False) and config.agent_mode != "heuristic":
        notes.append(llm_info["reason"])
    wall = clock() - started
    files = output.write_all(
        folder,
        config=config_record(prepared, llm_info),
        summary={"experiment": config.name, "methods": summaries, "notes": notes,
                 "timing": {"total_wall_s": round(wall, 6), "runs_wall_s": walls,
                            "llm_latency_wall_s": round(llm_wall, 6)}},
        raw={"experiment": config.name, "seed": config.seed,
             "runs": [r for name in config.methods for r in runs[name]]},
        fault_logs={name: [{"repetition": r["repetition"], "seed": r["seed"], "faults": log}
                           for r, log in zip(runs[name], logs[name], strict=True)] for name in config.methods},
        fault_aware=metrics.fault_aware(config, summaries, runs),
        per_method=metrics.per_fault_type(runs, logs),
    )
    wall = clock() - started
    if view is not None:
        view.summary(summaries, notes, folder, files, wall)
    return ExperimentResult(folder, files, summaries, notes, wall, runs)


def header_lines(p: Prepared, llm_info: dict[str, Any]) -> list[str]:
    c = p.config
    faults = [f"file {c.faults}" if c.faults else None, f"preset {c.intensity}" if c.intensity else None]
    llm_agents = sum(1 for a in p.profiles if a.mode == "llm")
    modes = f" ({llm_agents} with an LLM, {len(p.profiles) - llm_agents} heuristic)" if c.agent_mode == "hybrid" else ""
    lines = [
        f"methods: {', '.join(f'{m} ({get_method(m).fault_model})' for m in c.methods)}",
        f"agents: n={c.agents}, {c.byzantine} Byzantine ({', '.join(c.byzantine_behaviours)}), {c.crash} crashed; "
        f"agent mode {c.agent_mode}{modes}",
        f"jobs: {len(p.jobs)} per run, {c.repetitions} repetitions, seed {c.seed}",
        f"faults: {', '.join(x for x in faults if x) or 'none beyond the Byzantine and crashed agents'}",
        f"LLM: {llm_info.get('provider', '-')} {llm_info.get('model', '')}".rstrip()
        if llm_info.get("used") else f"LLM: none ({llm_info['reason']})",
    ]
    if OPTIONAL_SKIPPED:
        lines.append(f"methods not available: {', '.join(sorted(OPTIONAL_SKIPPED))}")
    return lines


def config_record(p: Prepared, llm_info: dict[str, Any]) -> dict[str, Any]:
    """experiment_config.json: the effective configuration and everything derived from it."""
    c = p.config
    return {
        "config": c.model_dump(mode="json"),
        "methods": {m: {"title": get_method(m).title, **metrics.tolerance_of(get_method(m), c.agents),
                        "normal_case_per_decision": get_method(m).formula} for m in c.methods},
        "agents": [{"id": a.id, "name": a.name, "specialty": a.specialty, "mode": a.mode} for a in p.profiles],
        "jobs": [{"id": j.id, "kind": j.kind, "name": j.name, "request": j.describe(), "runtime_s": j.runtime_s}
                 for j in p.jobs],
        "llm": llm_info,
        "repetitions": [
            {"repetition": rep, "fault_model": model, "seed": plan.seed,
             "byzantine_agents": plan.byzantine_agents, "crashed_agents": plan.crashed_agents,
             "fault_plan": [{**spec.model_dump(mode="json"), "source": source}
                            for spec, source in zip(plan.spec.faults, plan.sources, strict=True)]}
            for (model, rep), plan in sorted(p.plans.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ],
        "methods_not_available": dict(sorted(OPTIONAL_SKIPPED.items())),
        "time_unit": "simulated seconds (the base link delay is 1)",
    }
