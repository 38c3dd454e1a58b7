"""``--experiment --intensity all``: every method under every fault level, the protocol table and the
Fault Tolerance Score, computed from the runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from llm_sched.cli import main
from llm_sched.config import Settings
from llm_sched.experiments.config import load_experiment
from llm_sched.experiments.sweep import LEVELS, PUBLISHED, WEIGHTS, run_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("sweep")
    config = load_experiment(None, {"methods": "pbft,multi_paxos", "jobs": 3, "repetitions": 1})
    return run_sweep(config, Settings(runs_dir=root / "runs"), root / "out", ledger=root / "ledger.db")


def test_every_method_runs_at_every_level_as_its_own_experiment(sweep) -> None:  # type: ignore[no-untyped-def]
    assert [(r.method, r.level) for r in sweep.rows] == [(m, lv) for lv in LEVELS for m in ("pbft", "multi_paxos")]
    for level in LEVELS:
        assert (sweep.folder / level / "experiment_summary.json").is_file()
    for r in sweep.rows:
        assert r.jobs == 3 and 0 <= r.decided <= 3 and r.success == r.decided / 3
        assert r.per_second is None or r.per_second > 0


def test_the_fault_tolerance_score_is_its_formula_over_the_rows(sweep) -> None:  # type: ignore[no-untyped-def]
    for method, score in sweep.scores.items():
        mine = [r for r in sweep.rows if r.method == method]
        earned = sum(WEIGHTS[r.level] * r.success * (r.violations == 0) for r in mine)
        assert score == round(100 * earned / sum(WEIGHTS.values()), 1)
        assert 0 <= score <= 100


def test_the_table_shows_ours_beside_the_published_figures(sweep) -> None:  # type: ignore[no-untyped-def]
    text = (sweep.folder / "protocol_table.md").read_text(encoding="utf-8")
    assert f"| {100 * PUBLISHED['pbft'][0]:.0f}% / {PUBLISHED['pbft'][1]:g} |" in text
    assert "FTS = 100 x sum over levels" in text and "not reproduced" in text
    with (sweep.folder / "protocol_table.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(sweep.rows) and rows[0]["method"] == "pbft" and rows[0]["level"] == "none"


def test_all_levels_and_a_fault_file_do_not_go_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--experiment", "--intensity", "all", "--faults", str(tmp_path / "f.yaml")]) == 2
    assert "give either --faults FILE or --intensity all" in capsys.readouterr().err
