"""Running the campaign's simulations, in this process or spread over worker processes.

A task is one (configuration, repetition): its scenario and seed. The worker draws the jobs and
failures once (:func:`llm_sched.sim.simulate.compare`), so every policy of the task meets the same
ones. With a deadline factor, the deadline of the task is that factor times the makespan EASY
achieves on the same jobs with no failures and no decision delay (one extra, failure-free run).

A task's result depends only on its scenario and seed, and results are returned in task order, so
the outcome is the same whatever the number of workers, the executor or the order in which tasks finish.

A task whose agents ask a model (llm or hybrid advice) carries a :class:`ModelPlan`, plain data:
the live provider whose answers it records to its cassette, or the cassette it replays. The worker
builds the task's one :class:`~llm_sched.agents.pool_adviser.PoolAdviser` itself with
:func:`build_adviser` (an adviser holds an event loop and a model session: it cannot be pickled),
from its own settings (its environment and ``.env``: the model file or endpoint), runs the agents
policy with it and closes it (which writes a recording). The adviser's budget of calls is the
scenario's ``llm_budget`` for the agents run; its answers are the same for the same requests when
replayed, so a replayed campaign gives the same results on any number of workers. A recording is
written by the worker, so with a Dask cluster the output folder must be on a filesystem the
workers share.

Executors: local worker processes (the default), or a Dask cluster (``dask.distributed``, the
``dask`` extra): a scheduler's address (``tcp://host:8786``; on HPC sites dask-jobqueue starts the
workers as batch jobs), or, without one, a local Dask cluster of ``workers`` processes. The Dask
workers must run the same llm-sched version.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_sched.engine.awards import pack
from llm_sched.sim.resilience import SimConfig, SimRun, simulate
from llm_sched.sim.resilience_metrics import measure
from llm_sched.sim.simulate import SyntheticSetup, compare_runs, prepare

if TYPE_CHECKING:  # the adviser's client and libraries load in the worker, when a task asks a model
    from llm_sched.agents.pool_adviser import PoolAdviser

REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """Where the answers of a task's llm or hybrid agents come from (plain, picklable data).

    ``provider``: a live provider (``local``, ``openai``, ...), whose answers are recorded to
    ``cassette`` when the agents run ends cleanly (an existing file of the same task is replaced:
    the campaign's folder is its own), or ``replay``: ``cassette`` is replayed, no model is needed.
    The advice (mode) and the call budget are the task scenario's ``advice`` and ``llm_budget``."""

    provider: str
    cassette: str

    @property
    def replay(self) -> bool:
        return self.provider == REPLAY


@dataclass(frozen=True, slots=True)
class Task:
    """One (configuration, repetition) to simulate under every policy."""

    config: str  # the configuration's key
    repetition: int
    seed: int
    scenario: SyntheticSetup
    policies: tuple[str, ...]
    deadline_factor: float | None
    model: ModelPlan | None = None  # set when the agents' awards are a model's (advice llm or hybrid)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a task produced: each policy's metrics (plain dicts), the deadline used, the wall time."""

    config: str
    repetition: int
    seed: int
    deadline: float | None
    metrics: dict[str, dict[str, Any]]
    wall_s: float
    certificates: dict[str, Any] | None = None  # the agents run's keys and certified awards (engine.awards.pack)
    # Where the model's answers came from (model_source), for a task with a ModelPlan; else None.
    model: dict[str, str] | None = None


def reference_deadline(scenario: SyntheticSetup, seed: int, factor: float) -> float:
    """``factor`` x the failure-free EASY makespan of the scenario's jobs for ``seed`` (no decision delay)."""
    jobs, cluster, _ = prepare(scenario, seed)
    run = simulate(jobs, cluster, SimConfig("easy", scenario.queue_on_failure, hop_delay=0.0))
    return factor * (run.end_time - run.start_time)


def build_adviser(task: Task) -> PoolAdviser:
    """The one :class:`~llm_sched.agents.pool_adviser.PoolAdviser` of a task with a :class:`ModelPlan`,
    built in the process that runs the task (tests replace this function to script the model)."""
    from llm_sched.agents.pool_adviser import pool_adviser
    from llm_sched.config import load_settings

    plan = task.model
    if plan is None:
        raise ValueError(f"task {task.config}/r{task.repetition} has no model plan")
    mode: Any = task.scenario.advice  # llm or hybrid: the campaign gives a plan to no other task
    return pool_adviser(mode, task.scenario.llm_budget, settings=load_settings(),
                        provider=None if plan.replay else plan.provider, cassette=Path(plan.cassette),
                        record=not plan.replay, force=True, seed=task.seed)


def model_source(adviser: PoolAdviser) -> dict[str, str]:
    """Where an adviser's answers come from, as plain data: ``kind`` (live or replay), and the
    ``provider`` and ``model`` that answered (for a replay: that the cassette was recorded from)."""
    source = adviser.source
    if source is None:
        transport = getattr(adviser.client, "transport", None)
        return {"kind": "live", "provider": str(getattr(transport, "provider", "unknown")),
                "model": str(getattr(transport, "model", "unknown"))}
    out = {"kind": source.kind, "provider": source.provider, "model": source.model or "unknown"}
    if source.kind == REPLAY and source.cassette:
        out["runtime"] = str(source.cassette.get("runtime", ""))
    return out


def run_task(task: Task) -> TaskResult:
    """Simulate one task (in a worker process or in this one)."""
    t0 = time.perf_counter()
    scenario, deadline = task.scenario, None
    if task.deadline_factor is not None:
        deadline = reference_deadline(scenario, task.seed, task.deadline_factor)
        scenario = replace(scenario, deadline=deadline)
    context = f"campaign/{task.config}/{task.repetition}/{task.seed}"
    source = None
    if task.model is None or "agents" not in task.policies:
        runs = compare_runs(scenario, task.seed, task.policies, context=context)  # type: ignore[arg-type]
    else:
        runs, source = _runs_with_model(task, scenario, context)
    agents = runs.get("agents")
    certificates = pack(agents.context, agents.public_keys, agents.awards) if agents is not None else None
    return TaskResult(task.config, task.repetition, task.seed, deadline,
                      {p: measure(run).as_dict() for p, run in runs.items()}, time.perf_counter() - t0, certificates,
                      source)


def _runs_with_model(task: Task, scenario: SyntheticSetup, context: str) -> tuple[dict[str, SimRun], dict[str, str]]:
    """:func:`~llm_sched.sim.simulate.compare_runs` with the task's adviser choosing the agents' awards."""
    with build_adviser(task) as adviser:
        runs = compare_runs(scenario, task.seed, task.policies, context, adviser)  # type: ignore[arg-type]
        return runs, model_source(adviser)


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops the campaign and keeps what is done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    """The number of CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


DASK_CONNECT_TIMEOUT_S = 30  # how long to wait for a Dask scheduler before saying it cannot be reached


@dataclass(frozen=True, slots=True)
class Executor:
    """Where tasks run: ``workers`` local processes, or a Dask cluster (``dask`` True) at
    ``scheduler`` (None: a local Dask cluster of ``workers`` processes)."""

    workers: int = 1
    dask: bool = False
    scheduler: str | None = None

    def describe(self) -> str:
        if not self.dask:
            return f"{self.workers} worker process(es)"
        return f"Dask cluster at {self.scheduler}" if self.scheduler else f"local Dask cluster of {self.workers} workers"


def run_tasks(tasks: Sequence[Task], workers: int | Executor,
              on_done: Callable[[TaskResult], None] | None = None) -> list[TaskResult]:
    """Run ``tasks`` on ``workers`` processes (1: in this process) or an :class:`Executor`; results in
    the order of ``tasks``.

    ``on_done`` is called in this process after each task, in completion order (for progress and
    checkpoints), so a caller interrupted by Ctrl-C (the workers ignore it; the pool's pending tasks
    are cancelled) still holds every task finished before.
    """
    executor = workers if isinstance(workers, Executor) else Executor(workers)
    workers = executor.workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    results: dict[int, TaskResult] = {}
    if executor.dask:
        _run_dask(tasks, executor, results, on_done)
    elif workers == 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            results[i] = run_task(task)
            if on_done:
                on_done(results[i])
    else:
        _run_pool(tasks, min(workers, len(tasks)), results, on_done)
    return [results[i] for i in range(len(tasks))]


def _run_pool(tasks: Sequence[Task], workers: int, results: dict[int, TaskResult],
              on_done: Callable[[TaskResult], None] | None) -> None:
    # A bounded number of tasks in flight keeps the memory small and lets an interrupt stop fast.
    pending: dict[Future[TaskResult], int] = {}
    queue = iter(enumerate(tasks))
    window = 4 * workers
    with ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupts) as pool:
        try:
            _fill(pool, queue, pending, window)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=pending.__getitem__):
                    i = pending.pop(future)
                    results[i] = future.result()
                    if on_done:
                        on_done(results[i])
                _fill(pool, queue, pending, window)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _run_dask(tasks: Sequence[Task], executor: Executor, results: dict[int, TaskResult],
              on_done: Callable[[TaskResult], None] | None) -> None:
    from llm_sched.errors import UserError

    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UserError("--executor dask needs dask.distributed: pip install 'llm-sched[dask]'") from None
    cluster = None
    try:
        if executor.scheduler is None:
            cluster = LocalCluster(n_workers=executor.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(executor.scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise UserError(f"cannot reach the Dask scheduler at {executor.scheduler}: {exc}") from None
    try:
        futures = {client.submit(run_task, task, pure=False): i for i, task in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if on_done:
                    on_done(results[i])
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _fill(pool: ProcessPoolExecutor, queue: Iterable[tuple[int, Task]], pending: dict[Future[TaskResult], int],
          window: int) -> None:
    for i, task in queue:
        pending[pool.submit(run_task, task)] = i
        if len(pending) >= window:
            return


def nan_to_none(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics with NaN (undefined, e.g. no MTTR without kills) as None, for JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
