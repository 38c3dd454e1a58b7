"""``python main.py --simulate --trace FILE --policy P``: a workload trace replayed in the
discrete-event simulator; its metrics, per-job CSV and utilization plot."""

from __future__ import annotations

import argparse

from llm_sched.errors import UserError


def run(args: argparse.Namespace) -> int:
    """Replay the trace under the policy and print where the results are; returns 0."""
    from pathlib import Path

    from rich.console import Console

    from llm_sched.sim.simulate import simulate_trace
    from llm_sched.ui.sim_view import print_metrics

    if not args.trace or not args.policy:
        raise UserError("--simulate needs --trace FILE and --policy fcfs|easy|agents")
    out = Path(args.out or "runs/simulate")
    seed = 1 if args.seed is None else args.seed  # 0 is a seed like any other
    agents = 5 if args.agents is None else args.agents
    result = simulate_trace(args.trace, args.policy, jobs=args.jobs, out_dir=out, seed=seed, agents=agents)
    console = Console(highlight=False)
    print_metrics(result.metrics, title=f"{Path(args.trace).name} under {args.policy}", console=console)
    console.print(f"per-job CSV: {result.csv_path}")
    if result.plot_path:
        console.print(f"utilization plot: {result.plot_path}")
    return 0
