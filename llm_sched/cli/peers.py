"""``python main.py --peers``: every policy, the heuristic agents, the agents whose awards a model
chooses (llm, hybrid) and the CP-SAT optimum on the seven workload scenarios of Jadhav et al.
(:mod:`llm_sched.evaluation.peer_comparison`).

Where the model's answers come from (``--provider``): ``replay`` (the default) replays the cassettes
shipped in ``scenarios/cassettes/`` (``peers_llm-local.yaml``, ``peers_hybrid-local.yaml``, recorded
from SmolLM2-135M by llama.cpp with the default budget and seeds), offline; ``local`` (or another live
provider) asks the model, and with ``--record`` writes the cassettes (``--record-to DIR``, default the
shipped folder; an existing cassette is replaced only with ``--force``); ``heuristic`` leaves the
model's agents out. The folder's ``source.txt`` says which, and the model and runtime of a cassette.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from llm_sched.errors import UserError

BUDGET = 10  # model calls per run: 7 kinds x 3 seeds x 2 modes stay a few minutes on SmolLM2, 2 cores
MODES = ("llm", "hybrid")
CASSETTES = "scenarios/cassettes"


def run(args: argparse.Namespace) -> int:
    """Run the comparison into ``--out`` and print where the report is; returns 0."""
    from datetime import datetime, timezone

    from rich.console import Console

    from llm_sched.config import PROJECT_ROOT, load_settings
    from llm_sched.evaluation.peer_comparison import PolicyEntry, peer_comparison, policy_entries
    from llm_sched.safe_text import printable
    from llm_sched.sim.resilience import POLICIES

    console = Console(highlight=False)
    provider = args.provider or "replay"
    if args.record and provider in ("replay", "heuristic"):
        raise UserError("--record needs a live model: --provider local (or another live provider)")
    budget = BUDGET if args.budget is None else args.budget
    first = 1 if args.seed is None else args.seed
    seeds = tuple(range(first, first + (args.repetitions or 3)))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/peers/{stamp}")
    folder = Path(args.record_to) if args.record_to else PROJECT_ROOT / CASSETTES
    entries: list[str | PolicyEntry] = list(POLICIES)
    settings = load_settings()
    with ExitStack() as stack:
        advisers, sources = {}, []
        if provider != "heuristic":
            from llm_sched.agents.pool_adviser import pool_adviser

            for mode in MODES:
                cassette = folder / f"peers_{mode}-local.yaml"
                adviser = stack.enter_context(pool_adviser(
                    mode, budget, settings=settings, provider=None if provider == "replay" else provider,
                    cassette=cassette if provider == "replay" or args.record else None, record=args.record,
                    force=args.force))
                advisers[mode] = adviser
                entries.append(PolicyEntry(f"agents ({mode})", "agents", (("advice", mode),)))
                sources.append(f"agents ({mode}): {adviser.source.detail if adviser.source else provider}"
                               + (f", recorded to {cassette}" if args.record else ""))
        else:
            sources.append("agents (llm), agents (hybrid): not run (--provider heuristic)")

        def progress(kind: str, seed: int) -> None:
            console.print(printable(f"  {kind}, seed {seed}"), markup=False, soft_wrap=True)

        try:
            result = peer_comparison(out, policy_entries(entries), seeds=seeds, jobs=args.jobs or 50,
                                     progress=progress, advisers=advisers)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    lines = [f"model calls per run (budget): {budget}", *sources]
    (out / "source.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in lines:
        console.print(printable(line), markup=False, soft_wrap=True)
    console.print(printable(f"report: {result.md_path}"), markup=False, soft_wrap=True)
    console.print(printable(f"per-run CSV: {result.csv_path}"), markup=False, soft_wrap=True)
    return 0
