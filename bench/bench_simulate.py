"""Benchmark ``python main.py --simulate --trace FILE --policy easy`` (issue 17, item 7).

    python bench/bench_simulate.py [--jobs 100000,1000000] [--repeat 3] [--policy easy] [--trace PATH]

For each size N it writes, into a temporary folder, an SWF file of N jobs made by repeating the
CTC trace (../shared/traces) with shifted submit times and fresh job numbers (each copy starts one
second after the last submission of the previous one, as bench_sim_replay.repeated_stream does),
gzip-compressed like the shared traces, and then measures:

(i)  simulation: the ``simulate(...)`` call of llm_sched.sim.resilience under EASY on the parsed
     jobs (the median of ``--repeat`` runs below 500,000 jobs, one run from there on);
(ii) the whole command: ``main.py --simulate --trace FILE --policy easy`` as a subprocess (parse,
     simulate, metrics, per-job CSV and Parquet, utilization PNG, print): wall seconds and its peak
     RSS (resource.getrusage(RUSAGE_CHILDREN) in a small process that runs it and nothing else),
     ``--command-repeat`` times (default 3): the median wall time and the largest peak.

Targets: 100,000 jobs simulated in at most 1.2 s; 1,000,000 jobs: the whole command in at most 10 s
and 600 MB of peak RSS. Every figure printed is measured in this run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MAIN = REPO_ROOT / "main.py"
DEFAULT_TRACE = REPO_ROOT / ".." / "shared" / "traces" / "CTC-SP2-1996-3.1-cln.swf.gz"
SIM_TARGET_S = {100_000: 1.2}  # jobs -> seconds of simulation
WALL_TARGET_S = {1_000_000: 10.0}  # jobs -> seconds for the whole command
RSS_TARGET_MB = {1_000_000: 600.0}  # jobs -> peak RSS of the whole command


def write_repeated(trace: Path, n: int, target: Path) -> None:
    """Write ``n`` job lines of ``trace`` played again and again into ``target`` (gzip).

    The header is kept (the machine size comes from it). Copy c shifts every submit time by c times
    (the trace's submit span + 1 s) and numbers its jobs from c x (jobs a copy) + 1.
    """
    header: list[str] = []
    rows: list[list[str]] = []
    with gzip.open(trace, "rt", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            text = line.strip()
            if not text:
                continue
            if text[0] == ";":
                header.append(text)
            else:
                rows.append(text.split())
    submits = [int(float(r[1])) for r in rows]
    shift = max(submits) - min(submits) + 1
    per_copy = len(rows)
    with gzip.open(target, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write("\n".join(header) + "\n")
        written, copy = 0, 0
        while written < n:
            offset, base = copy * shift, copy * per_copy
            chunk = []
            for k, (row, submit) in enumerate(zip(rows[: n - written], submits)):
                chunk.append(" ".join((str(base + k + 1), str(submit + offset), *row[2:])))
            out.write("\n".join(chunk) + "\n")
            written += len(chunk)
            copy += 1


def time_simulation(path: Path, repeat: int, policy: str = "easy") -> tuple[list[float], int]:
    """Seconds of ``resilience.simulate`` under ``policy``, ``repeat`` times; and the jobs simulated."""
    from llm_sched.sim.baselines import machine_size
    from llm_sched.sim.failures import FailureSpec
    from llm_sched.sim.resilience import JobColumns, PoolSplit, SimConfig, simulate
    from llm_sched.sim.simulate import _schedule
    from llm_sched.sim.swf import load_columns

    # The jobs as a list of SimJob, equal to from_trace(load_trace(path).jobs) sorted by submission
    # (tests/sim/test_fast_replay.py checks it), read at C speed.
    trace = load_columns(path)
    widths = trace.procs
    procs = machine_size(trace.header, lambda: int(widths.max()))
    jobs = list(JobColumns(trace.job_id, trace.submit, trace.run, trace.estimate, trace.procs, walltime=trace.walltime))
    del trace
    cluster = PoolSplit(procs, 5)
    schedule = _schedule(jobs, cluster, FailureSpec(), 1)  # no failures, as the command's default
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run = simulate(jobs, cluster, SimConfig(policy), schedule)
        times.append(time.perf_counter() - t0)
        del run
    return times, len(jobs)


# Run by a small Python process of its own, so that the peak RSS read is the command's alone: a
# child forked from this benchmark (which has just simulated a million jobs) would start with its
# pages counted.
_MEASURE = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"wall": wall, "rss_kib": peak, "code": done.returncode, "err": done.stderr.decode()[-2000:]}))
"""


def time_command(path: Path, out_dir: Path, policy: str = "easy") -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of one ``main.py --simulate`` run."""
    command = [sys.executable, str(MAIN), "--simulate", "--trace", str(path), "--policy", policy,
               "--out", str(out_dir)]
    measured = subprocess.run([sys.executable, "-c", _MEASURE, *command], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True)
    figures = json.loads(measured.stdout)
    if figures["code"]:
        print(figures["err"], file=sys.stderr)
    return figures["wall"], figures["rss_kib"] / 1024, figures["code"]


def verdict(value: float, target: float | None) -> str:
    if target is None:
        return ""
    return f"  (target <= {target:g}: {'met' if value <= target else 'NOT met'})"


def main(argv: Sequence[str] | None = None) -> int:
    """Build the traces, run the measurements, print them; 0 when every target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="100000,1000000", help="comma-separated sizes (jobs)")
    parser.add_argument("--repeat", type=int, default=3, help="simulation runs below 500,000 jobs (median shown)")
    parser.add_argument("--command-repeat", type=int, default=3, help="runs of the whole command (median wall shown)")
    parser.add_argument("--policy", default="easy", choices=("fcfs", "sjf", "easy", "conservative"),
                        help="central policy (the targets are EASY's)")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="SWF trace to repeat")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.jobs.split(",") if s.strip()]
    if not args.trace.is_file():
        print(f"trace not found: {args.trace}", file=sys.stderr)
        return 2
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; workload: {args.trace.name} repeated, "
          f"submit times shifted")
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"ctc-{n}.swf.gz"
            t0 = time.perf_counter()
            write_repeated(args.trace, n, path)
            print(f"{n:,} jobs: trace written in {time.perf_counter() - t0:.1f} s "
                  f"({path.stat().st_size / 1e6:.1f} MB gzip)")
            repeat = args.repeat if n < 500_000 else 1
            times, simulated = time_simulation(path, repeat, args.policy)
            sim = statistics.median(times)
            how = f"median of {repeat}: " + ", ".join(f"{t:.3f}" for t in times) if repeat > 1 else "1 run"
            easy = args.policy == "easy"
            target = SIM_TARGET_S.get(n) if easy else None
            failed |= target is not None and sim > target
            print(f"  (i)  simulation (resilience.simulate, {args.policy}, {simulated:,} jobs): {sim:.3f} s [{how}]"
                  f"{verdict(sim, target)}")
            # The machine is shared and noisy: the command's wall time is the median of its runs,
            # its memory the largest peak of them, and every run's figures are printed.
            runs = [time_command(path, Path(tmp) / f"out-{k}", args.policy) for k in range(args.command_repeat)]
            wall, rss = statistics.median(r[0] for r in runs), max(r[1] for r in runs)
            code = next((r[2] for r in runs if r[2]), 0)
            wall_target, rss_target = (WALL_TARGET_S.get(n), RSS_TARGET_MB.get(n)) if easy else (None, None)
            failed |= code != 0 or (wall_target is not None and wall > wall_target)
            failed |= rss_target is not None and rss > rss_target
            each = ", ".join(f"{r[0]:.2f} s / {r[1]:,.0f} MB" for r in runs)
            print(f"  (ii) main.py --simulate --policy {args.policy}: {wall:.2f} s wall{verdict(wall, wall_target)}, "
                  f"peak RSS {rss:,.0f} MB{verdict(rss, rss_target)}, exit code {code} "
                  f"[median wall and largest peak of {len(runs)}: {each}]")
            path.unlink()
    if args.policy != "easy":
        print("figures only: the targets are EASY's" if not failed else "a command failed")
    else:
        print("all targets met" if not failed else "some targets NOT met")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
