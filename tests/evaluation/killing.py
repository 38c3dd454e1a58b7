"""Killing a ``python main.py`` process at a chosen point of its work, for the resume tests.

The test holds the ledger's write lock and lets the child commit its units one at a time (it blocks
on the lock in between), so the child can be SIGKILLed, with its worker processes, once the ledger
holds a given number of units, whatever the speed of the machine.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from llm_sched.config import ENV_VARS
from llm_sched.store.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "main.py"


def environ(root: Path, ledger: Path) -> dict[str, str]:
    """An environment without llm-sched settings but the ledger and the runs folder, HOME in ``root``."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), COLUMNS="200", PYTHONIOENCODING="utf-8", LLM_SCHED_LEDGER=str(ledger),
               LLM_SCHED_RUNS_DIR=str(root / "runs"))
    return env


def start(args: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python main.py ARGS`` in its own process group (so that its workers can be killed with it)."""
    handle = log.open("wb")
    try:
        return subprocess.Popen([sys.executable, str(MAIN), *args], cwd=cwd, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        handle.close()


def run(args: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MAIN), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def units_in(ledger: Path) -> int:
    """How many units the ledger holds (all runs), read-only."""
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM units").fetchone()[0]
    finally:
        conn.close()


def kill_after(proc: subprocess.Popen[bytes], ledger: Path, units: int, log: Path, timeout: float = 60) -> int:
    """SIGKILL ``proc``'s process group once ``ledger`` holds at least ``units`` units; returns how
    many it holds then. ``ledger`` must be used by ``proc`` alone."""
    Ledger.open(ledger).close()  # the schema, before the child opens it
    conn = sqlite3.connect(ledger, timeout=timeout, isolation_level=None)
    deadline = time.monotonic() + timeout
    try:
        conn.execute("BEGIN IMMEDIATE")  # the child cannot commit while this is held
        while True:
            held = conn.execute("SELECT count(*) FROM units").fetchone()[0]
            if held >= units:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
                return held
            conn.execute("COMMIT")  # let the child commit (its next unit), then take the lock back
            while conn.execute("SELECT count(*) FROM units").fetchone()[0] == held:
                if proc.poll() is not None:
                    raise AssertionError(f"the process ended (code {proc.returncode}) before it was killed:\n"
                                         + log.read_text(errors="replace"))
                if time.monotonic() > deadline:
                    raise AssertionError(f"no unit stored within {timeout} s:\n" + log.read_text(errors="replace"))
                time.sleep(0.0005)
            conn.execute("BEGIN IMMEDIATE")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
