"""Benchmark resuming a killed campaign: kill it at random instants, resume it each time, compare.

    python bench/bench_campaign_resume.py [--config quick|full|FILE] [--kills N] [--workers N] [--seed S]

Runs the campaign uninterrupted once (``python main.py --evaluate``, timed), then runs it again
into another folder and SIGKILLs it (its whole process group: the worker processes too) at N
seeded random instants, each time resuming it with ``--evaluate --resume DIR``, and lets the last
resume finish. A kill may land anywhere: before the first task, between two ledger commits, while
results.json or the figures are written (the instants are drawn so that on average the kills are
spread over the simulations). Prints, per kill, the instant and the units the ledger held; then
whether the outputs are equal as :mod:`llm_sched.evaluation.campaign` defines it (report.md without
its invocation lines, results.json without run_info, the CSV files byte for byte) and the wall
times. Exit code 1 when they are not equal.

Every figure printed is measured in this run; timings are wall-clock and depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llm_sched.config import ENV_VARS, PROJECT_ROOT
from llm_sched.evaluation.campaign import comparable_results, masked_report

MAIN = PROJECT_ROOT / "main.py"


def environ(root: Path, ledger: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}
    env.update(LLM_SCHED_LEDGER=str(ledger), LLM_SCHED_RUNS_DIR=str(root / "runs"), COLUMNS="120")
    return env


def count(ledger: Path, table: str) -> int:
    """Rows of a ledger table (0 before the ledger exists), read-only."""
    if not ledger.is_file():
        return 0
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is being created
        return 0
    finally:
        conn.close()


def units(ledger: Path) -> int:
    return count(ledger, "units")


def invoke(args: list[str], cwd: Path, env: dict[str, str], kill_after: float | None) -> tuple[bool, float]:
    """Run ``main.py ARGS``; SIGKILL its process group after ``kill_after`` s. (killed?, wall s)."""
    t0 = time.perf_counter()
    with open(cwd / "log.txt", "ab") as log:
        proc = subprocess.Popen([sys.executable, str(MAIN), *args], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True, time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}); see {cwd / 'log.txt'}:\n"
                         + (cwd / "log.txt").read_text(errors="replace")[-3000:])
    return False, time.perf_counter() - t0


def outputs(folder: Path) -> tuple[str, dict[str, object], bytes, bytes]:
    return (masked_report((folder / "report.md").read_text(encoding="utf-8")),
            comparable_results(json.loads((folder / "results.json").read_text(encoding="utf-8"))),
            (folder / "summary.csv").read_bytes(), (folder / "comparisons.csv").read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quick", help="campaign name in scenarios/evaluation, or a file")
    parser.add_argument("--kills", type=int, default=5, help="how many times to kill the campaign (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill instants (default 1)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    config = str(Path(args.config).resolve()) if Path(args.config).suffix in (".yaml", ".yml") else args.config
    common = ["--evaluate", "--config", config, "--workers", str(args.workers)]
    print(f"python {sys.version.split()[0]}; campaign {args.config}, {args.workers} worker(s), {args.kills} kills "
          f"(seed {args.seed})")
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        root = Path(tmp)
        full_dir, cut_dir = root / "full", root / "cut"
        full_dir.mkdir()
        cut_dir.mkdir()
        _, full_s = invoke([*common, "--out", "out"], full_dir, environ(full_dir, full_dir / "ledger.db"), None)
        total = units(full_dir / "ledger.db")
        info = json.loads((full_dir / "out" / "results.json").read_text(encoding="utf-8"))["run_info"]
        startup, simulation = max(0.0, full_s - info["wall_s"]), info["simulation_s"]
        print(f"  uninterrupted: {total} units, {full_s:.1f} s (start-up and exit {startup:.1f} s, simulations "
              f"{simulation:.1f} s, statistics, figures and report {info['wall_s'] - simulation:.1f} s)")
        ledger = cut_dir / "ledger.db"
        env = environ(cut_dir, ledger)
        spent, finished_early = 0.0, 0
        for k in range(args.kills):
            # seconds into this invocation: on average a kills-th of the simulations gets done in each
            at = rng.uniform(0.2, startup + 2 * simulation / args.kills)
            before = units(ledger)
            # --resume once the campaign is stored (a kill may come before: then the first command again)
            stored = count(ledger, "runs") > 0
            killed, wall = invoke(["--evaluate", "--resume", "out"] if stored else [*common, "--out", "out"],
                                  cut_dir, env, at)
            spent += wall
            after = units(ledger)
            if killed:
                print(f"  kill {k + 1}: after {at:.2f} s; the ledger held {after} of {total} units "
                      f"({before} reused from before, {after - before} new)")
            else:
                finished_early += 1
                print(f"  kill {k + 1}: the campaign finished ({wall:.1f} s) before {at:.2f} s")
        reused = units(ledger)
        _, last_s = invoke(["--evaluate", "--resume", "out"], cut_dir, env, None)
        spent += last_s
        data = json.loads((cut_dir / "out" / "results.json").read_text(encoding="utf-8"))["run_info"]
        same = outputs(full_dir / "out") == outputs(cut_dir / "out")
        print(f"  final resume: {reused} of {total} units reused (results.json says {data['reused']}), "
              f"{total - reused} run, {last_s:.1f} s")
        print(f"  kills {args.kills - finished_early} (+{finished_early} too late); identical to the uninterrupted "
              f"campaign: {'yes' if same else 'NO'}; wall time uninterrupted {full_s:.1f} s, killed and resumed "
              f"{spent:.1f} s in {args.kills + 1} invocations")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
