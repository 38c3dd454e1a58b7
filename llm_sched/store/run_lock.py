"""One writer per run: an OS lock on the run's folder, held for the whole run.

Two resumes of one run used to both append to ``events.jsonl`` and ``summary.json``; the ledger's
epoch fenced the loser's decisions but not its files. Now a run holds ``fcntl.flock`` on
``<run>/.lock`` from before it claims the run until it ends (the kernel drops the lock when the
process dies, so a killed run never leaves a stale one), and a second writer stops at once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.store.storage_errors import StorageFault

LOCK_FILE = ".lock"


class RunBusy(UserError):
    """Another process is writing this run."""

    exit_code = 3


@contextmanager
def run_lock(run_dir: Path, run_id: str) -> Iterator[None]:
    """Hold the run's lock for the block; :class:`RunBusy` (exit 3) if another process holds it."""
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageFault(f"cannot open the run's lock file {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise RunBusy(f"run {run_id} is being resumed by pid {holder}: wait for it to end") from None
        try:  # who holds it, for the message a second writer gets; the lock itself is already held
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:
            raise StorageFault(f"cannot write the run's lock file {path}: {exc.strerror or exc}. Nothing of run "
                               f"{run_id} was changed; fix this and continue it with python main.py --resume {run_id}") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
