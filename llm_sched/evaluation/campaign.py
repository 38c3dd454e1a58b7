"""One campaign, start to finish: run the simulations (resuming what an earlier invocation stored),
then write results.json, the statistics, the figures, the CSV files and report.md.

Durability. With a ledger (the command line always has one, see :mod:`llm_sched.store.ledger`), the
campaign is a ledger run of kind ``campaign`` whose ``run_dir`` is the output folder, and every
(configuration, repetition) task is a unit ``<configuration key>/r<repetition>`` recorded as soon as
this process receives its result (worker processes never write the ledger). A campaign killed at
any instant loses at most the tasks in progress: ``python main.py --evaluate --resume DIR`` claims
the run, reuses the stored units and runs the rest. The command line never writes into a ``--out``
that holds anything unless asked: ``--resume`` continues it, ``--force`` runs afresh into it (a new
ledger run; see :func:`llm_sched.evaluation.output.open_folder`).
results.json is an output, rewritten every few seconds as a checkpoint; a folder holding the
results.json of an older version (no ledger run) is still resumed from it.

What "equal" means for two invocations of one configuration (e.g. an uninterrupted campaign and
one killed and resumed, any number of workers):

- ``results.json``: equal once ``run_info`` is removed (command, dates, wall times, workers, the
  ledger run, how many tasks were reused): the configuration, seeds, configurations and every
  run's metrics, in the same order (:func:`comparable_results`);
- ``summary.csv`` and ``comparisons.csv``: byte for byte;
- ``report.md``: byte for byte once the lines describing the invocation rather than the results
  are removed: ``- Command:``, ``- Configuration file:``, ``- Ran ...`` (date, workers, wall times,
  versions) and ``- Resumed:`` (:func:`masked_report`).

Agents whose awards a model chooses (advice llm or hybrid, in the base or the ``advice``
dimension). The campaign's ``model:`` block (:class:`~llm_sched.evaluation.config.CampaignModel`)
says where the answers come from, for every task (:func:`model_use`): a live provider (default: the
configured one), each task recording its answers to ``<out>/cassettes/<configuration>-r<repetition>-
<advice>.yaml``; or ``replay`` of such cassettes (from ``model.cassettes``, default
``<out>/cassettes``; replayed cassettes from another folder are copied into ``<out>/cassettes``), so
an output folder holds what re-runs its model's agents offline::

    python main.py --evaluate --config FILE --out NEW   # FILE with model: {provider: replay, cassettes: OLD/cassettes}

A campaign that asks for a model when none can answer (provider heuristic, or a replay missing a
task's cassette) is refused before anything is written. ``run_info["model"]`` records the provider,
where the answers came from (live model, or the model a cassette was recorded from), and the calls,
choices and fallbacks of the agents runs.

Progress is reported through callbacks, so the console view (:mod:`llm_sched.ui.campaign_view`) and
tests can follow it; nothing here prints.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from llm_sched import __version__
from llm_sched.config import Provider
from llm_sched.errors import UserError
from llm_sched.evaluation.analysis import Analysis, ConfigInfo, analyse
from llm_sched.evaluation.config import CampaignConfig
from llm_sched.evaluation.design import Configuration, configurations, seed_of, seeds
from llm_sched.evaluation.findings import findings as make_findings
from llm_sched.evaluation.output import (
    RESULTS,
    OnExisting,
    campaign_dump,
    open_folder,
    results_data,
    write_comparisons_csv,
    write_json,
    write_summary_csv,
)
from llm_sched.evaluation.resume import DurableRun, holding, open_run
from llm_sched.evaluation.runner import REPLAY, Executor, ModelPlan, Task, TaskResult, nan_to_none, run_tasks
from llm_sched.store.storage_errors import StorageFault

if TYPE_CHECKING:
    from llm_sched.config import Settings

CHECKPOINT_EVERY_S = 5.0
CASSETTES = "cassettes"  # the output folder's cassettes: what its model's agents answered
LIVE_PROVIDERS = tuple(p for p in get_args(Provider) if p not in ("replay", "heuristic"))
# report.md lines that describe the invocation, not the results (see the module's "equal")
PROVENANCE_LINES: tuple[str, ...] = ("- Command:", "- Configuration file:", "- Ran ", "- Resumed:")


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """What a campaign produced."""

    folder: Path
    report: Path
    files: tuple[Path, ...]
    findings: tuple[str, ...]
    analysis: Analysis
    tasks: int  # (configuration, repetition) pairs
    reused: int  # of them stored by an earlier invocation (ledger units or results.json)
    simulation_s: float
    wall_s: float
    run_id: str | None = None  # the ledger run, when there is a ledger


def unit_key(config: str, repetition: int) -> str:
    """The ledger unit of a (configuration, repetition) task."""
    return f"{config}/r{repetition}"


def cassette_name(config: str, repetition: int, advice: str) -> str:
    """The cassette of a task's model answers: ``<configuration key>-r<repetition>-<advice>.yaml``."""
    return f"{config}-r{repetition}-{advice}.yaml"


