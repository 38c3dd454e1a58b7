"""``python main.py --peers``: the peer comparison from the command line, and its shipped cassettes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from llm_sched.agents.pool_adviser import pool_adviser
from llm_sched.cli.peers import BUDGET, CASSETTES
from llm_sched.config import PROJECT_ROOT, load_settings
from llm_sched.evaluation.peer_comparison import PolicyEntry, peer_comparison
from tests.conftest import Cli


def test_peers_without_a_model_runs_every_policy_and_says_the_model_agents_did_not_run(cli: Cli) -> None:
    result = cli("--peers", "--provider", "heuristic", "--repetitions", "1", "--jobs", "6", "--out", "peers",
                 timeout=120)
    assert result.code == 0, result.err
    out = cli.cwd / "peers"
    with (out / "peer_comparison.csv").open(newline="", encoding="utf-8") as handle:
        policies = {row["policy"] for row in csv.DictReader(handle)}
    assert {"fcfs", "sjf", "easy", "conservative", "agents"} <= policies
    assert "not run (--provider heuristic)" in (out / "source.txt").read_text(encoding="utf-8")
    assert f"report: {Path('peers') / 'peer_comparison.md'}" in result.out


@pytest.mark.parametrize(("args", "message"), [
    (("--peers", "--record"), "--record needs a live model"),
    (("--budget", "3", "--scenario", "healthy"), "--budget does not go with --scenario"),
    (("--peers", "--budget", "-1"), "--budget"),
])
def test_peers_refuses_what_it_cannot_do_with_one_line(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("mode", ["llm", "hybrid"])
def test_the_shipped_cassettes_replay_the_model_agents_offline(tmp_path: Path, mode: str) -> None:
    cassette = PROJECT_ROOT / CASSETTES / f"peers_{mode}-local.yaml"
    entry = PolicyEntry(f"agents ({mode})", "agents", (("advice", mode),))
    with pool_adviser(mode, BUDGET, settings=load_settings({}, environ={}), cassette=cassette) as adviser:
        assert adviser.source is not None and "SmolLM2-135M" in adviser.source.detail
        result = peer_comparison(tmp_path, [entry], seeds=(1,), kinds=("bursty", "adversarial"), optimum=False,
                                 advisers={mode: adviser})
    rows = result.rows
    assert all(r.completed == 50 for r in rows)
    assert all(0 < r.llm_calls <= BUDGET and r.llm_choices + r.llm_fallbacks <= 50 for r in rows)
    assert "model chose" in result.md_path.read_text(encoding="utf-8")


def test_peers_with_an_unreachable_model_stops_with_one_line_and_no_scenario_only_advice(cli: Cli) -> None:
    from tests.test_unreachable_provider import closed_port

    cli.env.update(OLLAMA_HOST=f"http://127.0.0.1:{closed_port()}", OLLAMA_MODEL="llama3.1:8b", LLM_SCHED_TIMEOUT="2")
    result = cli("--peers", "--provider", "ollama", "--out", "peers", timeout=120)
    assert result.code == 2 and "Traceback" not in result.err
    (line,) = result.err.strip().splitlines()
    assert "the ollama provider cannot be reached" in line and "--allow-fallback" not in line
    assert not (cli.cwd / "peers" / "peer_comparison.csv").exists()
