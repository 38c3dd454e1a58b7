"""Five structured calls for five agents against a stand-in that answers each after 1 s.

Target (issue 3): all five complete in under 2 s in total (they run concurrently). Printed beside
the same five calls made one at a time. Run: `.venv/bin/python bench/bench_llm_concurrency.py`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel  # noqa: E402

from llm_sched.config import load_settings  # noqa: E402
from llm_sched.llm import CallContext, LLMClient, Message, RetryPolicy  # noqa: E402
from llm_sched.llm.factory import build_transport  # noqa: E402
from tests.standin import Reply, StandIn  # noqa: E402

CALLS = 5
DELAY_S = 1.0
TARGET_S = 2.0


class Choice(BaseModel):
    node_id: str
    score: float


async def run(provider: str, url: str, concurrency: int) -> float:
    env = {"ollama": {"OLLAMA_HOST": url},
           "sambanova": {"SAMBANOVA_API_KEY": "bench-key", "SAMBANOVA_API_BASE": f"{url}/v1"},
           "sambastudio": {"SAMBASTUDIO_URL": f"{url}/api/v2/predict/generic/p/e", "SAMBASTUDIO_API_KEY": "k"}}
    client = LLMClient(build_transport(provider, load_settings(env[provider], environ={})),
                       RetryPolicy(attempts=1, timeout=10), concurrency=concurrency)
    calls = [client.structured([Message(role="user", content=f"agent {i}: choose")], Choice,
                               context=CallContext(agent=f"agent-{i}", step="proposal")) for i in range(CALLS)]
    started = time.perf_counter()
    answers = await asyncio.gather(*calls)
    elapsed = time.perf_counter() - started
    assert all(a.record.outcome == "ok" for a in answers), [a.record.error for a in answers]
    return elapsed


def main() -> int:
    worst = 0.0
    with StandIn() as server:
        server.default = Reply.json({"node_id": "n1", "score": 0.5}).delayed(DELAY_S)
        print(f"{CALLS} calls, stand-in answers each after {DELAY_S:g} s")
        print(f"{'provider':<12} {'concurrent s':>13} {'one at a time s':>16} {'speed-up':>9}  target")
        for provider in ("ollama", "sambanova", "sambastudio"):
            concurrent = asyncio.run(run(provider, server.url, concurrency=CALLS))
            serial = asyncio.run(run(provider, server.url, concurrency=1))
            worst = max(worst, concurrent)
            verdict = "ok" if concurrent < TARGET_S else "OVER"
            print(f"{provider:<12} {concurrent:13.3f} {serial:16.3f} {serial / concurrent:8.1f}x  "
                  f"< {TARGET_S:g} s {verdict}")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
