"""Experiment runs commit only certified placements: every agent signs each placement its core decides
(Ed25519, fresh keys per unit), a job commits only when a quorum signed the decided value, and
``--verify`` checks every stored unit offline; an edited signature, placement or certificate fails."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llm_sched.config import Settings
from llm_sched.experiments.config import load_experiment
from llm_sched.experiments.experiment import ExperimentResult, run_experiment
from llm_sched.orchestration.verify import VerifyFailed, verify_run

ALL = "pbft,tendermint,multi_paxos,raft,weighted,bidding,negotiation,gossip"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExperimentResult, Path]:
    root = tmp_path_factory.mktemp("certified")
    config = load_experiment(None, {"out": str(root / "out"), "methods": ALL, "agents": 7, "byzantine": 1,
                                    "crash": 1, "jobs": 5, "repetitions": 2, "intensity": "heavy"})
    ledger = root / "ledger.db"
    return run_experiment(config, Settings(runs_dir=root / "runs"), ledger=ledger), ledger


def copy_ledger(ledger: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ledger.db"
    source = sqlite3.connect(ledger)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
    finally:
        source.close()
        dest.close()
    return target


def edit_unit(ledger: Path, change: Any) -> str:
    """Apply ``change(unit)`` to the first unit with a commit; returns its name."""
    conn = sqlite3.connect(ledger)
    try:
        for name, text in conn.execute("SELECT unit, result FROM units ORDER BY unit").fetchall():
            unit = json.loads(text)
            if any(j["outcome"] == "commit" for j in json.loads(unit["record"])["jobs"]):
                change(unit)
                conn.execute("UPDATE units SET result = ? WHERE unit = ?", (json.dumps(unit), name))
                conn.commit()
                return name
    finally:
        conn.close()
    raise AssertionError("no unit with a commit")


def first_commit(unit: dict[str, Any]) -> dict[str, Any]:
    return next(j for j in json.loads(unit["record"])["jobs"] if j["outcome"] == "commit")


def test_every_commit_of_every_method_carries_a_certificate_that_verifies(
        stored: tuple[ExperimentResult, Path]) -> None:
    result, ledger = stored
    commits = sum(1 for runs in result.runs.values() for r in runs for j in r["jobs"] if j["outcome"] == "commit")
    assert commits > 0 and set(result.runs) == set(ALL.split(","))
    assert result.run_id is not None
    verified = verify_run(ledger, result.run_id)
    assert verified.certificates == commits
    assert "16 units" in verified.keys
    # Nothing signed goes into raw_results.json: the same seed gives the same bytes.
    assert "signature" not in (result.folder / "raw_results.json").read_text()


def test_an_edited_signature_fails(stored: tuple[ExperimentResult, Path], tmp_path: Path) -> None:
    result, ledger = stored
    ledger = copy_ledger(ledger, tmp_path)

    def flip(unit: dict[str, Any]) -> None:
        certs = json.loads(unit["certificates"])
        job = first_commit(unit)["job_id"]
        sig = certs["jobs"][job]["signatures"][0]
        sig["signature"] = ("0" if sig["signature"][0] != "0" else "1") + sig["signature"][1:]
        unit["certificates"] = json.dumps(certs)

    name = edit_unit(ledger, flip)
    assert result.run_id is not None
    with pytest.raises(VerifyFailed, match=f"unit {name}, job .*: the signature of .* does not verify"):
        verify_run(ledger, result.run_id)


def test_a_placement_edited_in_the_record_fails(stored: tuple[ExperimentResult, Path], tmp_path: Path) -> None:
    result, ledger = stored
    ledger = copy_ledger(ledger, tmp_path)

    def move(unit: dict[str, Any]) -> None:
        record = json.loads(unit["record"])
        job = next(j for j in record["jobs"] if j["outcome"] == "commit")
        job["placement"]["nodes"] = list(reversed(job["placement"]["nodes"])) + ["extra-node"]
        unit["record"] = json.dumps(record)

    edit_unit(ledger, move)
    assert result.run_id is not None
    with pytest.raises(VerifyFailed, match="the certificate is for another placement"):
        verify_run(ledger, result.run_id)


def test_a_removed_certificate_or_missing_keys_fail(stored: tuple[ExperimentResult, Path], tmp_path: Path) -> None:
    result, ledger = stored
    assert result.run_id is not None
    first = copy_ledger(ledger, tmp_path)

    def drop(unit: dict[str, Any]) -> None:
        certs = json.loads(unit["certificates"])
        del certs["jobs"][first_commit(unit)["job_id"]]
        unit["certificates"] = json.dumps(certs)

    edit_unit(first, drop)
    with pytest.raises(VerifyFailed, match="no quorum certificate"):
        verify_run(first, result.run_id)
    (tmp_path / "second").mkdir()
    second = copy_ledger(ledger, tmp_path / "second")
    edit_unit(second, lambda unit: unit.pop("certificates"))
    with pytest.raises(VerifyFailed, match="no certificates stored"):
        verify_run(second, result.run_id)


def test_agent_behaviours_run_as_their_protocol_form_in_experiments() -> None:
    # One catalogue: the agents' behaviour names are accepted and run as the harness's wrappers.
    config = load_experiment(None, {"byzantine_behaviours": "vote_flipping,forge,invalid_nodes,silent"})
    assert config.byzantine_behaviours == ("vote-against", "forge", "alter", "silent")
