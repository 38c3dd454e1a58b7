"""The ledger: idempotent decisions, fencing, and every kind of bad state with a clear message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llm_sched.core.events import EventLogError, JsonlSink, PhaseStarted, read_jsonl
from llm_sched.store.ledger import SCHEMA_VERSION, DecisionRecord, Ledger, ReputationRow, StoreError, VoteRow


def decision(job: str, seq: int, pool: str = "gpu-pool", reason: str = "best fit") -> DecisionRecord:
    return DecisionRecord(
        job_id=job, seq=seq, outcome="commit", pool=pool, nodes=("gpu-01", "gpu-02"), proposer="gpu-agent",
        reason=reason, rounds=1, accepts=4, voters=5, job_spec={"id": job, "nodes": 2}, submitted_at=float(seq),
        votes=(VoteRow("gpu-agent", "accept", "fits", "heuristic"), VoteRow("cpu-agent", "reject", "busy", "llm")),
        reputation_changes=(ReputationRow("cpu-agent", 1.0, 0.9, "no vote in time"),),
        resume={"events_offset": 100 * seq, "events_seq": seq},
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger.open(tmp_path / "runs" / "llm_sched.db") as opened:
        opened.create_run("r1", "scenario", "healthy", "heuristic", 42, {"scenario": "healthy"})
        yield opened


def test_a_decision_is_recorded_once_with_its_votes_placement_and_reputation_changes(ledger: Ledger) -> None:
    assert ledger.record_decision("r1", 1, decision("j1", 0)) is True
    assert ledger.record_decision("r1", 1, decision("j1", 0)) is False  # a replay after a crash: no second row
    (stored,) = ledger.decisions("r1")
    assert (stored.job_id, stored.nodes, stored.proposer) == ("j1", ("gpu-01", "gpu-02"), "gpu-agent")
    assert [v.vote for v in stored.votes] == ["reject", "accept"]  # by agent: cpu-agent, gpu-agent
    assert stored.reputation_changes == (ReputationRow("cpu-agent", 1.0, 0.9, "no vote in time"),)
    assert stored.resume == {"events_offset": 0, "events_seq": 0}
    assert ledger.run("r1").decisions == 1  # type: ignore[union-attr]


def test_a_different_decision_for_a_recorded_job_is_refused_and_the_first_kept(ledger: Ledger) -> None:
    ledger.record_decision("r1", 1, decision("j1", 0))
    with pytest.raises(StoreError, match="already has a different decision for job j1"):
        ledger.record_decision("r1", 1, decision("j1", 0, reason="something else"))
    with pytest.raises(StoreError, match="already has decision 0 \\(job j1\\)"):
        ledger.record_decision("r1", 1, decision("j2", 0))
    assert [d.reason for d in ledger.decisions("r1")] == ["best fit"]


def test_a_resumed_run_fences_off_the_process_it_replaced(ledger: Ledger) -> None:
    ledger.record_decision("r1", 1, decision("j1", 0))
    info, epoch = ledger.claim_run("r1", "scenario")
    assert (info.epoch, epoch) == (1, 2)
    with pytest.raises(StoreError, match="taken over by another process"):
        ledger.record_decision("r1", 1, decision("j2", 1))  # the old process, still writing
    assert ledger.record_decision("r1", 2, decision("j2", 1)) is True
    assert [d.epoch for d in ledger.decisions("r1")] == [1, 2]


def test_units_are_stored_once(ledger: Ledger) -> None:
    ledger.create_run("c1", "campaign", "quick", "simulation", 1, {}, "/tmp/out")
    assert ledger.record_unit("c1", 1, "cfg/r0", {"wait": 1.5}) is True
    assert ledger.record_unit("c1", 1, "cfg/r0", {"wait": 9.9}) is False
    assert ledger.units("c1") == {"cfg/r0": {"wait": 1.5}}
    assert ledger.find_run("campaign", "/tmp/out").run_id == "c1"  # type: ignore[union-attr]


def test_unknown_run_and_wrong_kind_are_named(ledger: Ledger) -> None:
    with pytest.raises(StoreError, match="no run nope in the ledger .*--runs"):
        ledger.claim_run("nope")
    with pytest.raises(StoreError, match="run r1 is a scenario, not a campaign"):
        ledger.claim_run("r1", "campaign")


# --- bad or damaged state ----------------------------------------------------------------------


def test_a_ledger_from_a_newer_schema_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "llm_sched.db"
    with Ledger.open(path) as ledger:
        ledger.create_run("r1", "scenario", "healthy", "heuristic", 42)
        ledger.record_decision("r1", 1, decision("j1", 0))
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than .* understands "
                                         f"\\({SCHEMA_VERSION}\\).*not changed"):
        Ledger.open(path)
    assert path.read_bytes() == before


def test_a_locked_ledger_gets_a_clear_message_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "llm_sched.db"
    with Ledger.open(path) as ledger:
        ledger.create_run("r1", "scenario", "healthy", "heuristic", 42)
        ledger.record_decision("r1", 1, decision("j1", 0))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Ledger.open(path, timeout=0.2) as ledger:
            with pytest.raises(StoreError, match="locked by another process \\(waited 0.2 s"):
                ledger.record_decision("r1", 1, decision("j2", 1))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Ledger.open(path) as ledger:
        assert [d.job_id for d in ledger.decisions("r1")] == ["j1"]


def test_a_full_disk_rolls_the_decision_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "llm_sched.db"
    with Ledger.open(path) as ledger:
        ledger.create_run("r1", "scenario", "healthy", "heuristic", 42)
        ledger.record_decision("r1", 1, decision("j1", 0))
        pages = ledger._conn.execute("PRAGMA page_count").fetchone()[0]
        ledger._conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: as on a full disk
        big = decision("j2", 1, reason="x" * 50_000)
        with pytest.raises(StoreError, match="the disk is full: .*rolled back.*--resume"):
            ledger.record_decision("r1", 1, big)
    with Ledger.open(path) as ledger:  # space again
        assert [d.job_id for d in ledger.decisions("r1")] == ["j1"]
        tables = ("jobs", "placements", "votes", "reputation_changes")
        assert all(ledger._conn.execute(f"SELECT count(*) FROM {t} WHERE job_id = 'j2'").fetchone()[0] == 0
                   for t in tables)
        assert ledger.record_decision("r1", 1, big) is True


def test_a_file_that_is_not_a_ledger_is_named_and_left_alone(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="notes.db is not an llm-sched ledger"):
        Ledger.open(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE mine (x)")
    with pytest.raises(StoreError, match="a SQLite database but not an llm-sched ledger"):
        Ledger.open(other)
    assert junk.read_text().startswith("these are my notes")


def test_an_event_log_on_a_full_disk_names_the_file_and_the_way_out(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    sink = JsonlSink(Path("/dev/full"))
    with pytest.raises(EventLogError, match="could not write the event log /dev/full: No space left.*--resume"):
        sink(PhaseStarted(phase="p"))
    sink.close()


def test_a_truncated_event_log_names_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"kind": "phase_started", "seq": 0, "ts": 0, "phase": "p"}\n{"kind": "phase_st')
    with pytest.raises(EventLogError, match="events.jsonl is damaged at line 2: .*truncated"):
        read_jsonl(log)


def test_a_reader_sees_one_moment_while_another_process_writes(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # A member's ledger is read (status, the web view, a test) while its own process writes decisions.
    # The reader's queries run in one read transaction: a decision committed between two of them is
    # not half-seen, so the ledger is not taken for damaged.
    from llm_sched.store import ledger as module

    ledger.record_decision("r1", 1, decision("j1", 0))
    grouped, wrote = module._grouped, []

    def write_between_queries(*args: object) -> object:
        if not wrote:
            with Ledger.open(ledger.path) as writer:  # another connection, as another process has
                writer.record_decision("r1", 1, decision("j2", 1))
            wrote.append(True)
        return grouped(*args)

    monkeypatch.setattr(module, "_grouped", write_between_queries)
    assert [d.job_id for d in ledger.decisions("r1")] == ["j1"]  # as of the read's first query
    assert wrote and [d.job_id for d in ledger.decisions("r1")] == ["j1", "j2"]  # the next read sees it
