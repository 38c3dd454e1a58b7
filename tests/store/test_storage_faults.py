"""Real faults, real processes: two resumes of one run at once, a disk that fills up (a small tmpfs),
a run killed with SIGKILL. After each, the faulty run is resumable to the end an uninterrupted run
reaches, and every other run stored in the same ledger reads back (``--runs``, ``--show``) exactly
as before: the same ledger rows, the same bytes in its folder."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_sched.cli import main
from llm_sched.config import PROJECT_ROOT
from tests.store.faults import Place, folder_bytes, isolated_place, reference_events, stored_state

MAIN = str(PROJECT_ROOT / "main.py")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return reference_events(tmp_path_factory.mktemp("reference"))


@dataclass
class Others:
    """Runs stored before the fault, and what the ledger and their folders held then."""

    ids: list[str]
    states: dict[str, tuple[Any, ...]]
    files: dict[str, dict[str, str]]


def store_others(place: Place) -> Others:
    ids = [place.run("healthy"), place.run("byzantine")]
    return Others(ids, {i: stored_state(place.ledger, i) for i in ids},
                  {i: folder_bytes(place.runs / i) for i in ids})


def assert_intact(place: Place, others: Others, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--runs"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("│")}
    for run_id in others.ids:
        assert "completed" in rows[run_id] and rows[run_id].rstrip("│ ").endswith("ok"), rows[run_id]
        assert main(["--show", run_id]) == 0
        assert run_id in capsys.readouterr().out
        assert stored_state(place.ledger, run_id) == others.states[run_id]
        assert folder_bytes(place.runs / run_id) == others.files[run_id]


def decisions_of(ledger: Path, run_id: str) -> int:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM decisions WHERE run_id = ?", (run_id,)).fetchone()[0]
    finally:
        conn.close()


def start(*args: str) -> subprocess.Popen[str]:
    """``python main.py ARGS`` in the working folder, with this test's (isolated) environment."""
    return subprocess.Popen([sys.executable, MAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


# -- two resumes of one run at once ------------------------------------------------------------------

def test_two_resumes_of_one_run_at_once_one_finishes_it_the_other_exits_3_touching_nothing(
        place: Place, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    others = store_others(place)
    run_id = place.run_until(monkeypatch, "b-04")
    lock = place.runs / run_id / ".lock"
    first = start("--resume", run_id)
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text() == str(first.pid)):  # it holds the run's lock
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.001)
    first.send_signal(signal.SIGSTOP)  # stopped with the lock held, wherever it was in the resume
    try:
        held = (stored_state(place.ledger, run_id), folder_bytes(place.runs / run_id))
        second = subprocess.run([sys.executable, MAIN, "--resume", run_id], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=120)
        assert second.returncode == 3, second.stderr
        assert second.stderr.strip() == f"error: run {run_id} is being resumed by pid {first.pid}: wait for it to end"
        assert (stored_state(place.ledger, run_id), folder_bytes(place.runs / run_id)) == held
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    info = place.info(run_id)
    assert (info.status, info.epoch, info.decisions) == ("completed", 2, 7)  # claimed once, by the first
    assert place.events(run_id) == reference
    assert_intact(place, others, capsys)


# -- a disk that fills up -----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs of its own (it needs root: skipped, with the reason, where it cannot be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True,
                                 text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all the room on ``disk`` but ``leave`` bytes."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


# From nothing left (the ledger cannot even be read) to a few pages (the checkpoints, the run's lock
# or the event log fill it up part of the way through the run).
@pytest.mark.parametrize("leave_kib", [0, 48, 96, 512, 2048])
def test_a_disk_that_fills_up_mid_run_is_one_line_and_loses_nothing(
        small_disk: Path, tmp_path: Path, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], leave_kib: int) -> None:
    place = isolated_place(tmp_path, monkeypatch)
    place.runs = small_disk / "runs"
    monkeypatch.setenv("LLM_SCHED_RUNS_DIR", str(place.runs))
    others = store_others(place)
    filler = fill(small_disk, leave_kib * 1024)
    capsys.readouterr()
    code = main(["--scenario", "byzantine", "--provider", "heuristic"])
    err = capsys.readouterr().err
    filler.unlink()  # room again
    assert code == 1 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and str(small_disk) in line, line  # names the file on the full disk
    assert "disk is full" in line or "No space left on device" in line, line
    assert_intact(place, others, capsys)
    new = [r for r in place.runs_stored() if r.run_id not in others.ids]
    for run in new:  # the run, if it was recorded before the disk filled up, resumes to the end
        assert run.status in ("failed", "running")
        assert main(["--resume", run.run_id]) == 0
        assert place.events(run.run_id) == reference
    if not new:  # not recorded: no folder left behind either
        assert sorted(p.name for p in place.runs.iterdir() if p.is_dir()) == sorted(others.ids)


# -- a run killed with SIGKILL ------------------------------------------------------------------------

def test_a_run_killed_with_sigkill_resumes_and_the_other_runs_are_untouched(
        place: Place, reference: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    others = store_others(place)
    child = start("--scenario", "byzantine", "--provider", "heuristic")
    conn = sqlite3.connect(place.ledger, isolation_level=None, timeout=30)
    deadline = time.monotonic() + 60
    try:
        while True:  # look with the ledger's write lock held: the child cannot commit meanwhile
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT run_id, (SELECT count(*) FROM decisions d WHERE d.run_id = r.run_id) FROM runs r "
                               "WHERE run_id NOT IN (?, ?)", others.ids).fetchone()
            if row is not None and row[1] >= 2:
                child.kill()
                child.wait(timeout=30)
                conn.execute("ROLLBACK")
                break
            conn.execute("COMMIT")
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        conn.close()
    run_id, killed_at = row
    assert child.returncode == -signal.SIGKILL and 2 <= killed_at < 7
    assert_intact(place, others, capsys)
    assert place.info(run_id).status == "running"  # killed: nobody closed it
    assert main(["--resume", run_id]) == 0
    assert place.events(run_id) == reference
    assert decisions_of(place.ledger, run_id) == 7
    assert_intact(place, others, capsys)


EXPERIMENT = ("--experiment", "--methods", "pbft,tendermint", "--agents", "4", "--byzantine", "1", "--jobs", "2",
              "--repetitions", "2", "--seed", "7")


# Room for the ledger's run but not its units; room for some units only.
@pytest.mark.parametrize("leave_kib", [40, 64])
def test_an_experiment_on_a_disk_that_fills_up_is_one_line_and_finishes_once_there_is_room(
        small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        leave_kib: int) -> None:
    place = isolated_place(tmp_path, monkeypatch)
    monkeypatch.setenv("LLM_SCHED_RUNS_DIR", str(small_disk / "runs"))
    place.runs = small_disk / "runs"
    others = store_others(place)
    out = small_disk / "exp"
    filler = fill(small_disk, leave_kib * 1024)
    capsys.readouterr()
    code = main([*EXPERIMENT, "--out", str(out)])
    err = capsys.readouterr().err
    filler.unlink()
    assert code == 1 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: the disk is full: ") and str(small_disk) in line, line
    assert_intact(place, others, capsys)
    stored = [r for r in place.runs_stored() if r.kind == "experiment"]
    again = ["--experiment", "--resume", str(out)] if stored else [*EXPERIMENT, "--out", str(out)]
    assert main(again) == 0
    assert (out / "raw_results.json").is_file()
