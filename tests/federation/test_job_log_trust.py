"""Anyone who may publish on the bus can append to the job log. Every member reads the same bytes and
the same genesis, so every member refuses the same entries: what is neither a job nor a report
signed by the executor's key is decided as a refused entry that changes nothing, and a signed report
published again changes nothing either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from llm_sched.core.model import Pool
from llm_sched.errors import UserError
from llm_sched.federation.execution import ExecutionPlan, Report, ReportKey, sign_report
from llm_sched.federation.keys import executor_key_path, init_keys, load_executor_key, read_genesis
from llm_sched.federation.replica import JobLog, LoggedJob, logged_entry, refused_entry
from llm_sched.protocols.messages import PlacementBatch, PlacementValue
from tests.federation.test_replica import _decide, executed, seven, snapshot, spec

KEY = Ed25519PrivateKey.generate()
TRUST = ReportKey("seven", KEY.public_key())


def _entry(report: Report, signature: str | None = None, arrival: float = 5.0) -> bytes:
    body = {"report": report.model_dump(), "arrival": arrival, "submitted": 0.0}
    if signature is not None:
        body["signature"] = signature
    return json.dumps(body).encode()


def test_a_report_signed_by_the_executor_is_taken() -> None:
    report = Report(ended="j1", state="completed", number=1)
    logged = logged_entry(3, _entry(report, sign_report(report, "seven", KEY)), TRUST)
    assert logged.report == report and logged.arrival == 5.0 and not logged.refused


@pytest.mark.parametrize(("data", "why"), [
    (b"\xff\x00 not json", "neither a job nor a report (not JSON (UnicodeDecodeError))"),
    (b"{not json", "neither a job nor a report (not JSON (JSONDecodeError))"),
    (b"[" * 100_000 + b"]" * 100_000, "neither a job nor a report (not JSON (RecursionError))"),
    (b"[1, 2]", "neither a job nor a report (TypeError)"),
    (b'{"job": {"id": "x"}, "arrival": 1}', "neither a job nor a report (ValidationError)"),
    (b'{"job": {}, "arrival": "NaN"}', "neither a job nor a report (ValueError)"),
    (b'{"report": {"ended": "j1", "state": "lost", "number": 1}}', "neither a job nor a report (KeyError)"),
    (_entry(Report(ended="j1", state="lost", number=1)), "a report without the executor's valid signature"),
    (_entry(Report(ended="j1", state="lost", number=1), "ab" * 64), "a report without the executor's valid signature"),
], ids=["bytes", "not json", "nested too deep", "a list", "a bad job", "nan arrival", "no arrival", "unsigned report", "bad signature"])
def test_what_is_neither_a_job_nor_a_signed_report_is_refused(data: bytes, why: str) -> None:
    logged = logged_entry(7, data, TRUST)
    assert logged.refused == why and logged.entry_id == "!refused:7"
    assert logged.spec is None and logged.report is None


def test_a_report_signed_by_another_key_or_for_another_federation_is_refused() -> None:
    report = Report(node="gpu-node-1", down=True, number=4)
    other = sign_report(report, "seven", Ed25519PrivateKey.generate())
    elsewhere = sign_report(report, "another", KEY)
    for signature in (other, elsewhere):
        assert logged_entry(1, _entry(report, signature), TRUST).refused
    # A federation that runs on no executor takes no report at all.
    assert "runs on no executor" in logged_entry(1, _entry(report, sign_report(report, "seven", KEY)), None).refused


def test_a_changed_report_no_longer_checks() -> None:
    report = Report(ended="j1", state="completed", number=2)
    signature = sign_report(report, "seven", KEY)
    lost = report.model_copy(update={"state": "lost"})
    assert logged_entry(1, _entry(lost, signature), TRUST).refused


def test_a_refused_entry_is_decided_as_nothing_and_only_so() -> None:
    r = executed()
    _decide(r, [LoggedJob(1, spec("first"), 0.0)])
    junk = logged_entry(2, b"garbage", TRUST)
    before = snapshot(r)
    batch = r.propose([junk])
    assert batch.entries == (refused_entry(junk),) and batch.entries[0].placement is None
    placed = PlacementBatch(2, (PlacementValue(junk.entry_id, (sorted(r.state.nodes)[0],), "placed"),))
    assert not r.validate(placed, [junk])  # a placement for it is refused
    _decide(r, [junk])
    assert "first" in r.state.running and r.applied == 2
    assert snapshot(r)[1:] == before[1:]  # the same cluster: only the position moved on


def _job(job_id: str, arrival: float, **need: object) -> bytes:
    return json.dumps({"job": spec(job_id, **need).model_dump(), "arrival": arrival, "submitted": 0.0}).encode()


def test_a_second_job_under_an_id_already_in_the_log_is_refused_and_changes_nothing() -> None:
    # The same file submitted again after the bus's duplicate window, or anyone on the bus. Before,
    # the second decision under the id ended every member's ledger writer (one decision per id), and
    # its reservation hid the first job's, whose nodes were then never given back.
    log = JobLog(TRUST)
    first, second = log.entry(1, _job("j1", 0.0)), log.entry(2, _job("j1", 1.0, nodes=2))
    assert first.spec is not None and first.spec.id == "j1" and not first.refused
    assert second.refused == "job j1 is already at position 1 of the job log" and second.entry_id == "!refused:2"
    assert log.entry(3, _job("j2", 2.0)).spec is not None  # other ids go on as ever
    r = executed()
    _decide(r, [first])
    before = snapshot(r)
    batch = _decide(r, [second])
    assert batch.entries == (refused_entry(second),) and r.applied == 2
    assert snapshot(r)[1:] == before[1:]  # the first j1 still holds its nodes, and only they


def test_every_later_entry_under_a_taken_id_is_refused_and_junk_takes_no_id() -> None:
    entries = [_job("a", 0.0), b"junk", _job("b", 1.0), _job("a", 2.0), _job("b", 3.0), _job("c", 4.0)]
    log = JobLog(TRUST)
    seen = [log.entry(p, d).entry_id for p, d in enumerate(entries, 1)]
    assert seen == ["a", "!refused:2", "b", "!refused:4", "!refused:5", "c"]
    assert log.entry(4, entries[3]).refused == "job a is already at position 1 of the job log"


def test_a_signed_report_published_again_changes_nothing() -> None:
    r = executed()
    node = sorted(r.state.nodes)[0]
    down, up = Report(node=node, down=True, number=1), Report(node=node, down=False, number=2)
    _decide(r, [LoggedJob(1, None, 0.0, down)])
    _decide(r, [LoggedJob(2, None, 0.0, up)])
    assert node not in r.state.down
    _decide(r, [LoggedJob(3, None, 0.0, down)])  # the first report again, still validly signed
    assert node not in r.state.down and r.last_report == 2


def test_the_genesis_names_the_executors_key_and_the_executor_holds_it(tmp_path: Path) -> None:
    fed = seven()
    plan = ExecutionPlan(executor="local", time_scale=0.001, pools=[Pool.model_validate(
        {"id": "p", "specialty": "general", "nodes": [{"id": "n1", "capacity": {"cores": 4, "memory_gb": 8}}]})])
    genesis = init_keys(fed, tmp_path, plan)
    assert genesis.reports is not None and executor_key_path(tmp_path).stat().st_mode & 0o777 == 0o600
    report = Report(ended="j1", state="completed", number=1)
    signature = sign_report(report, fed.name, load_executor_key(tmp_path))
    assert read_genesis(fed, tmp_path).reports.signed(report, signature)  # type: ignore[union-attr]
    assert init_keys(fed, tmp_path, plan).executor_key is not None  # a restart keeps it
    executor_key_path(tmp_path).unlink()
    with pytest.raises(UserError, match="executor/key.pem is missing"):
        init_keys(fed, tmp_path, plan)
