"""Entry points of the resilience simulator: one trace replay, one synthetic scenario, a comparison.

- :func:`simulate_trace` is what ``python main.py --simulate --trace FILE --policy P [--jobs N]``
  calls: it prints nothing, returns the metrics, and writes the per-job CSV and a
  utilization-over-time PNG.
- :class:`SyntheticSetup` and :func:`run_scenario` / :func:`compare` are for campaigns: a scenario is a
  small frozen (picklable) description; the workload and the failure schedule depend only on it and
  the seed, never on the policy, so every policy of a comparison meets the same jobs and failures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.sim.failures import (
    FailureSchedule,
    FailureSpec,
    draw_schedule,
    failure_horizon,
)
from llm_sched.sim.resilience import (
    POLICIES,
    Policy,
    PoolSplit,
    QueueOnFailure,
    SimConfig,
    SimRun,
    simulate,
)
from llm_sched.sim.resilience_metrics import (
    ResilienceMetrics,
    busy_series,
    measure,
    write_jobs_csv,
)
from llm_sched.sim.workload import SimJob, WorkloadSpec, from_trace, synthetic


@dataclass(frozen=True, slots=True)
class SyntheticSetup:
    """A synthetic experiment: cluster, workload, failures and protocol settings (not the policy)."""

    agents: int = 5
    nodes_per_agent: int = 8
    cores_per_node: int = 64  # descriptive: jobs ask for whole nodes
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    failures: FailureSpec = field(default_factory=FailureSpec)
    queue_on_failure: QueueOnFailure = "keep"
    protocol: str = "pbft"
    hop_delay: float = 0.01
    deadline: float | None = None
    byzantine: int = 0  # Byzantine agents (the agents policy), chosen per seed
    behaviour: str = "vote_flipping"  # theirs, from agents.pool_agents.POOL_BEHAVIOURS

    @property
    def cluster(self) -> PoolSplit:
        """The machine: ``agents`` pools of ``nodes_per_agent`` nodes."""
        return PoolSplit(self.agents * self.nodes_per_agent, self.agents, self.cores_per_node)

    def config(self, policy: Policy) -> SimConfig:
        """The simulator settings for one policy."""
        return SimConfig(policy, self.queue_on_failure, self.protocol, self.hop_delay, self.deadline)


def prepare(scenario: SyntheticSetup, seed: int) -> tuple[list[SimJob], PoolSplit, FailureSchedule]:
    """The jobs and the failure schedule of ``scenario`` for ``seed`` (the same for every policy)."""
    cluster = scenario.cluster
    jobs = synthetic(scenario.workload, cluster.nodes, seed)
    return jobs, cluster, _schedule(jobs, cluster, scenario.failures, seed)


def byzantine_agents(scenario: SyntheticSetup, seed: int) -> dict[int, str]:
    """The pools whose agents are Byzantine for ``seed``: the first ``byzantine`` of a seeded
    permutation, so a seed's single liar is one of its three (common random numbers)."""
    order = random.Random(f"byzantine/{seed}").sample(range(scenario.agents), scenario.agents)
    return {p: scenario.behaviour for p in sorted(order[: scenario.byzantine])}


def _schedule(jobs: Sequence[SimJob], cluster: PoolSplit, spec: FailureSpec, seed: int) -> FailureSchedule:
    work = math.fsum(j.nodes * j.run for j in jobs if j.nodes <= cluster.nodes)
    start, horizon = failure_horizon([j.submit for j in jobs], work, cluster.nodes)
    return draw_schedule(spec, cluster.agents, cluster.nodes, start, horizon, seed)


def run_scenario(scenario: SyntheticSetup, policy: Policy, seed: int, context: str = "simulation") -> SimRun:
    """One run of ``scenario`` under ``policy``; ``context`` names it in the agents' signatures."""
    jobs, cluster, schedule = prepare(scenario, seed)
    return simulate(jobs, cluster, scenario.config(policy), schedule, context, _faulty(scenario, policy, seed))


def compare_runs(scenario: SyntheticSetup, seed: int, policies: Sequence[Policy] = POLICIES,
                 context: str = "simulation") -> dict[str, SimRun]:
    """Each policy's run on the same jobs and failures (drawn once)."""
    jobs, cluster, schedule = prepare(scenario, seed)
    return {p: simulate(jobs, cluster, scenario.config(p), schedule, f"{context}/{p}", _faulty(scenario, p, seed))
            for p in policies}


def _faulty(scenario: SyntheticSetup, policy: Policy, seed: int) -> dict[int, str]:
    # Only the agents policy has agents to corrupt; a central scheduler asks nobody to agree.
    return byzantine_agents(scenario, seed) if policy == "agents" else {}


def compare(scenario: SyntheticSetup, seed: int, policies: Sequence[Policy] = POLICIES) -> dict[str, ResilienceMetrics]:
    """The metrics of each policy on the same jobs and failures (drawn once)."""
    return {p: measure(run) for p, run in compare_runs(scenario, seed, policies).items()}


@dataclass(frozen=True, slots=True)
class TraceResult:
    """What :func:`simulate_trace` produced."""

    trace: str
    policy: str
    nodes: int
    agents: int
    seed: int
    jobs_read: int
    skipped: int  # trace lines without a usable run time or processor count
    metrics: ResilienceMetrics
    csv_path: Path
    plot_path: Path | None
    run: SimRun


