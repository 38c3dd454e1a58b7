"""Benchmark the Slurm executor on a local 4-node Slurm cluster (issue 19).

    python bench/bench_slurm.py [--jobs 20]

It starts a cluster with ``llm_sched.execution.slurm_local`` (three GPU nodes and one large-memory
node of scenarios/clusters/specialists.yaml) in a temporary folder and measures:

(i)  dispatch: ``--jobs`` one-node jobs handed to the Slurm executor one after the other, each
     waited for: the time from ``start`` (sbatch) until the job's payload has written its node's
     ``$SLURMD_NODENAME`` (the job runs), and until the executor sees it ended (sinfo/squeue polling
     every 0.25 s, then scontrol); median and maximum;
(ii) a scenario: ``--scenario healthy --executor slurm`` (heuristic agents, time scale 0.001) as a
     whole process, against the same scenario on the simulated clock: wall time, and for each
     committed job the time from its decision to its ``job_started`` event (the sbatch call).

Every figure printed is measured in this run; nothing here is a target of the issue, which sets none.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_sched.core.model import Job, Placement, Resources  # noqa: E402
from llm_sched.execution.slurm import SlurmExecutor  # noqa: E402
from llm_sched.execution.slurm_local import load_pool_groups, spec_from_pools, up  # noqa: E402


def _dispatch(conf: Path, folder: Path, jobs: int) -> tuple[list[float], list[float]]:
    executor = SlurmExecutor(folder, 0.001, conf)
    running, ended = [], []
    for i in range(jobs):
        job = Job(id=f"b{i:03d}", kind="ai", nodes=1, per_node=Resources(cores=1, memory_gb=1.0), runtime_s=1.0)
        node = f"gpu-0{1 + i % 3}"
        t0 = time.monotonic()
        asyncio.run(executor.start(job, Placement(job_id=job.id, pool="gpu-pool", nodes=(node,))))
        nodes_file = folder / f"{job.id}.nodes"
        while not nodes_file.exists() or not nodes_file.read_text().strip():
            time.sleep(0.005)
        running.append(time.monotonic() - t0)
        while not asyncio.run(executor.advance(float("inf"))):
            pass
        ended.append(time.monotonic() - t0)
    return running, ended


def _scenario(conf: Path, runs: Path, executor: str) -> tuple[float, list[float]]:
    args = ["--scenario", "healthy", "--provider", "heuristic"]
    if executor != "sim":
        args += ["--executor", executor]
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(runs), "SLURM_CONF": str(conf),
           "LLM_SCHED_RUNS_DIR": str(runs / executor)}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], env=env, cwd=runs, capture_output=True,
                          text=True, timeout=300)
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = [p for p in (runs / executor).iterdir() if p.is_dir()]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    decided = {e["decision"]["job_id"]: e["ts"] for e in events if e["kind"] == "decision"}
    gaps = [e["ts"] - decided[e["job_id"]] for e in events if e["kind"] == "job_started"]
    return wall, gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    groups = load_pool_groups(ROOT / "scenarios" / "clusters" / "specialists.yaml")
    with tempfile.TemporaryDirectory(prefix="bslurm") as tmp:
        root = Path(tmp)
        cluster = up(spec_from_pools(groups, {"gpu-pool": 3, "mem-pool": 1}), root / "c")
        try:
            running, ended = _dispatch(cluster.conf, root / "jobs", args.jobs)
            print(f"dispatch, {args.jobs} one-node jobs one after the other: sbatch to running "
                  f"median {statistics.median(running) * 1000:.0f} ms, max {max(running) * 1000:.0f} ms; "
                  f"to seen ended median {statistics.median(ended) * 1000:.0f} ms, max {max(ended) * 1000:.0f} ms")
            for executor in ("sim", "slurm"):
                wall, gaps = _scenario(cluster.conf, root, executor)
                gap = f"; decision to sbatch returned: {', '.join(f'{g * 1000:.0f} ms' for g in gaps)}" if (
                    executor != "sim") else ""
                print(f"healthy scenario on {executor}: {wall:.2f} s whole process{gap}")
        finally:
            cluster.down()


if __name__ == "__main__":
    main()
