"""The report's findings: short sentences generated from the campaign's statistics, never written
by hand. Each counts or quotes numbers of :class:`~llm_sched.evaluation.analysis.Analysis`, which
is itself computed from ``results.json``; the tests recompute them from that file.
"""

from __future__ import annotations

from llm_sched.evaluation.analysis import Analysis
from llm_sched.evaluation.design import DIMENSION_TITLES
from llm_sched.evaluation.metrics import METRICS, Metric

POLICY_NAMES: dict[str, str] = {"agents": "agents", "fcfs": "FCFS", "sjf": "SJF", "easy": "EASY",
                                 "conservative": "conservative backfilling"}
ALPHA = 0.05

# Metrics with a sentence of configuration counts, in this order.
COUNTED: tuple[str, ...] = (
    "wait_mean", "bsld_mean", "completion_rate", "decision_availability", "mttr", "utilization", "makespan",
    "availability",
)


def name(policy: str) -> str:
    """How a policy is written in the report."""
    return POLICY_NAMES.get(policy, policy)


def _words(metric: Metric) -> tuple[str, str]:
    return ("higher", "lower") if metric.better == "higher" else ("lower", "higher")


def count_sentence(analysis: Analysis, metric_name: str) -> str | None:
    """How often agents' mean beat each baseline's on one metric, and how often significantly."""
    metric = METRICS[metric_name]
    good, bad = _words(metric)
    parts = []
    for b in analysis.baselines:
        better = worse = equal = sig_better = sig_worse = n = 0
        won = tied = lost = 0
        for c in analysis.configs:
            cmp = analysis.comparisons[c.key][b][metric_name]
            won, tied, lost = won + cmp.wins, tied + cmp.ties, lost + cmp.losses
            if cmp.mean_a is None or cmp.mean_b is None:
                continue
            n += 1
            side = metric.wins(cmp.mean_a, cmp.mean_b)
            if side > 0:
                better += 1
                sig_better += cmp.significant(ALPHA)
            elif side < 0:
                worse += 1
                sig_worse += cmp.significant(ALPHA)
            else:
                equal += 1
        if n == 0:
            continue
        if equal == n and won == lost == 0:
            parts.append(f"the same as {name(b)}'s in all {n} configurations and all {tied} paired runs")
            continue
        text = (f"{good} than {name(b)} in {better} of {n} configurations ({sig_better} significant), "
                f"{bad} in {worse} ({sig_worse} significant)")
        if equal:
            text += f", equal in {equal}"
        pairs = won + tied + lost
        text += f"; per repetition it won {won}, tied {tied} and lost {lost} of {pairs} paired runs"
        parts.append(text)
    if not parts:
        return None
    if all(p.startswith("the same as") for p in parts):
        means = [s.mean for c in analysis.configs if (s := analysis.summaries[c.key]["agents"][metric_name]).mean
                 is not None]
        spread = f" ({metric.show(min(means))} to {metric.show(max(means))} across configurations)" if means else ""
        return (f"**{metric.label[0].upper() + metric.label[1:]}** was the same for every policy in every run"
                f"{spread}: every policy meets the same failures over the same window.")
    return f"**{metric.label[0].upper() + metric.label[1:]}**: agents' mean was " + "; ".join(parts) + "."


def extreme_sentence(analysis: Analysis, metric_name: str, baseline: str) -> str | None:
    """The range of agents' mean relative to ``baseline``'s over the configurations, with where each end was."""
    metric = METRICS[metric_name]
    ratios = []
    for c in analysis.configs:
        cmp = analysis.comparisons[c.key][baseline][metric_name]
        if cmp.mean_a is None or cmp.mean_b is None or cmp.mean_b == 0:
            continue
        ratios.append((cmp.mean_a / cmp.mean_b, c.label, cmp))
    if len(ratios) < 2:
        return None
    ratios.sort(key=lambda r: r[0])
    (lo, lo_label, lo_cmp), (hi, hi_label, hi_cmp) = ratios[0], ratios[-1]
    return (f"Agents' {metric.label} relative to {name(baseline)}'s ranged from {100 * (lo - 1):+.0f}% "
            f"({lo_label}: {metric.show(lo_cmp.mean_a)} against {metric.show(lo_cmp.mean_b)}) to "
            f"{100 * (hi - 1):+.0f}% ({hi_label}: {metric.show(hi_cmp.mean_a)} against {metric.show(hi_cmp.mean_b)}).")


