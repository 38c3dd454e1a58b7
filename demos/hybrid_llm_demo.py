"""Hybrid LLM agents: every prompt and answer of the fault-tolerance scenario, on screen.

Five specialist agents ask their model (a local GGUF model run by llama.cpp, an OpenAI-compatible
server, Ollama, SambaNova, or the cassette recorded from SmolLM2-135M) to choose a placement and to
vote, with the answer constrained to and validated against a schema built for the question; when the
model fails (no answer, broken JSON) the agent says so and its heuristic answers instead.
The scenario runs healthy, then with a lying agent, then recovers; a placement commits only with a
Byzantine quorum (4 of 5), and the feasibility check overrides any model.

    python demos/hybrid_llm_demo.py                       # offline, from the cassette
    python demos/hybrid_llm_demo.py --provider local      # SmolLM2-135M live (make setup-local)
    python demos/hybrid_llm_demo.py --provider sambanova  # a hosted model (key in .env)
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from rich.console import Console

from llm_sched.api import UserError, print_summary, run_scenario_by_name


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", help="local, openai, ollama, sambanova, sambastudio, replay, heuristic or auto (default)")
    parser.add_argument("--seed", type=int, help="seed for background loads (default: the scenario's)")
    parser.add_argument("--pause", action="store_true", help="wait for Enter between phases")
    return parser.parse_args()


def how_answers_came(events: list) -> str:
    """How each proposal and vote was produced: by the model, by fallback, by the check alone, and how
    many of them a Byzantine agent rewrote."""
    answers = [e.proposal for e in events if e.kind == "proposal" and e.proposal]
    answers += [e.vote for e in events if e.kind == "vote" and e.vote]
    counts = Counter(a.via for a in answers)
    shown = ", ".join(f"{via} {counts[via]}" for via in ("llm", "fallback", "heuristic", "check")
                      if counts[via] or via == "fallback")
    return f"{shown}; rewritten by a Byzantine agent {sum(1 for a in answers if a.byzantine)}"


def main() -> int:
    args = parse_args()
    console = Console(highlight=False)
    try:
        result = run_scenario_by_name("fault_tolerance", provider=args.provider, seed=args.seed,
                                      transparent=True, verbose=True, pause=args.pause, console=console)
    except UserError as exc:
        console.print(f"error: {exc}")
        return exc.exit_code
    print_summary(result, console)
    console.print(f"answers by source: {how_answers_came(result.events)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
