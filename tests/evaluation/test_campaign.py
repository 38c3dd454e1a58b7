"""A tiny campaign end to end: files, embedded figures, findings that match results.json,
determinism across worker counts, and the output folder's rules (refuse, resume)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from llm_sched.cli.campaign import run_campaign_cli
from llm_sched.errors import UserError
from llm_sched.evaluation.campaign import CampaignResult, run_campaign
from llm_sched.evaluation.metrics import KEY_METRICS, METRICS
from tests.evaluation.conftest import run_tiny, tiny_config


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


def deterministic(folder: Path) -> dict[str, Any]:
    data = load(folder)
    data.pop("run_info")  # command, dates, wall times, worker count
    return data


def means(data: dict[str, Any], policy: str, metric: str) -> dict[str, float]:
    """Per configuration, the mean of a metric's defined values, straight from results.json."""
    values: dict[str, list[float]] = {}
    for run in data["runs"]:
        if run["policy"] == policy and run["metrics"][metric] is not None:
            values.setdefault(run["config"], []).append(run["metrics"][metric])
    return {k: math.fsum(v) / len(v) for k, v in values.items()}


def findings(folder: Path) -> list[str]:
    text = (folder / "report.md").read_text(encoding="utf-8")
    section = text.split("## Findings", 1)[1].split("\n## ", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_tiny_campaign_writes_every_file(tiny_run: CampaignResult) -> None:
    folder = tiny_run.folder
    for name in ("report.md", "results.json", "summary.csv", "comparisons.csv"):
        assert (folder / name).is_file(), name
    report = (folder / "report.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    # The dimension's figure, then one run's Gantt chart, CDFs and utilization (no scale dimension here,
    # so no message-cost figure).
    assert images == ["fig-failure-rate.png", "fig-gantt.png", "fig-cdf.png", "fig-utilization.png"]
    assert "## What was measured and how" in report and "counted on the engine's simulated network" in report
    if importlib.util.find_spec("ortools") is not None:
        assert "| optimum (CP-SAT) |" in report and "| EASY |" in report and "gap to the optimum" in report
    for image in images:
        assert (folder / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "`pytest tiny campaign`" in report  # the command
    assert "Seeds: 3, 4 (repetition r uses seed 3 + r)" in report
    assert "Only 2 repetitions" in report
    assert "nan" not in report.lower()


def test_results_json_holds_every_run_in_order(tiny_run: CampaignResult) -> None:
    data = load(tiny_run.folder)
    assert data["complete"] and data["seeds"] == [3, 4]
    assert [c["key"] for c in data["configurations"]] == ["failure_rate-5%", "failure_rate-60%"]
    order = [(r["config"], r["repetition"], r["policy"]) for r in data["runs"]]
    assert order == [(c, r, p) for c in ("failure_rate-5%", "failure_rate-60%") for r in (0, 1)
                     for p in ("agents", "fcfs", "easy")]
    for run in data["runs"]:
        assert run["seed"] == 3 + run["repetition"]
        assert run["deadline"] > 0
        assert {m.name for m in KEY_METRICS} <= set(run["metrics"])
        assert 0 <= run["metrics"]["completion_rate"] <= 1


def test_summary_csv_matches_results_json(tiny_run: CampaignResult) -> None:
    data = load(tiny_run.folder)
    with (tiny_run.folder / "summary.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 3 * len(KEY_METRICS)
    wait = means(data, "easy", "wait_mean")
    for row in rows:
        if row["policy"] == "easy" and row["metric"] == "wait_mean":
            assert float(row["mean"]) == pytest.approx(wait[row["config"]])
            assert float(row["ci95_low"]) <= float(row["mean"]) <= float(row["ci95_high"])


def test_no_interval_in_any_table_or_figure_leaves_its_metrics_domain(tiny_run: CampaignResult) -> None:
    # summary.csv holds every interval the report's tables and the figures' error bars show (both
    # are drawn from the same summaries); each must lie within the metric's domain and within the
    # values it summarises.
    data = load(tiny_run.folder)
    with (tiny_run.folder / "summary.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for row in rows:
        if not row["ci95_low"]:
            continue
        metric = METRICS[row["metric"]]
        lo, hi = metric.domain
        low, mean, high = float(row["ci95_low"]), float(row["mean"]), float(row["ci95_high"])
        values = [r["metrics"][row["metric"]] for r in data["runs"]
                  if r["config"] == row["config"] and r["policy"] == row["policy"]]
        values = [v for v in values if v is not None]
        assert lo <= low <= mean <= high <= hi, row
        assert min(values) - 1e-9 <= low and high <= max(values) + 1e-9, row
        checked += 1
    assert checked > 2 * 3 * 5
    report = (tiny_run.folder / "report.md").read_text(encoding="utf-8")
    assert "bootstrap confidence interval" in report and "Holm" in report and " ± " not in report


def test_findings_are_the_numbers_of_results_json(tiny_run: CampaignResult) -> None:
    folder = tiny_run.folder
    data = load(folder)
    lines = findings(folder)
    assert lines == [f for f in tiny_run.findings]
    agents, easy, fcfs = (means(data, p, "wait_mean") for p in ("agents", "easy", "fcfs"))
    wait = next(line for line in lines if line.startswith("**Mean wait**"))
    for name, base in (("EASY", easy), ("FCFS", fcfs)):
        lower = sum(agents[k] < base[k] for k in agents)
        higher = sum(agents[k] > base[k] for k in agents)
        assert f"lower than {name} in {lower} of 2 configurations" in wait
        assert f"higher in {higher} (" in wait
    # Per repetition, agents against EASY on the same seed.
    pairs = {(r["config"], r["repetition"]): {} for r in data["runs"]}
    for r in data["runs"]:
        pairs[(r["config"], r["repetition"])][r["policy"]] = r["metrics"]["wait_mean"]
    won = sum(p["agents"] < p["easy"] for p in pairs.values())
    lost = sum(p["agents"] > p["easy"] for p in pairs.values())
    tied = len(pairs) - won - lost
    assert f"won {won}, tied {tied} and lost {lost} of {len(pairs)} paired runs" in wait.split("EASY", 1)[1]
    # The failure-rate sentence quotes each policy's mean wait at the first and the last rate.
    trend = next(line for line in lines if line.startswith("Agent failure rate") and "mean wait" in line)
    for policy, name in (("agents", "agents"), ("fcfs", "FCFS"), ("easy", "EASY")):
        m = means(data, policy, "wait_mean")
        assert f"{name} {m['failure_rate-5%']:,.0f} s to {m['failure_rate-60%']:,.0f} s" in trend
    cost = next(line for line in lines if line.startswith("**Cost**"))
    # Counted on the engine's network: PBFT among 5 agents sends 2n(n-1) = 40 messages when all are
    # up; an agent that is down sends and receives none, so failures lower the mean.
    counted = means(data, "agents", "messages_per_decision")
    lo, hi = min(counted.values()), max(counted.values())
    assert f"agents exchanged {lo:,.1f} to {hi:,.1f} messages per decision, counted on the engine's" in cost
    assert 2 * 4 * 3 < lo <= hi <= 2 * 5 * 4


def test_same_results_with_one_and_two_workers(tiny_run: CampaignResult, tmp_path: Path) -> None:
    run_tiny(tmp_path / "two", workers=2)
    assert deterministic(tmp_path / "two") == deterministic(tiny_run.folder)
    for name in ("summary.csv", "comparisons.csv"):
        assert (tmp_path / "two" / name).read_text() == (tiny_run.folder / name).read_text()
    assert load(tmp_path / "two")["run_info"]["workers"] == 2


def test_a_non_empty_folder_is_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=re.escape(f"the output folder {folder} is not empty (notes.txt)")):
        run_tiny(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_folder_of_another_campaign_is_refused(tiny_run: CampaignResult) -> None:
    with pytest.raises(UserError) as info:
        run_tiny(tiny_run.folder, seed=9)
    message = str(info.value)
    assert str(tiny_run.folder) in message and "different configuration" in message
    assert "seed: 3 there, 9 now" in message


def test_resume_runs_only_what_is_missing(tiny_run: CampaignResult, tmp_path: Path) -> None:
    folder = tmp_path / "resume"
    folder.mkdir()
    data = load(tiny_run.folder)
    data["complete"] = False
    data["runs"] = [r for r in data["runs"] if r["config"] == "failure_rate-5%"]  # as if interrupted
    (folder / "results.json").write_text(json.dumps(data))
    started: list[tuple[int, int]] = []
    result = run_campaign(tiny_config(), folder, workers=1, command="pytest tiny campaign",
                          on_start=lambda tasks, reused: started.append((tasks, reused)))
    assert started == [(4, 2)] and result.reused == 2
    assert deterministic(folder) == deterministic(tiny_run.folder)


def test_cli_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_campaign_cli("full", None, True, None, None) == 2
    assert run_campaign_cli(None, None, True, 0, None) == 2
    err = capsys.readouterr().err
    assert "error: --quick runs scenarios/evaluation/quick.yaml: give either --quick or --config FILE" in err
    assert "error: --workers must be at least 1, got 0" in err
    assert "Traceback" not in err
