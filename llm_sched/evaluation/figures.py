"""The campaign's figures: one PNG per dimension, a panel per key metric, the metric's mean against the
dimension's values, grouped points per policy with 95% bootstrap confidence intervals as error bars.

Matplotlib is imported here, when a figure is drawn, and only its Agg canvas is used (no pyplot, no
display, no global backend switch).
"""

from __future__ import annotations

from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.evaluation.analysis import Analysis
from llm_sched.evaluation.design import DIMENSION_TITLES
from llm_sched.evaluation.findings import name
from llm_sched.evaluation.metrics import FIGURE_METRICS, METRICS

# One colour and marker per policy in every figure (red is kept for killed attempts in the Gantt chart).
COLORS: dict[str, str] = {"agents": "tab:blue", "fcfs": "tab:orange", "sjf": "tab:purple", "easy": "tab:green",
                          "conservative": "tab:brown"}
MARKERS: dict[str, str] = {"agents": "o", "fcfs": "s", "sjf": "v", "easy": "^", "conservative": "D"}
UNITS: dict[str, str] = {"percent": "%", "seconds": "s", "ratio": "", "count": ""}


def figure_name(dimension: str) -> str:
    """The file name of a dimension's figure."""
    return f"fig-{dimension.replace('_', '-')}.png"


def draw_dimension(analysis: Analysis, dimension: str, path: Path, metrics: tuple[str, ...] = FIGURE_METRICS) -> Path:
    """Draw one dimension's figure to ``path`` (PNG)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise UserError("the campaign's figures need Matplotlib: pip install matplotlib") from None
    configs = analysis.in_dimension(dimension)
    ticks = [c.tick for c in configs]
    cols = 3
    rows = (len(metrics) + cols - 1) // cols
    width = max(11.0, 0.55 * len(ticks) * cols)
    fig = Figure(figsize=(width, 3.3 * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    policies = analysis.policies
    spread = 0.08 if len(ticks) > 1 else 0.0
    for k, metric_name in enumerate(metrics):
        metric = METRICS[metric_name]
        scale = 100.0 if metric.unit == "percent" else 1.0
        ax = fig.add_subplot(rows, cols, k + 1)
        for j, p in enumerate(policies):
            offset = (j - (len(policies) - 1) / 2) * spread
            xs, ys, below, above = [], [], [], []
            for i, c in enumerate(configs):
                s = analysis.summaries[c.key][p][metric_name]
                if s.mean is None:
                    continue
                xs.append(i + offset)
                ys.append(scale * s.mean)
                below.append(scale * (s.mean - s.low) if s.low is not None else 0.0)
                above.append(scale * (s.high - s.mean) if s.high is not None else 0.0)
            # Points, not lines: a dimension's values are categories (patterns, behaviours) or a few
            # levels; a line between them would draw values that were never run.
            ax.errorbar(xs, ys, yerr=[below, above], label=name(p), color=COLORS.get(p), marker=MARKERS.get(p, "o"),
                        markersize=5, linestyle="none", elinewidth=1.2, capsize=3)
        unit = UNITS[metric.unit]
        ax.set_title(metric.label + (f" ({unit})" if unit else ""), fontsize=10)
        ax.set_xticks(range(len(ticks)))
        ax.set_xticklabels(ticks, rotation=45 if len(ticks) > 6 else 0, ha="right" if len(ticks) > 6 else "center",
                           fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8)
    fig.suptitle(f"{DIMENSION_TITLES[dimension]}: mean of {analysis.repetitions} seeded repetitions, "
                 "95% bootstrap confidence intervals", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    return path


def draw_all(analysis: Analysis, folder: Path) -> dict[str, Path]:
    """Every dimension's figure in ``folder``: dimension -> file."""
    return {d: draw_dimension(analysis, d, folder / figure_name(d)) for d in analysis.dimensions()}
