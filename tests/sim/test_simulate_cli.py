"""``python main.py --simulate``: metrics on screen, per-job CSV and plot on disk, clear errors."""

from __future__ import annotations

import csv

from tests.conftest import Cli
from tests.sim.conftest import _trace_path


def test_simulate_prints_metrics_and_writes_the_csv_and_the_plot(cli: Cli) -> None:
    kth = _trace_path("KTH-SP2-1996-2.1-cln.swf.gz")
    result = cli("--simulate", "--trace", str(kth), "--policy", "agents", "--jobs", "300", "--out", "sim")
    assert result.code == 0, result.text
    assert "completion rate" in result.out and "messages per decision" in result.out
    rows = list(csv.DictReader((cli.cwd / "sim" / "KTH-SP2-1996-2.1-cln-agents-jobs.csv").open()))
    assert len(rows) == 300 and all(float(r["start"]) >= float(r["submit"]) for r in rows)
    assert (cli.cwd / "sim" / "KTH-SP2-1996-2.1-cln-agents-utilization.png").stat().st_size > 10_000


def test_simulate_without_a_policy_or_with_a_broken_trace_is_a_clear_error(cli: Cli) -> None:
    missing = cli("--simulate", "--trace", "any.swf")
    assert missing.code == 2 and "--policy" in missing.err and "Traceback" not in missing.text
    broken = cli.cwd / "broken.swf"
    broken.write_text("; MaxProcs: 4\n1 0 0 10 2 -1 -1 2 20 -1 1 1 1 1 1 1 -1 -1\n2 5 0 ten 2\n")
    bad = cli("--simulate", "--trace", str(broken), "--policy", "fcfs")
    assert bad.code == 2 and "broken.swf" in bad.err and "line 3" in bad.err and "Traceback" not in bad.text
