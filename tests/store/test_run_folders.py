"""A run's folder under faults: an event log deleted stops the resume with one line, the ledger as it
was; a folder moved resumes where it is now; a copy never writes into the folder it was copied
from."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from llm_sched.cli import main
from tests.store.faults import Place, folder_bytes, reference_events, stored_state


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return reference_events(tmp_path_factory.mktemp("reference"))


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- the event log deleted ------------------------------------------------------------------------

def test_resuming_a_run_whose_event_log_was_deleted_says_so_and_changes_nothing(
        place: Place, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run_until(monkeypatch, "b-05")
    log = place.runs / run_id / "events.jsonl"
    log.unlink()
    before = stored_state(place.ledger, run_id)
    assert main(["--resume", run_id]) == 1
    err = error_line(capsys)
    assert f"the event log {log} of run {run_id} is missing (deleted or moved away)" in err
    assert f"The 4 committed decisions of run {run_id} are safe in the ledger (python main.py --show {run_id})" in err
    assert stored_state(place.ledger, run_id) == before  # not claimed: same epoch, same status
    assert not log.exists()


def test_a_completed_run_whose_event_log_was_deleted_is_reported_not_rewritten(
        place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run("byzantine")
    log = place.runs / run_id / "events.jsonl"
    log.unlink()
    summary = (place.runs / run_id / "summary.json").read_bytes()
    assert main(["--resume", run_id]) == 1
    assert f"the event log {log} is missing" in error_line(capsys)
    assert (place.runs / run_id / "summary.json").read_bytes() == summary
    assert main(["--runs"]) == 0
    out = capsys.readouterr().out
    assert "missing" in next(line for line in out.splitlines() if run_id in line)


# -- moved and copied run folders -----------------------------------------------------------------

def test_a_moved_run_folder_resumes_where_it_is_now(place: Place, reference: list[dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = place.run_until(monkeypatch, "b-05")
    moved = place.root / "elsewhere" / run_id
    moved.parent.mkdir()
    shutil.move(place.runs / run_id, moved)
    assert main(["--resume", str(moved)]) == 0
    assert not (place.runs / run_id).exists()  # the old path is not written again
    assert place.events(run_id, moved) == reference
    info = place.info(run_id)
    assert (info.status, info.run_dir) == ("completed", str(moved.resolve()))
    assert main(["--resume", run_id]) == 0  # by its id, the ledger now finds it where it is


def test_a_copied_run_folder_is_refused_while_the_original_exists_and_neither_is_touched(
        place: Place, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    run_id = place.run_until(monkeypatch, "b-05")
    original = place.runs / run_id
    copy = place.root / "copy" / run_id
    shutil.copytree(original, copy)
    before = (folder_bytes(original), folder_bytes(copy), stored_state(place.ledger, run_id))
    assert main(["--resume", f"copy/{run_id}"]) == 2
    err = error_line(capsys)
    assert f"copy/{run_id} is a copy of run {run_id}, whose folder {original.resolve()} still exists" in err
    assert f"resume that one (python main.py --resume {run_id})" in err
    assert (folder_bytes(original), folder_bytes(copy), stored_state(place.ledger, run_id)) == before
    assert main(["--resume", run_id]) == 0  # the original, by its id: the copy is left alone
    assert folder_bytes(copy) == before[1]
    assert place.events(run_id) == reference


def test_a_runs_folder_copied_with_its_ledger_resumes_into_the_copy_only(
        place: Place, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = place.run_until(monkeypatch, "b-05")
    copy = place.root / "runs-copy"
    shutil.copytree(place.runs, copy)
    original = folder_bytes(place.runs)  # the run folder, the ledger and the checkpoints
    monkeypatch.setenv("LLM_SCHED_RUNS_DIR", str(copy))
    assert main(["--resume", run_id]) == 0
    assert folder_bytes(place.runs) == original
    assert place.events(run_id, copy / run_id) == reference
    assert stored_state(copy / "llm_sched.db", run_id)[0][0][9] == str((copy / run_id).resolve())


def test_a_completed_copy_can_be_shown_without_writing_the_original(place: Place) -> None:
    run_id = place.run("byzantine")
    copy = place.root / "copy" / run_id
    shutil.copytree(place.runs / run_id, copy)
    before = folder_bytes(place.runs)
    assert main(["--resume", str(copy)]) == 0
    assert folder_bytes(place.runs) == before
    assert (copy / "summary.json").read_bytes() == (place.runs / run_id / "summary.json").read_bytes()
