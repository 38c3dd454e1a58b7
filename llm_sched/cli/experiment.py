"""``python main.py --experiment [FILE]`` and ``--experiment --resume DIR``: a protocol experiment
under injected faults, the flags overriding the experiment file."""

from __future__ import annotations

import argparse
import sys

from llm_sched.cli.settings import settings_for
from llm_sched.errors import UserError


def run(args: argparse.Namespace) -> int:
    """Run (or with ``--resume``, finish) the experiment; returns 0, or 130 when interrupted."""
    from llm_sched.experiments.config import load_experiment
    from llm_sched.experiments.experiment import run_experiment
    from llm_sched.ui.experiment_view import ExperimentView

    sweep = args.intensity == "all"
    overrides = {"methods": args.methods, "agents": args.agents, "byzantine": args.byzantine, "crash": args.crash,
                 "jobs": args.jobs, "repetitions": args.repetitions, "seed": args.seed,
                 "agent_mode": args.agent_mode, "faults": args.faults,
                 "intensity": None if sweep else args.intensity, "out": args.out}
    settings = settings_for(args)
    if sweep:
        return _sweep(args, overrides, settings)
    claim, folder = None, None
    if args.force and args.resume is not None:
        raise UserError("--force runs an experiment afresh, --resume continues one: give one of them")
    if args.resume is not None:  # the experiment stored for the folder; flags, if given, must match it
        from llm_sched.experiments.experiment import resume_target

        config, folder, claim = resume_target(args.resume, settings, args.experiment or None, overrides)
    else:
        config = load_experiment(args.experiment or None, overrides, scenarios_dir=settings.scenarios_dir)
    try:
        run_experiment(config, settings, view=ExperimentView(), ledger=settings.ledger_path, folder=folder,
                       claim=claim, force=args.force)
    except KeyboardInterrupt:
        where = args.resume or config.out
        how = f"python main.py --experiment --resume {where}" if where else \
            "python main.py --experiment --resume DIR (DIR: the output folder printed above)"
        print(f"interrupted; the finished runs are stored: resume with {how}", file=sys.stderr)
        return 130
    return 0


def _sweep(args: argparse.Namespace, overrides: dict[str, object], settings: object) -> int:
    """``--intensity all``: the experiment at every fault level, and the protocol table."""
    from pathlib import Path

    from llm_sched.experiments.config import load_experiment
    from llm_sched.experiments.output import output_dir
    from llm_sched.experiments.sweep import run_sweep
    from llm_sched.ui.experiment_view import ExperimentView

    if args.resume is not None:
        raise UserError("--intensity all runs one experiment per level: resume a level with "
                        "--experiment --resume DIR/LEVEL")
    if args.faults is not None:
        raise UserError("--intensity all draws each level's faults: give either --faults FILE or --intensity all")
    config = load_experiment(args.experiment or None, overrides, scenarios_dir=settings.scenarios_dir)  # type: ignore[attr-defined]
    folder = output_dir(config.out, settings.runs_dir, reuse=args.force)  # type: ignore[attr-defined]
    result = run_sweep(config, settings, Path(folder), view=ExperimentView(),  # type: ignore[arg-type]
                       ledger=settings.ledger_path)  # type: ignore[attr-defined]
    print(f"protocol table: {result.files[0]}")
    for method, score in result.scores.items():
        print(f"  {method}: Fault Tolerance Score {score:.1f} of 100")
    return 0
