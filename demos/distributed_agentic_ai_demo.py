"""A federation of six supercomputers schedules eight large jobs by bidding and weighted consensus.

Each supercomputer's agent bids for every job on the machine it runs (free nodes, specialisation,
background load, reputation) and states claims anyone can check. The best bid goes to a vote and
commits only with a reputation-weighted Byzantine quorum. From job 7 one agent, drawn from the seed,
lies: inflated bids, capacity it does not have, votes against the evidence. Watch it get caught by
the checks, lose its weight, and win nothing afterwards.

    python demos/distributed_agentic_ai_demo.py                      # offline, from the cassette
    python demos/distributed_agentic_ai_demo.py --seed 7             # other loads (heuristic agents)
    python demos/distributed_agentic_ai_demo.py --provider local     # SmolLM2-135M live (make setup-local)
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from llm_sched.api import UserError, print_summary, run_scenario_by_name


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", help="local, openai, ollama, sambanova, sambastudio, replay, heuristic or auto (default)")
    parser.add_argument("--seed", type=int, help="seed for background loads and the faulty agent (default: 2026)")
    parser.add_argument("--transparent", action="store_true", help="show every prompt and raw model answer")
    return parser.parse_args()


def attack_report(events: list) -> list[str]:
    """What happened to the liar, read from the run's events."""
    liars = [e.agent for e in events if e.kind == "fault_changed" and e.active]
    detected = {e.agent: e.job_id for e in events if e.kind == "agent_excluded"}
    lines = []
    for liar in liars:
        caught = detected.get(liar)
        after = False
        awards_after = 0
        for e in events:
            if e.kind == "agent_excluded" and e.agent == liar:
                after = True
            elif after and e.kind == "decision" and e.decision.proposer == liar:
                awards_after += 1
        lines.append(f"{liar} lied; " + (f"detected at {caught}; jobs awarded to it afterwards: {awards_after}"
                                         if caught else "not detected"))
    return lines or ["no agent was faulty in this run"]


def main() -> int:
    args = parse_args()
    console = Console(highlight=False)
    try:
        result = run_scenario_by_name("supercomputers", provider=args.provider, seed=args.seed,
                                      transparent=args.transparent, console=console)
    except UserError as exc:
        console.print(f"error: {exc}")
        return exc.exit_code
    print_summary(result, console)
    for line in attack_report(result.events):
        console.print(f"attack: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
