"""Kill scenario runs with SIGKILL at random points, resume them, and compare with an uninterrupted run.

Runs start from a fork server (``multiprocessing`` "forkserver", with the run modules preloaded),
so a run begins in milliseconds in a clean process; the parent sends SIGKILL after a seeded random
delay, then resumes the run (itself killed again, maybe) until a resume completes. The checks:

- after every kill, the ledger's decisions are a prefix of the uninterrupted run's (none lost, none
  changed) and never fewer than before the kill;
- no decision recorded twice (one row per job, positions 0..k-1);
- replaying the stored decisions onto a fresh cluster, with jobs released when they end, never
  over-allocates a node (``ClusterState.commit`` refuses what does not fit);
- the final decisions, the final events (apart from timestamps) and the summary equal the
  uninterrupted run's.

Used by ``tests/store/test_crash_resume.py`` (a few dozen kills) and ``bench/bench_crash.py`` (hundreds).
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import random
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_sched.core.feasibility import commit
from llm_sched.core.model import Job
from llm_sched.orchestration.summary import measured_removed

_PRELOAD = ["llm_sched.orchestration.runner", "llm_sched.orchestration.scenarios", "llm_sched.config", "langgraph.graph",
            "langgraph.checkpoint.sqlite.aio"]


def _env(root: Path, provider: str) -> dict[str, str]:
    return {"LLM_SCHED_RUNS_DIR": str(root), "LLM_SCHED_LEDGER": str(root / "ledger.db"),
            "LLM_SCHED_PROVIDER": provider}


def _failure_file(root: str) -> Path:
    return Path(root) / "child-failure.txt"


def _start(scenario: str, root: str, provider: str, seed: int | None) -> None:
    """Child: a new run of ``scenario`` (settings from the environment set here)."""
    with _reported(root):
        _start_run(scenario, root, provider, seed)


def _resume(run_id: str, root: str, provider: str) -> None:
    """Child: resume ``run_id``."""
    with _reported(root):
        _resume_run(run_id, root, provider)


@contextmanager
def _reported(root: str) -> Iterator[None]:
    """A child's failure, traceback included, goes to a file the parent shows."""
    try:
        yield
    except BaseException:
        Path(root).mkdir(parents=True, exist_ok=True)
        _failure_file(root).write_text(traceback.format_exc())
        raise


def _start_run(scenario: str, root: str, provider: str, seed: int | None) -> None:
    os.environ.update(_env(Path(root), provider))
    from llm_sched.config import load_settings
    from llm_sched.orchestration.runner import run_scenario
    from llm_sched.orchestration.scenarios import load_scenario

    settings = load_settings()
    run_scenario(load_scenario(scenario, settings.scenarios_dir), settings, seed=seed)


def _resume_run(run_id: str, root: str, provider: str) -> None:
    os.environ.update(_env(Path(root), provider))
    from llm_sched.config import load_settings
    from llm_sched.orchestration.runner import resume_scenario
    from llm_sched.orchestration.scenarios import load_scenario

    settings = load_settings()
    resume_scenario(run_id, settings, lambda name: load_scenario(name, settings.scenarios_dir))


def _nothing() -> None:
    pass


