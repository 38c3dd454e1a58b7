"""Benchmark the failure-aware simulator (llm_sched.sim.resilience).

    python bench/bench_resilience.py [--repeat R] [--reps N] [--trace PATH]

(i)   One synthetic run of 500 jobs on 20 agents (160 nodes), 15% random agent failures and 2%
      node failures, under each policy: best wall time of R, engine events per second.
(ii)  A campaign-shaped sweep, as issue 7 describes it (26 configurations: 12 scale points, 4
      failure rates, 3 failure patterns, 3 arrival patterns, 4 high-load sizes; N repetitions;
      3 policies), run sequentially in this process: total time, and the slowest single run.
(iii) A whole-trace replay (KTH when present) in the failure-aware simulator beside the plain
      FCFS/EASY replay of llm_sched.sim.baselines: the price of tracking nodes, pools and failures.

Every figure printed is measured in this run; timings are wall-clock (time.perf_counter) and
depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from llm_sched.sim.failures import FailureSpec
from llm_sched.sim.resilience import POLICIES, PoolSplit, SimConfig, simulate
from llm_sched.sim.resilience_metrics import measure
from llm_sched.sim.simulate import SyntheticSetup, prepare
from llm_sched.sim.workload import WorkloadSpec, from_trace

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = REPO_ROOT / ".." / "shared" / "traces" / "KTH-SP2-1996-2.1-cln.swf.gz"
T = TypeVar("T")


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Fastest wall time of ``repeat`` calls, and the last result."""
    times = []
    result: T
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def campaign_configs() -> list[tuple[str, SyntheticSetup]]:
    """The 26 configurations of issue 7 around a base of 100 jobs, 10 agents, 15% random failures."""
    base = SyntheticSetup(agents=10, workload=WorkloadSpec(jobs=100, arrival="poisson"), failures=FailureSpec(rate=0.15))
    out: list[tuple[str, SyntheticSetup]] = []
    for jobs in (50, 100, 250, 500):
        for agents in (5, 10, 20):
            out.append((f"scale {jobs}x{agents}", replace(base, agents=agents, workload=replace(base.workload, jobs=jobs))))
    for rate in (0.05, 0.15, 0.25, 0.35):
        out.append((f"rate {rate:.0%}", replace(base, failures=replace(base.failures, rate=rate))))
    for pattern in ("random", "cascading", "partition"):
        out.append((f"pattern {pattern}", replace(base, failures=replace(base.failures, pattern=pattern))))
    for arrival in ("constant", "burst", "poisson"):
        out.append((f"load {arrival}", replace(base, workload=replace(base.workload, arrival=arrival))))
    for jobs in (50, 100, 200, 400):
        out.append((f"high load {jobs}", replace(base, workload=WorkloadSpec(jobs=jobs, arrival="batch"))))
    return out


def bench_single(repeat: int) -> None:
    scenario = SyntheticSetup(agents=20, workload=WorkloadSpec(jobs=500, arrival="poisson"),
                              failures=FailureSpec(rate=0.15, node_rate=0.02))
    jobs, cluster, schedule = prepare(scenario, seed=1)
    print(f"(i) 500 jobs, 20 agents, {cluster.nodes} nodes, {len(schedule.outages)} outages "
          f"(15% random agent failures, 2% node failures), seed 1; best of {repeat}")
    for policy in POLICIES:
        seconds, run = best_of(repeat, partial(simulate, jobs, cluster, scenario.config(policy), schedule))
        m = measure(run)
        print(f"    {policy:6s}: {1000 * seconds:6.1f} ms, {run.engine_events:,} engine events "
              f"({run.engine_events / seconds:,.0f}/s); wait mean {m.wait_mean:,.0f} s, kills {m.kills}, "
              f"MTTR {m.mttr:,.0f} s")


def bench_campaign(reps: int) -> None:
    configs = campaign_configs()
    slowest = (0.0, "")
    t0 = time.perf_counter()
    runs = 0
    for label, scenario in configs:
        for seed in range(1, reps + 1):
            jobs, cluster, schedule = prepare(scenario, seed)
            for policy in POLICIES:
                t1 = time.perf_counter()
                measure(simulate(jobs, cluster, scenario.config(policy), schedule))
                took = time.perf_counter() - t1
                slowest = max(slowest, (took, f"{label}, seed {seed}, {policy}"))
                runs += 1
    total = time.perf_counter() - t0
    print(f"(ii) campaign shape: {len(configs)} configurations x {reps} seeds x {len(POLICIES)} policies "
          f"= {runs} runs (with metrics) in {total:.2f} s on one core ({1000 * total / runs:.1f} ms a run); "
          f"slowest run {1000 * slowest[0]:.1f} ms ({slowest[1]})")


def bench_trace(trace: Path, repeat: int) -> None:
    if not trace.is_file():
        print(f"(iii) skipped: {trace} not found")
        return
    from llm_sched.sim.baselines import machine_procs, replay
    from llm_sched.sim.swf import load_trace

    loaded = load_trace(trace)
    procs = machine_procs(loaded.header, loaded.jobs)
    jobs = from_trace(loaded.jobs)
    cluster = PoolSplit(procs, 5)
    print(f"(iii) {trace.name}: {len(jobs):,} jobs, P = {procs}, 5 agents, no failures; best of {repeat}")
    for policy in POLICIES:
        seconds, run = best_of(repeat, partial(simulate, jobs, cluster, SimConfig(policy)))
        line = f"    {policy:6s}: failure-aware {seconds:.3f} s ({len(jobs) / seconds:,.0f} jobs/s)"
        if policy != "agents":
            base_s, base = best_of(repeat, partial(replay, loaded.jobs, procs, policy))
            same = [(o.job_id, o.start) for o in base.outcomes] == [(o.job_id, o.start) for o in run.outcomes]
            line += f"; baselines.replay {base_s:.3f} s; same schedule: {'yes' if same else 'NO'}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    """Run the three benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing; the best is shown")
    parser.add_argument("--reps", type=int, default=5, help="seeded repetitions per campaign configuration")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="SWF trace for (iii)")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}")
    bench_single(args.repeat)
    bench_campaign(args.reps)
    bench_trace(args.trace, max(1, args.repeat // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
