"""``python main.py --scenario NAME``, ``--interactive`` and ``--resume RUN_ID``: one scenario run,
started or continued after its last committed decision, and its summary."""

from __future__ import annotations

import argparse
from typing import Any

from llm_sched.errors import UserError


def _run_options(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from llm_sched.api import RunOptions

    if (args.record_to or args.force) and not args.record:
        raise UserError("--record-to and --force go with --record")
    return RunOptions(record=args.record, record_to=Path(args.record_to) if args.record_to else None,
                      force=args.force, allow_fallback=args.allow_fallback, executor=_executor(args))


def _executor(args: argparse.Namespace) -> Any:
    from llm_sched.execution.factory import DEFAULT_TIME_SCALE, ExecutorChoice

    kind = args.executor or "sim"
    if kind == "dask":
        raise UserError("--executor dask is for --evaluate; a scenario's jobs run on sim, local or slurm")
    if args.time_scale is not None and kind == "sim":
        raise UserError("--time-scale goes with --executor local or slurm (the sim executor's clock is simulated)")
    return ExecutorChoice(kind=kind, time_scale=args.time_scale or DEFAULT_TIME_SCALE)


def run(args: argparse.Namespace, name: str, transparent: bool) -> int:
    """Run scenario ``name`` (``transparent``: every prompt and answer shown) and print its summary."""
    from llm_sched.api import print_summary, run_scenario_by_name

    result = run_scenario_by_name(name, provider=args.provider, seed=args.seed, transparent=transparent,
                                  pause=transparent and not args.no_pause, verbose=args.verbose,
                                  options=_run_options(args), protocol=args.protocol)
    print_summary(result)
    return 0


def resume(args: argparse.Namespace) -> int:
    """Continue the stored scenario run ``--resume`` names, with its own seed and provider."""
    from llm_sched.api import print_summary, resume_run

    if args.seed is not None or args.provider or args.record or args.allow_fallback:
        raise UserError("--resume RUN_ID continues a run with its own seed and provider: "
                        "give no --seed, --provider, --record or --allow-fallback with it")
    print_summary(resume_run(args.resume, scenario=args.scenario))
    return 0
