"""Rich rendering of simulator metrics: one column per run (policy). It formats; it computes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

from llm_sched.sim.resilience_metrics import ResilienceMetrics


def _num(value: float, decimals: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{decimals}f}"


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f} s" if abs(value) >= 10 else f"{value:.2f} s"


def _latency(value: float) -> str:
    return "-" if math.isnan(value) else f"{1000 * value:,.1f} ms"


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f} %"


# (label, how to show it) in display order.
ROWS: tuple[tuple[str, Callable[[ResilienceMetrics], str]], ...] = (
    ("jobs completed", lambda m: f"{m.completed:,} / {m.jobs:,}"),
    ("completion rate", lambda m: _percent(m.completion_rate)),
    ("wait mean", lambda m: _seconds(m.wait_mean)),
    ("wait p50", lambda m: _seconds(m.wait_p50)),
    ("wait p95", lambda m: _seconds(m.wait_p95)),
    ("wait max", lambda m: _seconds(m.wait_max)),
    ("bounded slowdown (tau 10 s)", lambda m: _num(m.bsld_mean, 2)),
    ("utilization", lambda m: _percent(m.utilization)),
    ("makespan", lambda m: _seconds(m.makespan)),
    ("throughput", lambda m: f"{3600 * m.throughput:,.2f} jobs/h" if not math.isnan(m.throughput) else "-"),
    ("availability (agent-time)", lambda m: _percent(m.availability)),
    ("decision availability", lambda m: _percent(m.decision_availability)),
    ("failures", lambda m: f"{m.failures:,}"),
    ("jobs killed / requeued", lambda m: f"{m.kills:,} / {m.requeues:,}"),
    ("lost work", lambda m: f"{m.lost_work / 3600:,.1f} node-h"),
    ("resubmitted (queue lost)", lambda m: f"{m.resubmitted:,}"),
    ("killed at walltime (timeouts)", lambda m: f"{m.timeouts:,}"),
    ("standby takeovers (failovers)", lambda m: f"{m.failovers:,}"),
    ("detection (phi-accrual)", lambda m: _seconds(m.detection_mean)),
    ("MTTR", lambda m: _seconds(m.mttr) + (f" ({m.unrecovered} unrecovered)" if m.unrecovered else "")),
    ("decisions", lambda m: f"{m.decisions:,}"),
    ("messages per decision (counted)", lambda m: _num(m.messages_per_decision, 1)),
    ("bytes per decision (counted)", lambda m: _num(m.bytes_per_decision, 0)),
    ("consensus latency (simulated network)", lambda m: _latency(m.decision_latency)),
    ("protocol rounds per decision", lambda m: f"{m.rounds_per_decision:.2f}"),
)


def metrics_table(runs: ResilienceMetrics | Sequence[ResilienceMetrics], title: str | None = None,
                  labels: Sequence[str] | None = None) -> Table:
    """A table with one row per figure and one column per run (headed by ``labels`` or the policy)."""
    items = [runs] if isinstance(runs, ResilienceMetrics) else list(runs)
    heads = list(labels) if labels is not None else [m.policy for m in items]
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    for head in heads:
        table.add_column(head, justify="right")
    for label, show in ROWS:
        table.add_row(label, *(show(m) for m in items))
    return table


def print_metrics(runs: ResilienceMetrics | Sequence[ResilienceMetrics], title: str | None = None,
                  console: Console | None = None, labels: Sequence[str] | None = None) -> None:
    """Print :func:`metrics_table` on ``console`` (standard output by default)."""
    (console or Console(highlight=False)).print(metrics_table(runs, title, labels))
