"""One campaign, start to finish: run the simulations (resuming a folder of the same configuration),
then write results.json, the statistics, the figures, the CSV files and report.md.

Progress is reported through callbacks, so the console view (:mod:`llm_sched.ui.campaign_view`) and
tests can follow it; nothing here prints.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    campaign_dump,
    open_folder,
    results_data,
    write_comparisons_csv,
    write_json,
    write_summary_csv,
)
from llm_sched.evaluation.runner import Task, TaskResult, nan_to_none, run_tasks

CHECKPOINT_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """What a campaign produced."""

    folder: Path
    report: Path
    files: tuple[Path, ...]
    findings: tuple[str, ...]
    analysis: Analysis
    tasks: int  # (configuration, repetition) pairs
    reused: int  # of them taken from an earlier results.json
    simulation_s: float
    wall_s: float


def run_campaign(
    config: CampaignConfig,
    folder: Path,
    *,
    workers: int,
    command: str,
    config_file: str | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CampaignResult:
    """Run ``config`` into ``folder`` on ``workers`` processes.

    ``on_start(tasks, reused)`` is called once the folder is checked; ``on_progress(done, tasks)``
    after each task (done counts the reused ones). Raises :class:`~llm_sched.errors.UserError` when
    the folder cannot be used. An interrupted campaign leaves a results.json marked incomplete that
    the same command resumes.
    """
    t0 = time.perf_counter()
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    campaign = campaign_dump(config)
    previous = open_folder(folder, campaign)
    configs = configurations(config)
    order = {c.key: i for i, c in enumerate(configs)}
    policy_order = {p: i for i, p in enumerate(config.policies)}
    records: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in previous:
        records.setdefault((run["config"], run["repetition"]), []).append(run)
    records = {k: v for k, v in records.items()
               if k[0] in order and {r["policy"] for r in v} == set(config.policies)}
    reused = len(records)
    tasks = [Task(c.key, r, seed_of(config, r), c.scenario, config.policies, config.deadline_factor)
             for c in configs for r in range(config.repetitions) if (c.key, r) not in records]
    total = len(configs) * config.repetitions
    seed_list = seeds(config)
    info: dict[str, Any] = {
        "command": command, "config_file": config_file, "started": started, "workers": workers,
        "python": platform.python_version(), "version": __version__, "seeds": seed_list, "reused": reused,
    }

    def ordered() -> list[dict[str, Any]]:
        runs = [run for group in records.values() for run in group]
        return sorted(runs, key=lambda r: (order[r["config"]], r["repetition"], policy_order[r["policy"]]))

    def save(complete: bool) -> None:
        write_json(folder / RESULTS, results_data(campaign, configs, seed_list, ordered(), complete, info))

    if on_start:
        on_start(total, reused)
    last_save = time.perf_counter()
    task_time = 0.0

    def done(result: TaskResult) -> None:
        nonlocal last_save, task_time
        task_time += result.wall_s
        records[(result.config, result.repetition)] = [
            {"config": result.config, "repetition": result.repetition, "seed": result.seed,
             "deadline": result.deadline, "policy": p, "metrics": nan_to_none(m)}
            for p, m in result.metrics.items()
        ]
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
    from llm_sched.evaluation.report import render

    figures = draw_all(analysis, folder)
    write_summary_csv(folder / "summary.csv", analysis)
    write_comparisons_csv(folder / "comparisons.csv", analysis)
    info["wall_s"] = round(time.perf_counter() - t0, 3)
    info["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
    save(True)
    report = folder / "report.md"
    report.write_text(render(config, analysis, found, figures, info), encoding="utf-8")
    files = (report, folder / RESULTS, folder / "summary.csv", folder / "comparisons.csv", *figures.values())
    return CampaignResult(folder, report, files, tuple(found), analysis, total, reused, simulation_s,
                          time.perf_counter() - t0)
