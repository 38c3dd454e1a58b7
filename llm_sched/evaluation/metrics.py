"""The campaign's key metrics: which figure of a run, its label, its unit, and which way is better.

The names are fields of :class:`llm_sched.sim.resilience_metrics.ResilienceMetrics`; every run stores
all of them, and these are the ones the statistics, the win counts, the figures and the findings use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"]
Unit = Literal["percent", "seconds", "ratio", "count"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One key metric: ``name`` (the run's field), how to show it, and which direction wins."""

    name: str
    label: str
    unit: Unit
    better: Better

    @property
    def domain(self) -> tuple[float, float]:
        """The values the metric can take: rates in [0, 1], bounded slowdowns from 1, others from 0."""
        if self.unit == "percent":
            return 0.0, 1.0
        return (1.0 if self.unit == "ratio" else 0.0), math.inf

    def wins(self, a: float, b: float) -> int:
        """+1 when ``a`` is better than ``b``, -1 when worse, 0 when equal."""
        if a == b:
            return 0
        return 1 if (a > b) == (self.better == "higher") else -1

    def show(self, value: float | None) -> str:
        """``value`` in the metric's unit, for tables and findings ("-" when undefined)."""
        if value is None or math.isnan(value):
            return "-"
        if self.unit == "percent":
            return f"{100 * value:.2f} %"
        if self.unit == "seconds":
            return f"{value:,.0f} s" if abs(value) >= 10 else f"{value:.2f} s"
        if self.unit == "count":  # two decimals below 10: 1.03 protocol rounds is not 1.0
            return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
        return f"{value:,.2f}"

    def show_ci(self, mean: float | None, low: float | None, high: float | None) -> str:
        """``mean [low, high]`` (the 95% confidence interval) in the metric's unit."""
        if mean is None or math.isnan(mean):
            return "-"
        if low is None or high is None:
            return self.show(mean)
        if self.unit == "percent":
            return f"{100 * mean:.2f} [{100 * low:.2f}, {100 * high:.2f}] %"
        if self.unit == "seconds":
            digits = 0 if abs(mean) >= 10 else 2
            return f"{mean:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}] s"
        digits = 1 if self.unit == "count" and abs(mean) >= 10 else 2
        return f"{mean:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


KEY_METRICS: tuple[Metric, ...] = (
    Metric("completion_rate", "completion rate", "percent", "higher"),
    Metric("wait_mean", "mean wait", "seconds", "lower"),
    Metric("bsld_mean", "bounded slowdown", "ratio", "lower"),
    Metric("decision_availability", "decision availability", "percent", "higher"),
    Metric("availability", "availability (agent-time)", "percent", "higher"),
    Metric("mttr", "MTTR", "seconds", "lower"),
    Metric("utilization", "utilization", "percent", "higher"),
    Metric("makespan", "makespan", "seconds", "lower"),
    Metric("messages_per_decision", "messages per decision", "count", "lower"),
    Metric("decision_latency", "consensus latency", "seconds", "lower"),
    Metric("rounds_per_decision", "protocol rounds per decision", "count", "lower"),
)
METRICS: dict[str, Metric] = {m.name: m for m in KEY_METRICS}

# The panels of each dimension's figure, in order.
FIGURE_METRICS: tuple[str, ...] = (
    "wait_mean", "bsld_mean", "completion_rate", "decision_availability", "mttr", "utilization",
)
