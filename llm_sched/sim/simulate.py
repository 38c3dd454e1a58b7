"""Entry points of the resilience simulator: one trace replay, one synthetic scenario, a comparison.

- :func:`simulate_trace` is what ``python main.py --simulate --trace FILE --policy P [--jobs N]``
  calls: it prints nothing, returns the metrics, and writes the per-job CSV (and Parquet, with
  pyarrow) and a utilization-over-time PNG; failures drawn from a rate and the seed, or read from a
  failure file (:mod:`llm_sched.sim.failure_file`).
- :class:`SyntheticSetup` and :func:`run_scenario` / :func:`compare` are for campaigns: a scenario is a
  small frozen (picklable) description; the workload and the failure schedule depend only on it and
  the seed, never on the policy, so every policy of a comparison meets the same jobs and failures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_sched.errors import UserError
from llm_sched.sim.columns import whole_numbers
from llm_sched.sim.failure_file import FailurePlan
from llm_sched.sim.failures import (
    FailureSchedule,
    FailureSpec,
    draw_schedule,
    failure_horizon,
)
from llm_sched.sim.resilience import (
    POLICIES,
    JobColumns,
    Policy,
    PoolSplit,
    QueueOnFailure,
    SimConfig,
    SimRun,
    simulate,
)
from llm_sched.sim.resilience_metrics import (
    Attempt,
    ResilienceMetrics,
    attempts,
    busy_arrays,
    measure,
    write_jobs_csv,
    write_jobs_parquet,
)
from llm_sched.sim.workload import SimJob, WorkloadSpec, synthetic

if TYPE_CHECKING:
    import numpy as np

    from llm_sched.agents.pool_adviser import PoolAdviser


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
    failover: float | None = None  # seconds for a central scheduler's hot standby to take over; None: none
    walltime_kill: bool = False  # kill jobs at their walltime (synthetic jobs: their estimate)
    advice: str = "heuristic"  # who chooses the agents' awards: heuristic, llm or hybrid (a PoolAdviser's mode)
    llm_budget: int = 10  # model calls per agents run (llm, hybrid), for the PoolAdviser the caller builds

    @property
    def cluster(self) -> PoolSplit:
        """The machine: ``agents`` pools of ``nodes_per_agent`` nodes."""
        return PoolSplit(self.agents * self.nodes_per_agent, self.agents, self.cores_per_node)

    def config(self, policy: Policy) -> SimConfig:
        """The simulator settings for one policy."""
        return SimConfig(policy, self.queue_on_failure, self.protocol, self.hop_delay, self.deadline,
                         self.failover, self.walltime_kill, self.advice)


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
    if isinstance(jobs, JobColumns):  # the same sums and extremes, on the columns
        fits = jobs.nodes <= cluster.nodes
        work = math.fsum((jobs.nodes[fits] * jobs.run[fits]).tolist())
        submits = whole_numbers(jobs.submit[[0, -1]]) if len(jobs) else []  # sorted: first and last
    else:
        work = math.fsum(j.nodes * j.run for j in jobs if j.nodes <= cluster.nodes)
        submits = [j.submit for j in jobs]
    start, horizon = failure_horizon(submits, work, cluster.nodes)
    return draw_schedule(spec, cluster.agents, cluster.nodes, start, horizon, seed)


def run_scenario(scenario: SyntheticSetup, policy: Policy, seed: int, context: str = "simulation") -> SimRun:
    """One run of ``scenario`` under ``policy``; ``context`` names it in the agents' signatures."""
    jobs, cluster, schedule = prepare(scenario, seed)
    return simulate(jobs, cluster, scenario.config(policy), schedule, context, _faulty(scenario, policy, seed))


