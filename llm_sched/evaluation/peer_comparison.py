"""The simulator's policies and the CP-SAT optimum on the seven workload scenarios of Jadhav, Jin,
Deelman and Balaprakash, "Evaluating the Efficacy of LLM-Based Reasoning for Multiobjective HPC Job
Scheduling" (SC'25 WORKS workshop; arXiv 2506.02025), in the style of their comparison.

For every scenario kind (:mod:`llm_sched.sim.peer_workloads`) and seed, one instance (the same jobs
for everyone, no failures) is scheduled by every policy in the list (default: every name in
:data:`llm_sched.sim.resilience.POLICIES`, read when called) and solved twice by OR-Tools CP-SAT
(:mod:`llm_sched.sim.optimum`): minimising the makespan, and separately the mean wait, each within a
time limit (default 5 s), one worker, a fixed seed; whether the optimum was proven is recorded.

A policy is a label, a simulator policy name and optional :class:`~llm_sched.sim.resilience.SimConfig`
settings (:class:`PolicyEntry`), so a variant such as ``PolicyEntry("agents (llm)", "agents",
(("mode", "llm"),))`` is one more entry once the simulator accepts that setting.

Metrics, per run, over its completed jobs (without failures every job completes), one formula for
the policies and the optimum (:func:`llm_sched.sim.metrics.schedule_metrics`):

- makespan = last end - first submission;
- mean wait = mean of start - submission;
- utilisation = sum(nodes x run) / (N x makespan), N the machine's nodes;
- fairness = Jain's index (:func:`llm_sched.sim.metrics.jain_index`) over the jobs' bounded
  slowdowns max(1, (wait + run) / max(run, 10 s)).

Which of the paper's definitions we follow: we could read its abstract only (see
:mod:`llm_sched.sim.peer_workloads`), which names the objectives (makespan, wait times, resource use,
fairness), the seven scenarios, 10 to 100 jobs, and FCFS, SJF and OR-Tools as comparators. Their
exact formulas, machine sizes and scenario parameters were not available to us; the definitions
above are the usual ones (REFERENCE.md's for wait, slowdown and utilisation), and Jain's index over
bounded slowdowns is our choice (it is defined even when every wait is 0). Their LLM scheduler is not
run here, and none of their figures is reproduced or copied.

Files written into the output folder (created if missing; these two files replaced):

- ``peer_comparison.csv``: one row per scenario kind x policy x seed, the two optimum runs counting
  as the policies ``optimum (makespan)`` and ``optimum (mean wait)`` (``source`` cp-sat, with the
  solver's status, proven bound and solve time);
- ``peer_comparison.md``: per scenario kind a table of each policy's means over the seeds, and the
  optimum's figures with "proven optimal" or "best found within T s" (of CP-SAT's deterministic time).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path
from typing import Any

from llm_sched.evaluation.findings import name
from llm_sched.evaluation.metrics import METRICS
from llm_sched.evaluation.report import markdown_table
from llm_sched.folders import make_folder, refuse_file
from llm_sched.sim import resilience
from llm_sched.sim.metrics import bounded_slowdown, jain_index, schedule_metrics
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.peer_workloads import (
    DEFAULT_JOBS,
    DEFAULT_NODES,
    DEFAULT_POOLS,
    PAPER_JOB_RANGE,
    SCENARIO_KINDS,
    SCENARIO_TITLES,
    peer_workload,
)
from llm_sched.sim.resilience import PoolSplit, SimConfig, SimRun, simulate
from llm_sched.sim.workload import SimJob

CSV_NAME = "peer_comparison.csv"
MD_NAME = "peer_comparison.md"
TIME_LIMIT_S = 5.0
SOLVER_SEED = 1
OPTIMUM_LABELS: dict[str, str] = {"makespan": "optimum (makespan)", "wait_mean": "optimum (mean wait)"}
PAPER = ("Jadhav, Jin, Deelman and Balaprakash, \"Evaluating the Efficacy of LLM-Based Reasoning for "
         "Multiobjective HPC Job Scheduling\" (SC'25 WORKS workshop; arXiv 2506.02025)")


@dataclass(frozen=True, slots=True)
class PolicyEntry:
    """One policy of the comparison: how it is written (``label``), the simulator's policy name,
    and :class:`~llm_sched.sim.resilience.SimConfig` settings as (field, value) pairs."""

    label: str
    policy: str
    settings: tuple[tuple[str, Any], ...] = ()

    def config(self) -> SimConfig:
        """The simulator settings of this entry (a :class:`ValueError` for unknown ones)."""
        try:
            return SimConfig(policy=self.policy, **dict(self.settings))  # type: ignore[arg-type]
        except TypeError as exc:  # a setting SimConfig does not have
            raise ValueError(f"policy {self.label!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One run: a policy (or the optimum for one objective) on one scenario instance."""

    kind: str
    policy: str  # the entry's label, or OPTIMUM_LABELS[objective]
    seed: int
    source: str  # "simulator" or "cp-sat"
    jobs: int
    nodes: int
    pools: int
    completed: int
    makespan: float  # seconds
    wait_mean: float  # seconds
    utilization: float  # fraction
    jain_bsld: float  # Jain's index over the jobs' bounded slowdowns
    objective: str = ""  # cp-sat: "makespan" or "wait_mean"
    status: str = ""  # cp-sat: "OPTIMAL" or "FEASIBLE"
    bound: float = math.nan  # cp-sat: proven lower bound of the objective (seconds)
    solve_s: float = math.nan  # cp-sat: solver wall time
    llm_calls: int = 0  # agents whose awards a model chooses: calls, the model's own awards, fallbacks
    llm_choices: int = 0
    llm_fallbacks: int = 0

    @property
    def proven(self) -> bool:
        return self.status == "OPTIMAL"


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PeerRow))