@dataclass(frozen=True, slots=True)
class ModelUse:
    """Where the campaign's model answers come from: a live ``provider`` whose answers every task
    records into ``folder`` (``<out>/cassettes``), or ``replay`` of the cassettes in ``replay_from``
    (copied into ``folder`` when that is another folder). ``given``: how the provider was chosen."""

    provider: str
    given: str
    folder: Path
    replay_from: Path | None = None

    def plan(self, config: str, repetition: int, advice: str) -> ModelPlan:
        """The :class:`~llm_sched.evaluation.runner.ModelPlan` of one task (plain data, for its worker)."""
        where = self.replay_from if self.replay_from is not None else self.folder
        return ModelPlan(self.provider, str(where / cassette_name(config, repetition, advice)))

    def info(self) -> dict[str, Any]:
        """What ``run_info["model"]`` says of it."""
        out: dict[str, Any] = {"provider": self.provider, "given": self.given, "cassettes": str(self.folder)}
        if self.replay_from is not None:
            out["replayed_from"] = str(self.replay_from)
        return out


def model_configurations(configs: Iterable[Configuration]) -> list[Configuration]:
    """The configurations whose agents ask a model (advice llm or hybrid)."""
    return [c for c in configs if c.scenario.advice != "heuristic"]


def model_use(config: CampaignConfig, folder: Path, settings: Settings | None = None) -> ModelUse | None:
    """Where the campaign's model answers come from (None: every agents run is heuristic).

    The provider is ``model.provider``, else the configured one (``settings``, else
    :func:`~llm_sched.config.load_settings`). Raises a one-line :class:`UserError` naming the field
    when no model can answer: provider ``heuristic``, or a replay without the cassette of some task
    (every task's is checked, before anything runs)."""
    needing = model_configurations(configurations(config)) if "agents" in config.policies else []
    if not needing:
        return None
    modes = " and ".join(dict.fromkeys(c.scenario.advice for c in needing))
    block = config.model
    if block is not None and block.provider is not None:
        provider, given = block.provider, "model.provider"
    else:
        if settings is None:
            from llm_sched.config import load_settings

            settings = load_settings()
        provider, given = settings.resolved_provider(), "the configured provider (LLM_SCHED_PROVIDER)"
    if provider == "heuristic":
        what = "model.provider is heuristic" if given == "model.provider" else \
            "model.provider is not set and the configured provider (LLM_SCHED_PROVIDER) is heuristic"
        raise UserError(f"{what}, but the {modes} agents ({len(needing)} configuration"
                        f"{'s' if len(needing) > 1 else ''}, e.g. {needing[0].key}) need a model: set model.provider "
                        f"to a live provider ({', '.join(LIVE_PROVIDERS)}) or to replay with model.cassettes")
    own = folder / CASSETTES
    if provider != REPLAY:
        return ModelUse(provider, given, own)
    source = Path(block.cassettes).expanduser() if block is not None and block.cassettes else own
    use = ModelUse(REPLAY, given, own, source)
    missing = [(c, r) for c in needing for r in range(config.repetitions)
               if not Path(use.plan(c.key, r, c.scenario.advice).cassette).is_file()]
    if missing:
        (c, r), more = missing[0], len(missing) - 1
        field = "model.cassettes" if block is not None and block.cassettes else \
            f"model.provider ({'replay' if given == 'model.provider' else 'the configured provider is replay'})"
        raise UserError(f"{field}: no cassette {source / cassette_name(c.key, r, c.scenario.advice)} for the "
                        f"{c.scenario.advice} agents of configuration {c.key}, repetition {r}"
                        f"{f' (and {more} more missing)' if more else ''}: replay needs the cassettes a live run of "
                        "this campaign recorded (its --out folder's cassettes/); set model.cassettes to that folder, "
                        "or model.provider to a live provider to record them")
    return use


