"""``python main.py --experiment`` end to end, as a user runs it (in a temporary folder)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from llm_sched.experiments.output import FILES
from tests.conftest import Cli, CliResult, clean_environ

DEFAULT_RUN = ("--experiment", "--agents", "7", "--byzantine", "2", "--jobs", "5", "--repetitions", "3",
               "--methods", "pbft,tendermint,multi_paxos")


def load(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[CliResult, Path]:
    """The issue's configuration, run once for the tests of this module."""
    root = tmp_path_factory.mktemp("experiment")
    work, home = root / "work", root / "home"
    work.mkdir()
    home.mkdir()
    cli = Cli(cwd=work, home=home, env=clean_environ(home))
    result = cli(*DEFAULT_RUN, "--out", "out")
    return result, work / "out"


def test_exits_0_and_writes_every_file(default_run: tuple[CliResult, Path]) -> None:
    result, out = default_run
    assert result.code == 0, result.text
    for name in FILES:
        assert (out / name).is_file(), name
    assert "results.csv" in result.out and "decisions per method" in result.out
    with (out / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 3 * 5  # method x repetition x job
    assert {r["method"] for r in rows} == {"pbft", "tendermint", "multi_paxos"}
    raw = load(out, "raw_results.json")
    assert [(r["method"], r["repetition"]) for r in raw["runs"]] == [
        (m, rep) for m in ("pbft", "tendermint", "multi_paxos") for rep in range(3)]
    config = load(out, "experiment_config.json")
    assert config["config"]["agents"] == 7 and config["config"]["byzantine"] == 2
    assert all(len(r["byzantine_agents"]) == 2 for r in config["repetitions"])


def test_pbft_and_tendermint_reach_every_decision_with_zero_violations(default_run: tuple[CliResult, Path]) -> None:
    _, out = default_run
    summary = load(out, "experiment_summary.json")["methods"]
    raw = load(out, "raw_results.json")["runs"]
    for method in ("pbft", "tendermint"):
        s = summary[method]
        assert s["decisions_reached"] == s["jobs"] == 15 and s["every_decision_reached"]
        assert s["safety_violations"] == 0
        runs = [r for r in raw if r["method"] == method]
        assert all(not r["violations"] for r in runs)
        assert all(j["outcome"] in ("commit", "reject") for r in runs for j in r["jobs"])
        assert all(len(r["byzantine_agents"]) == 2 for r in runs)
        # every fifth job asks for more than any pool has: the agents agree to reject it
        assert s["agreed_rejects"] == 3 and s["commits"] == 12


def test_summary_marks_multi_paxos_crash_only_and_reports_what_was_measured(
        default_run: tuple[CliResult, Path]) -> None:
    result, out = default_run
    s = load(out, "experiment_summary.json")["methods"]["multi_paxos"]
    assert s["fault_model"] == "crash" and s["tolerates"] == 3
    assert "crash-fault protocol, built for crashes, not lies" in s["note"]
    runs = [r for r in load(out, "raw_results.json")["runs"] if r["method"] == "multi_paxos"]
    jobs = [j for r in runs for j in r["jobs"]]
    undecided = sum(1 for j in jobs if j["outcome"] in ("undecided", "partial"))
    agreement = sum(1 for r in runs for v in r["violations"] if v.startswith("agreement"))
    reached = sum(1 for j in jobs if j["outcome"] in ("commit", "reject"))
    assert s["byzantine"]["undecided_jobs"] == undecided and s["byzantine"]["agreement_violations"] == agreement
    assert f"Against 2 Byzantine agents per run it measured: {reached} of 15 decisions reached" in s["note"]
    assert "crash only" in result.out and "built for crashes, not lies" in result.out.replace("\n", " ")
    aware = load(out, "fault_aware_summary.json")["multi_paxos"]
    assert any("a crash-fault method tolerates none" in p for p in aware["faults"]["beyond_tolerance"])


def test_fault_logs_record_the_byzantine_agents_as_applied(default_run: tuple[CliResult, Path]) -> None:
    _, out = default_run
    logs = load(out, "fault_logs.json")
    for method in ("pbft", "tendermint", "multi_paxos"):
        assert len(logs[method]) == 3
        for rep in logs[method]:
            assert [f["source"] for f in rep["faults"]] == ["byzantine", "byzantine"]
            assert all(f["applied"] is True and f["started_at"] == 0.0 for f in rep["faults"])
    per_type = load(out, "fault_results_per_method.json")
    assert per_type["pbft"]["equivocate"]["scheduled"] == 3 and per_type["pbft"]["equivocate"]["applied"] == 3


def test_same_seed_gives_identical_raw_results_whatever_the_hash_seed(cli: Cli) -> None:
    args = ("--experiment", "--methods", "pbft,tendermint,raft", "--agents", "7", "--byzantine", "1",
            "--crash", "1", "--jobs", "3", "--repetitions", "2", "--intensity", "medium", "--seed", "11")
    outputs = []
    for hash_seed, out in (("1", "a"), ("2", "b")):
        cli.env["PYTHONHASHSEED"] = hash_seed
        result = cli(*args, "--out", out)
        assert result.code == 0, result.text
        outputs.append(cli.cwd / out)
    a, b = outputs
    assert (a / "raw_results.json").read_bytes() == (b / "raw_results.json").read_bytes()
    assert (a / "results.csv").read_bytes() == (b / "results.csv").read_bytes()
    assert (a / "fault_logs.json").read_bytes() == (b / "fault_logs.json").read_bytes()
    timing = load(a, "experiment_summary.json")["timing"]
    assert set(timing) == {"total_wall_s", "runs_wall_s", "llm_latency_wall_s"}
    assert "wall" not in (a / "raw_results.json").read_text()
    # the intensity preset's faults are in the fault log, every one applied
    logs = load(a, "fault_logs.json")
    preset = [f for method in logs.values() for rep in method for f in rep["faults"] if f["source"] == "preset"]
    assert preset and all(f["applied"] is True for f in preset)
    assert all(f["started_at"] is not None for f in preset)
    crashes = [f for rep in logs["raft"] for f in rep["faults"] if f["source"] == "crash"]
    assert len(crashes) == 2 and all(f["applied"] for f in crashes)
    summary = load(a, "experiment_summary.json")["methods"]
    assert summary["pbft"]["faults"]["not_applied"] == [] and summary["raft"]["faults"]["scheduled"] >= 4


def test_llm_mode_without_an_endpoint_falls_back_and_says_0_calls(cli: Cli) -> None:
    result = cli("--experiment", "--agent-mode", "llm", "--methods", "pbft", "--jobs", "2", "--repetitions", "1",
                 "--out", "out")
    assert result.code == 0, result.text
    text = " ".join(result.out.split())
    assert "falls back to its heuristic (0 LLM calls made)" in text
    out = cli.cwd / "out"
    config = load(out, "experiment_config.json")
    assert config["llm"]["used"] is False and all(a["mode"] == "llm" for a in config["agents"])
    s = load(out, "experiment_summary.json")["methods"]["pbft"]
    assert s["llm"]["calls"] == 0 and s["llm"]["tokens_in"] == 0
    assert set(s["llm"]["proposals_via"]) <= {"heuristic", "check"} and s["llm"]["proposals_via"]
    assert any("0 LLM calls" in note for note in load(out, "experiment_summary.json")["notes"])
    assert s["decisions_reached"] == 2


def test_faults_file_from_the_shipped_examples(cli: Cli) -> None:
    plan = Path(__file__).resolve().parents[2] / "scenarios" / "experiments" / "faults" / "partition_heal.yaml"
    result = cli("--experiment", "--methods", "pbft", "--byzantine", "0", "--jobs", "2", "--repetitions", "1",
                 "--faults", str(plan), "--out", "out")
    assert result.code == 0, result.text
    rep = load(cli.cwd / "out", "fault_logs.json")["pbft"][0]
    assert [f["type"] for f in rep["faults"]] == ["drop", "partition"]
    assert all(f["applied"] and f["source"] == "file" for f in rep["faults"])
    assert load(cli.cwd / "out", "experiment_summary.json")["methods"]["pbft"]["safety_violations"] == 0


def test_hybrid_mode_asks_the_model_through_the_structured_output_path(cli: Cli) -> None:
    from tests.fake_model import answer
    from tests.standin import Reply, StandIn, is_readiness_probe

    with StandIn() as server:
        # A deterministic fake answering from the prompt's facts, never badly: one request per call.
        server.default = Reply.dynamic(lambda record: answer(record, faults=False))
        cli.env.update(OLLAMA_HOST=server.url)
        result = cli("--experiment", "--agent-mode", "hybrid", "--methods", "pbft,raft", "--jobs", "3",
                     "--repetitions", "1", "--out", "out")
        chats = [r for r in server.requests if r.path.endswith("/api/chat") and not is_readiness_probe(r.body)]
    assert result.code == 0, result.text
    out = cli.cwd / "out"
    config = load(out, "experiment_config.json")
    assert config["llm"]["used"] is True and config["llm"]["provider"] == "ollama"
    modes = [a["mode"] for a in config["agents"]]
    assert modes.count("llm") == 4 and modes.count("heuristic") == 3  # a seeded half (rounded up)
    summary = load(out, "experiment_summary.json")["methods"]
    calls = sum(s["llm"]["calls"] for s in summary.values())
    assert calls == len(chats) > 0  # every call counted, none invented
    assert all(s["llm"]["tokens_in"] > 0 and s["llm"]["proposals_via"].get("llm") for s in summary.values())
    raw = load(out, "raw_results.json")["runs"]
    assert sum(j["llm_calls"] for r in raw for j in r["jobs"]) == calls
