"""The peer comparison (llm_sched.evaluation.peer_comparison): every policy and the CP-SAT optimum on
the seven scenarios, one CSV row per (kind, policy, seed), a Markdown table per kind."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from llm_sched.evaluation.findings import name
from llm_sched.evaluation.peer_comparison import (
    CSV_COLUMNS,
    OPTIMUM_LABELS,
    PolicyEntry,
    peer_comparison,
    policy_entries,
)
from llm_sched.sim import resilience
from llm_sched.sim.peer_workloads import SCENARIO_KINDS, SCENARIO_TITLES

SEEDS = (1, 2)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_comparison_writes_one_csv_row_per_kind_policy_and_seed_and_a_table_per_kind(tmp_path: Path) -> None:
    result = peer_comparison(tmp_path / "out", seeds=SEEDS, jobs=6, optimum=False)
    policies = tuple(resilience.POLICIES)
    assert result.policies == policies and result.kinds == SCENARIO_KINDS and not result.optimum
    rows = _csv(result.csv_path)
    assert tuple(rows[0]) == CSV_COLUMNS
    keys = [(r["kind"], r["policy"], int(r["seed"])) for r in rows]
    assert sorted(keys) == sorted((k, p, s) for k in SCENARIO_KINDS for p in policies for s in SEEDS)
    assert all(int(r["completed"]) == 6 and r["source"] == "simulator" for r in rows)
    assert all(0 < float(r["utilization"]) <= 1 and 1 / 6 <= float(r["jain_bsld"]) <= 1 for r in rows)
    md = result.md_path.read_text(encoding="utf-8")
    assert "arXiv 2506.02025" in md and "No optimum was computed" in md
    for kind in SCENARIO_KINDS:
        assert f"## {SCENARIO_TITLES[kind]}" in md
    for policy in policies:  # a row per kind, the mean over 2 seeds
        assert sum(line.startswith(f"| {name(policy)} | 2 |") for line in md.splitlines()) == len(SCENARIO_KINDS)


def test_the_proven_optimum_is_never_beaten_by_a_policy_on_its_own_objective(tmp_path: Path) -> None:
    pytest.importorskip("ortools")
    kinds = ("high_parallelism", "adversarial", "bursty")
    result = peer_comparison(tmp_path, seeds=SEEDS, kinds=kinds, jobs=8, time_limit_s=2.0)
    assert result.optimum
    rows = _csv(result.csv_path)
    labels = (*resilience.POLICIES, *OPTIMUM_LABELS.values())
    assert sorted((r["kind"], r["policy"], int(r["seed"])) for r in rows) == sorted(
        (k, p, s) for k in kinds for p in labels for s in SEEDS)
    optimum_rows = [r for r in result.rows if r.source == "cp-sat"]
    assert {r.objective for r in optimum_rows} == {"makespan", "wait_mean"}
    assert all(r.solve_s <= 4 * 2.0 + 1.0 and r.bound <= getattr(r, r.objective) + 1e-6 for r in optimum_rows)
    proven = [r for r in optimum_rows if r.proven]
    assert any(r.objective == "makespan" for r in proven)  # small instances: CP-SAT proves these
    for best in proven:
        theirs = [r for r in result.rows if r.source == "simulator" and (r.kind, r.seed) == (best.kind, best.seed)]
        assert len(theirs) == len(resilience.POLICIES)
        for run in theirs:
            assert getattr(best, best.objective) <= getattr(run, best.objective) + 1e-6, (best, run)
    md = result.md_path.read_text(encoding="utf-8")
    assert "proven optimal" in md
    assert "optimum (makespan)" in md and "optimum (mean wait)" in md


def test_the_default_policies_are_read_from_the_simulator_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resilience, "POLICIES", ("fcfs", "easy"))
    assert [e.label for e in policy_entries()] == ["fcfs", "easy"]


def test_a_policy_with_settings_is_one_more_entry_with_its_own_rows(tmp_path: Path) -> None:
    variant = PolicyEntry("agents (tendermint)", "agents", (("protocol", "tendermint"),))
    result = peer_comparison(tmp_path, policies=["easy", "agents", variant], seeds=(3,), kinds=("bursty",),
                             jobs=8, optimum=False)
    assert result.policies == ("easy", "agents", "agents (tendermint)")
    assert [r.policy for r in result.rows] == ["easy", "agents", "agents (tendermint)"]
    assert all(r.completed == 8 and math.isfinite(r.makespan) for r in result.rows)
    assert "agents (tendermint)" in result.md_path.read_text(encoding="utf-8")


def test_unknown_policies_settings_or_kinds_are_refused_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        peer_comparison(tmp_path / "a", policies=["lottery"])
    with pytest.raises(ValueError, match="agents \\(llm\\)"):
        peer_comparison(tmp_path / "b", policies=[PolicyEntry("agents (llm)", "agents", (("no_such_setting", 1),))])
    with pytest.raises(ValueError, match="distinct"):
        peer_comparison(tmp_path / "c", policies=["easy", "easy"])
    with pytest.raises(ValueError, match="scenario kinds"):
        peer_comparison(tmp_path / "d", kinds=("steady",))
    assert not any(tmp_path.iterdir())  # nothing written