@dataclass(frozen=True, slots=True)
class PeerComparison:
    """What :func:`peer_comparison` ran and wrote."""

    csv_path: Path
    md_path: Path
    kinds: tuple[str, ...]
    policies: tuple[str, ...]  # labels, optimum rows not included
    seeds: tuple[int, ...]
    jobs: int
    nodes: int
    pools: int
    time_limit_s: float
    optimum: bool  # whether the CP-SAT rows were computed (OR-Tools installed and asked for)
    rows: tuple[PeerRow, ...]


def policy_entries(policies: Sequence[str | PolicyEntry] | None = None) -> tuple[PolicyEntry, ...]:
    """The entries for ``policies`` (names or entries); None: every name in ``resilience.POLICIES``,
    read now (the list grows as the simulator gains policies)."""
    chosen = resilience.POLICIES if policies is None else policies
    out = tuple(p if isinstance(p, PolicyEntry) else PolicyEntry(p, p) for p in chosen)
    labels = [e.label for e in out]
    if len(set(labels)) != len(labels) or set(labels) & set(OPTIMUM_LABELS.values()):
        raise ValueError(f"policy labels must be distinct and not an optimum's: {labels}")
    for e in out:
        e.config()  # unknown policy or setting: fail before any run
    return out


def peer_comparison(out_dir: str | Path, policies: Sequence[str | PolicyEntry] | None = None,
                    seeds: Sequence[int] = (1, 2, 3), kinds: Sequence[str] = SCENARIO_KINDS,
                    jobs: int = DEFAULT_JOBS, nodes: int = DEFAULT_NODES, pools: int = DEFAULT_POOLS,
                    time_limit_s: float = TIME_LIMIT_S, optimum: bool = True,
                    progress: Callable[[str, int], None] | None = None,
                    advisers: Mapping[str, Any] | None = None) -> PeerComparison:
    """Run every policy and the optimum on every scenario kind for every seed; write the CSV and
    the Markdown report into ``out_dir``. ``optimum``: False (or OR-Tools missing) skips CP-SAT.
    ``progress(kind, seed)`` is called before each instance. ``advisers``: advice mode (llm,
    hybrid) -> the :class:`~llm_sched.agents.pool_adviser.PoolAdviser` of the entries with that advice."""
    entries = policy_entries(policies)
    unknown = [k for k in kinds if k not in SCENARIO_KINDS]
    if unknown or not kinds or not seeds or jobs < 1 or not time_limit_s > 0:
        raise ValueError(f"need known scenario kinds ({', '.join(SCENARIO_KINDS)}), seeds, jobs >= 1 and a "
                         f"positive time limit; got kinds {list(kinds)}, seeds {list(seeds)}, {jobs} jobs, "
                         f"{time_limit_s} s")
    cluster = PoolSplit(nodes, pools)
    folder = Path(out_dir)
    refuse_file(folder)
    make_folder(folder)  # before the runs: a folder that cannot be made fails at once
    solve = _solver() if optimum else None
    rows: list[PeerRow] = []
    for kind in kinds:
        for seed in seeds:
            if progress is not None:
                progress(kind, seed)
            instance = peer_workload(kind, jobs, nodes, seed)
            for e in entries:
                config = e.config()
                adviser = (advisers or {}).get(config.advice) if config.advice != "heuristic" else None
                run = simulate(instance, cluster, config, context=f"peer/{kind}/{seed}/{e.label}", adviser=adviser)
                rows.append(_advised(_row(kind, e.label, seed, "simulator", instance, cluster, run.outcomes), run))
            if solve is not None:
                for objective, label in OPTIMUM_LABELS.items():
                    best = solve(instance, nodes, objective, time_limit_s, SOLVER_SEED)
                    row = _row(kind, label, seed, "cp-sat", instance, cluster, best.outcomes)
                    rows.append(replace(row, objective=objective, status=best.status, bound=best.bound,
                                        solve_s=best.solve_s))
    result = PeerComparison(folder / CSV_NAME, folder / MD_NAME, tuple(kinds), tuple(e.label for e in entries),
                            tuple(seeds), jobs, nodes, pools, time_limit_s, solve is not None, tuple(rows))
    write_csv(result.csv_path, result.rows)
    result.md_path.write_text("\n".join(render(result)).rstrip("\n") + "\n", encoding="utf-8")
    return result


