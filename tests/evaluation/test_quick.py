"""The shipped quick campaign's configurations, end to end through the --evaluate entry point (issue 7:
"--evaluate --quick runs end to end in the test suite's time budget"). Two of its three seeds: the
same 34 configurations and code paths in two thirds of the time; the whole quick campaign's time is
bench/bench_campaign.py's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_sched.cli.campaign import run_campaign_cli
from llm_sched.config import ENV_VARS, PROJECT_ROOT


@pytest.mark.slow
def test_quick_campaign_configurations_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "quick"
    shipped = (PROJECT_ROOT / "scenarios" / "evaluation" / "quick.yaml").read_text(encoding="utf-8")
    assert "repetitions: 3 " in shipped
    config = tmp_path / "quick.yaml"
    config.write_text(shipped.replace("repetitions: 3 ", "repetitions: 2 ", 1), encoding="utf-8")
    code = run_campaign_cli(str(config), str(out), False, 2, None)
    printed = capsys.readouterr()
    assert code == 0, printed.err
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["complete"] and len(data["configurations"]) == 34
    assert {c["dimension"] for c in data["configurations"]} == {
        "scale", "failure_rate", "failure_pattern", "load_pattern", "high_load", "byzantine", "byzantine_behaviour"}
    assert data["campaign"]["policies"] == ["agents", "fcfs", "sjf", "easy", "conservative"]
    assert len(data["runs"]) == 34 * data["campaign"]["repetitions"] * 5
    # Issue 17: every configuration with a Byzantine agent costs more messages per decision, counted
    # on the engine's network, than the same seed with none (liars that lead force view changes).
    cost = {(r["config"], r["repetition"]): r["metrics"]["messages_per_decision"] for r in data["runs"]
            if r["policy"] == "agents"}
    liars = {c for c, _ in cost if c.startswith("byzantine") and c != "byzantine-0"}
    assert len(liars) == 7  # 1 and 3 vote flippers; one agent of each of the five behaviours
    for key, rep in ((c, r) for c, r in cost if c in liars):
        assert cost[key, rep] > cost["byzantine-0", rep], (key, rep)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"`python main.py --evaluate --config {config} --out" in report
    for figure in ("scale", "failure-rate", "failure-pattern", "load-pattern", "high-load", "byzantine",
                   "byzantine-behaviour", "gantt", "cdf", "utilization", "messages"):
        assert f"](fig-{figure}.png)" in report and (out / f"fig-{figure}.png").is_file()
    assert f"report: {out / 'report.md'}" in printed.out
