"""The protocol table: every method under every fault intensity, with the seeds' published figures beside.

``python main.py --experiment --intensity all`` runs the experiment once without injected faults
and once per intensity (light, medium, heavy, chaos), each as its own stored experiment (a
subfolder of the output folder, its own ledger run, checked by ``--verify``), and writes
``protocol_table.md`` and ``protocol_table.csv``:

- success rate: decisions reached / jobs, over the repetitions;
- decisions per simulated second: decisions reached / the runs' simulated time (each run from its
  start to its last honest decision, or to its time limit when a job was left undecided);
- messages per decision and mean latency (simulated seconds to the first honest decision), from
  the experiment's summary;
- safety: agreement and validity violations counted by the checker.

The Fault Tolerance Score of a method (0-100) is written in the table's file with its formula:
FTS = 100 x sum over levels of w(level) x success(level) x safe(level) / sum of w, with weights
none 1, light 1, medium 2, heavy 3, chaos 4 (harder faults weigh more) and safe(level) = 1 when
no run of that level violated safety, else 0 (a protocol that decides wrongly scores nothing there).

The seeds' published figures (the project's seed text: Tendermint 80% / 8.0, PBFT 60% / 9.6,
Multi-Paxos 20% / 8.4) are shown beside ours as published: a success rate and a second figure the
seed text gives without its unit or set-up; they are not ours and nothing here reproduces them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_sched.config import Settings
from llm_sched.experiments.config import INTENSITIES, ExperimentConfig
from llm_sched.experiments.experiment import ExperimentResult, run_experiment

LEVELS: tuple[str, ...] = ("none", *INTENSITIES)
WEIGHTS: dict[str, int] = {"none": 1, "light": 1, "medium": 2, "heavy": 3, "chaos": 4}
PUBLISHED: dict[str, tuple[float, float]] = {"tendermint": (0.80, 8.0), "pbft": (0.60, 9.6), "multi_paxos": (0.20, 8.4)}
FORMULA = ("FTS = 100 x sum over levels of w x success x safe / sum of w; w: none 1, light 1, medium 2, heavy 3, "
           "chaos 4; safe = 1 when no run of the level violated agreement or validity, else 0")


@dataclass(frozen=True, slots=True)
class Row:
    """One method under one fault level."""

    method: str
    level: str
    jobs: int
    decided: int
    success: float
    per_second: float | None  # decisions per simulated second
    messages: float | None  # per decision
    latency: float | None  # mean simulated seconds to the first honest decision
    violations: int


@dataclass(frozen=True, slots=True)
class Sweep:
    """The table, each method's score, and where the files are."""

    rows: tuple[Row, ...]
    scores: dict[str, float]
    folder: Path
    files: tuple[Path, ...]


def rows_of(level: str, result: ExperimentResult, max_time: float) -> list[Row]:
    """The table's rows of one level's experiment, from its summaries and runs."""
    out = []
    for method, s in result.summaries.items():
        runs = result.runs.get(method, [])
        span = math.fsum(r["all_decided_at"] if r.get("all_decided_at") is not None else max_time for r in runs)
        decided, jobs = s["decisions_reached"], s["jobs"]
        out.append(Row(method, level, jobs, decided, decided / jobs if jobs else 0.0,
                       decided / span if span > 0 else None, s["messages"]["per_decision"], s["latency"]["mean"],
                       s["safety_violations"]))
    return out


def scores(rows: Sequence[Row]) -> dict[str, float]:
    """Each method's Fault Tolerance Score (see :data:`FORMULA`) over the levels it ran."""
    out: dict[str, float] = {}
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        total = sum(WEIGHTS[r.level] for r in mine)
        earned = math.fsum(WEIGHTS[r.level] * r.success * (r.violations == 0) for r in mine)
        out[method] = round(100 * earned / total, 1) if total else 0.0
    return out


def run_sweep(config: ExperimentConfig, settings: Settings, folder: Path, *, view: Any = None,
              ledger: Path | None = None) -> Sweep:
    """Run ``config`` at every level into ``folder``/<level> and write the table's files."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for level in LEVELS:
        cfg = config.model_copy(update={"intensity": None if level == "none" else level,
                                        "out": str(folder / level)})
        result = run_experiment(cfg, settings, view=view, ledger=ledger)
        rows += rows_of(level, result, config.max_time)
    found = scores(rows)
    files = (write_markdown(folder / "protocol_table.md", config, rows, found),
             write_csv(folder / "protocol_table.csv", rows))
    return Sweep(tuple(rows), found, folder, files)


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def write_markdown(path: Path, config: ExperimentConfig, rows: Sequence[Row], found: Mapping[str, float]) -> Path:
    lines = [
        "# Protocols under fault intensities", "",
        f"{config.agents} agents ({config.byzantine} Byzantine, behaviours {', '.join(config.byzantine_behaviours)}; "
        f"{config.crash} crashed), {config.jobs} jobs x {config.repetitions} repetitions per method and level, "
        f"seed {config.seed}; every level is its own stored experiment (subfolders). Level none injects no network "
        "or crash faults; the Byzantine agents are there at every level. Times are simulated seconds.",
        "",
        "| method | level | success rate | decisions / simulated s | messages / decision | mean latency (s) "
        "| safety violations | published by the seed (success / second figure) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        pub = PUBLISHED.get(r.method)
        shown = f"{100 * pub[0]:.0f}% / {pub[1]:g}" if pub else "-"
        lines.append(f"| {r.method} | {r.level} | {100 * r.success:.0f}% ({r.decided}/{r.jobs}) | {_num(r.per_second, 3)} "
                     f"| {_num(r.messages)} | {_num(r.latency, 2)} | {r.violations} | {shown} |")
    lines += ["", "## Fault Tolerance Score", "", FORMULA + ".", "", "| method | FTS (0-100) |", "|---|---:|"]
    lines += [f"| {m} | {v:.1f} |" for m, v in found.items()]
    lines += ["", "The published figures are the seed text's (a success rate and a second figure given without its "
              "unit or set-up); they are shown for comparison, not reproduced.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_csv(path: Path, rows: Sequence[Row]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("method", "level", "jobs", "decided", "success_rate", "decisions_per_sim_s",
                         "messages_per_decision", "latency_mean_s", "safety_violations"))
        for r in rows:
            writer.writerow((r.method, r.level, r.jobs, r.decided, f"{r.success:.6g}",
                             "" if r.per_second is None else f"{r.per_second:.6g}",
                             "" if r.messages is None else f"{r.messages:.6g}",
                             "" if r.latency is None else f"{r.latency:.6g}", r.violations))
    return path
