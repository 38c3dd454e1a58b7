"""Consensus protocols on the simulated network: throughput, message cost and a long safety sweep.

Part 1 runs each protocol fault-free for many slots and prints, from the network's accounting,
decisions and messages per simulated second (one simulated time unit = the 1 ms base link delay)
and per wall-clock second of simulation. Part 2 runs the randomized safety harness over many seeds
(f Byzantine agents, or up to f_c crashes for Raft and Multi-Paxos, on lossy links with partitions)
and, as a control, with f+1 colluders or a quorum one too small, which must produce violations.

Run: `.venv/bin/python bench/bench_protocols.py [--seeds 20000] [--workers 2] [--slots 200]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_sched.protocols.messages import KeyRing  # noqa: E402
from llm_sched.protocols.quorum import byzantine_f  # noqa: E402
from llm_sched.transport.harness import CRASH_PROTOCOLS, PROTOCOLS, Schedule, make_factory, sweep  # noqa: E402
from llm_sched.transport.network import FaultPlan, LinkModel, Network  # noqa: E402

MS_PER_UNIT = 1.0


def throughput(protocol: str, n: int, slots: int) -> str:
    """One fault-free run of ``slots`` decisions with a little jitter; a table row."""
    s = Schedule(protocol, n, slots, seed=n, faults=FaultPlan(LinkModel(base_delay=1.0, jitter=0.2)))
    keyring = KeyRing(s.seed, range(n))
    net = Network(range(n), make_factory(s, keyring), keyring, s.seed, s.faults)
    started = time.perf_counter()
    net.run(1e9)
    wall = time.perf_counter() - started
    decided = min(len(d) for d in net.decisions.values())
    end = max(max(t.values()) for t in net.decided_at.values())
    sim_s = end * MS_PER_UNIT / 1000
    msgs = net.stats.total_sent
    return (f"{protocol:<11}{n:>4}{decided:>7}{msgs / decided:>10.1f}{net.stats.total_bytes / decided:>10.0f}"
            f"{decided / sim_s:>12.0f}{msgs / sim_s:>13.0f}{decided / wall:>11.0f}{msgs / wall:>12.0f}")


def part1(slots: int) -> None:
    print("Fault-free throughput (simulated: 1 time unit = 1 ms link delay; wall: this machine)")
    print(f"{'protocol':<11}{'n':>4}{'slots':>7}{'msgs/dec':>10}{'bytes/dec':>10}"
          f"{'sim dec/s':>12}{'sim msgs/s':>13}{'wall dec/s':>11}{'wall msgs/s':>12}")
    for protocol in PROTOCOLS + CRASH_PROTOCOLS:
        for n in (4, 7, 10):
            print(throughput(protocol, n, slots))
    print("(Raft and Multi-Paxos rows include their one election and the final learn/heartbeat round)")


def part2(seeds: int, workers: int) -> None:
    print(f"\nRandomized safety harness: {seeds} schedules per protocol, {workers} worker(s)")
    for protocol in PROTOCOLS + CRASH_PROTOCOLS:
        r = sweep(protocol, range(seeds), workers=workers)
        bft = protocol in PROTOCOLS
        bound = f", healed within f+1 views/rounds {r.runs - len(r.slow_healing)}/{r.runs}" if bft else ""
        print(f"{protocol:<11} {'f Byzantine' if bft else 'f_c crashes'}: {r.runs} runs in {r.seconds:.1f}s "
              f"({r.runs / r.seconds:.0f}/s), {r.messages} messages; violations {len(r.violating)}, "
              f"not terminated {len(r.undecided)}{bound}")
        after = "views/rounds" if bft else "terms/ballot rounds"
        print(f"{'':<11} {after} after healing: {dict(sorted(r.views_after_heal.items()))}")
        attacks = ({"extra_byzantine": 1}, {"quorum_delta": -1}) if protocol in PROTOCOLS else ({"quorum_delta": -1},)
        for attack in attacks:
            c = sweep(protocol, range(seeds), stop_at_violation=True, **attack)  # type: ignore[arg-type]
            found = f"first violation at seed {c.violating[0][0]}" if c.violating else "NO violation found"
            print(f"{'':<11} control {next(iter(attack))}: {found} after {c.runs} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--slots", type=int, default=200)
    args = parser.parse_args()
    part1(args.slots)
    part2(args.seeds, args.workers)
    print(f"\n(f = floor((n-1)/3): n=4 -> {byzantine_f(4)}, n=7 -> {byzantine_f(7)})")


if __name__ == "__main__":
    main()
