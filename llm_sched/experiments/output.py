"""The experiment's output folder: JSON files and one CSV row per method x repetition x job.

``raw_results.json`` holds only what the seed determines (no wall-clock time), so two runs of the
same configuration and seed write identical files; wall-clock figures go to
``experiment_summary.json`` under ``timing``, every one named ``*_wall_s``.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from llm_sched.errors import UserError
from llm_sched.folders import listing, make_folder, refuse_file, stamped_folder
from llm_sched.store.storage_errors import StorageFault

FILES = (
    "experiment_config.json",
    "experiment_summary.json",
    "raw_results.json",
    "fault_logs.json",
    "fault_aware_summary.json",
    "fault_results_per_method.json",
    "results.csv",
)
CSV_COLUMNS = (
    "method", "fault_model", "repetition", "seed", "job_id", "kind", "request", "outcome", "pool", "nodes",
    "first_decided_at", "all_decided_at", "progress", "slot_messages", "slot_bytes", "byzantine_value",
    "faults_active", "llm_calls", "llm_tokens", "run_violations",
)


def output_dir(out: str | None, runs_dir: Path, now: datetime | None = None, *, reuse: bool = False) -> Path:
    """``--out DIR``, or ``<runs_dir>/experiments/<timestamp>`` (a suffix when that exists); created.

    A ``--out`` folder that holds anything is refused (exit 2, nothing written) unless ``reuse``
    (``--force`` runs afresh into it, ``--resume`` continues what is stored for it): an experiment
    never replaces files it was not asked to replace."""
    if out is not None:
        folder = Path(out)
        if not reuse:
            refuse_non_empty(folder)
    else:
        folder = stamped_folder(runs_dir / "experiments", now)
    make_folder(folder)
    return folder


def refuse_non_empty(folder: Path) -> None:
    """A :class:`UserError` naming ``folder`` and the way out, when it exists and holds anything."""
    refuse_file(folder)
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if names:
        raise UserError(f"the output folder {folder} is not empty ({listing(names)}); give --force to run afresh "
                        f"into it (its result files are replaced), --resume {folder} to continue what is stored for "
                        "it, or another --out")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_csv(path: Path, runs: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for run in runs:
            for job in run["jobs"]:
                placement = job["placement"] or {}
                progress = next((job[k] for k in ("view", "round", "term", "ballot_round") if k in job), None)
                writer.writerow({
                    "method": run["method"], "fault_model": run["fault_model"], "repetition": run["repetition"],
                    "seed": run["seed"], "job_id": job["job_id"], "kind": job["kind"], "request": job["request"],
                    "outcome": job["outcome"], "pool": placement.get("pool", ""),
                    "nodes": " ".join(placement.get("nodes", [])),
                    "first_decided_at": _blank(job["first_decided_at"]),
                    "all_decided_at": _blank(job["all_decided_at"]), "progress": _blank(progress),
                    "slot_messages": job["slot_messages"], "slot_bytes": job["slot_bytes"],
                    "byzantine_value": job["byzantine_value"],
                    "faults_active": " ".join(map(str, job["faults_active"])),
                    "llm_calls": job["llm_calls"], "llm_tokens": job["llm_tokens"],
                    "run_violations": len(run["violations"]),
                })


def _blank(x: Any) -> Any:
    return "" if x is None else x


def write_all(folder: Path, *, config: dict[str, Any], summary: dict[str, Any], raw: dict[str, Any],
              fault_logs: dict[str, Any], fault_aware: dict[str, Any], per_method: dict[str, Any]) -> list[Path]:
    """Write every file; returns their paths in :data:`FILES` order."""
    try:
        write_json(folder / "experiment_config.json", config)
        write_json(folder / "experiment_summary.json", summary)
        write_json(folder / "raw_results.json", raw)
        write_json(folder / "fault_logs.json", fault_logs)
        write_json(folder / "fault_aware_summary.json", fault_aware)
        write_json(folder / "fault_results_per_method.json", per_method)
        write_csv(folder / "results.csv", raw["runs"])
    except OSError as exc:
        raise StorageFault(f"cannot write the results to {folder}: {exc.strerror or exc}. The finished runs are "
                           f"stored; fix this and resume with python main.py --experiment --resume {folder}") from None
    return [folder / name for name in FILES]
