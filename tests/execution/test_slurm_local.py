"""A real local Slurm cluster (slurmctld and one slurmd per node on 127.0.0.1), driven through the typed
wrappers: nodes report the scenario's resources, jobs run where they are told, a node taken down
ends its job, and stopping the cluster leaves nothing running."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from llm_sched.errors import UserError
from llm_sched.execution import slurm_local
from llm_sched.execution.slurm_commands import (
    SlurmError,
    SlurmJob,
    job_state,
    sbatch,
    scancel,
    set_node_state,
    sinfo_nodes,
    squeue_jobs,
)
from llm_sched.execution.slurm_local import (
    DEFAULT_CLUSTER_FILE,
    LocalCluster,
    load_pool_groups,
    recorded_pids,
    spec_from_pools,
    up,
)

pytestmark = pytest.mark.skipif(
    shutil.which("slurmctld") is None,
    reason="Slurm is not installed (slurmctld not on PATH; Debian: apt-get install slurm-wlm)")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm-local"
T = TypeVar("T")


@contextmanager
def _short_folder() -> Iterator[Path]:
    """A fresh folder with a short path: slurmd's job sockets live under the state folder, and a Unix
    socket path has at most 107 bytes (pytest's folders under xdist come close)."""
    folder = Path(tempfile.mkdtemp(prefix="slurm-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """gpu-pool: 3 nodes of 64 cores, 512 GB, 4 GPUs; mem-pool: 1 node of 64 cores, 2048 GB (specialists.yaml)."""
    spec = spec_from_pools(load_pool_groups(DEFAULT_CLUSTER_FILE), {"gpu-pool": 3, "mem-pool": 1})
    with _short_folder() as folder:
        running = up(spec, folder, timeout=60)
        yield running
        running.down()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with _short_folder() as folder:
        yield folder


def _wait(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """``probe()`` once it is truthy; a failure naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not seen within {timeout:g} s: {what}")
        time.sleep(0.2)


def _ended(cluster: LocalCluster, job_id: int) -> SlurmJob:
    def probe() -> SlurmJob | None:
        job = job_state(job_id, env=cluster.env)
        return job if job is not None and job.ended else None
    return _wait(probe, f"job {job_id} ended")


def _running(cluster: LocalCluster, job_id: int) -> SlurmJob:
    return _wait(lambda: next((j for j in squeue_jobs(env=cluster.env) if j.job_id == job_id and j.state == "RUNNING"),
                              None), f"job {job_id} running")


def _submit(cluster: LocalCluster, tmp_path: Path, body: str, nodes: list[str], gpus: int = 0) -> int:
    return sbatch(f"#!/bin/sh\n{body}\n", name="test job", nodelist=nodes, nodes=len(nodes), ntasks_per_node=1,
                  mem_mb=1024, gpus=gpus, output=tmp_path / "job.out", env=cluster.env)


def _job_processes(conf: Path, job_id: int) -> list[int]:
    """Processes of a job of this cluster still running (they carry its SLURM_JOB_ID and SLURM_CONF)."""
    marks = {f"SLURM_JOB_ID={job_id}".encode(), f"SLURM_CONF={conf}".encode()}
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marks <= set((entry / "environ").read_bytes().split(b"\0")):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _daemons(conf: Path) -> list[int]:
    """slurmctld and slurmd processes started with this slurm.conf (zombies not counted)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(conf).encode() in (entry / "cmdline").read_bytes().split(b"\0") \
                    and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


# --- nodes and jobs ---------------------------------------------------------------------------------


def test_sinfo_reports_the_nodes_with_the_claimed_resources_and_partitions(cluster: LocalCluster) -> None:
    nodes = {n.name: n for n in sinfo_nodes(env=cluster.env)}
    assert sorted(nodes) == ["gpu-01", "gpu-02", "gpu-03", "mem-01"]
    for name in ("gpu-01", "gpu-02", "gpu-03"):
        node = nodes[name]
        assert (node.cores, node.memory_mb, node.gpus, node.tmp_disk_mb) == (64, 512 * 1024, 4, 2000 * 1024)
        assert node.partitions[0] == "gpu-pool" and node.usable
    mem = nodes["mem-01"]
    assert (mem.cores, mem.memory_mb, mem.gpus, mem.partitions[0]) == (64, 2048 * 1024, 0, "mem-pool")


def test_a_job_runs_on_exactly_the_nodes_it_names(cluster: LocalCluster, tmp_path: Path) -> None:
    seen = tmp_path / "nodes.txt"
    job_id = _submit(cluster, tmp_path, f"srun --ntasks-per-node=1 sh -c 'echo $SLURMD_NODENAME >> {seen}'",
                     ["gpu-01", "gpu-02"])
    job = _ended(cluster, job_id)
    assert (job.state, job.exit_code, job.nodes) == ("COMPLETED", 0, ("gpu-01", "gpu-02"))
    assert sorted(seen.read_text().split()) == ["gpu-01", "gpu-02"]


def test_a_job_asking_for_gpus_is_given_them(cluster: LocalCluster, tmp_path: Path) -> None:
    seen = tmp_path / "gpus.txt"
    job_id = _submit(cluster, tmp_path, f'echo "$CUDA_VISIBLE_DEVICES" > {seen}', ["gpu-03"], gpus=3)
    assert _ended(cluster, job_id).state == "COMPLETED"
    assert len(seen.read_text().strip().split(",")) == 3


def test_more_gpus_than_a_node_has_are_refused_at_submission(cluster: LocalCluster, tmp_path: Path) -> None:
    with pytest.raises(SlurmError, match=r"sbatch.*Requested node configuration is not available"):
        _submit(cluster, tmp_path, "true", ["gpu-01"], gpus=5)


def test_squeue_shows_a_running_job_and_its_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    job_id = _submit(cluster, tmp_path, "sleep 60", ["gpu-02", "gpu-03"])
    job = _running(cluster, job_id)
    assert job.nodes == ("gpu-02", "gpu-03") and job.name == "test_job"
    assert job_id in {j.job_id for j in squeue_jobs(env=cluster.env, user=getpass.getuser())}
    assert job_id not in {j.job_id for j in squeue_jobs(env=cluster.env, user="no-such-user")}
    states = {n.name: n.state for n in sinfo_nodes(env=cluster.env)}
    assert states["gpu-02"] == states["gpu-03"] == "mixed"  # one core of 64 taken
    scancel(job_id, env=cluster.env)
    assert _ended(cluster, job_id).state == "CANCELLED"
    scancel(job_id, env=cluster.env)  # again, once ended: no error


def test_a_failed_job_reports_its_exit_code(cluster: LocalCluster, tmp_path: Path) -> None:
    job_id = _submit(cluster, tmp_path, "exit 3", ["gpu-01"])
    job = _ended(cluster, job_id)
    assert (job.state, job.exit_code, job.signal) == ("FAILED", 3, 0)
    queued = next(j for j in squeue_jobs(env=cluster.env) if j.job_id == job_id)  # kept for MinJobAge
    assert (queued.state, queued.exit_code) == ("FAILED", 3)
    assert job_state(999_999, env=cluster.env) is None


def test_a_node_set_down_ends_its_job_and_resume_brings_it_back(cluster: LocalCluster, tmp_path: Path) -> None:
    job_id = _submit(cluster, tmp_path, "sleep 120", ["mem-01"])
    _running(cluster, job_id)
    _wait(lambda: _job_processes(cluster.conf, job_id), "the job's processes")
    start = time.monotonic()
    set_node_state("mem-01", "down", "test: node lost", env=cluster.env)
    job = _ended(cluster, job_id)
    took = time.monotonic() - start
    assert (job.state, job.reason) == ("NODE_FAIL", "NodeDown")
    assert took < 10, f"the job ended {took:.1f} s after its node went down"
    _wait(lambda: not _job_processes(cluster.conf, job_id), "the job's processes gone")
    node = next(n for n in sinfo_nodes(env=cluster.env) if n.name == "mem-01")
    assert (node.state, node.usable, node.reason) == ("down", False, "test: node lost")
    time.sleep(1.5)  # a slurmd that still answers does not bring the node back (ReturnToService=1)
    assert next(n for n in sinfo_nodes(env=cluster.env) if n.name == "mem-01").state == "down"
    set_node_state("mem-01", "resume", "", env=cluster.env)
    back = _wait(lambda: next((n for n in sinfo_nodes(env=cluster.env) if n.name == "mem-01" and n.usable), None),
                 "mem-01 usable again")  # idle and not_responding for about a second, until slurmctld pings it
    assert (back.state, back.flags, back.reason) == ("idle", (), "")


# --- starting and stopping -----------------------------------------------------------------------------


def test_up_refuses_a_folder_whose_cluster_still_runs(cluster: LocalCluster) -> None:
    with pytest.raises(UserError, match="already running"):
        up(cluster.spec, cluster.state_dir, timeout=5)
    assert len(sinfo_nodes(env=cluster.env)) == 4


def test_up_recovers_from_a_crashed_cluster_in_the_same_folder(cluster: LocalCluster, short_dir: Path) -> None:
    spec = spec_from_pools(load_pool_groups(DEFAULT_CLUSTER_FILE), {"mem-pool": 1})
    first = up(spec, short_dir / "c", timeout=30)
    for pid in first.pids.values():  # a crash: nothing stopped cleanly, pid files and cluster.json stay
        os.kill(pid, signal.SIGKILL)
    for proc in first._procs.values():
        proc.wait()
    record = json.loads((short_dir / "c" / "cluster.json").read_text())
    record["pids"]["slurmctld"] = os.getpid()  # a stale pid that is some other process by now
    (short_dir / "c" / "cluster.json").write_text(json.dumps(record))
    again = up(spec, short_dir / "c", timeout=30)
    try:
        assert [n.name for n in sinfo_nodes(env=again.env)] == ["mem-01"]
        assert recorded_pids(short_dir / "c")["slurmctld"] == again.pids["slurmctld"]
    finally:
        again.down()
    assert len(sinfo_nodes(env=cluster.env)) == 4  # the other cluster ran alongside, untouched


def test_up_whose_slurmctld_cannot_start_says_why_and_leaves_nothing_running(
        cluster: LocalCluster, short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = socket.socket()  # bound, not listening: slurmctld cannot bind it, nothing answers on it
    taken.bind(("127.0.0.1", 0))
    real = slurm_local.free_ports
    monkeypatch.setattr(slurm_local, "free_ports", lambda n: [taken.getsockname()[1], *real(n - 1)])
    spec = spec_from_pools(load_pool_groups(DEFAULT_CLUSTER_FILE), {"gpu-pool": 1})
    with taken, pytest.raises(SlurmError, match=r"slurmctld.*logs: .*slurmctld\.log: .*Address already in use"):
        up(spec, short_dir, timeout=10).down()  # down: not to leave daemons behind if it started after all
    assert _daemons(short_dir.resolve() / "slurm.conf") == []
    assert not (short_dir / "cluster.json").exists()


def test_the_command_line_starts_reports_and_stops_a_cluster(cluster: LocalCluster, tmp_path: Path,
                                                             short_dir: Path) -> None:
    folder = short_dir / "cli"
    started = subprocess.run([str(SCRIPT), "up", "2", "--pools", "gpu-pool=1,mem-pool=1", "--dir", str(folder)],
                             capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    conf = folder.resolve() / "slurm.conf"
    assert f"export SLURM_CONF={conf}" in started.stdout
    assert "gpu-01  partition gpu-pool: 64 cores, 512 GB memory, 4 GPUs" in started.stdout
    env = {"SLURM_CONF": str(conf)}
    job_id = sbatch("#!/bin/sh\nsleep 120\n", name="left running", nodelist=["gpu-01"], nodes=1, ntasks_per_node=1,
                    mem_mb=100, gpus=1, output=tmp_path / "out", env=env)
    _wait(lambda: _job_processes(conf, job_id), "the job's processes")
    shown = subprocess.run([str(SCRIPT), "status", "--dir", str(folder)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "slurmd mem-01: running" in shown.stdout and "gpu-01  gpu-pool" in shown.stdout
    assert len(_daemons(conf)) == 3
    stopped = subprocess.run([str(SCRIPT), "down", "--dir", str(folder)], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped slurmctld, slurmd gpu-01, slurmd mem-01" in stopped.stdout
    assert _daemons(conf) == [] and _job_processes(conf, job_id) == []
    assert not (folder / "cluster.json").exists() and not list((folder / "run").glob("*.pid"))
    assert len(sinfo_nodes(env=cluster.env)) == 4
