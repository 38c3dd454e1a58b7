"""Which mode a command line runs, and which flags go with it: a flag given with a mode it does not
apply to is refused, not silently dropped."""

from __future__ import annotations

import argparse

from llm_sched.errors import UserError

# Flags that belong to some modes only (dest -> modes): given with another mode they were silently
# ignored, so a user believed a setting took effect. "scenario" covers --scenario and --interactive.
APPLIES: dict[str, frozenset[str]] = {
    "trace": frozenset({"simulate"}), "policy": frozenset({"simulate"}),
    "fail_rate": frozenset({"simulate"}), "fail_pattern": frozenset({"simulate"}),
    "node_fail_rate": frozenset({"simulate"}), "failures": frozenset({"simulate"}),
    "failover": frozenset({"simulate"}), "walltime_kill": frozenset({"simulate"}), "budget": frozenset({"peers"}),
    "quick": frozenset({"evaluate"}), "config": frozenset({"evaluate"}), "workers": frozenset({"evaluate"}),
    "executor": frozenset({"evaluate", "scenario"}), "scheduler": frozenset({"evaluate"}),
    "time_scale": frozenset({"scenario"}),
    "methods": frozenset({"experiment"}), "byzantine": frozenset({"experiment"}), "crash": frozenset({"experiment"}),
    "repetitions": frozenset({"experiment", "peers"}), "agent_mode": frozenset({"experiment"}),
    "faults": frozenset({"experiment"}), "intensity": frozenset({"experiment"}),
    "agents": frozenset({"experiment", "simulate"}), "jobs": frozenset({"experiment", "simulate", "peers"}),
    "out": frozenset({"experiment", "evaluate", "simulate", "peers"}),
    # seed, provider, record and allow_fallback "apply" to resume so that it says why it refuses them
    "record": frozenset({"scenario", "resume", "peers"}), "record_to": frozenset({"scenario", "peers"}),
    "force": frozenset({"scenario", "experiment", "evaluate", "peers"}),
    "allow_fallback": frozenset({"scenario", "resume"}), "no_pause": frozenset({"scenario"}), "verbose": frozenset({"scenario"}),
    "seed": frozenset({"scenario", "experiment", "evaluate", "simulate", "resume", "peers"}),
    "scenario": frozenset({"scenario", "resume"}), "interactive": frozenset({"scenario"}),
    "protocol": frozenset({"scenario"}),
    "resume": frozenset({"experiment", "evaluate", "resume"}),
    "provider": frozenset({"scenario", "experiment", "check", "setup_env", "resume", "peers"}),
    **{dest: frozenset({"setup_env"}) for dest in ("yes", "ollama_host", "ollama_model", "sambanova_api_base",
                                                   "sambanova_model", "sambastudio_url", "api_key_stdin", "probe")},
}


def mode_of(args: argparse.Namespace) -> str:
    """The mode that runs, in the order :func:`llm_sched.cli.dispatch.dispatch` tries them."""
    for mode in ("check", "setup_env", "experiment", "simulate", "peers", "evaluate", "runs", "show", "verify",
                 "resume"):
        if getattr(args, mode) not in (None, False):
            return mode
    return "scenario" if args.interactive or args.scenario is not None else "overview"


def refuse_stray_flags(args: argparse.Namespace) -> None:
    """A flag given with a mode it does not apply to is an error (exit 2), not silently dropped."""
    mode = mode_of(args)
    for dest, modes in APPLIES.items():
        if getattr(args, dest) not in (None, False) and mode not in modes:
            flag = "--" + dest.replace("_", "-")
            where = " or ".join("--" + m.replace("_", "-") for m in sorted(modes))
            if mode == "overview":
                raise UserError(f"{flag} needs {where}")
            raise UserError(f"{flag} does not go with --{mode.replace('_', '-')}: it is for {where}")
