"""Issue 8: a campaign killed halfway (SIGKILL, workers too) resumes from the ledger with
``--evaluate --resume DIR``, and its outputs equal those of an uninterrupted campaign of the same
seeds (equal as :mod:`llm_sched.evaluation.campaign` defines it); what --resume refuses."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_sched.cli import main
from llm_sched.evaluation.campaign import CampaignResult, comparable_results, masked_report, run_campaign
from llm_sched.evaluation.output import campaign_dump
from llm_sched.store.ledger import Ledger, StoreError
from tests.evaluation.conftest import tiny_config
from tests.evaluation.killing import environ, kill_after, run, start

# 3 configurations x 2 repetitions = 6 units, each a few hundredths of a second
CAMPAIGN = """\
name: resume
repetitions: 2
seed: 5
base: {jobs: 60, agents: 5, nodes_per_agent: 4, failure_rate: 0.3}
dimensions: {failure_rate: [0.05, 0.3, 0.6]}
"""
UNITS = 6


@dataclass
class Resumed:
    root: Path
    env: dict[str, str]
    ledger: Path
    killed_at: int  # units stored when the first process was killed
    resume_out: str
    cut: Path  # killed, then resumed
    full: Path  # uninterrupted


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def results(folder: Path) -> dict[str, Any]:
    return json.loads(text(folder / "results.json"))


def ledger_rows(ledger: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Resumed:
    """The campaign uninterrupted (its own ledger), and killed halfway then resumed with --resume."""
    root = tmp_path_factory.mktemp("resume")
    (root / "campaign.yaml").write_text(CAMPAIGN)
    ledger = root / "ledger.db"
    env = environ(root, ledger)
    args = ("--evaluate", "--config", "campaign.yaml", "--workers", "1")
    full = start([*args, "--out", "full"], root, environ(root, root / "other.db"), root / "full.log")
    cut = start([*args, "--out", "cut"], root, env, root / "cut.log")
    killed_at = kill_after(cut, ledger, UNITS // 2, root / "cut.log")
    assert not (root / "cut" / "report.md").exists()
    resume = run(["--evaluate", "--resume", "cut"], root, env)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    assert full.wait(timeout=120) == 0, text(root / "full.log")
    return Resumed(root, env, ledger, killed_at, resume.stdout, root / "cut", root / "full")


def test_a_killed_campaign_resumes_to_the_report_of_an_uninterrupted_one(resumed: Resumed) -> None:
    assert 0 < resumed.killed_at < UNITS
    out = " ".join(resumed.resume_out.split())
    k = resumed.killed_at
    assert f"resuming: {k} of {UNITS} tasks are already stored, {UNITS - k} to run" in out
    cut, full = resumed.cut, resumed.full
    assert masked_report(text(cut / "report.md")) == masked_report(text(full / "report.md"))
    assert comparable_results(results(cut)) == comparable_results(results(full))
    assert text(cut / "results.json").split('"run_info"')[0] == text(full / "results.json").split('"run_info"')[0]
    for name in ("summary.csv", "comparisons.csv"):
        assert (cut / name).read_bytes() == (full / name).read_bytes(), name
    report = text(cut / "report.md")
    assert f"- Resumed: {k} of the {UNITS} (configuration, repetition) tasks" in report
    assert "`python main.py --evaluate --resume cut`" in report
    assert "Configuration file: `campaign.yaml`" in report  # as the campaign was started
    # The ledger: one campaign run for the folder, claimed once (epoch 2), completed, every unit once.
    (run_id, status, epoch, run_dir), = ledger_rows(resumed.ledger, "SELECT run_id, status, epoch, run_dir FROM runs")
    assert (status, epoch, run_dir) == ("completed", 2, str(cut.resolve()))
    assert run_id.startswith("campaign-") and results(cut)["run_info"]["run_id"] == run_id
    units = ledger_rows(resumed.ledger, "SELECT unit, epoch FROM units ORDER BY unit")
    assert [u for u, _ in units] == sorted(f"failure_rate-{p}%/r{r}" for p in (5, 30, 60) for r in (0, 1))
    assert sum(1 for _, e in units if e == 1) == k


def test_resuming_a_completed_campaign_recomputes_nothing(resumed: Resumed) -> None:
    before = text(resumed.cut / "report.md")
    again = run(["--evaluate", "--resume", str(resumed.cut), "--workers", "1"], resumed.root, resumed.env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming: {UNITS} of {UNITS} tasks are already stored, 0 to run" in " ".join(again.stdout.split())
    info = results(resumed.cut)["run_info"]
    assert info["reused"] == UNITS and info["task_cpu_s"] == 0
    assert masked_report(text(resumed.cut / "report.md")) == masked_report(before)
    assert comparable_results(results(resumed.cut)) == comparable_results(results(resumed.full))
    assert ledger_rows(resumed.ledger, "SELECT max(epoch), count(*) FROM units") == [(2, UNITS)]  # none rewritten
    assert ledger_rows(resumed.ledger, "SELECT status, epoch FROM runs") == [("completed", 3)]


# -- what --resume refuses: one line on standard error, exit 2, no traceback -------------------------

@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ledger in tmp_path, the working folder (no .env, no settings from the environment)."""
    from llm_sched.config import ENV_VARS

    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("LLM_SCHED_LEDGER", str(path))
    Ledger.open(path).close()
    return path


def stored(ledger: Path, kind: str, folder: Path, config: dict[str, Any]) -> str:
    """A run of ``kind`` for ``folder`` in the ledger, as an interrupted invocation leaves it."""
    run_id = f"{kind}-test"
    with Ledger.open(ledger) as led:
        led.create_run(run_id, kind, "test", "simulation", 1, config, str(folder.resolve()))  # type: ignore[arg-type]
    return run_id


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return " ".join(err.split())