def simulate_trace(
    trace_path: str | PathLike[str],
    policy: str,
    jobs: int | None = None,
    out_dir: str | PathLike[str] = "sim-out",
    seed: int = 1,
    agents: int = 5,
    failures: FailureSpec | None = None,
    queue_on_failure: QueueOnFailure = "keep",
    protocol: str = "pbft",
    hop_delay: float = 0.01,
    plot: bool = True,
) -> TraceResult:
    """Replay an SWF trace (gzip or plain) under ``policy`` and write ``out_dir``'s CSV and PNG.

    A node is one processor; the machine is the header's MaxProcs (else MaxNodes, else the widest
    job), split into ``agents`` pools. ``jobs`` keeps the first N jobs. ``failures`` defaults to
    none, so FCFS and EASY give the reference replays of REFERENCE.md; ``seed`` draws the failures.
    Files: ``<trace>-<policy>-jobs.csv`` and ``<trace>-<policy>-utilization.png``.
    Raises :class:`~llm_sched.errors.UserError` for a missing or malformed trace (file, line,
    field), an unknown policy or protocol, or impossible sizes.
    """
    from llm_sched.sim.baselines import machine_procs
    from llm_sched.sim.swf import load_trace

    if policy not in POLICIES:
        raise UserError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be a positive number of jobs, got {jobs}")
    if agents < 1:
        raise UserError(f"the number of agents must be positive, got {agents}")
    try:
        config = SimConfig(policy, queue_on_failure, protocol, hop_delay)  # type: ignore[arg-type]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    path = Path(trace_path)
    if not path.is_file():
        raise UserError(f"trace file not found: {path}" if not path.exists() else f"trace is not a file: {path}")
    trace = load_trace(path, limit=jobs)
    if not trace.jobs:
        raise UserError(f"{path}: no job with a run time and a processor count to simulate")
    procs = machine_procs(trace.header, trace.jobs)
    if procs < agents:
        raise UserError(f"{path}: a machine of {procs} processors cannot be split among {agents} agents")
    cluster = PoolSplit(procs, agents)
    sim_jobs = from_trace(trace.jobs)
    schedule = _schedule(sim_jobs, cluster, failures or FailureSpec(), seed)
    run = simulate(sim_jobs, cluster, config, schedule)
    metrics = measure(run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(path)
    csv_path = out / f"{stem}-{policy}-jobs.csv"
    write_jobs_csv(csv_path, run)
    plot_path = None
    if plot:
        plot_path = out / f"{stem}-{policy}-utilization.png"
        plot_utilization(run, plot_path, title=f"{stem}, {policy}, P = {procs}, {agents} agents")
    return TraceResult(str(path), policy, procs, agents, seed, len(trace.jobs), trace.skipped,
                       metrics, csv_path, plot_path, run)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".swf"):
        name = name.removesuffix(suffix)
    return name


def plot_utilization(run: SimRun, path: str | PathLike[str], title: str = "") -> Path:
    """A PNG of the share of nodes computing over time, with the outages shaded. Needs Matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise UserError("the utilization plot needs Matplotlib: pip install matplotlib") from None
    times, busy = busy_series(run)
    span = max(run.end_time - run.start_time, 1.0)
    unit, scale = ("days", 86400.0) if span > 10 * 86400 else ("hours", 3600.0)
    x = [(t - run.start_time) / scale for t in times]
    y = [100.0 * b / run.cluster.nodes for b in busy]
    fig = Figure(figsize=(9, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(x) > 2000:  # months of trace: the raw steps are a blur; draw their bin means over them
        ax.step(x, y, where="post", linewidth=0.4, color="tab:blue", alpha=0.35, label="nodes computing")
        bx, by = _bin_means(x, y, span / scale, 200)
        ax.plot(bx, by, color="navy", linewidth=1.2, label=f"mean over {span / scale / 200:.2g} {unit}")
    else:
        ax.step(x, y, where="post", linewidth=0.8, color="tab:blue", label="nodes computing")
    shaded = False
    for o in run.schedule.outages:
        if o.kind == "node" or o.start > run.end_time:
            continue
        lo = (max(o.start, run.start_time) - run.start_time) / scale
        hi = (min(o.end, run.end_time) - run.start_time) / scale
        ax.axvspan(lo, hi, color="tab:red", alpha=0.15, linewidth=0,
                   label=None if shaded else "agent outage or partition")
        shaded = True
    ax.set_xlim(0, span / scale)
    ax.set_ylim(0, 105)
    ax.set_xlabel(f"time since first submission ({unit})")
    ax.set_ylabel("utilization (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def _bin_means(x: list[float], y: list[float], end: float, bins: int) -> tuple[list[float], list[float]]:
    """Time averages of the step function (x, y) over ``bins`` equal bins of [0, end]."""
    width = end / bins
    sums = [0.0] * bins
    for k in range(len(x)):
        lo, hi = x[k], (x[k + 1] if k + 1 < len(x) else end)
        while lo < hi:
            b = min(int(lo / width), bins - 1)
            edge = min(hi, (b + 1) * width) if b < bins - 1 else hi
            sums[b] += y[k] * (edge - lo)
            if edge <= lo:
                break
            lo = edge
    return [(b + 0.5) * width for b in range(bins)], [v / width for v in sums]
