"""``python main.py --simulate --trace FILE --policy P``: a workload trace replayed in the
discrete-event simulator; its metrics, per-job CSV (and Parquet, with pyarrow) and utilization plot.

Failures: none by default; drawn from ``--seed`` with ``--fail-rate R`` (``--fail-pattern``,
``--node-fail-rate``), so every policy run with the same seed and trace meets the same ones; or
listed in a file with ``--failures FILE`` (:mod:`llm_sched.sim.failure_file`). The output says which."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from llm_sched.errors import UserError

if TYPE_CHECKING:
    from llm_sched.sim.failure_file import FailurePlan
    from llm_sched.sim.failures import FailureSchedule, FailureSpec

# The flags that draw failures from the seed (dest, as said in messages); --failures FILE lists them.
_DRAWN = (("fail_rate", "--fail-rate R"), ("fail_pattern", "--fail-pattern P"),
          ("node_fail_rate", "--node-fail-rate R"))


def run(args: argparse.Namespace) -> int:
    """Replay the trace under the policy and print where the results are; returns 0."""
    from pathlib import Path

    from rich.console import Console

    from llm_sched.safe_text import printable
    from llm_sched.sim.simulate import simulate_trace
    from llm_sched.ui.sim_view import print_metrics

    if not args.trace or not args.policy:
        raise UserError("--simulate needs --trace FILE and --policy fcfs|sjf|easy|conservative|agents")
    failures = _failures(args)
    out = Path(args.out or "runs/simulate")
    seed = 1 if args.seed is None else args.seed  # 0 is a seed like any other
    agents = 5 if args.agents is None else args.agents
    result = simulate_trace(args.trace, args.policy, jobs=args.jobs, out_dir=out, seed=seed, agents=agents,
                            failures=failures, failover=args.failover, walltime_kill=args.walltime_kill)
    console = Console(highlight=False)
    print_metrics(result.metrics, title=f"{Path(args.trace).name} under {args.policy}", console=console)

    def say(line: str) -> None:  # file names are data: no markup, no control characters, one line
        console.print(printable(line), markup=False, soft_wrap=True)

    say(f"failures: {describe_failures(failures, result.run.schedule, seed)}")
    say(f"per-job CSV: {result.csv_path}")
    if result.parquet_path:
        say(f"per-job Parquet: {result.parquet_path}")
    elif result.parquet_skipped:
        say(f"Parquet: not written ({result.parquet_skipped})")
    if result.plot_path:
        say(f"utilization plot: {result.plot_path}")
    return 0


def _failures(args: argparse.Namespace) -> FailureSpec | FailurePlan | None:
    """What fails: the file's outages, a spec drawn from the seed, or nothing. A file read here, before
    the trace, so that its mistakes are reported at once (its members are checked against the
    cluster once the trace gives the machine's size)."""
    drawn = [flag for dest, flag in _DRAWN if getattr(args, dest, None) is not None]
    if args.failures is not None:
        if drawn:
            raise UserError(f"--failures FILE and {drawn[0]} do not go together: the file lists the outages, "
                            f"{drawn[0]} draws them; give one or the other")
        from llm_sched.sim.failure_file import load_failure_file

        return load_failure_file(args.failures)
    if not drawn:
        return None
    if args.fail_pattern is not None and args.fail_rate is None:
        raise UserError("--fail-pattern P needs --fail-rate R (the probability that an agent fails)")
    from llm_sched.sim.failures import FailureSpec

    try:
        return FailureSpec(rate=args.fail_rate or 0.0, pattern=args.fail_pattern or "random",
                           node_rate=args.node_fail_rate or 0.0)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def describe_failures(failures: FailureSpec | FailurePlan | None, schedule: FailureSchedule, seed: int) -> str:
    """One line after "failures: ": none, drawn (rate, pattern, seed) or from a file, with the counts."""
    from llm_sched.sim.failure_file import FailurePlan

    if failures is None:
        return "none"
    counts = ", ".join(_count(schedule.count(kind), noun) for kind, noun in (
        ("agent", "agent outage"), ("node", "node outage"), ("partition", "partition")))
    if isinstance(failures, FailurePlan):
        return f"from {failures.path}: {counts}"
    nodes = f", node rate {failures.node_rate:g}" if failures.node_rate else ""
    return f"drawn, rate {failures.rate:g}, pattern {failures.pattern}{nodes}, seed {seed}: {counts}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
