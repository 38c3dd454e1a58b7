"""One writer per run: a second resume of a run being written stops at once (exit 3) and changes nothing."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from llm_sched.store.run_lock import run_lock
from tests.conftest import Cli


def _snapshot(run: Path, ledger: Path) -> tuple[dict[str, str], tuple[object, ...]]:
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.iterdir() if p.name != ".lock"}
    with sqlite3.connect(ledger) as conn:
        row = conn.execute("SELECT status, epoch FROM runs WHERE run_id = ?", (run.name,)).fetchone()
        decisions = conn.execute("SELECT count(*) FROM decisions WHERE run_id = ?", (run.name,)).fetchone()
    return files, (*row, *decisions)


def test_a_second_resume_of_a_run_being_written_exits_3_and_changes_nothing(cli: Cli) -> None:
    assert cli("--scenario", "byzantine", "--provider", "heuristic").code == 0
    ledger = cli.cwd / "runs" / "llm_sched.db"
    (run,) = [p for p in (cli.cwd / "runs").iterdir() if p.is_dir()]
    with sqlite3.connect(ledger) as conn:  # as if it had been killed: resumable
        conn.execute("UPDATE runs SET status = 'failed' WHERE run_id = ?", (run.name,))
    before = _snapshot(run, ledger)
    with run_lock(run, run.name):  # this process is "the first resume"
        second = cli("--resume", run.name)
        assert second.code == 3, second.text
        assert f"run {run.name} is being resumed by pid {os.getpid()}" in second.err
        assert "Traceback" not in second.text
        assert _snapshot(run, ledger) == before  # no epoch raised, no file touched
    resumed = cli("--resume", run.name)  # once the lock is free, the run resumes and completes
    assert resumed.code == 0, resumed.text
    assert _snapshot(run, ledger)[1][0] == "completed"


def test_the_lock_goes_with_the_process_that_held_it(tmp_path: Path) -> None:
    with run_lock(tmp_path, "r"):
        pass
    with run_lock(tmp_path, "r"):  # released on exit: taken again at once
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
