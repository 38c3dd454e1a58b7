"""The experiment runner: simulated decisions and messages per wall-clock second for each protocol,
and the wall time of the issue's configuration.

Part 1 runs every registered method through the runner (agent layer, feasibility checks and
accounting included) with n agents, no faults, ``--jobs`` jobs per run and ``--repetitions`` runs,
and prints decisions and messages per wall-clock second of simulation, and per simulated second
(1 simulated second = the base link delay). Part 2 times ``python main.py --experiment --agents 7
--byzantine 2 --jobs 5 --repetitions 3 --methods pbft,tendermint,multi_paxos`` end to end, as a
user runs it (a fresh process, output written), median of ``--runs`` (target: under a minute).

Run: `.venv/bin/python bench/bench_experiments.py [--agents 7] [--jobs 40] [--repetitions 3] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_sched.config import Settings  # noqa: E402
from llm_sched.experiments.config import load_experiment  # noqa: E402
from llm_sched.experiments.experiment import run_experiment  # noqa: E402
from llm_sched.protocols.registry import METHODS, OPTIONAL_SKIPPED  # noqa: E402

ISSUE_RUN = ("--experiment", "--agents", "7", "--byzantine", "2", "--jobs", "5", "--repetitions", "3",
             "--methods", "pbft,tendermint,multi_paxos")


def throughput(agents: int, jobs: int, repetitions: int, byzantine: int) -> None:
    print(f"Protocols through the experiment runner: n={agents}, {byzantine} Byzantine, {jobs} jobs per run, "
          f"{repetitions} runs each (wall: this machine)")
    print(f"{'method':<13}{'model':<11}{'decided':>8}{'msgs/dec':>10}{'wall s':>8}{'wall dec/s':>12}"
          f"{'wall msgs/s':>13}{'sim dec/s':>11}{'sim msgs/s':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, method in METHODS.items():
            config = load_experiment(None, {"methods": name, "agents": agents, "byzantine": byzantine, "jobs": jobs,
                                            "repetitions": repetitions, "out": f"{tmp}/{name}"})
            config = config.model_copy(update={"oversized_every": 0})
            result = run_experiment(config, Settings(runs_dir=Path(tmp)))
            s, runs = result.summaries[name], result.runs[name]
            wall = sum(result_walls(result.folder, name))
            messages = sum(r["messages_to_decision"]["total"] for r in runs)
            decided = s["decisions_reached"]
            sim = sum(r["all_decided_at"] or r["end_time"] for r in runs)
            print(f"{name:<13}{method.fault_model:<11}{decided:>8}{messages / max(1, decided):>10.1f}{wall:>8.3f}"
                  f"{decided / wall:>12,.0f}{messages / wall:>13,.0f}{decided / sim:>11.3f}{messages / sim:>12.1f}")
    if OPTIONAL_SKIPPED:
        print(f"(not available: {', '.join(f'{k} ({v})' for k, v in OPTIONAL_SKIPPED.items())})")
    print("(messages until every honest agent decided; Raft and Multi-Paxos include their first election, which "
          "also dominates their simulated time: the election timeout is 50-100 s)")


def result_walls(folder: Path, name: str) -> list[float]:
    import json

    timing = json.loads((folder / "experiment_summary.json").read_text())["timing"]
    return timing["runs_wall_s"][name]


def issue_run(runs: int) -> None:
    print(f"\nThe issue's configuration end to end: python main.py {' '.join(ISSUE_RUN)}")
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, str(ROOT / "main.py"), *ISSUE_RUN, "--out", f"{tmp}/{i}"],
                                  capture_output=True, text=True, cwd=tmp)
            walls.append(time.perf_counter() - started)
            if proc.returncode != 0:
                raise SystemExit(f"the run failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"wall time, median of {runs}: {statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}; "
          "target < 60 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    throughput(args.agents, args.jobs, args.repetitions, byzantine=0)
    print()
    throughput(args.agents, 5, args.repetitions, byzantine=2)
    issue_run(args.runs)


if __name__ == "__main__":
    main()