def dimension_sentence(analysis: Analysis, dimension: str, metric_name: str) -> str | None:
    """Each policy's mean over one dimension's values, first to last (for ordered dimensions)."""
    configs = analysis.in_dimension(dimension)
    if len(configs) < 2:
        return None
    metric = METRICS[metric_name]
    first, last = configs[0], configs[-1]
    parts = []
    for p in analysis.policies:
        a = analysis.summaries[first.key][p][metric_name].mean
        z = analysis.summaries[last.key][p][metric_name].mean
        parts.append(f"{name(p)} {metric.show(a)} to {metric.show(z)}")
    return (f"{DIMENSION_TITLES[dimension]}, from {first.tick} to {last.tick}: {metric.label} went from "
            + ", ".join(parts) + ".")


def worst_sentence(analysis: Analysis, dimension: str, metric_name: str) -> str | None:
    """For each policy, the value of a (categorical) dimension where the metric was worst."""
    configs = analysis.in_dimension(dimension)
    if len(configs) < 2:
        return None
    metric = METRICS[metric_name]
    parts = []
    for p in analysis.policies:
        scored = [(analysis.summaries[c.key][p][metric_name].mean, c.tick) for c in configs]
        scored = [(v, t) for v, t in scored if v is not None]
        if not scored:
            continue
        v, tick = (min if metric.better == "higher" else max)(scored)
        parts.append(f"{name(p)} {tick} ({metric.show(v)})")
    if not parts:
        return None
    return f"{DIMENSION_TITLES[dimension]}: the worst {metric.label} was " + ", ".join(parts) + "."


def agents_sentence(analysis: Analysis, dimension: str, metric_name: str) -> str | None:
    """The agents' mean of a metric at each value of a dimension (what Byzantine agents cost them)."""
    configs = analysis.in_dimension(dimension)
    if not configs:
        return None
    metric = METRICS[metric_name]
    parts = [f"{c.tick} {metric.show(m)}" for c in configs
             if (m := analysis.summaries[c.key]["agents"][metric_name].mean) is not None]
    return f"{DIMENSION_TITLES[dimension]}: agents' {metric.label} was " + ", ".join(parts) + "." if parts else None


def cost_sentence(analysis: Analysis) -> str | None:
    """What the agents' decisions cost in messages, against the central schedulers."""
    metric = "messages_per_decision"
    means = {p: [s for c in analysis.configs
                 if (s := analysis.summaries[c.key][p][metric].mean) is not None] for p in analysis.policies}
    if not means.get("agents"):
        return None
    lo, hi = min(means["agents"]), max(means["agents"])
    spread = f"{lo:,.1f}" if lo == hi else f"{lo:,.1f} to {hi:,.1f}"
    central = sorted({v for p in analysis.baselines for v in means.get(p, [])})
    shown = ", ".join(f"{v:,.1f}" for v in central) or "-"
    return (f"**Cost**: agents exchanged {spread} messages per decision, counted on the engine's simulated "
            f"network (more agents, more messages); the central schedulers {shown} (their decisions are local).")


def findings(analysis: Analysis) -> list[str]:
    """Every finding of the campaign, in report order."""
    out: list[str | None] = [count_sentence(analysis, m) for m in COUNTED]
    for b in analysis.baselines:
        out.append(extreme_sentence(analysis, "wait_mean", b))
    dims = analysis.dimensions()
    if "failure_rate" in dims:
        out.append(dimension_sentence(analysis, "failure_rate", "decision_availability"))
        out.append(dimension_sentence(analysis, "failure_rate", "wait_mean"))
    if "high_load" in dims:
        out.append(dimension_sentence(analysis, "high_load", "bsld_mean"))
    if "failure_pattern" in dims:
        out.append(worst_sentence(analysis, "failure_pattern", "decision_availability"))
    if "load_pattern" in dims:
        out.append(worst_sentence(analysis, "load_pattern", "wait_mean"))
    for dim in ("byzantine", "byzantine_behaviour"):
        if dim in dims:
            out.append(agents_sentence(analysis, dim, "messages_per_decision"))
            out.append(agents_sentence(analysis, dim, "rounds_per_decision"))
            out.append(agents_sentence(analysis, dim, "decision_latency"))
    if "advice" in dims:  # what a model choosing the awards changed for the agents
        out.append(agents_sentence(analysis, "advice", "wait_mean"))
        out.append(agents_sentence(analysis, "advice", "utilization"))
    out.append(cost_sentence(analysis))
    return [s for s in out if s]
