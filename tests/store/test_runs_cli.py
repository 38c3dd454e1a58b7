"""``--runs``, ``--show RUN_ID`` and ``--resume RUN_ID`` read and continue what the ledger holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_sched.cli import main
from llm_sched.config import load_settings
from llm_sched.core.events import read_jsonl
from llm_sched.orchestration.runner import run_scenario
from llm_sched.orchestration.scenarios import load_scenario


@pytest.fixture
def stored_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LLM_SCHED_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    settings = load_settings({"LLM_SCHED_PROVIDER": "heuristic"})
    return run_scenario(load_scenario("byzantine", settings.scenarios_dir), settings).run_dir.name


def test_runs_lists_the_stored_run_with_its_decisions(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if stored_run in line)
    assert all(cell in row for cell in ("byzantine", "heuristic", "12", "7", "completed"))


def test_show_prints_each_decision_with_the_dissenting_votes(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--show", stored_run]) == 0
    out = capsys.readouterr().out
    assert [f"b-0{i}" in out for i in range(1, 8)] == [True] * 7
    assert "4 accept, 1 reject (storage-agent)" in out  # the Byzantine agent of this scenario
    assert "storage-agent 1.00->0.70" in out


def test_resume_of_a_completed_run_prints_its_summary(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--resume", stored_run]) == 0
    assert "decisions committed" in capsys.readouterr().out


def test_resume_refuses_flags_that_would_change_the_run(stored_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--resume", stored_run, "--seed", "3"]) == 2
    assert "give no --seed, --provider, --record or --allow-fallback" in capsys.readouterr().err
    assert main(["--scenario", "healthy", "--resume", stored_run]) == 2
    assert f"run {stored_run} is a run of scenario byzantine, not healthy" in capsys.readouterr().err
    assert main(["--scenario", "byzantine", "--resume", stored_run]) == 0


# -- a damaged event log is reported, not taken as good ----------------------------------------------

def _edit_a_line(log: Path) -> None:
    lines = log.read_text().splitlines(keepends=True)
    lines[20] = lines[20].replace('"seq":20,', '"seq":20, ')
    log.write_text("".join(lines))


def _remove_a_line(log: Path) -> None:
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:30] + lines[31:]))


def _cut_the_end(log: Path) -> None:
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-3]))


def _garble(log: Path) -> None:
    data = bytearray(log.read_bytes())
    data[5000:5016] = b"\x00\xff" * 8
    log.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "found"), [
    (_edit_a_line, "damaged at line 21: it was changed after it was written"),
    (_remove_a_line, "damaged at line 31: its event seq 31 follows seq 29"),
    (_cut_the_end, "is truncated: the run completed, but the log ends at line"),
    (_garble, "damaged at line"),
])
def test_runs_and_show_report_a_damaged_event_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str],
                                                  damage: Callable[[Path], None], found: str) -> None:
    monkeypatch.setenv("LLM_SCHED_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")
    settings = load_settings({"LLM_SCHED_PROVIDER": "heuristic"})
    damaged, sound = (run_scenario(load_scenario(name, settings.scenarios_dir), settings).run_dir
                      for name in ("byzantine", "healthy"))
    damage(damaged / "events.jsonl")
    assert main(["--runs"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "DAMAGED" in rows[damaged.name] and rows[sound.name].rstrip("│ ").endswith("ok")
    flat = " ".join(out.split())
    assert f"run {damaged.name}: the event log {damaged / 'events.jsonl'}" in flat and found in flat
    assert main(["--show", damaged.name]) == 1  # the decisions are shown, the damage under them and in the exit
    shown = " ".join(capsys.readouterr().out.split())
    assert "event log DAMAGED" in shown and found in shown and "b-07" in shown
    assert main(["--show", sound.name]) == 0
    assert main(["--resume", damaged.name]) == 1  # never summarized from a damaged log
    assert found in " ".join(capsys.readouterr().err.split())


def test_a_resumed_run_continues_the_chain_from_where_the_ledger_stood(tmp_path: Path) -> None:
    from llm_sched.orchestration.graph import ConsensusGraph
    from llm_sched.orchestration.runner import resume_scenario
    from llm_sched.store.event_chain import Anchor, check_log
    from llm_sched.store.ledger import Ledger

    settings = load_settings({"LLM_SCHED_PROVIDER": "heuristic", "LLM_SCHED_RUNS_DIR": str(tmp_path)})
    scenario = load_scenario("byzantine", settings.scenarios_dir)
    original = ConsensusGraph._choose

    def dying(graph: ConsensusGraph, s: Any) -> Any:
        if s["job"].id == "b-05":
            raise KeyboardInterrupt  # stands for Ctrl-C: the run stops after 4 decisions
        return original(graph, s)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ConsensusGraph, "_choose", dying)
        with pytest.raises(Exception, match="interrupted"):
            run_scenario(scenario, settings)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    with (run_dir / "events.jsonl").open("a") as log:
        log.write('{"kind":"phase_st')  # and the log ends in half a line, as after a kill
    resume_scenario(run_dir.name, settings, lambda n: load_scenario(n, settings.scenarios_dir))
    with Ledger.open(settings.ledger_path) as ledger:
        stored = ledger.decisions(run_dir.name)
    anchors = [Anchor.of(d.job_id, d.resume) for d in stored]
    assert all(a is not None and a.hash for a in anchors)
    check = check_log(run_dir / "events.jsonl", anchors, complete=True, decisions=7)  # type: ignore[arg-type]
    assert check.hashed and check.events == len(read_jsonl(run_dir / "events.jsonl"))
