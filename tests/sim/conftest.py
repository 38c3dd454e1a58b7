"""Fixtures for the simulator tests: the shared SWF traces, read once per session."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from llm_sched.sim.baselines import Policy, ReplayResult, machine_procs, replay
from llm_sched.sim.swf import Trace, load_trace

REPO_ROOT = Path(__file__).resolve().parents[2]
TRACES_DIR = (REPO_ROOT / ".." / "shared" / "traces").resolve()  # shared/ sits beside the repo


def _trace_path(name: str) -> Path:
    """Path of a shared trace, or skip the calling test with the reason it is unavailable."""
    if not TRACES_DIR.is_dir():
        pytest.skip(f"shared traces folder ../shared/traces (beside the repo) is absent: {TRACES_DIR}")
    path = TRACES_DIR / name
    if not path.is_file():
        pytest.skip(f"trace {name} is absent from {TRACES_DIR}")
    return path


@cache
def _load(name: str, keep_zero_run: bool) -> Trace:
    # Parsing CTC takes most of a second: share one copy across the session's tests.
    return load_trace(TRACES_DIR / name, keep_zero_run=keep_zero_run)


@cache
def _replay(name: str, keep_zero_run: bool, policy: Policy) -> ReplayResult:
    trace = _load(name, keep_zero_run)
    return replay(trace.jobs, machine_procs(trace.header, trace.jobs), policy)


@pytest.fixture(scope="session")
def load_shared_trace() -> Callable[..., Trace]:
    """Read a shared trace once per session (skips when the trace is absent)."""

    def load(name: str, keep_zero_run: bool = True) -> Trace:
        _trace_path(name)
        return _load(name, keep_zero_run)

    return load


@pytest.fixture(scope="session")
def replay_shared_trace() -> Callable[..., ReplayResult]:
    """Replay a shared trace under a policy, once per session (skips when the trace is absent)."""

    def run(name: str, policy: Policy, keep_zero_run: bool = True) -> ReplayResult:
        _trace_path(name)
        return _replay(name, keep_zero_run, policy)

    return run


@pytest.fixture(scope="session")
def shared_trace_path() -> Callable[[str], Path]:
    """Path of a shared trace by file name (skips when the trace is absent)."""
    return _trace_path
