"""``--verify RUN_ID`` checks every commit of a stored run against its quorum certificate, offline, and
exits 1 naming the first that fails: an edited placement, signature, certificate or key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from llm_sched.cli import main
from llm_sched.orchestration.runner import resume_scenario
from tests.store.faults import Place


def verify(capsys: pytest.CaptureFixture[str], run_id: str) -> tuple[int, str]:
    code = main(["--verify", run_id])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out + captured.err


def edit(ledger: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(ledger)
    try:
        assert conn.execute(sql, params).rowcount >= 1
        conn.commit()
    finally:
        conn.close()


def first_certificate(ledger: Path, run_id: str) -> tuple[str, dict]:
    conn = sqlite3.connect(ledger)
    try:
        job, body = conn.execute("SELECT c.job_id, c.body FROM certificates c JOIN decisions d USING (run_id, job_id) "
                                 "WHERE c.run_id = ? ORDER BY d.seq LIMIT 1", (run_id,)).fetchone()
    finally:
        conn.close()
    return job, json.loads(body)


@pytest.mark.parametrize("scenario", ["healthy", "byzantine", "recovery", "supercomputers"])
def test_every_commit_of_a_stored_run_verifies(place: Place, capsys: pytest.CaptureFixture[str],
                                               scenario: str) -> None:
    run_id = place.run(scenario)
    code, out = verify(capsys, run_id)
    committed = _decisions(place, run_id).count("commit")
    assert code == 0, out
    assert f"{committed} of {committed} committed placements carry a valid quorum certificate" in out
    assert ("reputation-weighted" in out) == (scenario == "supercomputers")
    assert "public keys: sha256 " in out


def _decisions(place: Place, run_id: str) -> list[str]:
    conn = sqlite3.connect(place.ledger)
    try:
        return [r[0] for r in conn.execute("SELECT outcome FROM decisions WHERE run_id = ?", (run_id,))]
    finally:
        conn.close()


def test_an_altered_signature_fails_naming_the_job_and_the_agent(place: Place,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run("healthy")
    job, cert = first_certificate(place.ledger, run_id)
    sig = cert["signatures"][1]
    sig["signature"] = sig["signature"][:-2] + ("00" if not sig["signature"].endswith("00") else "11")
    edit(place.ledger, "UPDATE certificates SET body = ? WHERE run_id = ? AND job_id = ?",
         json.dumps(cert), run_id, job)
    code, out = verify(capsys, run_id)
    assert code == 1
    assert f"job {job} (decision 1): the signature of {sig['agent']} does not verify" in out


def test_a_placement_rewritten_consistently_everywhere_but_the_signatures_fails(
        place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    """The ledger's own damage check passes (content and rows agree); only the certificate catches it."""
    run_id = place.run("healthy")
    job, _ = first_certificate(place.ledger, run_id)
    conn = sqlite3.connect(place.ledger)
    (content,) = conn.execute("SELECT content FROM decisions WHERE run_id = ? AND job_id = ?", (run_id, job)).fetchone()
    conn.close()
    body = json.loads(content)
    old, body["nodes"][0] = body["nodes"][0], body["nodes"][0] + "x"
    edit(place.ledger, "UPDATE decisions SET content = ? WHERE run_id = ? AND job_id = ?",
         json.dumps(body, sort_keys=True), run_id, job)
    edit(place.ledger, "UPDATE placements SET node = ? WHERE run_id = ? AND job_id = ? AND node = ?",
         old + "x", run_id, job, old)
    assert main(["--show", run_id]) == 0  # nothing looks damaged
    capsys.readouterr()
    code, out = verify(capsys, run_id)
    assert code == 1 and f"job {job} (decision 1): the certificate is for another placement" in out


def test_a_removed_certificate_a_dropped_signature_or_a_replaced_key_fails(
        place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run("healthy")
    job, cert = first_certificate(place.ledger, run_id)
    short = dict(cert, signatures=cert["signatures"][:3])  # 3 of 5: below the quorum of 4
    edit(place.ledger, "UPDATE certificates SET body = ? WHERE run_id = ? AND job_id = ?", json.dumps(short), run_id, job)
    code, out = verify(capsys, run_id)
    assert code == 1 and "3 valid signatures, fewer than the quorum of 4 of 5" in out
    edit(place.ledger, "DELETE FROM certificates WHERE run_id = ? AND job_id = ?", run_id, job)
    code, out = verify(capsys, run_id)
    assert code == 1 and f"job {job} (decision 1): no quorum certificate" in out

    other = place.run("healthy")
    agent = cert["signatures"][0]["agent"]
    edit(place.ledger, "UPDATE vote_keys SET public_key = (SELECT public_key FROM vote_keys WHERE run_id = ? "
         "AND agent = ?) WHERE run_id = ? AND agent = ?", run_id, agent, other, agent)
    code, out = verify(capsys, other)
    assert code == 1 and f"the signature of {agent} does not verify" in out


def test_edited_weights_of_a_weighted_run_fail(place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run("supercomputers")
    job, cert = first_certificate(place.ledger, run_id)
    cert["weights"][cert["signatures"][0]["agent"]] = 0.5  # a weight the reputation trail never gave
    edit(place.ledger, "UPDATE certificates SET body = ? WHERE run_id = ? AND job_id = ?", json.dumps(cert), run_id, job)
    code, out = verify(capsys, run_id)
    assert code == 1 and "weights are not the reputations the ledger's trail of changes gives" in out


def test_a_resumed_run_signs_with_new_keys_and_every_certificate_still_verifies(
        place: Place, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run_until(monkeypatch, "b-04", step="_tally")  # dies between the votes and the tally
    resume_scenario(run_id, place.settings(), place.loader())
    code, out = verify(capsys, run_id)
    assert code == 0, out
    assert "key epochs 1, 2" in out


def test_runs_with_nothing_to_verify_say_why(place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run("healthy")
    edit(place.ledger, "DELETE FROM vote_keys WHERE run_id = ?", run_id)
    code, out = verify(capsys, run_id)
    assert code == 1 and "no public keys stored: it was made before votes were signed" in out
    code, out = verify(capsys, "no-such-run")
    assert code == 2 and "no run no-such-run in the ledger" in out
    code, out = verify(capsys, "../etc")
    assert code == 2 and "run" in out
