"""A whole experiment: prepare everything (and fail before any run), run every method x repetition,
aggregate, write the output folder, show progress and the summary.

Durability. With a ledger (the command line always has one, see :mod:`llm_sched.store.ledger`), the
experiment is a ledger run of kind ``experiment`` whose ``run_dir`` is the output folder, and every
(method, repetition) run is a unit ``<method>/r<repetition>`` recorded as soon as it finishes: its
raw_results.json record and its fault log (each kept as the exact JSON text that file is made of,
so a stored run writes the same bytes as a fresh one) and its wall-clock times. ``python main.py
--experiment --resume DIR`` reloads the configuration stored with the run (for a folder with no
ledger run, written by an older version: its experiment_config.json), runs the units not stored and
writes all seven files. Running the same command again on the same, still empty, ``--out`` (the
experiment was killed before it wrote its files) resumes the run; a ``--out`` that holds anything
is refused unless ``--resume`` (continue) or ``--force`` (run afresh, a new ledger run, the files
replaced): nothing there is overwritten unasked.

An uninterrupted and a resumed experiment of one configuration write: raw_results.json,
fault_logs.json, results.csv, fault_aware_summary.json and fault_results_per_method.json byte for
byte the same; experiment_summary.json the same but for ``timing`` (wall-clock seconds); and
experiment_config.json the same but for ``config.out``, the ``--out`` each was started with (a
resumed experiment keeps the one it was started with).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm_sched.config import MODEL_PROVIDERS, Settings
from llm_sched.core import Job
from llm_sched.errors import UserError
from llm_sched.experiments import metrics, output
from llm_sched.experiments.agents import Advisor, AgentProfile
from llm_sched.experiments.config import ExperimentConfig
from llm_sched.experiments.faultplan import RepetitionPlan, plan_repetition
from llm_sched.experiments.jobs import make_jobs
from llm_sched.experiments.run import RunInputs, run_one
from llm_sched.loader import load_yaml, validated
from llm_sched.orchestration.scenarios import ClusterSpec
from llm_sched.protocols.registry import OPTIONAL_SKIPPED, get_method


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
    reused: int = 0  # runs taken from the ledger (stored by an earlier invocation)
    run_id: str | None = None  # the ledger run, when there is a ledger


def prepare(config: ExperimentConfig) -> Prepared:
    """Cluster, jobs, agents and every repetition's fault plan; any problem is a UserError now."""
    path = Path(config.cluster or "")
    cluster: ClusterSpec = validated(ClusterSpec, load_yaml(path, "cluster"), path, "cluster")
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
    cassette = cassette_path(settings.cassettes_dir, scenario, settings.replay_provider)
    if provider not in MODEL_PROVIDERS and not (provider == "replay" and cassette.is_file()):
        why = ("the provider is heuristic" if provider == "heuristic" else
               f"no LLM endpoint is configured and there is no recorded cassette for {scenario}")
        yield None, {"used": False, "provider": provider,
                     "reason": f"agent mode {config.agent_mode}: {why}; every agent falls back to its heuristic "
                               "(0 LLM calls made)"}
        return
    with llm_session(settings, scenario=scenario, seed=config.seed, agents=config.agents, cassette=cassette) as session:
        if session.client is None:
            yield None, {"used": False, "provider": provider, "reason": session.source.detail}
            return
        advisor = Advisor(session.client, scenario)
        try:
            yield advisor, {"used": True, "provider": session.source.provider, "model": session.source.model,
                            "source": session.source.detail}
        finally:
            advisor.close()


def unit_key(method: str, repetition: int) -> str:
    """The ledger unit of a (method, repetition) run."""
    return f"{method}/r{repetition}"


def comparable_config(data: dict[str, Any]) -> dict[str, Any]:
    """A stored experiment configuration without ``out`` (the folder is the run's, not the experiment's)."""
    return {k: v for k, v in data.items() if k != "out"}


def run_experiment(config: ExperimentConfig, settings: Settings, *, view: Any = None,
                   clock: Callable[[], float] = time.perf_counter, ledger: Path | None = None,
                   folder: Path | None = None, claim: str | None = None, force: bool = False) -> ExperimentResult:
    """Prepare, run every method x repetition, aggregate and write; ``view`` renders (may be None).

    ``folder``: the output folder of a ``--resume`` (default: ``config.out``, which must be empty
    unless ``force``, else a new one under the runs folder). ``ledger``: the ledger file that stores
    every finished run (None: nothing is stored). The ledger run is ``claim`` (a run id, for
    ``--resume``), else, unless ``force`` (afresh), the latest experiment run of the folder if it
    has the same configuration and did not complete, else a new one; stored units are not run again.
    """
    started = clock()
    prepared = prepare(config)
    folder = output.output_dir(config.out if folder is None else str(folder), settings.runs_dir,
                               reuse=folder is not None or force)
    from llm_sched.evaluation.resume import holding, open_run

    durable = None
    if ledger is not None:
        dump = config.model_dump(mode="json")
        provider = "heuristic" if config.agent_mode == "heuristic" else settings.resolved_provider()
        durable = open_run(ledger, "experiment", folder, name=config.name, provider=provider, seed=config.seed,
                           config=dump, claim=claim,
                           reuse=lambda info: not force and info.status != "completed"
                           and comparable_config(info.config) == comparable_config(dump))
    with holding(durable):
        return _run(prepared, settings, folder, durable, view, clock, started)