def test_resume_of_a_folder_with_nothing_stored(ledger: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    err = refused(capsys, "--evaluate", "--resume", "empty")
    assert f"no campaign is stored for the folder {tmp_path / 'empty'}" in err
    assert f"the ledger {ledger}" in err
    err = refused(capsys, "--experiment", "--resume", "missing")
    assert f"no experiment is stored for the folder {tmp_path / 'missing'}: the ledger {ledger} has no" in err
    assert not (tmp_path / "missing").exists()


def test_resume_of_a_folder_of_another_kind(ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored(ledger, "experiment", tmp_path / "exp", {"name": "x"})
    err = refused(capsys, "--evaluate", "--resume", "exp")
    assert f"the folder {tmp_path / 'exp'} holds an experiment (ledger run experiment-test), not a campaign" in err
    assert "resume it with python main.py --experiment --resume exp" in err
    stored(ledger, "campaign", tmp_path / "camp", campaign_dump(tiny_config()))
    err = refused(capsys, "--experiment", "--resume", "camp")
    assert "holds a campaign (ledger run campaign-test), not an experiment" in err
    assert "python main.py --evaluate --resume camp" in err
    err = refused(capsys, "--evaluate", "--resume", "experiment-test")  # a run id names the run
    assert "run experiment-test is an experiment run, not a campaign" in err


def test_resume_with_flags_describing_another_campaign(ledger: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    stored(ledger, "campaign", tmp_path / "camp", campaign_dump(tiny_config()))  # seed 3
    err = refused(capsys, "--evaluate", "--resume", "camp", "--seed", "9")
    assert (f"--seed 9 describes another campaign than the one stored for {tmp_path / 'camp'} "
            "(seed: 3 there, 9 now)") in err
    err = refused(capsys, "--evaluate", "--resume", "camp", "--quick")
    assert '--quick describes another campaign' in err and '(name: "tiny" there, "quick" now)' in err
    err = refused(capsys, "--evaluate", "--resume", "camp", "--out", "elsewhere")
    assert "--out elsewhere names another: drop --out" in err
    assert not (tmp_path / "camp").exists()  # nothing was run
    assert Ledger.open(ledger).run("campaign-test").epoch == 1  # nor claimed


def test_a_new_campaign_refuses_an_out_folder_that_is_not_empty_unless_forced(
        ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["--evaluate", "--config", "campaign.yaml", "--workers", "1", "--out", "out"]
    err = refused(capsys, *args)
    assert "the output folder out is not empty (notes.txt); give --resume out to continue the campaign in it, " \
           "--force to run afresh into it" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main([*args, "--force"]) == 0
    report = text(out / "report.md")
    assert (out / "notes.txt").read_text() == "mine"  # files that are not the campaign's are left alone
    err = refused(capsys, *args)  # the folder now holds a campaign: the same command does not overwrite it
    assert "not empty (comparisons.csv, " in err and "give --resume out" in err
    assert text(out / "report.md") == report
    assert "give one of them" in refused(capsys, "--evaluate", "--resume", "out", "--force")
    assert main([*args, "--force"]) == 0  # afresh: a new ledger run, every task run again
    with Ledger.open(ledger) as led:
        assert [(r.status, r.units) for r in led.runs()] == [("completed", UNITS), ("completed", UNITS)]
    assert results(out)["run_info"]["reused"] == 0


# -- in this process: an older version's folder, a process taken over ------------------------------

def test_an_older_folder_without_a_ledger_run_is_resumed_from_its_results_json(tiny_run: CampaignResult,
                                                                              tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    data = results(tiny_run.folder)
    data["complete"] = False
    data["runs"] = [r for r in data["runs"] if r["config"] == "failure_rate-5%"]  # as if interrupted
    (folder / "results.json").write_text(json.dumps(data))
    ledger = tmp_path / "ledger.db"
    result = run_campaign(tiny_config(), folder, workers=1, command="pytest", ledger=ledger)
    assert result.reused == 2 and result.run_id is not None
    assert comparable_results(results(folder)) == comparable_results(results(tiny_run.folder))
    assert results(folder)["run_info"]["reused_from"] == {"ledger": 0, "results.json": 2}
    assert "(2 in the results.json of an earlier invocation" in text(folder / "report.md")
    with Ledger.open(ledger) as led:  # the ledger now holds all four tasks, the two imported ones too
        assert sorted(led.units(result.run_id)) == [f"failure_rate-{p}%/r{r}" for p in (5, 60) for r in (0, 1)]
        assert led.run(result.run_id).status == "completed"


def test_a_campaign_taken_over_by_another_process_stops_writing(tmp_path: Path) -> None:
    folder, ledger = tmp_path / "out", tmp_path / "ledger.db"
    seen: list[int] = []

    def take_over(done: int, total: int) -> None:
        seen.append(done)
        if done == 1:  # another invocation resumes the same folder: it claims the run
            with Ledger.open(ledger) as other:
                other.claim_run(other.find_run("campaign", str(folder.resolve())).run_id, "campaign")
            (folder / "results.json").write_text("the other process's")

    with pytest.raises(StoreError, match="taken over by another process"):
        run_campaign(tiny_config(), folder, workers=1, command="pytest", ledger=ledger, on_progress=take_over)
    assert seen == [0, 1]
    assert text(folder / "results.json") == "the other process's"  # left to its new owner
    with Ledger.open(ledger) as led:
        (info,) = led.runs()
    assert (info.epoch, info.status, info.units) == (2, "running", 1)
