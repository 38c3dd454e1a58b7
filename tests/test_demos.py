"""The two demo scripts run offline on the public API; what they print agrees with the run's events."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_sched.core.events import read_jsonl
from llm_sched.orchestration.summary import summarize
from tests.conftest import REPO, Cli

DEMOS = REPO / "demos"


def _run_demo(cli: Cli, name: str, *args: str) -> tuple[str, Path]:
    proc = subprocess.run([sys.executable, str(DEMOS / name), *args], cwd=cli.cwd, env=cli.env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = sorted(p for p in (cli.cwd / "runs").iterdir() if p.is_dir())  # beside the ledger
    return proc.stdout, run


def _row(out: str, figure: str) -> str:
    match = re.search(rf"│ {re.escape(figure)}\s*│ (.*?)\s*│", out)
    assert match, f"no row {figure!r} in the summary table"
    return match.group(1)


def _summary_checked(run: Path) -> dict:  # type: ignore[type-arg]
    summary = json.loads((run / "summary.json").read_text())
    assert summary == summarize(read_jsonl(run / "events.jsonl"))
    return summary


def test_the_federation_demo_reports_what_its_events_show(cli: Cli) -> None:
    out, run = _run_demo(cli, "distributed_agentic_ai_demo.py")
    summary = _summary_checked(run)
    events = read_jsonl(run / "events.jsonl")
    assert summary["provider"] == "replay (local cassette)" and summary["llm_calls"] > 0
    assert _row(out, "nodes allocated") == str(summary["nodes_allocated"])
    assert _row(out, "decisions committed") == str(summary["committed"])
    assert _row(out, "decisions under attack") == str(summary["decisions_under_attack"]) == "2"
    (liar,) = [e["agent"] for e in events if e["kind"] == "fault_changed" and e["active"]]
    (detected,) = summary["faulty_agents_detected"]
    assert detected["agent"] == liar
    assert f"attack: {liar} lied; detected at {detected['job_id']}; jobs awarded to it afterwards: 0" in out
    assert out.count("occupancy after") == summary["jobs"]
    assert "network status" in out


def test_the_federation_demo_takes_a_seed_and_falls_back_to_heuristics(cli: Cli) -> None:
    out, run = _run_demo(cli, "distributed_agentic_ai_demo.py", "--seed", "7")
    summary = _summary_checked(run)
    assert summary["seed"] == 7 and summary["llm_calls"] == 0
    assert summary["provider"].startswith("heuristic (the cassette supercomputers-local.yaml was recorded with seed")


def test_the_hybrid_demo_shows_prompts_and_answers_and_counts_them_from_the_events(cli: Cli) -> None:
    out, run = _run_demo(cli, "hybrid_llm_demo.py", "--provider", "replay")
    summary = _summary_checked(run)
    events = read_jsonl(run / "events.jsonl")
    assert out.count("prompt and answer") == summary["llm_calls"] > 0
    answers = [e["proposal"] for e in events if e["kind"] == "proposal" and e["proposal"]]
    answers += [e["vote"] for e in events if e["kind"] == "vote" and e["vote"]]
    llm = sum(1 for a in answers if a["via"] == "llm")
    assert f"answers by source: llm {llm}, fallback {summary['fallbacks']}" in out


def test_a_bad_provider_is_a_clear_error_without_traceback(cli: Cli) -> None:
    proc = subprocess.run([sys.executable, str(DEMOS / "hybrid_llm_demo.py"), "--provider", "gpt"], cwd=cli.cwd,
                          env=cli.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert "gpt" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["distributed_agentic_ai_demo.py", "hybrid_llm_demo.py"])
def test_demos_are_short_and_use_only_the_public_api(name: str) -> None:
    source = (DEMOS / name).read_text()
    assert len(source.splitlines()) < 120
    modules = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert {m for m in modules if m and m.startswith("llm_sched")} == {"llm_sched.api"}