def context() -> Any:
    """The fork server, started and warm (its first child pays for the preloaded imports)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    run_child(ctx, _nothing, (), None)
    return ctx


def run_child(ctx: Any, target: Callable[..., None], args: tuple[Any, ...], kill_after: float | None) -> bool:
    """Run ``target(*args)`` in a child; SIGKILL it after ``kill_after`` seconds. True if it was
    killed (it was still running), False if it finished on its own."""
    proc = ctx.Process(target=target, args=args)
    proc.start()
    proc.join(kill_after)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return True
    if proc.exitcode != 0:
        failure = _failure_file(args[1]) if len(args) > 1 else None
        shown = failure.read_text() if failure is not None and failure.exists() else ""
        raise AssertionError(f"{target.__name__}{args} failed with exit code {proc.exitcode}\n{shown}")
    return False


# --- reading what a run stored ------------------------------------------------------------------

Row = tuple[Any, ...]


def stored(ledger: Path) -> tuple[str | None, str | None, list[Row]]:
    """(run id, status, decisions in order) of the only run in ``ledger`` (None: no run yet)."""
    if not ledger.exists():
        return None, None, []
    # Read-write, as the product's own resume opens it: a process killed while it created the ledger
    # can leave a WAL that only a writable connection may recover (read-only fails: "attempt to write
    # a readonly database").
    conn = sqlite3.connect(ledger, timeout=10)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
            return None, None, []  # killed while the ledger was being created
        run = conn.execute("SELECT run_id, status FROM runs").fetchall()
        if not run:
            return None, None, []
        assert len(run) == 1, run
        rows = conn.execute(
            "SELECT d.seq, d.job_id, d.outcome, d.pool, d.proposer, d.rounds, d.accepts, "
            "(SELECT group_concat(node, ',') FROM (SELECT node FROM placements p WHERE p.run_id = d.run_id "
            "AND p.job_id = d.job_id ORDER BY node)), j.spec, j.submitted_at FROM decisions d "
            "JOIN jobs j USING (run_id, job_id) ORDER BY d.seq").fetchall()
        return run[0][0], run[0][1], rows
    finally:
        conn.close()


def over_allocation(rows: list[Row], cluster: Any) -> str | None:
    """Replay committed placements onto a fresh cluster, releasing jobs when they end; the first
    placement that does not fit, or None."""
    from llm_sched.core.model import Placement

    ends: list[tuple[float, str]] = []
    for _seq, job_id, outcome, pool, *_rest, nodes, spec, submitted in rows:
        while ends and ends[0][0] <= submitted:
            cluster.release(heapq.heappop(ends)[1])
        if outcome != "commit":
            continue
        job = Job.model_validate_json(spec)
        try:
            commit(cluster, job, Placement(job_id=job_id, pool=pool, nodes=tuple(nodes.split(","))))
        except Exception as exc:  # noqa: BLE001 - the refusal is the finding
            return f"{job_id}: {exc}"
        heapq.heappush(ends, (submitted + job.runtime_s, job_id))
    return None


# --- the campaign of kills ---------------------------------------------------------------------


@dataclass
class CrashReport:
    kills: int = 0
    resumes: int = 0
    runs: int = 0  # scenario runs driven to completion through kills
    problems: list[str] = field(default_factory=list)
    kills_by_progress: dict[int, int] = field(default_factory=dict)  # decisions stored when killed
    wall_s: float = 0.0


def reference(scenario: str, root: Path, provider: str, seed: int | None) -> tuple[list[Row], list[dict[str, Any]], dict[str, Any], float]:
    """An uninterrupted run: its decisions, comparable events, summary, and wall time."""
    from llm_sched.core.events import comparable, read_jsonl

    t0 = time.perf_counter()
    run_child(context(), _start, (scenario, str(root), provider, seed), None)
    wall = time.perf_counter() - t0
    run_id, status, rows = stored(root / "ledger.db")
    assert status == "completed", status
    events = [comparable(e) for e in read_jsonl(root / str(run_id) / "events.jsonl")]
    return rows, events, _summary(root / str(run_id)), wall


def _summary(run_dir: Path) -> dict[str, Any]:
    import json

    data = json.loads((run_dir / "summary.json").read_text())
    return measured_removed(data)


def crash_runs(scenario: str, work: Path, *, kills: int, seed: int, provider: str = "heuristic",
               scenario_seed: int | None = None, cluster: Callable[[], Any]) -> CrashReport:
    """Kill runs of ``scenario`` ``kills`` times in all (several runs if needed), checking each."""
    from llm_sched.core.events import comparable, read_jsonl
    from llm_sched.orchestration.verify import VerifyFailed, verify_run

    report = CrashReport()
    t0 = time.perf_counter()
    ref_rows, ref_events, ref_summary, wall = reference(scenario, work / "reference", provider, scenario_seed)
    rng = random.Random(seed)
    ctx = context()
    while report.kills < kills:
        root = work / f"run-{report.runs}"
        ledger = root / "ledger.db"
        before = 0
        run_id: str | None = None
        while True:
            delay = rng.uniform(0.0, wall * 1.1) if report.kills < kills else None
            if run_id is None:
                killed = run_child(ctx, _start, (scenario, str(root), provider, scenario_seed), delay)
            else:
                killed = run_child(ctx, _resume, (run_id, str(root), provider), delay)
                report.resumes += 1
            run_id, status, rows = stored(ledger)
            label = f"run {report.runs}, kill {report.kills}"
            if rows != ref_rows[:len(rows)]:
                report.problems.append(f"{label}: stored decisions are not a prefix of the reference")
            if len(rows) < before:
                report.problems.append(f"{label}: {before - len(rows)} committed decision(s) lost")
            if [r[0] for r in rows] != list(range(len(rows))):
                report.problems.append(f"{label}: decision positions {[r[0] for r in rows]}")
            bad = over_allocation(rows, cluster())
            if bad:
                report.problems.append(f"{label}: over-allocation {bad}")
            before = len(rows)
            if killed:
                report.kills += 1
                report.kills_by_progress[len(rows)] = report.kills_by_progress.get(len(rows), 0) + 1
                continue
            if status != "completed":
                report.problems.append(f"{label}: run ended with status {status}")
            break
        run_dir = root / str(run_id)
        if rows != ref_rows:
            report.problems.append(f"run {report.runs}: final decisions differ from the uninterrupted run")
        events = [comparable(e) for e in read_jsonl(run_dir / "events.jsonl")]
        if events != ref_events:
            first = next((i for i, (a, b) in enumerate(zip(events, ref_events)) if a != b), min(len(events), len(ref_events)))
            shown = [(e.get("kind"), e.get("agent", e.get("job_id", ""))) for e in events[first:first + 3]]
            wanted = [(e.get("kind"), e.get("agent", e.get("job_id", ""))) for e in ref_events[first:first + 3]]
            report.problems.append(f"run {report.runs}: events differ from the uninterrupted run at #{first} "
                                   f"({len(events)} vs {len(ref_events)} events): {shown} instead of {wanted}")
        if _summary(run_dir) != ref_summary:
            report.problems.append(f"run {report.runs}: summary differs from the uninterrupted run")
        try:  # every commit, whichever process (key epoch) signed it, carries a valid certificate
            verify_run(ledger, str(run_id))
        except VerifyFailed as exc:
            report.problems.append(f"run {report.runs}: {exc}")
        report.runs += 1
    report.wall_s = time.perf_counter() - t0
    return report
