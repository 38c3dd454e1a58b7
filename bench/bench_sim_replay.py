"""Benchmark the simulator: a 100,000-job EASY replay, and the engine beside SimPy.

    python bench/bench_sim_replay.py [--jobs N] [--repeat R] [--trace PATH]

(i)  EASY on N jobs built by repeating the CTC trace with shifted submit times (or, when the
     shared traces are absent, a seeded synthetic stream): simulation seconds and jobs/s.
(ii) The same jobs under FCFS, once on llm_sched.sim.engine and once on SimPy (a process per
     job and a Container of P processors): events/s of each, wall-time ratio, and a check that
     both produced the same start times. Every figure printed is measured in this run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from llm_sched.sim.baselines import machine_procs, replay
from llm_sched.sim.metrics import schedule_metrics
from llm_sched.sim.swf import TraceJob, load_trace

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = REPO_ROOT / ".." / "shared" / "traces" / "CTC-SP2-1996-3.1-cln.swf.gz"
SYNTHETIC_PROCS = 256
T = TypeVar("T")


def repeated_stream(jobs: Sequence[TraceJob], n: int) -> list[TraceJob]:
    """The first ``n`` jobs of the trace played again and again, each copy after the last one.

    Each copy is shifted by the trace's submit span plus one second and gets fresh job ids.
    """
    first, last = jobs[0].submit, jobs[-1].submit
    shift = last - first + 1
    out: list[TraceJob] = []
    copy = 0
    while len(out) < n:
        offset = copy * shift
        base = copy * len(jobs)
        out.extend(
            replace(job, job_id=base + k + 1, submit=job.submit + offset)
            for k, job in enumerate(jobs[: n - len(out)])
        )
        copy += 1
    return out


def synthetic_stream(n: int, procs: int, seed: int = 1) -> list[TraceJob]:
    """A seeded, roughly Lublin-shaped stream: Poisson arrivals, log-uniform runs, 2^k widths."""
    rng = random.Random(seed)
    jobs: list[TraceJob] = []
    now = 0
    for k in range(n):
        now += int(rng.expovariate(1 / 300))
        run = max(1, int(10 ** rng.uniform(0, 4.5)))
        width = min(procs, 2 ** rng.randint(0, 8))
        estimate = run * rng.choice((1, 2, 3, 5))
        jobs.append(TraceJob(k + 1, now, -1, run, width, width, estimate, estimate, 1, -1, -1, -1, -1))
    return jobs


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Fastest wall time of ``repeat`` calls, and the last result."""
    times = []
    result: T
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def simpy_fcfs(jobs: Sequence[TraceJob], procs: int) -> tuple[int, dict[int, float]]:
    """FCFS on SimPy: one process per job taking its processors from a Container.

    A Container serves its get requests strictly in order (the first one that does not fit
    blocks the rest), which is FCFS. Returns the number of events SimPy processed and each
    job's start time by job id.
    """
    import simpy  # a benchmark-only dependency

    ordered = sorted(jobs, key=lambda j: j.submit)  # the same stable order replay() uses
    env = simpy.Environment(initial_time=ordered[0].submit)
    machine = simpy.Container(env, capacity=procs, init=procs)
    starts: dict[int, float] = {}

    def job(job_id: int, width: int, run: float) -> Generator[simpy.Event, object, None]:
        yield machine.get(width)
        starts[job_id] = env.now
        yield env.timeout(run)
        yield machine.put(width)

    def source() -> Generator[simpy.Event, object, None]:
        for j in ordered:
            if j.submit > env.now:
                yield env.timeout(j.submit - env.now)
            env.process(job(j.job_id, j.procs, j.run))

    env.process(source())
    events = 0
    try:
        while True:  # env.run() loops over env.step() the same way; this one also counts
            env.step()
            events += 1
    except simpy.core.EmptySchedule:
        pass
    return events, starts


def load_stream(trace: Path, n: int) -> tuple[list[TraceJob], int, str]:
    """The benchmark's jobs, machine size, and a description of where they came from."""
    if trace.is_file():
        loaded = load_trace(trace)
        procs = machine_procs(loaded.header, loaded.jobs)
        label = f"{trace.name} repeated, submit times shifted ({len(loaded.jobs):,} jobs a copy)"
        return repeated_stream(loaded.jobs, n), procs, label
    label = f"seeded synthetic stream (seed 1); {trace} not found"
    return synthetic_stream(n, SYNTHETIC_PROCS), SYNTHETIC_PROCS, label


def bench_easy(jobs: list[TraceJob], procs: int, repeat: int) -> None:
    seconds, result = best_of(repeat, lambda: replay(jobs, procs, "easy"))
    summary = schedule_metrics(result.outcomes, procs)
    print(f"(i) EASY replay of {len(jobs):,} jobs on P = {procs}")
    print(f"    simulation: {seconds:.3f} s (best of {repeat}) -> {len(jobs) / seconds:,.0f} jobs/s")
    print(f"    engine events: {result.events:,} ({result.events / seconds:,.0f} events/s)")
    print(f"    average wait {summary.wait_mean:,.0f} s, "
          f"average bounded slowdown {summary.bsld_mean:,.1f}, "
          f"utilization {summary.utilization:.3f}")


def bench_vs_simpy(jobs: list[TraceJob], procs: int, repeat: int) -> None:
    ours_s, ours = best_of(repeat, lambda: replay(jobs, procs, "fcfs"))
    simpy_s, (simpy_events, simpy_starts) = best_of(repeat, lambda: simpy_fcfs(jobs, procs))
    same = {o.job_id: o.start for o in ours.outcomes} == simpy_starts
    ours_rate, simpy_rate = ours.events / ours_s, simpy_events / simpy_s
    print(f"(ii) FCFS on the same {len(jobs):,} jobs, P = {procs} (best of {repeat} each)")
    print(f"    llm_sched engine: {ours_s:.3f} s, {ours.events:,} events -> "
          f"{ours_rate:,.0f} events/s, {len(jobs) / ours_s:,.0f} jobs/s")
    print(f"    SimPy {_simpy_version()}: {simpy_s:.3f} s, {simpy_events:,} events -> "
          f"{simpy_rate:,.0f} events/s, {len(jobs) / simpy_s:,.0f} jobs/s")
    print(f"    ratio: SimPy wall time / engine wall time = {simpy_s / ours_s:.1f}x; "
          f"events/s engine / SimPy = {ours_rate / simpy_rate:.2f} "
          f"(SimPy needs {simpy_events / ours.events:.1f}x the events for the same model)")
    print(f"    same start times in both: {'yes' if same else 'NO'}")


def _simpy_version() -> str:
    import simpy

    return simpy.__version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run both benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the stream")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is shown")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="SWF trace to repeat")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    jobs, procs, label = load_stream(args.trace, args.jobs)
    print(f"workload: {label}; built in {time.perf_counter() - t0:.2f} s")
    print(f"python {sys.version.split()[0]}")
    bench_easy(jobs, procs, args.repeat)
    bench_vs_simpy(jobs, procs, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