def compare_runs(scenario: SyntheticSetup, seed: int, policies: Sequence[Policy] = POLICIES,
                 context: str = "simulation", adviser: PoolAdviser | None = None) -> dict[str, SimRun]:
    """Each policy's run on the same jobs and failures (drawn once). ``adviser``: the model that
    chooses the agents' awards when the scenario's advice is llm or hybrid."""
    jobs, cluster, schedule = prepare(scenario, seed)
    return {p: simulate(jobs, cluster, scenario.config(p), schedule, f"{context}/{p}", _faulty(scenario, p, seed),
                        adviser if p == "agents" else None)
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
    parquet_path: Path | None = None
    parquet_skipped: str = ""  # why no Parquet file was written (pyarrow missing), or ""


# What --simulate says when it writes no Parquet file.
PARQUET_MISSING = "pyarrow is not installed; pip install 'llm-sched[parquet]'"


def parquet_available() -> bool:
    """pyarrow (the parquet extra) can be imported."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def simulate_trace(
    trace_path: str | PathLike[str],
    policy: str,
    jobs: int | None = None,
    out_dir: str | PathLike[str] = "sim-out",
    seed: int = 1,
    agents: int = 5,
    failures: FailureSpec | FailurePlan | None = None,
    queue_on_failure: QueueOnFailure = "keep",
    protocol: str = "pbft",
    hop_delay: float = 0.01,
    plot: bool = True,
    failover: float | None = None,
    walltime_kill: bool = False,
    parquet: bool = True,
) -> TraceResult:
    """Replay an SWF trace (gzip or plain) under ``policy`` and write ``out_dir``'s CSV and PNG.

    A node is one processor; the machine is the header's MaxProcs (else MaxNodes, else the widest
    job), split into ``agents`` pools. ``jobs`` keeps the first N jobs. ``failures`` defaults to
    none, so FCFS and EASY give the reference replays of REFERENCE.md; a :class:`FailureSpec` is
    drawn from ``seed`` (the same failures for every policy), a :class:`FailurePlan` (a failure
    file, :mod:`llm_sched.sim.failure_file`) is placed from the trace's first submission on.
    Files: ``<trace>-<policy>-jobs.csv``, ``<trace>-<policy>-utilization.png`` and, when ``parquet``
    and pyarrow is installed, ``<trace>-<policy>-jobs.parquet`` (the CSV's rows, typed; else
    ``parquet_skipped`` says why not).
    Raises :class:`~llm_sched.errors.UserError` for a missing or malformed trace (file, line,
    field), an unknown policy or protocol, impossible sizes, or failure-file members outside the
    cluster (file, outage, limit).
    """
    from llm_sched.sim.baselines import machine_size
    from llm_sched.sim.swf import load_columns

    if policy not in POLICIES:
        raise UserError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be a positive number of jobs, got {jobs}")
    if agents < 1:
        raise UserError(f"the number of agents must be positive, got {agents}")
    try:
        config = SimConfig(policy, queue_on_failure, protocol, hop_delay,  # type: ignore[arg-type]
                           failover=failover, walltime_kill=walltime_kill)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    path = Path(trace_path)
    if not path.is_file():
        raise UserError(f"trace file not found: {path}" if not path.exists() else f"trace is not a file: {path}")
    trace = load_columns(path, limit=jobs)  # the jobs as columns: a million jobs in tens of MB
    if not len(trace):
        raise UserError(f"{path}: no job with a run time and a processor count to simulate")
    widths = trace.procs
    procs = machine_size(trace.header, lambda: int(widths.max()))
    if procs < agents:
        raise UserError(f"{path}: a machine of {procs} processors cannot be split among {agents} agents")
    cluster = PoolSplit(procs, agents)
    sim_jobs = JobColumns(trace.job_id, trace.submit, trace.run, trace.estimate, trace.procs,
                          walltime=trace.walltime)
    jobs_read, skipped = len(trace), trace.skipped
    del trace
    if isinstance(failures, FailurePlan):  # its times count from the first submission (sorted: job 0)
        schedule = failures.schedule(agents, procs, float(sim_jobs.submit[0]), seed)
    else:
        schedule = _schedule(sim_jobs, cluster, failures or FailureSpec(), seed)
    run = simulate(sim_jobs, cluster, config, schedule)
    # Computed once for the figures, the CSV and the plot (a run kept as a table needs none).
    tries: list[Attempt] | None = None if run.table is not None else attempts(run)
    metrics = measure(run, tries)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(path)
    csv_path = out / f"{stem}-{policy}-jobs.csv"
    plot_path = out / f"{stem}-{policy}-utilization.png" if plot else None
    # The plot is drawn by a forked copy of this process on the other core while this one writes
    # the tables (where fork is not available, after them).
    drawing = _draw_aside(run, plot_path, f"{stem}, {policy}, P = {procs}, {agents} agents", tries)
    write_jobs_csv(csv_path, run, tries)
    parquet_path, parquet_skipped = None, ""
    if parquet and parquet_available():
        parquet_path = out / f"{stem}-{policy}-jobs.parquet"
        write_jobs_parquet(parquet_path, run, tries)
    elif parquet:
        parquet_skipped = PARQUET_MISSING
    drawing()
    return TraceResult(str(path), policy, procs, agents, seed, jobs_read, skipped, metrics, csv_path, plot_path, run,
                       parquet_path, parquet_skipped)


def _draw_aside(run: SimRun, path: Path | None, title: str, tries: list[Attempt] | None) -> Callable[[], None]:
    """Start drawing the utilization plot; the function returned waits for it (and raises its error).

    A forked child has the run without copying or pickling it (a million jobs). Where fork is not
    available, or other threads run (a lock one of them holds would stay held in the child), the
    plot is drawn when waited for."""
    import multiprocessing
    import threading

    if path is None:
        return lambda: None
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return lambda: _draw(run, path, title, tries)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_draw_in_child, args=(send, run, path, title, tries), daemon=True)
    child.start()
    send.close()

    def wait() -> None:
        said, died = None, False
        try:
            said = receive.recv()
        except EOFError:  # it ended before it could say how it went
            died = True
        finally:
            child.join()
            receive.close()
        if died:
            raise RuntimeError(f"the process drawing {path} ended with exit code {child.exitcode}")
        if said is not None:
            kind, message = said
            raise (UserError if kind == "UserError" else RuntimeError)(message)

    return wait


def _draw(run: SimRun, path: Path, title: str, tries: list[Attempt] | None) -> None:
    plot_utilization(run, path, title=title, tries=tries)


def _draw_in_child(send: Any, run: SimRun, path: Path, title: str, tries: list[Attempt] | None) -> None:
    try:
        _draw(run, path, title, tries)
        send.send(None)
    except BaseException as exc:  # the parent raises it: the child has no one to tell but the pipe
        send.send((type(exc).__name__, str(exc)))
    finally:
        send.close()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".swf"):
        name = name.removesuffix(suffix)
    return name


def plot_utilization(run: SimRun, path: str | PathLike[str], title: str = "",
                     tries: Iterable[Attempt] | None = None) -> Path:
    """A PNG of the share of nodes computing over time, with the outages shaded. Needs Matplotlib.

    Beyond 2,000 steps (months of trace), the steps are drawn as their low-high band over 1,000
    columns (about a pixel each) with their means over 200 bins: what a million steps drawn one by
    one would show, in a fraction of a second. ``tries``: the run's attempts, if at hand.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise UserError("the utilization plot needs Matplotlib: pip install matplotlib") from None
    times, busy = busy_arrays(run, tries)
    span = max(run.end_time - run.start_time, 1.0)
    unit, scale = ("days", 86400.0) if span > 10 * 86400 else ("hours", 3600.0)
    x = (times - run.start_time) / scale
    y = 100.0 * busy / run.cluster.nodes
    fig = Figure(figsize=(9, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(x) > 2000:  # months of trace: the raw steps are a blur; draw their band and bin means
        ex, low, high = _envelope(x, y, span / scale, 1000)
        ax.fill_between(ex, low, high, step="post", color="tab:blue", alpha=0.35, linewidth=0,
                        label="nodes computing")
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


def _step_index(x: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each instant of ``at``, the index of the step of ``x`` in force then (0 before the first)."""
    import numpy as np

    return np.maximum(np.searchsorted(x, at, side="right") - 1, 0)


def _envelope(x: np.ndarray, y: np.ndarray, end: float, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lowest and highest value the step function (x, y) takes in each of ``bins`` equal bins of
    [0, end], as steps: (the bins' left edges and ``end``, lows, highs; the last bin's repeated)."""
    import numpy as np

    edges = np.linspace(0.0, end, bins + 1)
    first = _step_index(x, edges[:-1])  # the step in force as each bin opens, then those within it
    low, high = np.minimum.reduceat(y, first), np.maximum.reduceat(y, first)
    last = first[1:]  # the step in force as the next bin opens: in this one too if it began inside
    inside = x[last] < edges[1:-1]
    low[:-1] = np.where(inside, np.minimum(low[:-1], y[last]), low[:-1])
    high[:-1] = np.where(inside, np.maximum(high[:-1], y[last]), high[:-1])
    return edges, np.append(low, low[-1]), np.append(high, high[-1])


def _bin_means(x: np.ndarray, y: np.ndarray, end: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Time averages of the step function (x, y) over ``bins`` equal bins of [0, end] (bin centres,
    means), from its running integral."""
    import numpy as np

    width = end / bins
    edges = np.linspace(0.0, end, bins + 1)
    area = np.concatenate(([0.0], np.cumsum(y[:-1] * np.diff(x))))  # integral from x[0] to each x
    k = _step_index(x, edges)
    integral = np.where(edges >= x[0], area[k] + y[k] * (edges - x[k]), 0.0)
    return (np.arange(bins) + 0.5) * width, np.diff(integral) / width
