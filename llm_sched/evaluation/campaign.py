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

Progress is reported through callbacks, so the console view (:mod:`llm_sched.ui.campaign_view`) and
tests can follow it; nothing here prints.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from llm_sched import __version__
from llm_sched.evaluation.analysis import Analysis, ConfigInfo, analyse
from llm_sched.evaluation.config import CampaignConfig
from llm_sched.evaluation.design import configurations, seed_of, seeds
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
from llm_sched.evaluation.runner import Executor, Task, TaskResult, nan_to_none, run_tasks
from llm_sched.store.storage_errors import StorageFault

CHECKPOINT_EVERY_S = 5.0
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
    :class:`~llm_sched.store.ledger.StoreError` when the ledger cannot).
    """
    t0 = time.perf_counter()
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    campaign = campaign_dump(config)
    previous = open_folder(folder, campaign, on_existing)
    durable: DurableRun | None = None
    if ledger is not None:
        durable = open_run(ledger, "campaign", folder, name=config.name, provider="simulation", seed=config.seed,
                           config=campaign, claim=claim,
                           reuse=lambda info: on_existing != "replace" and info.config == campaign)
    with holding(durable), _files_of(folder):
        return _run(config, folder, campaign, previous, durable, workers=workers, command=command,
                    config_file=config_file, on_start=on_start, on_progress=on_progress, t0=t0, started=started)


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
         durable: DurableRun | None, *, workers: int | Executor, command: str, config_file: str | None,
         on_start: Callable[[int, int], None] | None, on_progress: Callable[[int, int], None] | None,
         t0: float, started: str) -> CampaignResult:
    configs = configurations(config)
    order = {c.key: i for i, c in enumerate(configs)}
    policy_order = {p: i for i, p in enumerate(config.policies)}
    metric_order = _metric_order()
    wanted = {(c.key, r) for c in configs for r in range(config.repetitions)}
    policies = set(config.policies)
    records: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for unit in (durable.stored.values() if durable is not None else ()):
        key = (unit["config"], unit["repetition"])
        if key in wanted and set(unit["metrics"]) == policies:
            records[key] = task_records(*key, unit["seed"], unit["deadline"], unit["metrics"], metric_order)
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
    tasks = [Task(c.key, r, seed_of(config, r), c.scenario, config.policies, config.deadline_factor)
             for c in configs for r in range(config.repetitions) if (c.key, r) not in records]
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
                           {**_unit(group), "certificates": result.certificates})
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
    infos = [ConfigInfo(c.key, c.dimension, c.label, c.tick) for c in configs]
    analysis = analyse(runs, infos, config.policies, config.repetitions)
    found = make_findings(analysis)
    from llm_sched.evaluation.figures import draw_all
    from llm_sched.evaluation.optimum_gap import optimum_gap
    from llm_sched.evaluation.report import render
    from llm_sched.evaluation.run_figures import draw_run_figures

    figures = draw_all(analysis, folder)
    examples = draw_run_figures(config, analysis, folder)
    gap = optimum_gap(config)
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
