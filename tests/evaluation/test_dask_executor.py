"""The campaign on a Dask cluster (``--executor dask``) gives the same results as local processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.cli.campaign import run_campaign_cli
from llm_sched.evaluation.campaign import CampaignResult, run_campaign
from llm_sched.evaluation.runner import Executor
from tests.evaluation.conftest import tiny_config
from tests.evaluation.test_campaign import deterministic, load

distributed = pytest.importorskip("distributed", reason="the dask extra (dask.distributed) is not installed")


def test_a_local_dask_cluster_gives_the_results_of_local_processes(tiny_run: CampaignResult, tmp_path: Path) -> None:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        executor = Executor(2, dask=True, scheduler=cluster.scheduler_address)
        run_campaign(tiny_config(), tmp_path / "dask", workers=executor, command="pytest tiny campaign")
    finally:
        cluster.close()
    assert deterministic(tmp_path / "dask") == deterministic(tiny_run.folder)
    for name in ("summary.csv", "comparisons.csv"):
        assert (tmp_path / "dask" / name).read_text() == (tiny_run.folder / name).read_text()
    assert load(tmp_path / "dask")["run_info"]["executor"] == f"Dask cluster at {cluster.scheduler_address}"


def test_an_unreachable_scheduler_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLM_SCHED_LEDGER", str(tmp_path / "ledger.db"))
    monkeypatch.setattr("llm_sched.evaluation.runner.DASK_CONNECT_TIMEOUT_S", 1)
    code = run_campaign_cli(None, str(tmp_path / "out"), True, 1, None, executor="dask",
                            scheduler="tcp://127.0.0.1:9")
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err and "Traceback" not in err
