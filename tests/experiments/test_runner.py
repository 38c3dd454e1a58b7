"""The runner in-process: exact normal-case counts, capacity carried between jobs, Byzantine
leaders, crashes, the method registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_sched.agents.heuristics import placement_options
from llm_sched.config import Settings
from llm_sched.core import Job
from llm_sched.experiments.config import load_experiment
from llm_sched.experiments.experiment import ExperimentResult, run_experiment
from llm_sched.experiments.metrics import percentile
from llm_sched.loader import load_yaml
from llm_sched.orchestration.scenarios import ClusterSpec
from llm_sched.protocols.registry import METHODS, OPTIONAL_SKIPPED

CORE = ("pbft", "tendermint", "multi_paxos", "raft")
OPTIONAL = ("weighted", "bidding", "negotiation", "gossip")


def run(tmp_path: Path, path: str | None = None, **overrides: Any) -> ExperimentResult:
    config = load_experiment(path, {"out": str(tmp_path / "out"), **overrides})
    return run_experiment(config, Settings(runs_dir=tmp_path / "runs"))


@pytest.mark.parametrize("n", [4, 7])
def test_normal_case_messages_per_decision_match_the_literature(tmp_path: Path, n: int) -> None:
    result = run(tmp_path, methods=",".join(CORE), agents=n, byzantine=0, jobs=4, repetitions=1)
    expected = {"pbft": 2 * n * (n - 1), "tendermint": (n - 1) * (2 * n + 1), "multi_paxos": 2 * (n - 1),
                "raft": 2 * (n - 1)}
    for method, s in result.summaries.items():
        assert s["messages"]["normal_case_per_decision"] == expected[method] == s["messages"]["reference_per_decision"]
        assert s["safety_violations"] == 0 and s["every_decision_reached"]
        run_ = result.runs[method][0]
        assert run_["decision_messages"] == 4 * expected[method]
        # per job: the kinds whose slot field names the job (Raft's replies name a log index instead)
        per_job = n - 1 if method == "raft" else expected[method]
        assert [j["slot_messages"] for j in run_["jobs"]] == [per_job] * 4
    assert result.summaries["pbft"]["messages"]["per_decision"] == expected["pbft"]  # nothing else is sent


def test_committed_capacity_is_seen_by_later_jobs(tmp_path: Path) -> None:
    cluster = tmp_path / "tiny.yaml"
    cluster.write_text(
        "agents:\n" + "".join(f"  - {{id: a{i}, specialty: compute, pool: cpu}}\n" for i in range(4))
        + "pools:\n  - id: cpu\n    specialty: compute\n"
          "    nodes: {count: 4, prefix: cpu-, per_node: {cores: 128, memory_gb: 256}}\n")
    experiment = tmp_path / "tiny-exp.yaml"
    experiment.write_text(f"cluster: {cluster}\nmethods: [pbft, raft]\nagents: 4\nbyzantine: 0\njobs: 6\n"
                          "oversized_every: 0\nrepetitions: 1\n")
    result = run(tmp_path, str(experiment))
    empty = ClusterSpec.model_validate(load_yaml(cluster, "cluster")).build_state(0)
    jobs = {j.id: j for j in result_jobs(result)}
    for method in ("pbft", "raft"):
        s = result.summaries[method]
        assert s["safety_violations"] == 0 and s["every_decision_reached"]
        records = result.runs[method][0]["jobs"]
        assert any(r["outcome"] == "commit" for r in records)
        # a job the empty cluster could take is rejected because an earlier commit reserved the capacity
        squeezed = [r for r in records if r["outcome"] == "reject"
                    and placement_options(empty, jobs[r["job_id"]], "general", {}, limit=1)]
        assert squeezed and all(not r["reject_while_feasible"] for r in records)


def result_jobs(result: ExperimentResult) -> list[Job]:
    from llm_sched.experiments.jobs import make_jobs

    config = load_experiment(str(result.folder.parent / "tiny-exp.yaml"))
    cluster = ClusterSpec.model_validate(load_yaml(Path(config.cluster or ""), "cluster"))
    return make_jobs(config.jobs, config.seed, config.oversized_every, cluster.build_state(config.seed))


def test_byzantine_primary_cannot_push_a_lie_through_pbft(tmp_path: Path) -> None:
    plan = tmp_path / "primary-lies.yaml"
    plan.write_text("faults:\n  - {type: alter, targets: [0], start: 0}\n")  # agent 0 leads view 0
    result = run(tmp_path, methods="pbft,tendermint,multi_paxos", agents=4, byzantine=0, jobs=3, repetitions=1,
                 faults=str(plan))
    for method in ("pbft", "tendermint"):
        s = result.summaries[method]
        assert s["safety_violations"] == 0 and s["every_decision_reached"], s["violation_examples"]
        assert s["byzantine"]["infeasible_decisions"] == 0
    pbft_jobs = result.runs["pbft"][0]["jobs"]
    assert max(j["view"] for j in pbft_jobs) >= 1  # the lying primary was replaced by a view change
    # a lie that passes the check (another feasible placement) may be decided; one that fails it never is
    assert all(j["outcome"] in ("commit", "reject", "refused") for j in pbft_jobs)
    # Multi-Paxos checks nothing: whatever happened is reported, not assumed
    mp = result.summaries["multi_paxos"]
    assert mp["fault_model"] == "crash" and "built for crashes, not lies" in mp["note"]
    assert mp["faults"]["beyond_tolerance"] == ["Byzantine faults on agents [0]; a crash-fault method tolerates none"]


def test_crashes_within_tolerance_lose_no_decision(tmp_path: Path) -> None:
    result = run(tmp_path, methods="raft,multi_paxos,pbft", agents=5, byzantine=0, crash=1, jobs=3, repetitions=2)
    for method, s in result.summaries.items():
        assert s["safety_violations"] == 0 and s["every_decision_reached"], (method, s["violation_examples"])
        assert s["faults"]["scheduled"] == s["faults"]["applied"] == 2


def test_registry_offers_the_optional_methods_that_import() -> None:
    for name in CORE:
        assert name in METHODS
    for name in OPTIONAL:
        assert (name in METHODS) != (name in OPTIONAL_SKIPPED)


@pytest.mark.parametrize("name", OPTIONAL)
def test_optional_methods_run_through_the_same_runner(tmp_path: Path, name: str) -> None:
    if name not in METHODS:
        pytest.skip(f"{name} not available: {OPTIONAL_SKIPPED.get(name)}")
    method = METHODS[name]
    result = run(tmp_path, methods=name, agents=4, byzantine=0, jobs=3, repetitions=1)
    s = result.summaries[name]
    assert s["safety_violations"] == 0 and s["every_decision_reached"]
    assert method.normal_case is not None and s["messages"]["reference_per_decision"] == method.normal_case(4)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(x) for x in range(1, 101)], 99) == pytest.approx(99.01)


def test_an_optional_method_whose_module_failed_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_sched.errors import UserError
    from llm_sched.protocols import registry as methods

    monkeypatch.setitem(methods.OPTIONAL_SKIPPED, "hotstuff", "ModuleNotFoundError: No module named 'x'")
    with pytest.raises(UserError, match="'hotstuff' is not available: its module did not import"):
        methods.get_method("hotstuff")
