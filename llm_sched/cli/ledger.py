"""``python main.py --runs``, ``--show RUN_ID`` and ``--verify RUN_ID``: the runs stored in the ledger,
listed, shown, or checked against their quorum certificates."""

from __future__ import annotations


def runs() -> int:
    """List the stored runs; returns 0."""
    from llm_sched.api import print_runs

    print_runs()
    return 0


def show(run_id: str) -> int:
    """Print one stored run; returns 1 when its event log is damaged (it is shown, and the exit says so)."""
    from llm_sched.api import show_run

    return 0 if show_run(run_id) else 1


def verify(run_id: str) -> int:
    """Check every commit of a stored run against its quorum certificate; returns 1 at the first bad one."""
    from llm_sched.api import verify_run

    return 0 if verify_run(run_id) else 1