def describe_source(source: Mapping[str, str]) -> str:
    """One task's model source (:func:`~llm_sched.evaluation.runner.model_source`) in words."""
    model = f"{source.get('provider', 'unknown')} model {source.get('model', 'unknown')}"
    if source.get("kind") == REPLAY:
        return f"cassettes recorded from the live {model}, replayed"
    return f"the live {model}"


def model_counts(runs: Sequence[Mapping[str, Any]], configs: Sequence[Configuration]) -> dict[str, int]:
    """The agents runs that asked a model, and their calls, model-chosen awards and fallbacks."""
    asking = {c.key for c in model_configurations(configs)}
    counted = [r["metrics"] for r in runs if r["policy"] == "agents" and r["config"] in asking]
    return {"runs": len(counted), **{k: sum(int(m.get(k) or 0) for m in counted)
                                     for k in ("llm_calls", "llm_choices", "llm_fallbacks")}}


def _metric_order() -> dict[str, int]:
    from llm_sched.sim.resilience_metrics import ResilienceMetrics

    return {f.name: i for i, f in enumerate(fields(ResilienceMetrics))}


def task_records(config: str, repetition: int, seed: int, deadline: float | None,
                 metrics: Mapping[str, Mapping[str, Any]], order: Mapping[str, int]) -> list[dict[str, Any]]:
    """The results.json runs of one task, one per policy, keys in one fixed order whatever their
    source (a fresh result, a ledger unit stored with sorted keys), so results.json is the same."""
    return [
        {"config": config, "repetition": repetition, "seed": seed, "deadline": deadline, "policy": p,
         "metrics": dict(sorted(nan_to_none(dict(m)).items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))}
        for p, m in metrics.items()
    ]


def _unit(records: list[dict[str, Any]]) -> dict[str, Any]:
    first = records[0]
    return {"config": first["config"], "repetition": first["repetition"], "seed": first["seed"],
            "deadline": first["deadline"], "metrics": {r["policy"]: r["metrics"] for r in records}}


def masked_report(text: str) -> str:
    """report.md without the lines that describe the invocation (see the module's "equal")."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(PROVENANCE_LINES))


def comparable_results(data: Mapping[str, Any]) -> dict[str, Any]:
    """results.json's content without ``run_info`` (see the module's "equal")."""
    return {k: v for k, v in data.items() if k != "run_info"}


def run_campaign(
    config: CampaignConfig,
    folder: Path,
    *,
    workers: int | Executor,
    command: str,
    config_file: str | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    ledger: Path | None = None,
    claim: str | None = None,
    on_existing: OnExisting = "resume",
    settings: Settings | None = None,
) -> CampaignResult:
    """Run ``config`` into ``folder`` on ``workers`` processes (or an :class:`Executor`: a Dask cluster).

    ``ledger``: the ledger file that stores every finished task (None: none, results.json alone
    carries what an interrupted campaign did). The campaign's ledger run is ``claim`` (a run id, for
    ``--resume``), else the latest campaign run of ``folder`` when its configuration is this one,
    else a new run. ``on_existing``: what a ``folder`` that holds something means (see
    :func:`~llm_sched.evaluation.output.open_folder`; ``replace`` also starts a new ledger run).
    ``on_start(tasks, reused)`` is called once the folder is checked;
    ``on_progress(done, tasks)`` after each task (done counts the reused ones). Raises
    :class:`~llm_sched.errors.UserError` when the folder cannot be used (a
    :class:`~llm_sched.store.ledger.StoreError` when the ledger cannot), or when agents need a model
    none can give (:func:`model_use`; ``settings``: the configured provider, when ``model.provider``
    is not set).
    """
    t0 = time.perf_counter()
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    campaign = campaign_dump(config)
    model = model_use(config, folder, settings)  # before the folder is touched: a refusal leaves it as it was
    previous = open_folder(folder, campaign, on_existing)
    durable: DurableRun | None = None
    if ledger is not None:
        durable = open_run(ledger, "campaign", folder, name=config.name, provider="simulation", seed=config.seed,
                           config=campaign, claim=claim,
                           reuse=lambda info: on_existing != "replace" and info.config == campaign)
    with holding(durable), _files_of(folder):
        return _run(config, folder, campaign, previous, durable, model, workers=workers, command=command,
                    config_file=config_file, on_start=on_start, on_progress=on_progress, t0=t0, started=started)


def _keep_cassette(model: ModelUse | None, result: TaskResult, configs: Sequence[Configuration]) -> None:
    """A cassette replayed from another folder is copied into the output folder's, so that folder
    alone re-runs the campaign's model agents."""
    if model is None or model.replay_from is None:
        return
    advice = next(c.scenario.advice for c in configs if c.key == result.config)
    name = cassette_name(result.config, result.repetition, advice)
    source, target = model.replay_from / name, model.folder / name
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)


