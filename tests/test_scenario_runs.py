"""Scenario runs from the shipped cassettes: run files, determinism, Byzantine and recovery outcomes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from llm_sched.core.events import read_jsonl
from llm_sched.orchestration.summary import same_run, summarize
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
    assert summary["provider"] == "replay (local cassette)"
    assert summary["llm_calls"] > 0 and summary["committed"] + summary["rejected"] == summary["jobs"] == 4
    assert summary["source"]["kind"] == "replay" and summary["source"]["cassette"]["provider"] == "local"


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
    cli.env.update(SAMBANOVA_API_KEY=key, OPENAI_API_KEY=key, LLM_SCHED_PROVIDER="replay")
    result = cli("--scenario", "healthy")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    for text in (result.text, (run / "events.jsonl").read_text(), (run / "summary.json").read_text()):
        assert key not in text


def test_interactive_output_shows_each_phases_first_decision_whole_then_one_line_per_decision(cli: Cli) -> None:
    result = cli("--interactive", "--scenario", "byzantine")  # not a terminal: it must not wait
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    events = read_jsonl(run / "events.jsonl")
    summary = summarize(events)
    out = result.out
    for phase in ("phase: before the attack", "phase: byzantine", "prompt and answer", "tally:"):
        assert phase in out
    assert "answers: replaying byzantine-local.yaml: recorded" in out  # the replay banner
    phases = [e for e in events if e["kind"] == "phase_started"]
    decisions = _decisions(events)
    # The first decision of each phase in full (a vote table, a COMMIT/REJECT line), the others in one line.
    assert len(re.findall(r"^  [a-z]-\d+ (?:COMMIT|REJECT) ", out, re.M)) == len(decisions) - len(phases)
    assert out.count("  tally: ") >= len(phases)
    assert len(out.splitlines()) < 300
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


def test_verbose_shows_every_decision_whole(cli: Cli) -> None:
    result = cli("--interactive", "--scenario", "healthy", "--verbose")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    events = read_jsonl(run / "events.jsonl")
    assert result.out.count("prompt and answer") == sum(1 for e in events if e["kind"] == "llm_call")
    assert result.out.count("  tally: ") == sum(1 for e in events if e["kind"] == "tally")


def test_record_writes_the_cassette_into_the_run_folder_and_it_replays(cli: Cli, tmp_path: Path) -> None:
    import shutil

    from llm_sched.config import PROJECT_ROOT
    from llm_sched.llm.cassettes import read_info
    from tests.fake_model import answer
    from tests.standin import Reply, StandIn

    scenarios = tmp_path / "scenarios"
    shutil.copytree(PROJECT_ROOT / "scenarios", scenarios, ignore=shutil.ignore_patterns("cassettes"))
    cli.env.update(LLM_SCHED_SCENARIOS_DIR=str(scenarios))
    with StandIn() as server:
        server.default = Reply.dynamic(answer)
        cli.env.update(OLLAMA_HOST=server.url)
        recorded = cli("--scenario", "healthy", "--record")
    assert recorded.code == 0, recorded.text
    (first,) = _run_dirs(cli)
    cassette = first / "healthy-ollama.yaml"  # into the run's folder: nothing shipped is touched
    info = read_info(cassette)
    assert info.provider == "ollama" and info.scenario == "healthy" and info.seed == 11
    assert not (scenarios / "cassettes").exists()
    shutil.copy(cassette, tmp_path / "healthy-ollama.yaml")
    (scenarios / "cassettes").mkdir()
    shutil.copy(cassette, scenarios / "cassettes" / "healthy-ollama.yaml")
    del cli.env["OLLAMA_HOST"]  # the server is gone: only the cassette can answer now
    cli.env.update(LLM_SCHED_REPLAY_PROVIDER="ollama")
    replayed = cli("--scenario", "healthy", "--provider", "replay")
    assert replayed.code == 0, replayed.text
    assert "answers: replaying healthy-ollama.yaml: recorded" in replayed.out
    _, second = _run_dirs(cli)

    def without_source(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        # The provider line and each call record's provider ("ollama" live, "replay" replayed) differ;
        # everything else is the same run.
        text = json.dumps([e for e in events if e["kind"] != "scenario_started"])
        return json.loads(text.replace('"provider": "replay"', '"provider": "ollama"'))

    live, replay = (without_source(read_jsonl(d / "events.jsonl")) for d in (first, second))
    assert same_run(live, replay)


def test_record_refuses_to_overwrite_an_existing_cassette_before_running(cli: Cli, tmp_path: Path) -> None:
    from tests.standin import StandIn

    target = tmp_path / "keep.yaml"
    target.write_text("precious\n")
    with StandIn() as server:
        cli.env.update(OLLAMA_HOST=server.url)
        refused = cli("--scenario", "healthy", "--record", "--record-to", str(target))
        requests = len(server.requests)
    assert refused.code == 2 and "keep.yaml exists" in refused.err and "--force" in refused.err
    assert "Traceback" not in refused.text and target.read_text() == "precious\n"
    assert requests == 0  # refused before a single question was asked
    assert cli("--scenario", "healthy", "--record-to", str(target)).code == 2  # --record-to needs --record


def test_a_seed_the_cassette_was_not_recorded_with_runs_heuristics_or_is_refused_for_explicit_replay(cli: Cli) -> None:
    result = cli("--scenario", "healthy", "--seed", "99")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["provider"].startswith("heuristic (the cassette healthy-local.yaml was recorded with seed 11")
    refused = cli("--scenario", "healthy", "--seed", "99", "--provider", "replay")
    assert refused.code == 2 and "this run uses seed 99" in refused.err and "Traceback" not in refused.text


LLM_KEYS = {"provider", "model", "calls", "valid_first_try", "repaired", "fallbacks", "prompt_tokens",
            "completion_tokens", "agreement_with_heuristic", "decision_latency_s"}


def test_summary_has_the_llm_quality_object_computed_from_the_events(cli: Cli) -> None:
    result = cli("--scenario", "byzantine")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    events = read_jsonl(run / "events.jsonl")
    llm = json.loads((run / "summary.json").read_text())["llm"]
    assert set(llm) == LLM_KEYS
    calls = [e["record"] for e in events if e["kind"] == "llm_call"]
    assert llm["provider"] == "replay" and llm["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert llm["calls"] == len(calls) > 0
    assert llm["valid_first_try"] == sum(1 for c in calls if c["outcome"] == "ok")
    assert llm["repaired"] == sum(1 for c in calls if c["outcome"] == "repaired")
    assert llm["prompt_tokens"] == sum(c["tokens_in"] for c in calls)
    assert llm["completion_tokens"] == sum(c["tokens_out"] for c in calls)
    times = sorted(e["wall_s"] for e in events if e["kind"] == "decision")
    assert times[0] <= llm["decision_latency_s"]["median"] <= llm["decision_latency_s"]["p95"] <= times[-1]
    assert set(llm["decision_latency_s"]) == {"median", "p95"}
    for figure in ("valid first try", "decision latency", "model"):
        assert figure in result.out


def test_a_heuristic_run_reports_no_model_calls_in_its_llm_object(cli: Cli) -> None:
    assert cli("--scenario", "healthy", "--provider", "heuristic").code == 0
    (run,) = _run_dirs(cli)
    llm = json.loads((run / "summary.json").read_text())["llm"]
    assert set(llm) == LLM_KEYS and llm["calls"] == 0 and llm["prompt_tokens"] is None
    assert llm["agreement_with_heuristic"] is None and llm["decision_latency_s"]["median"] is not None


def test_a_byzantine_rewrite_is_tagged_and_never_shown_as_the_models_words(cli: Cli) -> None:
    result = cli("--interactive", "--scenario", "byzantine", "--verbose")
    assert result.code == 0, result.text
    (run,) = _run_dirs(cli)
    events = read_jsonl(run / "events.jsonl")
    faulty = {e["agent"] for e in events if e["kind"] == "fault_changed" and e["active"]}
    sent = [e["proposal"] for e in events if e["kind"] == "proposal" and e["proposal"]]
    rewrites = [p for p in sent if p["byzantine"]]
    assert rewrites and {p["agent"] for p in rewrites} <= faulty
    assert all(not p["byzantine"] for p in sent if p["agent"] not in faulty)
    assert "[byzantine]" in result.out
    assert not re.search(r"storage-agent proposes .*\[llm\]", result.out.split("phase: byzantine")[1])
