"""Does the model help? The healthy and byzantine scenarios under three answer sources, side by side.

- heuristic: no model, the agents' multi-factor heuristic;
- local: SmolLM2-135M-Instruct run live in this process by llama.cpp (needs the ``local`` extra);
- replay: the shipped cassette recorded from that model.

For each: jobs committed (of jobs), mean placement quality of the commits (modelled: the generalist's
heuristic score of the committed placement, reputation left out), fallbacks, LLM calls valid first try,
and wall time of the run (measured). Run: ``.venv/bin/python bench/bench_models.py [--scenarios a,b]
[--sources heuristic,local,replay]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402

from llm_sched.api import run_scenario_by_name  # noqa: E402


def one(scenario: str, source: str, runs: Path) -> dict[str, object]:
    quiet = Console(file=io.StringIO(), width=120)
    summary = run_scenario_by_name(scenario, provider=source, console=quiet, runs_dir=runs).summary
    llm = summary["llm"]
    valid = f"{llm['valid_first_try']}/{llm['calls']}" if llm["calls"] else "-"
    quality = summary["placement_quality_mean_modelled"]
    return {"scenario": scenario, "source": source, "committed": f"{summary['committed']}/{summary['jobs']}",
            "quality": "-" if quality is None else f"{quality:.3f}", "fallbacks": summary["fallbacks"],
            "valid": valid, "wall": f"{summary['wall_s']:.1f} s"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="healthy,byzantine")
    parser.add_argument("--sources", default="heuristic,local,replay")
    args = parser.parse_args()
    sources = args.sources.split(",")
    if "local" in sources and importlib.util.find_spec("llama_cpp") is None:
        print("the local extra is not installed (make setup-local): skipping the live model")
        sources.remove("local")
    header = ("scenario", "source", "committed", "quality", "fallbacks", "valid", "wall")
    print("quality is modelled (a heuristic formula on the state), not measured; wall time is measured")
    print("  ".join(f"{h:>11}" for h in header))
    with tempfile.TemporaryDirectory() as runs:
        for scenario in args.scenarios.split(","):
            for source in sources:
                row = one(scenario, source, Path(runs))
                print("  ".join(f"{str(row[h]):>11}" for h in header), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
