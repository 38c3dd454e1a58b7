"""Benchmark the evaluation campaign (llm_sched.evaluation): the whole of it, as `--evaluate` runs it.

    python bench/bench_campaign.py [--config full|quick|FILE] [--workers N ...] [--keep DIR]

For each worker count: one complete campaign (simulations, statistics, figures, report) into a
temporary folder (``--keep DIR`` keeps the last one there): wall time of the simulations and of the
whole, the simulated runs per second, and whether results.json is the same as with the first worker
count (it must be: the results do not depend on the number of workers).

Every figure printed is measured in this run; timings are wall-clock (time.perf_counter) and depend
on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from llm_sched.cli.campaign import command_line
from llm_sched.config import PROJECT_ROOT
from llm_sched.evaluation.campaign import run_campaign
from llm_sched.evaluation.config import campaign_path, load_campaign
from llm_sched.evaluation.runner import default_workers


def deterministic_part(folder: Path) -> dict[str, object]:
    """results.json without run_info (command, dates, wall times, workers)."""
    data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    data.pop("run_info")
    return data


def main(argv: list[str] | None = None) -> int:
    """Run the campaign once per worker count and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="full", help="campaign name in scenarios/evaluation, or a file")
    parser.add_argument("--workers", type=int, nargs="+", default=[default_workers()],
                        help="worker counts to time (default: the CPUs available)")
    parser.add_argument("--keep", type=Path, help="keep the last campaign's folder here (must not exist)")
    args = parser.parse_args(argv)
    file = campaign_path(args.config, PROJECT_ROOT / "scenarios")
    config = load_campaign(file)
    print(f"python {sys.version.split()[0]}; campaign {file.name}: {config.repetitions} repetitions, "
          f"policies {', '.join(config.policies)}")
    reference: dict[str, object] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        for k, workers in enumerate(args.workers):
            folder = Path(tmp) / f"w{workers}-{k}"
            t0 = time.perf_counter()
            result = run_campaign(config, folder, workers=workers, config_file=str(file),
                                  command=command_line(args.config, str(folder), False, workers, None))
            wall = time.perf_counter() - t0
            runs = result.tasks * len(config.policies)
            data = deterministic_part(folder)
            same = "" if reference is None else f"; results.json {'identical' if data == reference else 'DIFFERENT'}"
            reference = reference or data
            print(f"  {workers} worker(s): {len(result.analysis.configs)} configurations x {config.repetitions} "
                  f"repetitions = {result.tasks} tasks, {runs} policy runs (+{result.tasks} failure-free "
                  f"reference runs for the deadline): simulations {result.simulation_s:.1f} s "
                  f"({runs / result.simulation_s:,.0f} runs/s), whole campaign {wall:.1f} s{same}")
            if args.keep and k == len(args.workers) - 1:
                shutil.copytree(folder, args.keep)
                print(f"  kept in {args.keep}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
