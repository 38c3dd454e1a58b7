"""A garbled ledger is found and reported (exit 1, one line naming the file), never a traceback, never
shown as if it were sound, never "repaired": the file is left byte for byte as it was."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from llm_sched.cli import main
from tests.store.faults import Place

PAGE = 4096


def garble_page(path: Path, page: int) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(page)
    data[page * PAGE:(page + 1) * PAGE] = bytes(rng.randrange(256) for _ in range(PAGE))
    path.write_bytes(bytes(data))


def replace_once(path: Path, pattern: bytes, group: int, new: bytes) -> None:
    """Overwrite, in place and at the same length, ``group`` of the first match of ``pattern``."""
    data = bytearray(path.read_bytes())
    found = re.search(pattern, bytes(data), re.DOTALL)
    assert found is not None and len(found.group(group)) == len(new)
    data[found.start(group):found.end(group)] = new
    path.write_bytes(bytes(data))


def stored_runs(place: Place) -> list[str]:
    """Two completed runs in the ledger, its write-ahead log folded in (the file holds everything)."""
    runs = [place.run("byzantine"), place.run("healthy")]
    assert not place.ledger.with_name(place.ledger.name + "-wal").exists()
    return runs


def damaged(capsys: pytest.CaptureFixture[str], ledger: Path, *args: str) -> str:
    assert main(list(args)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: the ledger {ledger} is damaged ("), err
    assert "it was not changed" in lines[0] and all(c.isprintable() for c in lines[0])
    return lines[0]


@pytest.mark.parametrize("page", [1, 3, 8, 12])
def test_a_garbled_page_is_reported_by_runs_and_show_and_the_file_is_left_as_it_is(
        place: Place, capsys: pytest.CaptureFixture[str], page: int) -> None:
    runs = stored_runs(place)
    garble_page(place.ledger, page)
    before = place.ledger.read_bytes()
    damaged(capsys, place.ledger, "--runs")
    damaged(capsys, place.ledger, "--show", runs[0])
    damaged(capsys, place.ledger, "--resume", runs[0])
    damaged(capsys, place.ledger, "--scenario", "healthy", "--provider", "heuristic")  # nothing is added to it
    assert place.ledger.read_bytes() == before


def test_a_stored_text_that_is_no_longer_utf8_is_reported(place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    runs = stored_runs(place)
    replace_once(place.ledger, rb"(b)est heuristic score", 1, b"\xff")
    before = place.ledger.read_bytes()
    err = damaged(capsys, place.ledger, "--show", runs[0])
    assert "Could not decode to UTF-8 column 'reason'" in err
    assert place.ledger.read_bytes() == before


def test_a_decision_whose_pool_was_changed_no_longer_matches_its_record(
        place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    runs = stored_runs(place)
    replace_once(place.ledger, rb"commit(gpu)-pool", 1, b"cpu")  # a valid value, the wrong one
    err = damaged(capsys, place.ledger, "--show", runs[0])
    assert f"of run {runs[0]} no longer matches the record written with it" in err
    assert main(["--show", runs[1]]) == 0  # the other run is sound and shown


def test_a_decision_whose_job_id_was_garbled_is_not_silently_dropped(
        place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    runs = stored_runs(place)
    replace_once(place.ledger, rb"(b-07).{0,6}?(commit|reject)", 1, b"b-97")
    err = damaged(capsys, place.ledger, "--show", runs[0])
    assert f"run {runs[0]} has 7 decisions, 6 of them readable" in err
