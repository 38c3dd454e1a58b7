"""Scenario runs from the shipped cassettes: run files, determinism, Byzantine and recovery outcomes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from llm_sched.events import read_jsonl
from llm_sched.summary import same_run, summarize
from tests.conftest import Cli


def _run_dirs(cli: Cli) -> list[Path]:
    return sorted(p for p in (cli.cwd / "runs").iterdir() if p.is_dir())  # the ledger lives there too


def _decisions(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [e["decision"] for e in events if e["kind"] == "decision"]


def test_a_run_writes_events_and_a_summary_computed_from_them(cli: Cli) -> None:
    result = cli("--scenario", "healthy")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    assert run.name.endswith("-healthy")
    events = read_jsonl(run / "events.jsonl")
    summary = json.loads((run / "summary.json").read_text())
    assert summary == summarize(events)
    assert summary["provider"] == "replay (ollama cassette)"
    assert summary["llm_calls"] > 0 and summary["committed"] == summary["jobs"] == 4
    assert summary["unanimous"] == 4


def test_same_seed_and_cassette_give_the_same_events(cli: Cli) -> None:
    assert cli("--scenario", "healthy").code == 0
    assert cli("--scenario", "healthy", "--provider", "replay").code == 0
    first, second = _run_dirs(cli)
    assert same_run(read_jsonl(first / "events.jsonl"), read_jsonl(second / "events.jsonl"))


def test_heuristic_runs_are_deterministic_for_a_seed_and_differ_across_seeds(cli: Cli) -> None:
    for seed in ("5", "5", "6"):
        assert cli("--scenario", "byzantine", "--provider", "heuristic", "--seed", seed).code == 0
    a, b, c = (read_jsonl(d / "events.jsonl") for d in _run_dirs(cli))
    assert same_run(a, b)
    assert not same_run(a, c)


def test_byzantine_blocks_the_liars_proposals_detects_it_and_decides_every_job(cli: Cli) -> None:
    assert cli("--scenario", "byzantine").code == 0
    (run,) = _run_dirs(cli)
    events = read_jsonl(run / "events.jsonl")
    blocked = [e for e in events if e["kind"] == "proposal_blocked"]
    assert blocked and {e["proposer"] for e in blocked} == {"storage-agent"}
    detected = [e for e in events if e["kind"] == "agent_excluded"]
    assert [e["agent"] for e in detected] == ["storage-agent"]
    jobs = [e["job"]["id"] for e in events if e["kind"] == "job_submitted"]
    decisions = _decisions(events)
    assert [d["job_id"] for d in decisions] == jobs
    for d in decisions:
        assert d["outcome"] == "commit" or d["reason"]
        if d["outcome"] == "commit":
            assert not any(n.startswith("ghost") for n in d["placement"]["nodes"])
    assert any(d["outcome"] == "reject" and d["reason"].startswith("no pool can fit 16 nodes") for d in decisions)


def test_recovery_restores_reputation_and_unanimity(cli: Cli) -> None:
    assert cli("--scenario", "recovery").code == 0
    (run,) = _run_dirs(cli)
    events = read_jsonl(run / "events.jsonl")
    phase_at = [i for i, e in enumerate(events) if e["kind"] == "phase_started" and e["phase"] == "recovery"][0]
    after = events[phase_at:]
    assert any(e["kind"] == "agent_readmitted" and e["agent"] == "storage-agent" for e in after)
    last_decisions = [e for e in after if e["kind"] == "decision"][-3:]
    assert all(e["unanimous"] for e in last_decisions)


def test_no_secret_reaches_output_or_run_files(cli: Cli) -> None:
    key = "sk-never-print-this-0123456789"
    cli.env.update(SAMBANOVA_API_KEY=key, LLM_SCHED_PROVIDER="replay", LLM_SCHED_REPLAY_PROVIDER="sambanova")
    result = cli("--scenario", "healthy")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    for text in (result.text, (run / "events.jsonl").read_text(), (run / "summary.json").read_text()):
        assert key not in text


def test_interactive_output_shows_sections_votes_and_a_summary_matching_the_events(cli: Cli) -> None:
    result = cli("--interactive", "--scenario", "byzantine")  # not a terminal: it must not wait
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    events = read_jsonl(run / "events.jsonl")
    summary = summarize(events)
    out = result.out
    for phase in ("phase: before the attack", "phase: byzantine", "prompt and answer", "tally:"):
        assert phase in out
    votes = [e for e in events if e["kind"] == "vote"]
    assert len(re.findall(r"^ \S+-agent +(?:accept|reject|silent) ", out, re.M)) == len(votes)
    assert out.count("blocked: storage-agent's proposal is infeasible") == summary["invalid_proposals_blocked"]
    figures = {
        "decisions committed": summary["committed"],
        "decisions rejected (agreed, with reason)": summary["rejected"],
        "invalid proposals blocked": summary["invalid_proposals_blocked"],
        "unanimous decisions": summary["unanimous"],
        "fallbacks to heuristics": summary["fallbacks"],
    }
    for name, value in figures.items():
        assert re.search(rf"{re.escape(name)}\s+│ {value}\s", out), name
    assert f"LLM calls                                │ {summary['llm_calls']} (" in out
    assert "storage-agent at " + summary["faulty_agents_detected"][0]["job_id"] in out


def test_record_writes_the_scenarios_cassette_and_it_replays(cli: Cli, tmp_path: Path) -> None:
    import shutil

    from llm_sched.config import PROJECT_ROOT
    from llm_sched.llm.cassettes import read_metadata
    from tests.cassette_recorder import answer
    from tests.standin import Reply, StandIn

    scenarios = tmp_path / "scenarios"
    shutil.copytree(PROJECT_ROOT / "scenarios", scenarios, ignore=shutil.ignore_patterns("cassettes"))
    cli.env.update(LLM_SCHED_SCENARIOS_DIR=str(scenarios))
    with StandIn() as server:
        server.default = Reply.dynamic(answer)
        cli.env.update(OLLAMA_HOST=server.url)
        recorded = cli("--scenario", "healthy", "--record")
    assert recorded.code == 0, recorded.text
    cassette = scenarios / "cassettes" / "healthy-ollama.yaml"
    assert read_metadata(cassette)["how"] == "live endpoint" and read_metadata(cassette)["scenario"] == "healthy"
    del cli.env["OLLAMA_HOST"]  # the server is gone: only the cassette can answer now
    replayed = cli("--scenario", "healthy", "--provider", "replay")
    assert replayed.code == 0, replayed.text
    first, second = _run_dirs(cli)
    # Everything but the provider line ("ollama" vs "replay (ollama cassette)") is the same run.
    live = [e for e in read_jsonl(first / "events.jsonl") if e["kind"] != "scenario_started"]
    replay = [e for e in read_jsonl(second / "events.jsonl") if e["kind"] != "scenario_started"]
    assert same_run(live, replay)


def test_a_seed_the_cassette_was_not_recorded_with_runs_heuristics_or_is_refused_for_explicit_replay(cli: Cli) -> None:
    result = cli("--scenario", "healthy", "--seed", "99")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["provider"].startswith("heuristic (the cassette healthy-ollama.yaml was recorded with seed 11")
    refused = cli("--scenario", "healthy", "--seed", "99", "--provider", "replay")
    assert refused.code == 2 and "this run uses seed 99" in refused.err and "Traceback" not in refused.text
