"""The command line's entry point: parse the flags, refuse the ones that do not go with the mode, run
the mode. User errors print one clear message and exit non-zero, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from llm_sched.cli import campaign, check, experiment, federation, ledger, peers, scenario, setup_env, simulate
from llm_sched.cli.federation import SUBCOMMANDS
from llm_sched.cli.modes import refuse_stray_flags
from llm_sched.cli.overview import overview
from llm_sched.cli.parser import build_parser
from llm_sched.errors import Interrupted, UserError


def dispatch(args: argparse.Namespace) -> int:
    """Run the mode the flags choose; returns its exit code."""
    if args.check:
        return check.run(args)
    if args.setup_env:
        return setup_env.run(args)
    if args.interactive:
        return scenario.run(args, args.scenario or "fault_tolerance", transparent=True)
    if args.experiment is not None:
        return experiment.run(args)
    if args.simulate:
        return simulate.run(args)
    if args.peers:
        return peers.run(args)
    if args.evaluate:
        return campaign.run_campaign_cli(args.config, args.out, args.quick, args.workers, args.seed,
                                         executor=args.executor or "local", scheduler=args.scheduler,
                                         resume=args.resume, force=args.force)
    if args.verify:
        return ledger.verify(args.verify)
    if args.runs:
        return ledger.runs()
    if args.show:
        return ledger.show(args.show)
    if args.resume is not None:
        return scenario.resume(args)
    if args.scenario is not None:
        return scenario.run(args, args.scenario, transparent=False)
    print(overview())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "serve":  # llm-sched serve: the web view, loaded only when asked for
        from llm_sched.cli import serve

        return _guarded(lambda: serve.main(words[1:]))
    if words and words[0] in SUBCOMMANDS:  # llm-sched bus | agent | federation | submit | status
        return _guarded(lambda: federation.main(words))
    args = build_parser().parse_args(argv)
    return _guarded(lambda: _checked(args))


def _checked(args: argparse.Namespace) -> int:
    refuse_stray_flags(args)
    return dispatch(args)


def _guarded(run: Callable[[], int]) -> int:
    """``run()``, with user errors and interrupts turned into a message and an exit code."""
    try:
        return run()
    except Interrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
