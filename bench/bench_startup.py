"""Start-up time of `python main.py --help` and `--check` (no endpoints configured).

Target (issue 2): each answers in under 1.5 s. Prints min / median / max over repeated runs of the
whole process, as a user sees it. Run: `.venv/bin/python bench/bench_startup.py [runs]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = Path(__file__).resolve().parent.parent / "main.py"
TARGET_S = 1.5
SETTINGS_VARS = ("LLM_SCHED_PROVIDER", "SAMBASTUDIO_URL", "SAMBASTUDIO_API_KEY", "SAMBANOVA_API_KEY", "OLLAMA_HOST",
                 "OLLAMA_MODEL")


def time_command(args: list[str], runs: int, cwd: str, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(MAIN), *args], cwd=cwd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    worst = 0.0
    with tempfile.TemporaryDirectory() as home:
        env["HOME"] = home  # no ~/.env and no ./.env: "no endpoints configured"
        print(f"{'command':<24} {'min s':>7} {'median s':>9} {'max s':>7}  target")
        for args in (["--help"], ["--check"]):
            times = time_command(args, runs, home, env)
            median = statistics.median(times)
            worst = max(worst, median)
            verdict = "ok" if median < TARGET_S else "OVER"
            print(f"main.py {' '.join(args):<16} {min(times):7.3f} {median:9.3f} {max(times):7.3f}  "
                  f"< {TARGET_S} s {verdict}")
    print(f"runs per command: {runs}")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
