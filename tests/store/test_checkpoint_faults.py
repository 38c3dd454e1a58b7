"""The checkpoint file under faults: a full disk is one line (exit 1) and the run resumes to the end an
uninterrupted run reaches; a damaged file is moved aside once, new runs work, and a resumed run
decides its in-flight job again."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import llm_sched.orchestration.runner as runner
from llm_sched.agents.specialist import SpecialistAgent
from llm_sched.cli import main
from llm_sched.orchestration.durable import checkpoint_path
from tests.store.faults import Place, reference_events


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return reference_events(tmp_path_factory.mktemp("reference"))


def limit_checkpoints(monkeypatch: pytest.MonkeyPatch, pages: int) -> None:
    """The checkpoint file may not grow past ``pages`` pages: to SQLite, as on a full disk."""
    real = runner.checkpointer

    @asynccontextmanager
    async def limited(path: Path, run_id: str | None = None) -> AsyncIterator[Any]:
        async with real(path, run_id) as saver:
            await saver.conn.execute(f"PRAGMA max_page_count = {pages}")
            yield saver

    monkeypatch.setattr(runner, "checkpointer", limited)


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# 3 pages: the checkpoint tables cannot even be created; more: a step of some job cannot be saved
@pytest.mark.parametrize("pages", [3, 6, 12, 20])
def test_a_full_disk_under_the_checkpoints_is_one_line_and_the_run_resumes_to_the_uninterrupted_end(
        place: Place, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], pages: int) -> None:
    with monkeypatch.context() as patch:
        limit_checkpoints(patch, pages)
        code = main(["--scenario", "byzantine", "--provider", "heuristic"])
    (run,) = place.runs_stored()
    err = one_line(capsys.readouterr().err)
    assert code == 1
    assert err.startswith("error: the disk is full: could not ")
    assert f"a checkpoint in {checkpoint_path(place.ledger)}" in err and f"--resume {run.run_id}" in err
    assert run.status == "failed" and run.decisions < 7
    assert main(["--resume", run.run_id]) == 0
    assert place.events(run.run_id) == reference
    assert place.info(run.run_id).status == "completed"


def garbage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(7)
    data[100:8192] = bytes(rng.randrange(256) for _ in range(8092))  # the header kept, the first pages garbled
    path.write_bytes(bytes(data))


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def not_sqlite(path: Path) -> None:
    path.write_text("these are my notes, not checkpoints\n" * 50)


DAMAGE = {"garbage": garbage, "truncated": truncated, "not sqlite": not_sqlite}


def in_flight_run(place: Place, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A byzantine run that died after the votes of its last phase's first job: that job's thread is in
    the checkpoint file. (run id, job id)"""
    victim = place.scenario().phases[-1].jobs[0].job().id
    run_id = place.run_until(monkeypatch, victim, step="_tally")
    conn = sqlite3.connect(checkpoint_path(place.ledger))
    try:
        threads = {t for (t,) in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    finally:
        conn.close()
    assert threads == {f"{run_id}/{victim}"}
    return run_id, victim


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_file_is_moved_aside_once_and_new_runs_work(
        place: Place, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    in_flight_run(place, monkeypatch)
    path = checkpoint_path(place.ledger)
    DAMAGE[damage](path)
    damaged = path.read_bytes()
    capsys.readouterr()
    assert main(["--scenario", "healthy", "--provider", "heuristic"]) == 0
    err = one_line(capsys.readouterr().err)
    (aside,) = place.runs.glob(f"{path.name}.corrupt-*")
    assert err.startswith(f"warning: the checkpoint file {path} was damaged (")
    assert f"moved aside to {aside.name}" in err
    assert aside.read_bytes() == damaged  # kept as it was, for whoever wants to look
    assert main(["--scenario", "healthy", "--provider", "heuristic"]) == 0
    assert capsys.readouterr().err == ""  # said once
    assert [r.status for r in place.runs_stored()] == ["failed", "completed", "completed"]


def count_proposals(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    asked: Counter[str] = Counter()
    propose = SpecialistAgent.propose

    async def counting(agent: SpecialistAgent, job: Any) -> Any:
        asked[job.id] += 1
        return await propose(agent, job)

    monkeypatch.setattr(SpecialistAgent, "propose", counting)
    return asked


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_resume_after_the_checkpoint_file_was_damaged_decides_the_in_flight_job_again(
        place: Place, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], damage: str) -> None:
    run_id, victim = in_flight_run(place, monkeypatch)
    DAMAGE[damage](checkpoint_path(place.ledger))
    asked = count_proposals(monkeypatch)
    assert main(["--resume", run_id]) == 0
    assert "was damaged" in capsys.readouterr().err
    assert asked[victim] > 0  # its proposals were lost with the file: asked again
    assert place.events(run_id) == reference


def test_a_checkpoint_whose_bytes_were_garbled_is_decided_again_with_a_warning(
        place: Place, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The pages are sound (quick_check does not read a blob's content) but the saved state is not."""
    run_id, victim = in_flight_run(place, monkeypatch)
    conn = sqlite3.connect(checkpoint_path(place.ledger))
    with conn:
        conn.execute("UPDATE checkpoints SET checkpoint = randomblob(length(checkpoint))")
    conn.close()
    asked = count_proposals(monkeypatch)
    assert main(["--resume", run_id]) == 0
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"warning: the checkpoint of {run_id}/{victim} in ") and "decided again" in err
    assert asked[victim] > 0
    assert place.events(run_id) == reference