def _run(prepared: Prepared, settings: Settings, folder: Path, durable: Any, view: Any,
         clock: Callable[[], float], started: float) -> ExperimentResult:
    config = prepared.config
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in config.methods}
    logs: dict[str, list[list[dict[str, Any]]]] = {m: [] for m in config.methods}
    walls: dict[str, list[float]] = {m: [] for m in config.methods}
    llm_wall = 0.0
    stored: dict[str, dict[str, Any]] = durable.stored if durable is not None else {}
    total = len(config.methods) * config.repetitions
    reused = sum(1 for m in config.methods for rep in range(config.repetitions) if unit_key(m, rep) in stored)
    with llm_advisor(config, settings) as (advisor, llm_info):
        if view is not None:
            lines = [*header_lines(prepared, llm_info), f"output: {folder}"]
            if durable is not None:
                lines.append(f"ledger: {durable.ledger.path}, run {durable.run_id}"
                             + (f"; resuming: {reused} of {total} runs are stored, {total - reused} to run"
                                if durable.resumed else ""))
            view.header(lines, f"experiment {config.name}")
        inputs = RunInputs(prepared.cluster.build_state, prepared.jobs, prepared.profiles, config.max_time, advisor)
        with view.progress(total) if view is not None else nullcontext(lambda _: None) as advance:
            for name in config.methods:
                method = get_method(name)
                for rep in range(config.repetitions):
                    key = unit_key(name, rep)
                    unit = stored.get(key)
                    if unit is None:
                        t0 = clock()
                        outcome = run_one(inputs, method, prepared.plans[(method.fault_model, rep)])
                        # The exact JSON text raw_results.json and fault_logs.json are made of: a stored
                        # unit and a fresh one give the same objects, hence the same bytes.
                        unit = {"record": json.dumps(outcome.record), "fault_log": json.dumps(outcome.fault_log),
                                "wall_s": round(clock() - t0, 6), "llm_latency_wall_s": outcome.llm.latency_wall_s,
                                "certificates": json.dumps(outcome.certificates)}  # checked by --verify
                        if durable is not None:
                            durable.record(key, unit)
                        done = f"{name} repetition {rep + 1}/{config.repetitions}"
                    else:
                        done = f"{name} repetition {rep + 1}/{config.repetitions} (stored)"
                    walls[name].append(unit["wall_s"])
                    llm_wall += unit["llm_latency_wall_s"]
                    runs[name].append(json.loads(unit["record"]))
                    logs[name].append(json.loads(unit["fault_log"]))
                    advance(done)
    summaries = metrics.summarize_methods(config, runs, logs)
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
        view.summary(summaries, notes, folder, files, wall, reused=reused,
                     run_id=None if durable is None else durable.run_id)
    return ExperimentResult(folder, files, summaries, notes, wall, runs, reused=reused,
                            run_id=None if durable is None else durable.run_id)


def resume_target(target: str, settings: Settings, path: str | None,
                  overrides: dict[str, Any]) -> tuple[ExperimentConfig, Path, str | None]:
    """What ``--experiment --resume TARGET`` continues: (configuration, folder, ledger run id).

    TARGET is the experiment's output folder or its run id; the configuration is the one stored with
    the run, or, for a folder with no ledger run (an older version's), the one in its
    experiment_config.json (no run id then: every run runs). An experiment file or flags given as
    well must describe the same experiment: a one-line :class:`UserError` names the first field that
    differs.
    """
    from llm_sched.evaluation.resume import find_stored, first_difference, folder_key
    from llm_sched.experiments.config import FLAGS, check_experiment, load_experiment
    from llm_sched.store.ledger import StoreError

    ledger = settings.ledger_path
    info = find_stored(ledger, "experiment", target)
    folder = Path(info.run_dir or target) if info is not None else Path(target)
    recorded = folder / "experiment_config.json"
    if info is not None:
        stored, where = dict(info.config), f"the experiment stored with ledger run {info.run_id}"
    elif recorded.is_file():
        try:
            stored = dict(json.loads(recorded.read_text(encoding="utf-8"))["config"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"--resume {target}: {recorded} holds no experiment configuration ({exc})") from None
        where = str(recorded)
    else:
        raise StoreError(f"--resume {target}: no experiment is stored for the folder {folder_key(target)}: the "
                         f"ledger {ledger} has no experiment run for it, nor is there an experiment_config.json "
                         "in it; give the --out folder of an experiment, or start one with python main.py --experiment")
    try:
        config = check_experiment(ExperimentConfig.model_validate(stored), where, settings.scenarios_dir)
    except ValidationError as exc:
        raise UserError(f"{where} is not a valid experiment any more: {exc.errors()[0]['msg']}") from None
    out = overrides.get("out")
    if out is not None and folder_key(out) != folder_key(folder):
        raise UserError(f"--resume {target} writes into {folder}, its own folder; --out {out} names another: "
                        "drop --out")
    given = {k: v for k, v in overrides.items() if v is not None and k != "out"}
    if path is not None or given:
        if path is not None:
            wanted = load_experiment(path, given, scenarios_dir=settings.scenarios_dir)
            what = f"the experiment file {path}" + (" with its flags" if given else "")
        else:
            wanted = load_experiment(None, {**stored, **given}, scenarios_dir=settings.scenarios_dir)
            what = " ".join(f"{FLAGS.get(k, k)} {v}" for k, v in given.items())
        old, new = (comparable_config(c.model_dump(mode="json")) for c in (config, wanted))
        if old != new:
            raise UserError(f"--resume {target}: {what} describes another experiment than the one stored for "
                            f"{folder} ({first_difference(old, new)}); resume without them to continue it as "
                            "stored, or give a new --out to run the other one")
    return config, folder, None if info is None else info.run_id


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
