"""Crash bench: SIGKILL scenario runs at random points hundreds of times, resume each, compare.

    python bench/bench_crash.py [--kills 500] [--scenarios byzantine,recovery] [--seed 1]

Each kill lands after a seeded random delay (anywhere in a run: before the first decision, inside
the consensus graph, inside a ledger transaction, between a commit and its checkpoint cleanup); the
run is resumed, maybe killed again, until a resume completes. Checks per kill and per run (see
``tests/store/crash_driver.py``): no committed decision lost or changed, none recorded twice, no
node over-allocated, and the final decisions, events and summary equal an uninterrupted run's.
Prints the kills, resumes, runs, where the kills landed (decisions stored at the kill), problems
and the wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_sched.config import load_settings  # noqa: E402
from llm_sched.orchestration.scenarios import load_scenario  # noqa: E402
from tests.store.crash_driver import crash_runs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=500, help="kills in all, split over the scenarios")
    parser.add_argument("--scenarios", default="byzantine,recovery")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    names = args.scenarios.split(",")
    settings = load_settings()
    failed = 0
    total = 0
    for i, name in enumerate(names):
        kills = args.kills // len(names) + (1 if i < args.kills % len(names) else 0)
        scenario = load_scenario(name, settings.scenarios_dir)
        with tempfile.TemporaryDirectory() as work:
            report = crash_runs(name, Path(work), kills=kills, seed=args.seed + i,
                                cluster=lambda s=scenario: s.cluster.build_state(s.seed))
        total += report.kills
        failed += len(report.problems)
        landed = ", ".join(f"{k}: {v}" for k, v in sorted(report.kills_by_progress.items()))
        print(f"{name}: {report.kills} kills, {report.resumes} resumes, {report.runs} runs completed, "
              f"{len(report.problems)} problems, {report.wall_s:.1f} s")
        print(f"  kills by decisions already stored: {landed}")
        for problem in report.problems:
            print(f"  PROBLEM {problem}")
    print(f"total: {total} kills, {failed} problems")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
