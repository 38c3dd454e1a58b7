"""The argument parser: every flag, its group and its type. Parsing is plain argparse and imports
nothing heavy, so ``--help`` and ``--version`` start fast."""

from __future__ import annotations

import argparse
from typing import Any

from llm_sched import __version__
from llm_sched.config import PROVIDER_CHOICES

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


def probability(text: str) -> float:
    """An argparse type: a number from 0 to 1 (a failure rate); NaN and infinities are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:24]!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text[:24]} is not allowed: give a number from 0 to 1")
    return value


def time_scale(text: str) -> float:
    """An argparse type: wall seconds per simulated second, above 0 and at most 1000."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:24]!r} is not a number") from None
    if not 0.0 < value <= 1000.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text[:24]} is not allowed: give a number above 0 and at most 1000")
    return value


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
    sim.add_argument("--policy", choices=("fcfs", "sjf", "easy", "conservative", "agents"), metavar="P",
                     help="fcfs, sjf, easy, conservative (central schedulers: first come first served, shortest "
                          "job first, EASY or conservative backfilling) or agents (decentralized bids and quorum)")
    sim.add_argument("--failover", type=float, metavar="SECONDS",
                     help="give a central scheduler a hot standby (beside the last pool) that takes over this many "
                          "seconds after the active one's pool fails (Slurm's default: 120)")
    sim.add_argument("--walltime-kill", action="store_true",
                     help="kill a job when it has run its requested time (the trace's field 9), as Slurm's TIMEOUT")
    sim.add_argument("--fail-rate", type=probability, metavar="R",
                     help="draw agent failures from --seed: R (0 to 1) is the probability that an agent fails within "
                          "the run; the same failures for every policy with the same seed and trace")
    sim.add_argument("--fail-pattern", choices=("random", "cascading", "partition"), metavar="P",
                     help="with --fail-rate: random (default), cascading (to ring neighbours) or partition "
                          "(groups of agents cut off)")
    sim.add_argument("--node-fail-rate", type=probability, metavar="R",
                     help="draw single-node failures from --seed: R (0 to 1) is the probability that a node fails")
    sim.add_argument("--failures", metavar="FILE",
                     help="a failure schedule, YAML or CSV: outages with kind (agent, node, partition), members, "
                          "start, end and optionally detect, in seconds from the trace's first submission "
                          "(not with --fail-rate)")
    modes.add_argument("--peers", action="store_true",
                       help="every policy, the heuristic agents, agents whose awards a model chooses (llm, hybrid) and "
                            "the CP-SAT optimum on seven workload scenarios after Jadhav et al. (SC'25 WORKS); the "
                            "model's answers replayed from the shipped cassettes unless --provider says otherwise")
    peers = parser.add_argument_group("--peers")
    peers.add_argument("--budget", type=non_negative_int, metavar="N",
                       help="model calls per run for the llm and hybrid agents (default 10); the heuristic decides "
                            "the rest")
    modes.add_argument("--evaluate", action="store_true",
                       help="run the resilience evaluation campaign (34 configurations, agents vs FCFS, SJF, EASY and "
                            "conservative backfilling); "
                            "with --resume DIR, finish the campaign stored for DIR")
    ev = parser.add_argument_group("--evaluate")
    ev.add_argument("--quick", action="store_true", help="the quick campaign (scenarios/evaluation/quick.yaml)")
    ev.add_argument("--config", metavar="FILE", help="campaign file (default scenarios/evaluation/full.yaml)")
    ev.add_argument("--workers", type=positive_int, metavar="N", help="worker processes (default: one per CPU)")
    ev.add_argument("--executor", choices=("sim", "local", "slurm", "dask"), metavar="E",
                    help="with --scenario: where committed jobs run: sim (the simulated clock, default), local "
                         "(a process per node) or slurm (sbatch on the nodes chosen; the cluster is Slurm's: "
                         "SLURM_CONF, scripts/slurm-local); with --evaluate: local worker processes (default) or "
                         "dask: a Dask cluster (the dask extra)")
    ev.add_argument("--time-scale", type=time_scale, metavar="S",
                    help="with --executor local or slurm: wall seconds per simulated second (default 0.001: a "
                         "2-hour job runs 7.2 s)")
    ev.add_argument("--scheduler", metavar="ADDRESS",
                    help="with --executor dask: the Dask scheduler (tcp://host:8786); without it, a local Dask "
                         "cluster of --workers processes")
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
    exp.add_argument("--intensity", choices=("light", "medium", "heavy", "chaos", "all"), metavar="LEVEL",
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