def _solver() -> Callable[..., Any] | None:
    try:
        import ortools  # noqa: F401
    except ImportError:
        return None
    from llm_sched.sim.optimum import optimum

    return optimum


def _row(kind: str, label: str, seed: int, source: str, instance: Sequence[SimJob], cluster: PoolSplit,
         outcomes: Sequence[JobOutcome]) -> PeerRow:
    m = schedule_metrics(outcomes, cluster.nodes)
    jain = jain_index(bounded_slowdown(o.start - o.submit, o.end - o.start) for o in outcomes)
    return PeerRow(kind, label, seed, source, len(instance), cluster.nodes, cluster.agents, m.completed, m.makespan,
                   m.wait_mean, m.utilization, jain)


def _advised(row: PeerRow, run: SimRun) -> PeerRow:
    """The row with the model's part in the run (nothing for heuristic agents and central policies)."""
    if not run.advice:
        return row
    from llm_sched.sim.resilience_metrics import measure

    m = measure(run)
    return replace(row, llm_calls=m.llm_calls, llm_choices=m.llm_choices, llm_fallbacks=m.llm_fallbacks)


def write_csv(path: Path, rows: Sequence[PeerRow]) -> None:
    """``peer_comparison.csv``: the columns ``CSV_COLUMNS``, one row per run; undefined values empty."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in astuple(r)])


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _figures(rows: Sequence[PeerRow], minimised: str = "") -> list[str]:
    """The mean makespan, wait, utilisation and Jain index of ``rows``; the ``minimised`` one in bold."""
    cells = {m: METRICS[m].show(_mean([getattr(r, m) for r in rows])) for m in ("makespan", "wait_mean", "utilization")}
    if minimised in cells:
        cells[minimised] = f"**{cells[minimised]}**"
    return [*cells.values(), f"{_mean([r.jain_bsld for r in rows]):.3f}"]


def _solver_note(rows: Sequence[PeerRow], time_limit_s: float) -> str:
    proven = sum(r.proven for r in rows)
    found = f"best found within {time_limit_s:g} s"
    if proven == len(rows):
        return "proven optimal"
    if proven == 0:
        return found
    return f"proven optimal on {proven} of {len(rows)} seeds, {found} on the others"


def _model_note(rows: Sequence[PeerRow]) -> str:
    calls, chose, fell = (sum(getattr(r, f) for r in rows) for f in ("llm_calls", "llm_choices", "llm_fallbacks"))
    if not (calls or fell):
        return ""
    return f"model chose {chose:,} awards ({calls:,} calls); heuristic fallback {fell:,}"


def render(result: PeerComparison) -> list[str]:
    """The lines of ``peer_comparison.md``."""
    seeds = ", ".join(map(str, result.seeds))
    low, high = PAPER_JOB_RANGE
    sizes = (f"instances within their {low} to {high} jobs" if low <= result.jobs <= high
             else f"instances of {result.jobs} jobs (theirs hold {low} to {high})")
    lines = [
        "# Policies on seven workload scenarios", "",
        f"After {PAPER}. Followed: their seven scenario names, {sizes}, their four objectives (makespan, "
        "waiting time, resource use, fairness), and an OR-Tools optimum as the reference. Ours, not theirs: only "
        "the paper's abstract was available to us, so each scenario's parameters and the machine are our choice "
        "(`llm_sched/sim/peer_workloads.py`), and so are the formulas below; fairness is Jain's index over the "
        "jobs' bounded slowdowns (our choice). Our optimum is CP-SAT knowing every arrival and run time in "
        "advance, on the machine's nodes as one cumulative resource (jobs may span pools, as the policies' "
        "may). Their LLM (ReAct) scheduler is not run here; none of their figures is reproduced or copied.", "",
        f"Set-up: a machine of {result.nodes} nodes in {result.pools} pools; {result.jobs} jobs per instance; "
        f"seeds {seeds} (every policy meets the same jobs for a seed); no failures. Policies: "
        f"{', '.join(name(p) for p in result.policies)}.", "",
        "Makespan = last end - first submission; mean wait = mean of start - submission; utilisation = "
        f"sum(nodes x run) / ({result.nodes} x makespan); Jain = (sum x)^2 / (n sum x^2) over the bounded "
        "slowdowns x = max(1, (wait + run) / max(run, 10 s)), in [1/n, 1], 1 when every job is slowed alike. "
        "Each cell is the mean over the seeds (their count in the column seeds).", "",
    ]
    if result.optimum:
        lines += [f"The optimum rows: CP-SAT (one worker, seed {SOLVER_SEED}, a limit of {result.time_limit_s:g} s of "
                  "CP-SAT's deterministic time per solve, about as many seconds of this machine's clock, so the "
                  "same schedule whatever the machine's load) "
                  "minimising the makespan, and separately the mean wait; only the minimised figure (in bold) is "
                  "an optimum, the others are those of the same schedule. \"Best found\" means CP-SAT did not "
                  "prove optimality in the time limit: the optimum is at most that figure.", ""]
    else:
        lines += ["No optimum was computed (not asked for, or OR-Tools is not installed: pip install "
                  "'llm-sched[optimum]').", ""]
    if any(r.llm_calls or r.llm_fallbacks for r in result.rows):
        lines += ["Agents marked llm or hybrid decide through the same engine as the heuristic agents, but the "
                  "round's leader asks a model for the award (hybrid: only when the two best pools score within "
                  "0.05), under a budget of calls per run; the voters accept any valid award. Their note counts, "
                  "over the seeds, the awards the model chose, the calls, and the awards the heuristic gave "
                  "instead (budget spent, invalid answer or failed call). Where the answers come from is in the "
                  "folder's `source.txt`.", ""]
    head = ("policy", "seeds", "makespan", "mean wait", "utilisation", "Jain (bounded slowdown)", "note")
    for kind in result.kinds:
        body = []
        for label in (*result.policies, *(OPTIMUM_LABELS.values() if result.optimum else ())):
            runs = [r for r in result.rows if r.kind == kind and r.policy == label]
            if not runs:
                continue
            note = _solver_note(runs, result.time_limit_s) if runs[0].source == "cp-sat" else _model_note(runs)
            body.append([name(label), str(len(runs)), *_figures(runs, runs[0].objective), note])
        lines += [f"## {SCENARIO_TITLES.get(kind, kind)}", "", *markdown_table(head, body, "lrrrrrl")]
    return lines
