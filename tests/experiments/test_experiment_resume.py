"""Issue 8: an experiment killed halfway (SIGKILL) resumes from the ledger, with ``--experiment
--resume DIR`` or by running the same command again, and writes the files an uninterrupted run
writes (raw_results.json byte for byte; equal as :mod:`llm_sched.experiments.experiment` defines it)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llm_sched.cli import main
from llm_sched.experiments.output import FILES
from llm_sched.store.ledger import Ledger
from tests.evaluation.killing import environ, kill_after, run, start

# 2 methods x 2 repetitions = 4 units
ARGS = ("--experiment", "--methods", "pbft,tendermint", "--agents", "4", "--byzantine", "1", "--jobs", "2",
        "--repetitions", "2", "--intensity", "light", "--seed", "7")
UNITS = 4
SAME_BYTES = ("raw_results.json", "fault_logs.json", "results.csv", "fault_aware_summary.json",
              "fault_results_per_method.json")


def load(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def assert_same_outputs(resumed: Path, full: Path) -> None:
    for name in SAME_BYTES:
        assert (resumed / name).read_bytes() == (full / name).read_bytes(), name
    a, b = load(resumed, "experiment_summary.json"), load(full, "experiment_summary.json")
    assert set(a.pop("timing")) == set(b.pop("timing")) and a == b
    a, b = load(resumed, "experiment_config.json"), load(full, "experiment_config.json")
    a["config"].pop("out")
    b["config"].pop("out")
    assert a == b


def units(ledger: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT unit, epoch FROM units ORDER BY unit").fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The experiment, uninterrupted."""
    root = tmp_path_factory.mktemp("full")
    done = run([*ARGS, "--out", "full"], root, environ(root, root / "ledger.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "full"


@pytest.mark.parametrize("how", ["--resume", "same command"])
def test_a_killed_experiment_resumes_to_the_same_files(full: Path, tmp_path: Path, how: str) -> None:
    ledger = tmp_path / "ledger.db"
    env = environ(tmp_path, ledger)
    proc = start([*ARGS, "--out", "cut"], tmp_path, env, tmp_path / "cut.log")
    killed_at = kill_after(proc, ledger, UNITS // 2, tmp_path / "cut.log")
    assert 0 < killed_at < UNITS
    assert not (tmp_path / "cut" / "raw_results.json").exists()
    args = ["--experiment", "--resume", "cut"] if how == "--resume" else [*ARGS, "--out", "cut"]
    done = run(args, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert f"resuming: {killed_at} of {UNITS} runs are stored, {UNITS - killed_at} to run" in out
    assert f"resumed: {killed_at} run(s) taken from the ledger" in out
    for name in FILES:
        assert (tmp_path / "cut" / name).is_file(), name
    assert_same_outputs(tmp_path / "cut", full)
    stored = units(ledger)
    assert [u for u, _ in stored] == ["pbft/r0", "pbft/r1", "tendermint/r0", "tendermint/r1"]
    assert sorted(e for _, e in stored) == [1] * killed_at + [2] * (UNITS - killed_at)
    with Ledger.open(ledger) as led:
        (info,) = led.runs()
        walls = {k: v["wall_s"] for k, v in led.units(info.run_id).items()}
    assert (info.kind, info.status, info.epoch, info.units) == ("experiment", "completed", 2, UNITS)
    # the stored runs were not run again: their wall times are the stored ones
    timing = load(tmp_path / "cut", "experiment_summary.json")["timing"]["runs_wall_s"]
    assert {f"{m}/r{r}": w for m, ws in timing.items() for r, w in enumerate(ws)} == walls
    assert info.config["seed"] == 7 and info.run_dir == str((tmp_path / "cut").resolve())


def test_the_same_command_on_a_folder_with_results_is_refused_and_force_runs_afresh(tmp_path: Path) -> None:
    env = environ(tmp_path, tmp_path / "ledger.db")
    done = run([*ARGS, "--out", "out"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    before = {name: (tmp_path / "out" / name).read_bytes() for name in FILES}
    again = run([*ARGS, "--out", "out"], tmp_path, env)
    assert again.returncode == 2, again.stdout + again.stderr
    err = " ".join(again.stderr.split())
    assert "Traceback" not in again.stderr and again.stderr.count("\n") == 1
    assert "the output folder out is not empty (experiment_config.json" in err
    assert "--force to run afresh" in err and "--resume out" in err
    assert {name: (tmp_path / "out" / name).read_bytes() for name in FILES} == before  # nothing was touched
    forced = run([*ARGS, "--out", "out", "--force"], tmp_path, env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "resum" not in forced.stdout
    assert (tmp_path / "out" / "raw_results.json").read_bytes() == before["raw_results.json"]  # the same seed
    with Ledger.open(tmp_path / "ledger.db") as led:
        assert [(r.status, r.units) for r in led.runs()] == [("completed", UNITS), ("completed", UNITS)]
    both = run([*ARGS, "--out", "out", "--force", "--resume", "out"], tmp_path, env)
    assert both.returncode == 2 and "give one of them" in both.stderr


def test_resume_with_flags_describing_another_experiment(full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from llm_sched.config import ENV_VARS

    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LLM_SCHED_LEDGER", str(full.parent / "ledger.db"))
    monkeypatch.chdir(full.parent)
    for args, message in (
        (("--methods", "pbft"), '--methods pbft describes another experiment than the one stored for '
                                f'{full.resolve()} (methods: ["pbft", "tendermint"] there, ["pbft"] now)'),
        (("--seed", "8"), "(seed: 7 there, 8 now)"),
        (("--out", "other"), "--out other names another: drop --out"),
    ):
        assert main(["--experiment", "--resume", "full", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: --resume full") and "Traceback" not in err, err
        assert message in " ".join(err.split())
    assert main(["--experiment", "--resume", "full", "--seed", "7"]) == 0  # the same: fine
    assert "resuming: 4 of 4 runs are stored, 0 to run" in " ".join(capsys.readouterr().out.split())


def test_a_folder_of_an_older_version_resumes_from_its_experiment_config(full: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "experiment_config.json").write_bytes((full / "experiment_config.json").read_bytes())
    done = run(["--experiment", "--resume", "old"], tmp_path, environ(tmp_path, tmp_path / "ledger.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_outputs(old, full)  # nothing was stored: every run ran, with the recorded configuration
