"""The randomized harness at scale: the healing bound of the BFT protocols and leader election of the
crash-fault protocols, over many more seeds than the test suite runs.

PBFT and Tendermint: f Byzantine agents, lossy links until GST, a partition that heals, maybe a crash
and restart and a slow agent (``random_schedule``). Printed per protocol: violations, runs in which
an honest agent did not finish, and runs that needed more than f+1 views (PBFT) or rounds
(Tendermint) after the network healed, with the distribution of views/rounds used.

Raft and Multi-Paxos: up to f_c crashes (some for good) and restarts on the same kind of network.
Printed: violations (agreement, validity, a decision lost or changed), runs not finished, and the
share of runs in which every wait for a leader ended within one and within two base election
timeouts (``RunResult.elections``), with the slowest runs.

Run: `.venv/bin/python bench/bench_randomized.py [--seeds 20000] [--workers 2] [--protocols pbft,...]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_sched.transport.harness import CRASH_PROTOCOLS, PROTOCOLS, sweep  # noqa: E402


def bft(protocol: str, seeds: int, workers: int) -> None:
    r = sweep(protocol, range(seeds), workers=workers)
    slow = f" (seeds {r.slow_healing[:20]})" if r.slow_healing else ""
    print(f"{protocol:<11} {r.runs} schedules in {r.seconds:.1f}s: violations {len(r.violating)}, "
          f"not finished {len(r.undecided)}, more than f+1 views/rounds after healing {len(r.slow_healing)}{slow}")
    print(f"{'':<11} views/rounds after healing: {dict(sorted(r.views_after_heal.items()))}")
    for seed, violation in r.violating[:5]:
        print(f"{'':<11} seed {seed}: {violation}")


def crash(protocol: str, seeds: int, workers: int) -> None:
    r = sweep(protocol, range(seeds), workers=workers)
    slowest = sorted(r.slowest_elections.items(), key=lambda kv: -kv[1])[:8]
    print(f"{protocol:<11} {r.runs} schedules in {r.seconds:.1f}s: violations {len(r.violating)}, "
          f"not finished {len(r.undecided)}; a leader within 1 election timeout in "
          f"{100 * r.elected_within(1):.2f}% of runs, within 2 in {100 * r.elected_within(2):.2f}%")
    print(f"{'':<11} slowest (seed, election timeouts): {[(s, round(w, 2)) for s, w in slowest]}")
    for seed, violation in r.violating[:5]:
        print(f"{'':<11} seed {seed}: {violation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS + CRASH_PROTOCOLS))
    args = parser.parse_args()
    print(f"{args.seeds} seeded schedules per protocol, {args.workers} worker(s)")
    for protocol in args.protocols.split(","):
        (bft if protocol in PROTOCOLS else crash)(protocol, args.seeds, args.workers)


if __name__ == "__main__":
    main()
