"""Storage faults: the files under a run failed or were damaged, not the request.

A full disk, a damaged ledger, an event log that was edited, cut short or deleted: the user did not
ask for something impossible, the storage let the run down. These exit 1 (a request the program
refuses exits 2), with one line naming the file, what is wrong with it and what to do; nothing
already committed is changed to report them.
"""

from __future__ import annotations

import os
from pathlib import Path

from llm_sched.errors import UserError

# SQLite reports a disk that filled up while it grew its shared-memory or journal file as a plain
# I/O error; with less room than this left, that is what it was.
NEARLY_FULL_BYTES = 1 << 20


class StorageFault(UserError):
    """A run's storage failed (disk full) or is damaged (corrupt, truncated, missing); exit 1."""

    exit_code = 1


def room_left(path: Path) -> int | None:
    """Bytes free for an unprivileged writer on the file system holding ``path`` (None: unknown)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def nearly_full(path: Path) -> bool:
    """Whether the file system holding ``path`` is (all but) full: an I/O error there is a full disk."""
    left = room_left(path)
    return left is not None and left < NEARLY_FULL_BYTES
