"""Command line: ``python main.py [flags]`` or ``llm-sched [flags]``.

Parsing is plain argparse and every mode imports what it needs when it runs, so ``--help``,
``--version`` and ``--check`` start fast. User errors print one clear message and exit non-zero,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from llm_sched import __version__
from llm_sched.config import PROVIDER_CHOICES
from llm_sched.errors import Interrupted, UserError

# (command, what it does): the overview printed by ``python main.py`` with no flags.
MODES: tuple[tuple[str, str], ...] = (
    ("python main.py --interactive", "healthy, Byzantine and recovery scenarios with every prompt and answer shown"),
    ("python main.py --scenario NAME", "run one scenario (healthy, byzantine, recovery, fault_tolerance, ...)"),
    ("python main.py --scenario supercomputers", "six supercomputers bid for eight large jobs; one turns Byzantine"),
    ("python main.py --experiment [FILE]", "consensus protocols (PBFT, Tendermint, Multi-Paxos, Raft...) under faults"),
    ("python main.py --simulate --trace FILE --policy P", "replay an SWF trace under fcfs, easy or agents: metrics, CSV, plot"),
    ("python main.py --evaluate [--quick]", "the resilience campaign: agents vs FCFS/EASY, statistics, figures, report"),
    ("python main.py --runs", "list the runs stored in the ledger; --show RUN_ID prints one run's decisions"),
    ("python main.py --resume RUN_ID", "continue a scenario run that was killed, after its last committed decision"),
    ("python main.py --verify RUN_ID", "check every quorum certificate (signed votes) of a stored run, offline"),
    ("python main.py --check", "check Python, packages, LLM endpoints and shipped cassettes"),
    ("python main.py --setup-env", "guided setup of ./.env (provider, endpoint, key)"),
)

OVERVIEW = """\
llm-sched {version}: specialist LLM agents (GPU, memory, compute, storage, general) that
schedule HPC jobs by Byzantine fault-tolerant consensus. Each agent proposes a placement and
votes on candidates; a placement commits only with a Byzantine quorum (4 of 5, 5 of 7), so lying,
silent or crashed agents cannot push a bad placement through. Models: a local GGUF model run by
llama.cpp, any OpenAI-compatible server, Ollama, SambaNova Cloud or SambaStudio; offline, cassettes
recorded from a real model, or the agents' heuristics, answer instead.

Modes:
{modes}

