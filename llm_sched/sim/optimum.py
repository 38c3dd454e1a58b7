"""The offline optimum to measure policies against: an OR-Tools CP-SAT schedule of a small instance.

The model knows every job's arrival and real run time in advance (no online scheduler can), so
its schedule bounds what any policy could reach on that instance without failures. Jobs ask for
whole nodes of one machine (``nodes``); a job may not start before its submission; at any instant
the running jobs hold at most ``nodes`` nodes (a cumulative constraint; jobs may take nodes from
several pools, as the simulator's policies may). Times are whole seconds (run times rounded up).

Objective: the mean wait (the campaign's headline metric), or the makespan. CP-SAT runs with a
time limit and a fixed seed and one worker, so the result is reproducible; it reports whether the
schedule is proven optimal and the best lower bound it proved, so a gap can be stated honestly
against either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llm_sched.errors import UserError
from llm_sched.sim.outcome import JobOutcome
from llm_sched.sim.workload import SimJob

Objective = Literal["wait_mean", "makespan"]
MAX_JOBS = 200  # beyond this the model is too slow to be a useful reference here


@dataclass(frozen=True, slots=True)
class Optimum:
    """CP-SAT's schedule: its outcomes, the objective's value and the proven bound (same unit)."""

    outcomes: tuple[JobOutcome, ...]
    objective: Objective
    value: float  # of the schedule found
    bound: float  # proven lower bound: the optimum lies in [bound, value]
    status: str  # "OPTIMAL" or "FEASIBLE"
    solve_s: float

    @property
    def proven(self) -> bool:
        return self.status == "OPTIMAL"


WALL_CAP = 4.0  # the clock limit, in multiples of the deterministic one


def optimum(jobs: Sequence[SimJob], nodes: int, objective: Objective = "wait_mean", time_limit_s: float = 10.0,
            seed: int = 1) -> Optimum:
    """The best schedule CP-SAT finds within ``time_limit_s`` (deterministic time: the same result on
    any load) for ``jobs`` on ``nodes`` nodes."""
    try:
        from ortools.sat.python import cp_model
    except ImportError:
        raise UserError("the optimum needs OR-Tools: pip install 'llm-sched[optimum]'") from None
    fitting = [j for j in jobs if j.nodes <= nodes]
    if not fitting:
        raise UserError("no job fits the machine: nothing to schedule")
    if len(fitting) > MAX_JOBS:
        raise UserError(f"the CP-SAT optimum is for instances of up to {MAX_JOBS} jobs, got {len(fitting)}")
    t0 = min(j.submit for j in fitting)
    release = [int(math.floor(j.submit - t0)) for j in fitting]
    length = [max(1, int(math.ceil(j.run))) for j in fitting]
    horizon = max(release) + sum(length)
    model = cp_model.CpModel()
    starts, ends, intervals = [], [], []
    for i, (r, d) in enumerate(zip(release, length, strict=True)):
        start = model.new_int_var(r, horizon, f"s{i}")
        end = model.new_int_var(r + d, horizon + d, f"e{i}")
        intervals.append(model.new_interval_var(start, d, end, f"i{i}"))
        starts.append(start)
        ends.append(end)
    model.add_cumulative(intervals, [j.nodes for j in fitting], nodes)
    if objective == "makespan":
        span = model.new_int_var(0, horizon + max(length), "makespan")
        model.add_max_equality(span, ends)
        model.minimize(span)
    else:
        model.minimize(sum(s - r for s, r in zip(starts, release, strict=True)))
    solver = cp_model.CpSolver()
    # The limit is in CP-SAT's deterministic time (work counted, not the clock; about a second of this
    # machine each), so a solve stopped by it finds the same schedule whatever the machine's load.
    # The clock limit, four times longer, only stops a solve on a far slower machine.
    solver.parameters.max_deterministic_time = time_limit_s
    solver.parameters.max_time_in_seconds = WALL_CAP * time_limit_s
    solver.parameters.num_workers = 1  # one worker and a fixed seed: the same schedule every time
    solver.parameters.random_seed = seed
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise UserError(f"CP-SAT found no schedule in {time_limit_s:g} s ({solver.status_name(status)})")
    outcomes = tuple(JobOutcome(j.job_id, j.submit, t0 + solver.value(s), t0 + solver.value(s) + j.run, j.nodes,
                                "optimum") for j, s in zip(fitting, starts, strict=True))
    scale = 1.0 / len(fitting) if objective == "wait_mean" else 1.0
    return Optimum(outcomes, objective, solver.objective_value * scale, solver.best_objective_bound * scale,
                   solver.status_name(status), solver.wall_time)
