"""Each policy's gap to the offline optimum on one small instance of the campaign.

The instance: the first ``OPTIMUM_JOBS`` jobs of the base scenario for the campaign's first seed,
on the base machine, without failures (an optimum under failures would need to know them in advance
too). Every policy schedules those jobs in the simulator (the agents through the engine); CP-SAT
(:mod:`llm_sched.sim.optimum`) finds the best mean wait it can within a time limit, knowing every
arrival and run time in advance, and proves a lower bound. The gap of a policy is its mean wait
minus the optimum's, in seconds and relative to the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llm_sched.evaluation.config import CampaignConfig
from llm_sched.evaluation.design import base_scenario
from llm_sched.evaluation.findings import name
from llm_sched.sim.failures import FailureSpec
from llm_sched.sim.metrics import schedule_metrics
from llm_sched.sim.optimum import Optimum
from llm_sched.sim.simulate import compare_runs

OPTIMUM_JOBS = 50
TIME_LIMIT_S = 5.0


@dataclass(frozen=True, slots=True)
class Gap:
    """The instance, the optimum's mean wait and bound, and each policy's mean wait and makespan."""

    jobs: int
    nodes: int
    best: Optimum  # CP-SAT's schedule, status and bound
    optimum: tuple[float, float]  # its (mean wait, makespan)
    policies: dict[str, tuple[float, float]]  # policy -> (mean wait, makespan)


def optimum_gap(config: CampaignConfig) -> Gap | None:
    """The gap table's numbers, or None when OR-Tools is not installed."""
    try:
        import ortools  # noqa: F401
    except ImportError:
        return None
    from llm_sched.sim.optimum import optimum

    base = base_scenario(config.base)
    jobs = min(OPTIMUM_JOBS, base.workload.jobs)
    instance = replace(base, workload=replace(base.workload, jobs=jobs), failures=FailureSpec(rate=0.0, node_rate=0.0),
                       byzantine=0)
    runs = compare_runs(instance, config.seed, config.policies, context=f"campaign-optimum/{config.seed}")  # type: ignore[arg-type]
    first = next(iter(runs.values()))
    best = optimum(first.jobs, first.cluster.nodes, "wait_mean", TIME_LIMIT_S, seed=config.seed)
    opt = schedule_metrics(best.outcomes, first.cluster.nodes)
    table = {}
    for policy, run in runs.items():
        m = schedule_metrics(run.outcomes, run.cluster.nodes)
        table[policy] = (m.wait_mean, m.makespan)
    return Gap(len(first.jobs), first.cluster.nodes, best, (opt.wait_mean, opt.makespan), table)


def gap_section(gap: Gap | None) -> list[str]:
    """The report's section on the optimum."""
    lines = ["## Gap to the offline optimum", ""]
    if gap is None:
        return lines + ["OR-Tools is not installed (pip install 'llm-sched[optimum]'): no optimum was computed.", ""]
    wait, makespan = gap.optimum
    proven = "proven optimal" if gap.best.proven else (
        f"not proven optimal within {TIME_LIMIT_S:g} s of CP-SAT's deterministic time: the optimum lies between the proven bound "
        f"{gap.best.bound:,.0f} s and {wait:,.0f} s")
    lines += [f"The first {gap.jobs} jobs of the base scenario for the first seed, on its {gap.nodes} nodes, without "
              f"failures. OR-Tools CP-SAT (one worker, fixed seed, at most {TIME_LIMIT_S:g} s of its deterministic time) "
              "knows every arrival and run "
              f"time in advance and minimises the mean wait: {wait:,.0f} s ({proven}). No online policy "
              "can know as much; the gap says how far each is from it.", "",
              "| policy | mean wait | gap to the optimum | makespan |", "|---|---:|---:|---:|",
              f"| optimum (CP-SAT) | {wait:,.0f} s | - | {makespan:,.0f} s |"]
    for policy, (theirs, span) in gap.policies.items():
        rel = f" ({100 * (theirs - wait) / theirs:.0f}% of its wait)" if theirs > 0 else ""
        lines.append(f"| {name(policy)} | {theirs:,.0f} s | {theirs - wait:+,.0f} s{rel} | {span:,.0f} s |")
    return lines + [""]
