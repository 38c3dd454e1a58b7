"""Consensus-decision latency when every model call takes L seconds, at n = 5 and n = 10 agents.

One decision is two rounds of parallel model calls (every agent proposes, then every agent votes on
the best candidate), so its ideal latency is about 2 L; the target is a median of at most 2.2 L.
The model is the Ollama stand-in server answering with the deterministic fake model after L
seconds; the client is the real Ollama transport with the concurrency a run uses by default
(``Settings.concurrency_for(n)``). For n = 10 the healthy scenario's five agents are doubled (two
per pool and specialty: ``gpu-agent``, ``gpu-agent-2``, ...). For comparison, n = 5 is also timed
one model call at a time (concurrency 1). Exit code 0 when every n meets the target.

Run: `.venv/bin/python bench/bench_decision_latency.py [--delay 0.5] [--runs 5] [--agents 5,10]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_sched.agents.reputation import Reputation  # noqa: E402
from llm_sched.agents.specialist import SpecialistAgent, World  # noqa: E402
from llm_sched.config import PROJECT_ROOT, load_settings  # noqa: E402
from llm_sched.core.events import EventBus  # noqa: E402
from llm_sched.llm.client import LLMClient, RetryPolicy  # noqa: E402
from llm_sched.llm.factory import build_transport  # noqa: E402
from llm_sched.orchestration.graph import ConsensusGraph  # noqa: E402
from llm_sched.orchestration.scenarios import load_scenario  # noqa: E402
from tests.fake_model import answer  # noqa: E402
from tests.standin import Reply, StandIn  # noqa: E402

TARGET = 2.2  # the median decision latency may be at most TARGET * L


async def measure(url: str, n: int, runs: int, concurrency: int | None) -> tuple[list[float], set[int], int]:
    """Decision latencies (after one warm-up decision), rounds seen, and the concurrency used."""
    scenario = load_scenario("healthy", PROJECT_ROOT / "scenarios")
    settings = load_settings({"OLLAMA_HOST": url}, environ={})
    concurrency = concurrency or settings.concurrency_for(n)
    llm = LLMClient(build_transport("ollama", settings), RetryPolicy.from_settings(settings), concurrency=concurrency)
    base = scenario.cluster.agents
    specs = [(base[i % len(base)], i // len(base) + 1) for i in range(n)]
    ids = [spec.id if copy == 1 else f"{spec.id}-{copy}" for spec, copy in specs]
    world = World(scenario.cluster.build_state(scenario.seed), Reputation.fresh(ids),
                  {a.pool: a.id for a in base}, "bench")
    agents = {i: SpecialistAgent(i, spec.specialty, world, llm) for i, (spec, _) in zip(ids, specs, strict=True)}
    graph = ConsensusGraph(agents, world, EventBus())
    jobs = scenario.jobs()
    times: list[float] = []
    rounds: set[int] = set()
    for run in range(runs + 1):  # run 0 is the warm-up: it compiles the graphs
        started = time.perf_counter()
        decision = await graph.decide(jobs[run % len(jobs)])
        assert decision.outcome == "commit", decision
        if run:
            times.append(time.perf_counter() - started)
            rounds.add(decision.rounds)
    return times, rounds, concurrency


def report(label: str, n: int, delay: float, result: tuple[list[float], set[int], int], judged: bool = True) -> bool:
    times, rounds, concurrency = result
    median = statistics.median(times)
    ok = median <= TARGET * delay
    ratio = f"{median / delay:.2f}" if delay else "-"  # --delay 0: the graph's own overhead per decision
    verdict = f"median <= {TARGET} L: {'yes' if ok else 'NO'}" if judged else "(for comparison)"
    print(f"{label:<9} n={n:<3} L={delay:g} s  concurrency {concurrency:<3} median {median:.3f} s  max {max(times):.3f} s"
          f"  median/L {ratio}  rounds {sorted(rounds)}  {verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per model call (L)")
    parser.add_argument("--runs", type=int, default=5, help="decisions per n, after one warm-up")
    parser.add_argument("--agents", default="5,10", help="comma-separated agent counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.agents.split(",")]
    print(f"stand-in Ollama model answering every call after L = {args.delay:g} s; {args.runs} decisions per n "
          f"on the healthy scenario's jobs")
    with StandIn() as server:
        server.default = Reply.dynamic(lambda record: answer(record, faults=False).delayed(args.delay))
        ok = all([report("parallel", n, args.delay, asyncio.run(measure(server.url, n, args.runs, None)))
                  for n in sizes])
        if 5 in sizes:
            report("serial", 5, args.delay, asyncio.run(measure(server.url, 5, args.runs, 1)), judged=False)
    print(f"every n meets median <= {TARGET} L: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
