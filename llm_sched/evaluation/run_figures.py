"""Figures of one run, and of message cost against n: what a campaign's means cannot show.

The campaign keeps each run's metrics, not its jobs; a run is a pure function of its scenario and
seed, so the base scenario's run for the campaign's first seed is simulated again here, under every
policy, and drawn:

- ``fig-gantt.png``: every job attempt as a bar from its start to its stop (killed attempts in red),
  one panel per policy;
- ``fig-cdf.png``: the empirical CDFs of wait and of bounded slowdown, one line per policy;
- ``fig-utilization.png``: the share of nodes computing over time, one line per policy, the
  agents' outages shaded;
- ``fig-messages.png``: the agents' messages per decision against n on log axes, the means of the
  scale dimension's configurations (measured) beside the protocol's normal-case formula (PBFT
  2n(n-1), Tendermint (n-1)(2n+1)).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.evaluation.analysis import Analysis
from llm_sched.evaluation.config import CampaignConfig
from llm_sched.evaluation.design import base_scenario
from llm_sched.evaluation.figures import COLORS
from llm_sched.evaluation.findings import name
from llm_sched.sim.metrics import bounded_slowdown
from llm_sched.sim.resilience import SimRun
from llm_sched.sim.resilience_metrics import attempts, busy_series
from llm_sched.sim.simulate import compare_runs

FORMULAS = {"pbft": ("2n(n-1)", lambda n: 2 * n * (n - 1)), "tendermint": ("(n-1)(2n+1)", lambda n: (n - 1) * (2 * n + 1))}


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise UserError("the campaign's figures need Matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, title: str, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return path


def example_runs(config: CampaignConfig) -> dict[str, SimRun]:
    """The base scenario under every policy, for the campaign's first seed."""
    return compare_runs(base_scenario(config.base), config.seed, config.policies,  # type: ignore[arg-type]
                        context=f"campaign-example/{config.seed}")


def draw_gantt(runs: Mapping[str, SimRun], path: Path, title: str) -> Path:
    fig = _figure(11, 2.6 * len(runs) + 0.8)
    hours = 3600.0
    for k, (policy, run) in enumerate(runs.items()):
        ax = fig.add_subplot(len(runs), 1, k + 1)
        order = {job.job_id: i for i, job in enumerate(run.jobs)}
        t0 = run.start_time
        tried = attempts(run)
        ax.barh([order[a.job_id] for a in tried], [(a.stop - a.start) / hours for a in tried],
                left=[(a.start - t0) / hours for a in tried], height=0.8, linewidth=0,
                color=[COLORS.get(policy, "tab:gray") if a.completed else "tab:red" for a in tried])
        ax.set_ylabel(f"{name(policy)}\njob (submission order)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_xlim(0, (run.end_time - t0) / hours)
    ax.set_xlabel("hours since the first submission (red: attempts killed by a failure)", fontsize=9)
    return _save(fig, title, path)


def draw_cdfs(runs: Mapping[str, SimRun], path: Path, title: str) -> Path:
    fig = _figure(11, 4)
    for k, (label, value, log) in enumerate((
            ("wait (s)", lambda o: o.start - o.submit, False),
            ("bounded slowdown (tau 10 s)", lambda o: bounded_slowdown(o.start - o.submit, o.end - o.start), True))):
        ax = fig.add_subplot(1, 2, k + 1)
        for policy, run in runs.items():
            xs = sorted(value(o) for o in run.outcomes)
            if not xs:
                continue
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=name(policy), color=COLORS.get(policy))
        if log:
            from matplotlib.ticker import NullFormatter, ScalarFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("share of completed jobs", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, title, path)


def draw_utilization(runs: Mapping[str, SimRun], path: Path, title: str) -> Path:
    fig = _figure(11, 3.6)
    ax = fig.add_subplot()
    hours = 3600.0
    any_run = next(iter(runs.values()))
    t0 = any_run.start_time
    for policy, run in runs.items():
        times, busy = busy_series(run)
        ax.step([(t - t0) / hours for t in times], [100 * b / run.cluster.nodes for b in busy], where="post",
                label=name(policy), color=COLORS.get(policy), linewidth=0.9)
    for o in any_run.schedule.outages:
        if o.kind != "node":
            ax.axvspan((o.start - t0) / hours, (o.end - t0) / hours, color="tab:red", alpha=0.08, linewidth=0)
    ax.set_xlabel("hours since the first submission (shaded: agent outages and partitions)", fontsize=9)
    ax.set_ylabel("nodes computing (%)", fontsize=9)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    return _save(fig, title, path)


def draw_messages(analysis: Analysis, protocol: str, path: Path) -> Path | None:
    """Measured messages per decision against n (the scale dimension), with the formula; None
    without a scale dimension of at least two agent counts."""
    by_n: dict[int, list[float]] = {}
    for c in analysis.in_dimension("scale"):
        n = int(c.tick.split("x")[1])
        mean = analysis.summaries[c.key]["agents"]["messages_per_decision"].mean
        if mean is not None:
            by_n.setdefault(n, []).append(mean)
    if len(by_n) < 2:
        return None
    ns = sorted(by_n)
    fig = _figure(6, 4.2)
    ax = fig.add_subplot()
    ax.plot(ns, [sum(by_n[n]) / len(by_n[n]) for n in ns], "o", color=COLORS["agents"],
            label="agents, measured (mean over the scale configurations)")
    if protocol in FORMULAS:
        text, formula = FORMULAS[protocol]
        ax.plot(ns, [formula(n) for n in ns], "--", color="tab:gray", label=f"{protocol} normal case {text}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("agents n", fontsize=9)
    ax.set_ylabel("messages per decision", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Message cost of the agents' decisions ({protocol}, counted on the engine's network)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def draw_run_figures(config: CampaignConfig, analysis: Analysis, folder: Path) -> dict[str, Path]:
    """Every figure of this module in ``folder``: name -> file."""
    b = config.base
    runs = example_runs(config)
    setting = (f"base scenario ({b.jobs} jobs, {b.agents} agents x {b.nodes_per_agent} nodes, failure rate "
               f"{b.failure_rate:g}, {b.pattern}), seed {config.seed}")
    out = {
        "gantt": draw_gantt(runs, folder / "fig-gantt.png", f"Job attempts, {setting}"),
        "cdf": draw_cdfs(runs, folder / "fig-cdf.png", f"Distributions over the completed jobs, {setting}"),
        "utilization": draw_utilization(runs, folder / "fig-utilization.png", f"Utilization, {setting}"),
    }
    messages = draw_messages(analysis, b.protocol, folder / "fig-messages.png")
    if messages is not None:
        out["messages"] = messages
    return out