Settings come from the environment, ./.env and ~/.env (see .env.example).
Every flag: python main.py --help"""


SEED_MAX = 2**63 - 1  # seeds are stored as SQLite integers (signed 64 bits)


def _whole_number(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text if len(text) <= 24 else text[:20] + '...'} is not allowed: "
                                         f"give {low} to {high}")
    return value


def bounded_int(low: int, high: int) -> Any:
    """An argparse type: a whole number from ``low`` to ``high`` (``--agents 0`` once ran 5 agents, and a
    seed beyond 64 bits reached SQLite as an OverflowError)."""
    def parse(text: str) -> int:
        return _whole_number(text, low, high)

    return parse


positive_int = bounded_int(1, 1_000_000)
non_negative_int = bounded_int(0, 1_000_000)
seed_int = bounded_int(0, SEED_MAX)

# Flags that belong to some modes only (dest -> modes): given with another mode they were silently
# ignored, so a user believed a setting took effect. "scenario" covers --scenario and --interactive.
APPLIES: dict[str, frozenset[str]] = {
    "trace": frozenset({"simulate"}), "policy": frozenset({"simulate"}),
    "quick": frozenset({"evaluate"}), "config": frozenset({"evaluate"}), "workers": frozenset({"evaluate"}),
    "methods": frozenset({"experiment"}), "byzantine": frozenset({"experiment"}), "crash": frozenset({"experiment"}),
    "repetitions": frozenset({"experiment"}), "agent_mode": frozenset({"experiment"}),
    "faults": frozenset({"experiment"}), "intensity": frozenset({"experiment"}),
    "agents": frozenset({"experiment", "simulate"}), "jobs": frozenset({"experiment", "simulate"}),
    "out": frozenset({"experiment", "evaluate", "simulate"}),
    # seed, provider, record and allow_fallback "apply" to resume so that it says why it refuses them
    "record": frozenset({"scenario", "resume"}), "record_to": frozenset({"scenario"}),
    "force": frozenset({"scenario", "experiment", "evaluate"}),
    "allow_fallback": frozenset({"scenario", "resume"}), "no_pause": frozenset({"scenario"}), "verbose": frozenset({"scenario"}),
    "seed": frozenset({"scenario", "experiment", "evaluate", "simulate", "resume"}),
    "scenario": frozenset({"scenario", "resume"}), "interactive": frozenset({"scenario"}),
    "protocol": frozenset({"scenario"}),
    "resume": frozenset({"experiment", "evaluate", "resume"}),
    "provider": frozenset({"scenario", "experiment", "check", "setup_env", "resume"}),
    **{dest: frozenset({"setup_env"}) for dest in ("yes", "ollama_host", "ollama_model", "sambanova_api_base",
                                                   "sambanova_model", "sambastudio_url", "api_key_stdin", "probe")},
}


def _mode(args: argparse.Namespace) -> str:
    """The mode that runs, in the order ``_dispatch`` tries them."""
    for mode in ("check", "setup_env", "experiment", "simulate", "evaluate", "runs", "show", "verify", "resume"):
        if getattr(args, mode) not in (None, False):
            return mode
    return "scenario" if args.interactive or args.scenario is not None else "overview"


def refuse_stray_flags(args: argparse.Namespace) -> None:
    """A flag given with a mode it does not apply to is an error (exit 2), not silently dropped."""
    mode = _mode(args)
    for dest, modes in APPLIES.items():
        if getattr(args, dest) not in (None, False) and mode not in modes:
            flag = "--" + dest.replace("_", "-")
            where = " or ".join("--" + m.replace("_", "-") for m in sorted(modes))
            if mode == "overview":
                raise UserError(f"{flag} needs {where}")
            raise UserError(f"{flag} does not go with --{mode.replace('_', '-')}: it is for {where}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-sched",
        description="LLM-backed agents that schedule HPC jobs by fault-tolerant consensus.",
    )
    parser.add_argument("--version", action="version", version=f"llm-sched {__version__}")
    group = parser.add_argument_group("modes")
    # One mode per run: a second one was silently ignored. --scenario and --resume combine with others.
    modes = group.add_mutually_exclusive_group()
    modes.add_argument("--check", action="store_true", help="check the environment and exit (0 ready, 1 broken)")
    modes.add_argument("--setup-env", action="store_true", help="guided setup that writes ./.env")
    modes.add_argument("--interactive", action="store_true",
                       help="run fault_tolerance with full transparency (prompts, raw answers, votes, reputations)")
    group.add_argument("--scenario", metavar="NAME", help="run scenarios/NAME.yaml (or a path to a scenario file)")
    modes.add_argument("--experiment", metavar="FILE", nargs="?", const="",
                       help="run a protocol experiment: scenarios/experiments/FILE.yaml, a path, or nothing for the "
                            "defaults (7 agents, 2 Byzantine, 5 jobs, 3 repetitions, pbft, tendermint, multi_paxos); "
                            "with --resume DIR, finish the experiment stored for DIR")
    group.add_argument("--resume", metavar="RUN_ID_OR_DIR",
                       help="resume a stored run: a scenario run id or run folder (runs/ID, wherever it was moved), or "
                            "the --out folder of an experiment or campaign")
    modes.add_argument("--runs", action="store_true", help="list the runs stored in the ledger (LLM_SCHED_LEDGER)")
    modes.add_argument("--show", metavar="RUN_ID", help="print one stored run's decisions, votes and reputation changes")
    modes.add_argument("--verify", metavar="RUN_ID",
                       help="check every commit of a stored scenario run against its quorum certificate (Ed25519 "
                            "signatures of a quorum of agents) and the run's public keys; exit 1 at the first bad one")
    modes.add_argument("--simulate", action="store_true",
                       help="replay a workload trace (--trace) in the discrete-event simulator under --policy")
    sim = parser.add_argument_group("--simulate")
    sim.add_argument("--trace", metavar="FILE", help="Standard Workload Format trace, plain or .gz")
    sim.add_argument("--policy", choices=("fcfs", "easy", "agents"), metavar="P",
                     help="fcfs, easy (central schedulers) or agents (decentralized bids and quorum)")
    modes.add_argument("--evaluate", action="store_true",
                       help="run the resilience evaluation campaign (26 configurations, agents vs FCFS and EASY); "
                            "with --resume DIR, finish the campaign stored for DIR")
    ev = parser.add_argument_group("--evaluate")
    ev.add_argument("--quick", action="store_true", help="the quick campaign (scenarios/evaluation/quick.yaml)")
    ev.add_argument("--config", metavar="FILE", help="campaign file (default scenarios/evaluation/full.yaml)")
    ev.add_argument("--workers", type=positive_int, metavar="N", help="worker processes (default: one per CPU)")
    run = parser.add_argument_group("running scenarios")
    run.add_argument("--seed", type=seed_int, metavar="S",
                     help="seed for this run (default: the scenario's or the experiment file's)")
    run.add_argument("--record", action="store_true",
                     help="record the model's answers to a cassette in the run's folder (or --record-to PATH)")
    run.add_argument("--record-to", metavar="PATH", help="with --record: write the cassette here instead")
    run.add_argument("--force", action="store_true",
                     help="with --record: replace an existing cassette file; with --experiment or --evaluate: "
                          "run afresh into an --out folder that is not empty (its result files are replaced)")
    run.add_argument("--allow-fallback", action="store_true",
                     help="if the configured provider cannot be reached at the start, run on the agents' heuristics "
                          "(the banner and summary say so) instead of stopping")
    run.add_argument("--protocol", choices=("pbft", "tendermint", "weighted"), metavar="NAME",
                     help="the protocol that decides each vote round on the simulated network: pbft (default), "
                          "tendermint or weighted (the default for reputation-weighted scenarios)")
    run.add_argument("--no-pause", action="store_true", help="do not wait for Enter between phases")
    run.add_argument("--verbose", action="store_true",
                     help="show the prompt and answer panels of every decision, not only each phase's first")
    exp = parser.add_argument_group("protocol experiments (override the experiment file)")
    exp.add_argument("--methods", metavar="M,M", help="comma-separated: pbft, tendermint, multi_paxos, raft, weighted, "
                                                      "bidding, negotiation, gossip")
    exp.add_argument("--agents", type=positive_int, metavar="N", help="agents taking part in every decision (n); with --simulate, the resource agents the "
                                                    "machine is split among (default 5)")
    exp.add_argument("--byzantine", type=non_negative_int, metavar="K", help="Byzantine agents per repetition")
    exp.add_argument("--crash", type=non_negative_int, metavar="K", help="honest agents that crash once per repetition")
    exp.add_argument("--jobs", type=positive_int, metavar="J", help="placement decisions per run")
    exp.add_argument("--repetitions", type=positive_int, metavar="R", help="repetitions per method")
    exp.add_argument("--agent-mode", choices=("heuristic", "llm", "hybrid"), metavar="MODE",
                     help="how agents propose: heuristic, llm (the provider's model) or hybrid (a seeded half each)")
    exp.add_argument("--faults", metavar="FILE", help="a fault plan (YAML), e.g. scenarios/experiments/faults/*.yaml")
    exp.add_argument("--intensity", choices=("light", "medium", "heavy", "chaos"), metavar="LEVEL",
                     help="draw a fault preset per repetition: light, medium, heavy or chaos")
    exp.add_argument("--out", metavar="DIR", help="output folder (default runs/experiments/<timestamp>)")
    common = parser.add_argument_group("settings")
    common.add_argument(
        "--provider",
        choices=PROVIDER_CHOICES,
        metavar="P",
        help=f"LLM provider for this run, overrides LLM_SCHED_PROVIDER: {', '.join(PROVIDER_CHOICES)}",
    )
    setup = parser.add_argument_group("--setup-env without questions (for scripts)")
    setup.add_argument("--yes", action="store_true", help="ask nothing: use the flags, current settings and defaults")
    setup.add_argument("--ollama-host", metavar="URL", help="Ollama server, e.g. http://localhost:11434")
    setup.add_argument("--ollama-model", metavar="NAME", help="Ollama model, e.g. llama3.1:8b")
    setup.add_argument("--sambanova-api-base", metavar="URL", help="SambaNova Cloud API base URL")
    setup.add_argument("--sambanova-model", metavar="NAME", help="SambaNova Cloud model name")
    setup.add_argument("--sambastudio-url", metavar="URL", help="SambaStudio endpoint URL")
    setup.add_argument("--api-key-stdin", action="store_true", help="read the provider's API key from standard input")
    setup.add_argument("--probe", action="store_true", help="check that the endpoint answers before writing")
    return parser


def _overview() -> str:
    width = max(len(command) for command, _ in MODES)
    modes = "\n".join(f"  {command.ljust(width)}  {what}" for command, what in MODES)
    return OVERVIEW.format(version=__version__, modes=modes)


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    return {"LLM_SCHED_PROVIDER": args.provider} if args.provider else {}


def _run_check(args: argparse.Namespace) -> int:
    from llm_sched.config import load_settings
    from llm_sched.envcheck import render_check, run_check

    report = run_check(load_settings(_overrides(args)))
    render_check(report)
    return report.exit_code


def _run_setup(args: argparse.Namespace) -> int:
    from llm_sched.setup_env import SetupRequest, run_setup

    request = SetupRequest(
        provider=args.provider,
        ollama_host=args.ollama_host,
        ollama_model=args.ollama_model,
        sambanova_api_base=args.sambanova_api_base,
        sambanova_model=args.sambanova_model,
        sambastudio_url=args.sambastudio_url,
        api_key_stdin=args.api_key_stdin,
        probe=args.probe,
        yes=args.yes,
    )
    run_setup(request)
    return 0


def _run_options(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from llm_sched.api import RunOptions

    if (args.record_to or args.force) and not args.record:
        raise UserError("--record-to and --force go with --record")
    return RunOptions(record=args.record, record_to=Path(args.record_to) if args.record_to else None,
                      force=args.force, allow_fallback=args.allow_fallback)


def _run_scenario(args: argparse.Namespace, name: str, transparent: bool) -> int:
    from llm_sched.api import print_summary, run_scenario_by_name

    result = run_scenario_by_name(name, provider=args.provider, seed=args.seed, transparent=transparent,
                                  pause=transparent and not args.no_pause, verbose=args.verbose,
                                  options=_run_options(args), protocol=args.protocol)
    print_summary(result)
    return 0


def _run_experiment(args: argparse.Namespace) -> int:
    from llm_sched.config import load_settings
    from llm_sched.experiments.config import load_experiment
    from llm_sched.experiments.experiment import run_experiment
    from llm_sched.ui.experiment_view import ExperimentView

    overrides = {"methods": args.methods, "agents": args.agents, "byzantine": args.byzantine, "crash": args.crash,
                 "jobs": args.jobs, "repetitions": args.repetitions, "seed": args.seed,
                 "agent_mode": args.agent_mode, "faults": args.faults, "intensity": args.intensity, "out": args.out}
    settings = load_settings(_overrides(args))
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


def _run_simulate(args: argparse.Namespace) -> int:
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


def _resume_scenario(args: argparse.Namespace) -> int:
    from llm_sched.api import print_summary, resume_run

    if args.seed is not None or args.provider or args.record or args.allow_fallback:
        raise UserError("--resume RUN_ID continues a run with its own seed and provider: "
                        "give no --seed, --provider, --record or --allow-fallback with it")
    print_summary(resume_run(args.resume, scenario=args.scenario))
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.check:
        return _run_check(args)
    if args.setup_env:
        return _run_setup(args)
    if args.interactive:
        return _run_scenario(args, args.scenario or "fault_tolerance", transparent=True)
    if args.experiment is not None:
        return _run_experiment(args)
    if args.simulate:
        return _run_simulate(args)
    if args.evaluate:
        from llm_sched.evaluation import run_campaign_cli

        return run_campaign_cli(args.config, args.out, args.quick, args.workers, args.seed, resume=args.resume,
                                force=args.force)
    if args.verify:
        from llm_sched.api import verify_run

        return 0 if verify_run(args.verify) else 1
    if args.runs or args.show:
        from llm_sched.api import print_runs, show_run

        if args.runs:
            print_runs()
            return 0
        return 0 if show_run(args.show) else 1  # a damaged event log: shown, and the exit says so
    if args.resume is not None:
        return _resume_scenario(args)
    if args.scenario is not None:
        return _run_scenario(args, args.scenario, transparent=False)
    print(_overview())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        refuse_stray_flags(args)
        return _dispatch(args)
    except Interrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
