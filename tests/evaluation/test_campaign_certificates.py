"""A campaign's agents decide every award through the engine: each award carries a quorum certificate
of Ed25519 signatures, stored with its task in the ledger, and ``--verify`` checks them all offline;
an edited signature, placement, key or a dropped award fails it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llm_sched.cli import main
from llm_sched.evaluation.campaign import CampaignResult, run_campaign
from llm_sched.orchestration.verify import VerifyFailed, verify_run
from llm_sched.protocols.quorum import byzantine_quorum
from tests.evaluation.conftest import tiny_config
from tests.experiments.test_certificates import copy_ledger


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[CampaignResult, Path]:
    root = tmp_path_factory.mktemp("campaign-certified")
    ledger = root / "ledger.db"
    result = run_campaign(tiny_config(), root / "out", workers=1, command="pytest", ledger=ledger)
    return result, ledger


def units(ledger: Path) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(ledger)
    try:
        return {name: json.loads(text) for name, text in conn.execute("SELECT unit, result FROM units")}
    finally:
        conn.close()


def edit_first_unit(ledger: Path, change: Any) -> str:
    conn = sqlite3.connect(ledger)
    try:
        name, text = conn.execute("SELECT unit, result FROM units ORDER BY unit").fetchone()
        unit = json.loads(text)
        change(unit["certificates"])
        conn.execute("UPDATE units SET result = ? WHERE unit = ?", (json.dumps(unit), name))
        conn.commit()
        return str(name)
    finally:
        conn.close()


def test_every_award_of_every_task_carries_a_quorum_certificate(stored: tuple[CampaignResult, Path]) -> None:
    result, ledger = stored
    assert result.run_id is not None
    tasks = units(ledger)
    assert len(tasks) == 4  # 2 configurations x 2 repetitions
    decisions = 0
    for unit in tasks.values():
        packed = unit["certificates"]
        assert len(packed["keys"]) == 5 and len(packed["awards"]) == unit["metrics"]["agents"]["decisions"] > 0
        for _job, _round, pool, nodes, signatures in packed["awards"]:
            assert len(signatures) >= byzantine_quorum(5) and pool == "+".join(n.split(":")[0] for n in nodes)
        decisions += unit["metrics"]["agents"]["decisions"]
    verified = verify_run(ledger, result.run_id)
    assert verified.certificates == decisions
    assert "Byzantine quorum q of the k agents" in verified.describe()


def test_certificates_stay_out_of_results_json(stored: tuple[CampaignResult, Path]) -> None:
    text = (stored[0].folder / "results.json").read_text(encoding="utf-8")
    assert "signature" not in text and "certificates" not in text


@pytest.mark.parametrize("tamper, message", [
    (lambda c: c["awards"][0][4][0].__setitem__(2, "00" * 64), "does not verify"),
    (lambda c: c["awards"][0][3].__setitem__(0, c["awards"][0][3][0].split(":")[0] + ":999"), "does not verify"),
    (lambda c: c["awards"].pop(), "decisions counted but"),
    (lambda c: c["awards"][0].__setitem__(4, c["awards"][0][4][:2]), "fewer than the quorum of 4 of 5"),
    (lambda c: c["keys"][0].__setitem__(2, c["keys"][1][2]), "does not verify"),
])
def test_a_tampered_campaign_fails_verify(stored: tuple[CampaignResult, Path], tmp_path: Path, tamper: Any,
                                          message: str) -> None:
    result, ledger = stored
    assert result.run_id is not None
    copy = copy_ledger(ledger, tmp_path)
    task = edit_first_unit(copy, tamper)
    with pytest.raises(VerifyFailed, match=message) as failed:
        verify_run(copy, result.run_id)
    assert f"task {task}" in str(failed.value)


def test_verify_on_the_command_line_checks_a_campaign(stored: tuple[CampaignResult, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    result, ledger = stored
    assert result.run_id is not None
    monkeypatch.setenv("LLM_SCHED_LEDGER", str(ledger))
    assert main(["--verify", result.run_id]) == 0
    assert "committed placements carry a valid quorum certificate" in capsys.readouterr().out
    copy = copy_ledger(ledger, tmp_path)
    edit_first_unit(copy, lambda c: c["awards"][0][4][0].__setitem__(2, "00" * 64))
    monkeypatch.setenv("LLM_SCHED_LEDGER", str(copy))
    assert main(["--verify", result.run_id]) == 1
    err = capsys.readouterr().err
    assert "does not verify" in err and "Traceback" not in err
