"""The shipped quick campaign, end to end through the --evaluate entry point (issue 7: "--evaluate
--quick runs end to end in the test suite's time budget")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_sched.cli.campaign import run_campaign_cli
from llm_sched.config import ENV_VARS


@pytest.mark.slow
def test_quick_campaign_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "quick"
    code = run_campaign_cli(None, str(out), True, 2, None)  # its time: bench/bench_campaign.py
    printed = capsys.readouterr()
    assert code == 0, printed.err
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["complete"] and len(data["configurations"]) == 34
    assert {c["dimension"] for c in data["configurations"]} == {
        "scale", "failure_rate", "failure_pattern", "load_pattern", "high_load", "byzantine", "byzantine_behaviour"}
    assert data["campaign"]["policies"] == ["agents", "fcfs", "sjf", "easy", "conservative"]
    assert len(data["runs"]) == 34 * data["campaign"]["repetitions"] * 5
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "`python main.py --evaluate --quick --out" in report
    for figure in ("scale", "failure-rate", "failure-pattern", "load-pattern", "high-load", "byzantine",
                   "byzantine-behaviour", "gantt", "cdf", "utilization", "messages"):
        assert f"](fig-{figure}.png)" in report and (out / f"fig-{figure}.png").is_file()
    assert f"report: {out / 'report.md'}" in printed.out
