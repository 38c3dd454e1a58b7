"""One consensus decision by 5 agents with a stand-in model that answers every call after 300 ms.

Target (issue 4): under 0.8 s, i.e. two rounds of parallel calls (proposals, then votes), printed
beside the same decision made one LLM call at a time. Run: `.venv/bin/python bench/bench_decision_latency.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_sched.agents.reputation import Reputation  # noqa: E402
from llm_sched.agents.specialist import SpecialistAgent, World  # noqa: E402
from llm_sched.config import PROJECT_ROOT, load_settings  # noqa: E402
from llm_sched.consensus.graph import ConsensusGraph  # noqa: E402
from llm_sched.events import EventBus  # noqa: E402
from llm_sched.llm.client import LLMClient, RetryPolicy  # noqa: E402
from llm_sched.llm.factory import build_transport  # noqa: E402
from llm_sched.scenarios import load_scenario  # noqa: E402
from tests.cassette_recorder import answer  # noqa: E402
from tests.standin import Reply, StandIn  # noqa: E402

DELAY_S = 0.3
TARGET_S = 0.8
RUNS = 5


async def one_decision(url: str, concurrency: int, job_index: int) -> tuple[float, int]:
    scenario = load_scenario("healthy", PROJECT_ROOT / "scenarios")
    settings = load_settings({"OLLAMA_HOST": url}, environ={})
    llm = LLMClient(build_transport("ollama", settings), RetryPolicy(attempts=1, timeout=10), concurrency=concurrency)
    state = scenario.cluster.build_state(scenario.seed)
    ids = [a.id for a in scenario.cluster.agents]
    world = World(state, Reputation.fresh(ids), {a.pool: a.id for a in scenario.cluster.agents}, "bench")
    agents = {a.id: SpecialistAgent(a.id, a.specialty, world, llm) for a in scenario.cluster.agents}
    graph = ConsensusGraph(agents, world, EventBus())
    job = scenario.jobs()[job_index % len(scenario.jobs())]
    started = time.perf_counter()
    decision = await graph.decide(job)
    assert decision.outcome == "commit", decision
    return time.perf_counter() - started, decision.rounds


def main() -> int:
    with StandIn() as server:
        server.default = Reply.dynamic(lambda record: answer(record, faults=False).delayed(DELAY_S))
        asyncio.run(one_decision(server.url, 8, 0))  # warm-up: compiles the graphs once
        parallel = [asyncio.run(one_decision(server.url, 8, i)) for i in range(RUNS)]
        serial = [asyncio.run(one_decision(server.url, 1, i)) for i in range(RUNS)]
    p = statistics.median(t for t, _ in parallel)
    s = statistics.median(t for t, _ in serial)
    print(f"5 agents, stand-in model answering every call well after {DELAY_S * 1000:.0f} ms; "
          f"median of {RUNS} decisions")
    print(f"parallel calls (concurrency 8): {p:.3f} s  (rounds: {sorted({r for _, r in parallel})})")
    print(f"one call at a time:             {s:.3f} s")
    print(f"speed-up {s / p:.1f}x; target < {TARGET_S} s: {'ok' if p < TARGET_S else 'OVER'}")
    return 0 if p < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
