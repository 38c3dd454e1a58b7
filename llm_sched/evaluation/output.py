"""The campaign's output folder: where it is, whether it may be written, and its data files.

- ``results.json``: the configuration, the configurations' scenarios, the seeds and every run's
  metrics (undefined values as null). Everything in it but ``run_info`` (command, wall times,
  workers, dates) depends only on the configuration, so two runs of one configuration write the
  same file apart from ``run_info``, whatever the number of workers.
- ``summary.csv``: per configuration, policy and key metric: n, mean, standard deviation, 95% CI.
- ``comparisons.csv``: per configuration, baseline and key metric: agents against the baseline.

A folder that exists and is not empty is never overwritten silently (:func:`open_folder`): asked to
resume, it is resumed when it holds a ``results.json`` of the same configuration (the runs in it are
kept and only the missing ones run) and refused otherwise; a new campaign (``--out`` without
``--resume``) refuses it, naming ``--resume`` and ``--force``; ``--force`` runs afresh into it (its
result files replaced, nothing else touched). (The ledger, not results.json, is what a campaign
resumes from when there is one: see :mod:`llm_sched.evaluation.campaign`. A ``results.json.tmp``
left by a process killed while writing is ignored.)
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from llm_sched.errors import UserError
from llm_sched.evaluation.analysis import Analysis
from llm_sched.evaluation.metrics import KEY_METRICS, METRICS
from llm_sched.evaluation.resume import first_difference
from llm_sched.folders import listing, make_folder, refuse_file, stamped_folder

RESULTS = "results.json"
FORMAT = "llm-sched evaluation results, version 1"
# What to do with an output folder that holds something: continue the campaign in it (if it is this
# one), refuse it (a new campaign), or run afresh into it (--force).
OnExisting = Literal["resume", "refuse", "replace"]


def default_folder(runs_dir: Path, now: datetime | None = None) -> Path:
    """``<runs_dir>/evaluation/<timestamp>``, with a suffix when that exists already."""
    return stamped_folder(runs_dir / "evaluation", now)


def campaign_dump(config: Any) -> dict[str, Any]:
    """The configuration as JSON data (tuples as lists), as ``results.json`` stores it."""
    return json.loads(json.dumps(config.model_dump(mode="json")))


def open_folder(folder: Path, campaign: dict[str, Any], on_existing: OnExisting = "resume") -> list[dict[str, Any]]:
    """Make ``folder`` ready; returns the runs of an earlier, interrupted or finished, identical
    campaign (none when ``on_existing`` is ``replace``: afresh).

    Raises :class:`UserError` when the folder is a file, cannot be created, or is not empty and
    either ``on_existing`` is ``refuse`` or it does not hold this campaign.
    """
    refuse_file(folder)
    leftover = folder / (RESULTS + ".tmp")  # a write cut short by a kill: never the only copy of anything
    held = sorted(p.name for p in folder.iterdir() if p != leftover) if folder.is_dir() else []
    if held and on_existing == "refuse":
        raise UserError(f"the output folder {folder} is not empty ({listing(held)}); give --resume {folder} to "
                        "continue the campaign in it, --force to run afresh into it (its result files are replaced), "
                        "or another --out")
    if held and on_existing == "resume":
        results = folder / RESULTS
        if not results.is_file():
            names = sorted(p.name for p in folder.iterdir())
            raise UserError(f"the output folder {folder} is not empty ({listing(names)}) and holds no campaign "
                            "results; give a new --out or empty it")
        data = read_results(results)
        stored = data.get("campaign")
        if stored != campaign:
            raise UserError(f"the output folder {folder} holds a campaign with a different configuration "
                            f"({first_difference(stored, campaign, whole='campaign')}); give a new --out to run "
                            "this one, or the same configuration to resume it")
        return list(data.get("runs", []))
    make_folder(folder)
    return []


def read_results(path: Path) -> dict[str, Any]:
    """Load ``results.json``; a :class:`UserError` when it is not a campaign's results."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the campaign results: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not the results of an llm-sched evaluation campaign")
    return data


def results_data(campaign: dict[str, Any], configs: Iterable[Any], seeds: list[int], runs: list[dict[str, Any]],
                 complete: bool, run_info: dict[str, Any]) -> dict[str, Any]:
    """The content of ``results.json``."""
    return {
        "format": FORMAT,
        "campaign": campaign,
        "seeds": seeds,
        "configurations": [
            {"key": c.key, "dimension": c.dimension, "label": c.label, "tick": c.tick, "scenario": asdict(c.scenario)}
            for c in configs
        ],
        "complete": complete,
        "runs": runs,
        "run_info": run_info,
    }


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON, atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # the previous file, if any, is whole: only the new one is lost
        raise


def _cell(x: Any) -> Any:
    return "" if x is None else x


def write_summary_csv(path: Path, analysis: Analysis) -> None:
    """``summary.csv``: one row per configuration x policy x key metric."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("dimension", "config", "label", "policy", "metric", "better", "n", "mean", "sd",
                         "ci95_low", "ci95_high"))
        for c in analysis.configs:
            for p in analysis.policies:
                for m in KEY_METRICS:
                    s = analysis.summaries[c.key][p][m.name]
                    writer.writerow((c.dimension, c.key, c.label, p, m.name, m.better, s.n, _cell(s.mean),
                                     _cell(s.sd), _cell(s.low), _cell(s.high)))


def write_comparisons_csv(path: Path, analysis: Analysis) -> None:
    """``comparisons.csv``: one row per configuration x baseline x key metric (agents against it)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("dimension", "config", "label", "baseline", "metric", "better", "pairs",
                         "mean_agents", "mean_baseline", "wilcoxon_w", "wilcoxon_p", "p_holm", "rank_biserial",
                         "wins", "ties", "losses", "note"))
        for c in analysis.configs:
            for b in analysis.baselines:
                for name, cmp in analysis.comparisons[c.key][b].items():
                    writer.writerow((c.dimension, c.key, c.label, b, name, METRICS[name].better, cmp.n,
                                     _cell(cmp.mean_a), _cell(cmp.mean_b), _cell(cmp.w), _cell(cmp.p),
                                     _cell(cmp.p_holm), _cell(cmp.r), cmp.wins, cmp.ties, cmp.losses, cmp.note))