@contextmanager
def _files_of(folder: Path) -> Iterator[None]:
    """A file of the campaign that cannot be written (a full disk, a folder made read-only) is a
    :class:`StorageFault` naming it; the finished tasks are in the ledger, so the campaign resumes."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise
        raise StorageFault(f"could not write {exc.filename}: {exc.strerror or exc}. The finished tasks are stored; "
                           f"fix this and resume with python main.py --evaluate --resume {folder}") from None


def _run(config: CampaignConfig, folder: Path, campaign: dict[str, Any], previous: list[dict[str, Any]],
         durable: DurableRun | None, model: ModelUse | None, *, workers: int | Executor, command: str,
         config_file: str | None,
         on_start: Callable[[int, int], None] | None, on_progress: Callable[[int, int], None] | None,
         t0: float, started: str) -> CampaignResult:
    configs = configurations(config)
    order = {c.key: i for i, c in enumerate(configs)}
    policy_order = {p: i for i, p in enumerate(config.policies)}
    metric_order = _metric_order()
    wanted = {(c.key, r) for c in configs for r in range(config.repetitions)}
    policies = set(config.policies)
    records: dict[tuple[str, int], list[dict[str, Any]]] = {}
    sources: dict[tuple[str, int], dict[str, str]] = {}  # where each task's model answers came from
    for unit in (durable.stored.values() if durable is not None else ()):
        key = (unit["config"], unit["repetition"])
        if key in wanted and set(unit["metrics"]) == policies:
            records[key] = task_records(*key, unit["seed"], unit["deadline"], unit["metrics"], metric_order)
            if isinstance(unit.get("model"), dict):
                sources[key] = unit["model"]
    from_ledger = len(records)
    from_file: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in previous:  # results.json: the checkpoint, or the only record of an older version's campaign
        from_file.setdefault((run["config"], run["repetition"]), []).append(run)
    for key, group in from_file.items():
        if key in wanted and key not in records and {r["policy"] for r in group} == policies:
            records[key] = task_records(*key, group[0]["seed"], group[0]["deadline"],
                                        {r["policy"]: r["metrics"] for r in group}, metric_order)
            if durable is not None:
                durable.record(unit_key(*key), _unit(records[key]))  # the ledger holds every finished task
    reused = len(records)
    asking = {c.key for c in model_configurations(configs)} if model is not None else set()
    tasks = [Task(c.key, r, seed_of(config, r), c.scenario, config.policies, config.deadline_factor,
                  model.plan(c.key, r, c.scenario.advice) if c.key in asking else None)  # type: ignore[union-attr]
             for c in configs for r in range(config.repetitions) if (c.key, r) not in records]
    if model is not None:
        model.folder.mkdir(exist_ok=True)  # the recordings, or the copies of the replayed cassettes
    total = len(configs) * config.repetitions
    seed_list = seeds(config)
    info: dict[str, Any] = {
        "command": command, "config_file": config_file, "started": started,
        "workers": workers.workers if isinstance(workers, Executor) else workers,
        "executor": workers.describe() if isinstance(workers, Executor) else Executor(workers).describe(),
        "python": platform.python_version(), "version": __version__, "seeds": seed_list, "reused": reused,
        "reused_from": {"ledger": from_ledger, "results.json": reused - from_ledger},
    }
    if durable is not None:
        info.update(ledger=str(durable.ledger.path), run_id=durable.run_id)
    if model is not None:
        info["model"] = {**model.info(), "advice": list(config.advice_modes), "llm_budget": config.base.llm_budget}

    def ordered() -> list[dict[str, Any]]:
        runs = [run for group in records.values() for run in group]
        return sorted(runs, key=lambda r: (order[r["config"]], r["repetition"], policy_order[r["policy"]]))

    def save(complete: bool) -> None:
        write_json(folder / RESULTS, results_data(campaign, configs, seed_list, ordered(), complete, info))

    save(False)  # marks the folder as this campaign's from the start
    if on_start:
        on_start(total, reused)
    last_save = time.perf_counter()
    task_time = 0.0

    def done(result: TaskResult) -> None:
        nonlocal last_save, task_time
        task_time += result.wall_s
        group = task_records(result.config, result.repetition, result.seed, result.deadline, result.metrics,
                             metric_order)
        if durable is not None:
            # The agents' certificates go to the ledger only: fresh keys sign differently every run,
            # and results.json must be the same for the same seed.
            durable.record(unit_key(result.config, result.repetition),
                           {**_unit(group), "certificates": result.certificates,
                            **({"model": result.model} if result.model is not None else {})})
        if result.model is not None:
            sources[(result.config, result.repetition)] = result.model
            _keep_cassette(model, result, configs)
        records[(result.config, result.repetition)] = group
        if on_progress:
            on_progress(len(records), total)
        if time.perf_counter() - last_save > CHECKPOINT_EVERY_S:
            save(False)
            last_save = time.perf_counter()

    if on_progress:
        on_progress(reused, total)
    try:
        run_tasks(tasks, workers, done)
    except BaseException:
        if durable is None or not durable.fenced():  # a process fenced off leaves the folder to its successor
            info["wall_s"] = time.perf_counter() - t0
            save(False)
        raise
    simulation_s = time.perf_counter() - t0
    info.update(simulation_s=round(simulation_s, 3), task_cpu_s=round(task_time, 3))
    runs = ordered()
    if model is not None:
        info["model"].update(sources=sorted({describe_source(s) for s in sources.values()}),
                             **model_counts(runs, configs))
    infos = [ConfigInfo(c.key, c.dimension, c.label, c.tick) for c in configs]
    analysis = analyse(runs, infos, config.policies, config.repetitions)
    found = make_findings(analysis)
    from llm_sched.evaluation.figures import draw_all
    from llm_sched.evaluation.optimum_gap import optimum_gap
    from llm_sched.evaluation.report import render
    from llm_sched.evaluation.run_figures import draw_run_figures

    figures = draw_all(analysis, folder)
    # One run of the base scenario is simulated again for these: its agents ask no model again (the
    # report's set-up says so when the base's agents are a model's).
    again = config if config.base.advice == "heuristic" else \
        config.model_copy(update={"base": config.base.model_copy(update={"advice": "heuristic"})})
    examples = draw_run_figures(again, analysis, folder)
    gap = optimum_gap(again)
    write_summary_csv(folder / "summary.csv", analysis)
    write_comparisons_csv(folder / "comparisons.csv", analysis)
    info["wall_s"] = round(time.perf_counter() - t0, 3)
    info["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
    save(True)
    report = folder / "report.md"
    report.write_text(render(config, analysis, found, figures, info, examples, gap), encoding="utf-8")
    files = (report, folder / RESULTS, folder / "summary.csv", folder / "comparisons.csv", *figures.values(),
             *examples.values())
    return CampaignResult(folder, report, files, tuple(found), analysis, total, reused, simulation_s,
                          time.perf_counter() - t0, None if durable is None else durable.run_id)
