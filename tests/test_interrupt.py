"""Ctrl-C at a pause between phases stops the run at once (exit 130) and leaves it resumable."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

from tests.conftest import MAIN, Cli


def _read_until(fd: int, pattern: str, timeout: float) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while pattern not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536).decode(errors="replace")
            except OSError:  # the child closed the terminal
                break
    return seen


def test_ctrl_c_at_a_pause_stops_at_once_and_the_run_resumes(cli: Cli) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(MAIN), "--interactive", "--scenario", "byzantine",
                             "--provider", "heuristic"], cwd=cli.cwd, env=cli.env,
                            stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    try:
        shown = _read_until(controller, "Press Enter", timeout=60)
        assert "Press Enter" in shown, shown[-2000:]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)  # a guard against a hang, not a speed target
        shown += _read_until(controller, "\n", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    assert code == 130
    assert "Traceback" not in shown
    match = re.search(r"resume with python main\.py --resume (\S+)", shown)
    assert match, shown[-2000:]
    resumed = cli("--resume", match.group(1))
    assert resumed.code == 0, resumed.text
    assert "decisions committed" in resumed.out


def _interrupt_after(cli: Cli, commits: int) -> tuple[int, str]:
    """Run ``byzantine`` without pauses and press Ctrl-C right after its ``commits``-th commit is shown."""
    proc = subprocess.Popen([sys.executable, str(MAIN), "--scenario", "byzantine", "--provider", "heuristic",
                             "--no-pause"], cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    # The smallest pipe: the run cannot get more than a page of output ahead of this reader, so on a
    # loaded machine a Ctrl-C still lands while it runs (a whole run's output fits the default 64 KiB).
    fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    shown, seen = [], 0
    for line in proc.stdout:
        shown.append(line)
        seen += "COMMIT" in line
        if seen >= commits:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=60)
    return proc.returncode, "".join(shown) + rest


def test_ctrl_c_anywhere_in_a_run_ends_cleanly_and_every_stored_run_stays_readable(cli: Cli) -> None:
    """Ctrl-C once ended in an aiosqlite traceback (2 of 14 tries): wherever it lands, the run stops
    with 130 and a resume hint (or had already finished), and every run in the ledger still reads."""
    outcomes = [_interrupt_after(cli, commits) for commits in (1, 2, 3, 4, 6, 8)]
    for code, shown in outcomes:
        assert code in (0, 130) and "Traceback" not in shown, shown[-2500:]
    assert any(code == 130 for code, _ in outcomes)
    listing = cli("--runs")
    assert listing.code == 0 and "DAMAGED" not in listing.out and "Traceback" not in listing.text, listing.text
    for code, shown in outcomes:
        if code == 130:
            run_id = re.search(r"resume with python main\.py --resume (\S+)", shown)
            assert run_id, shown[-2000:]
            assert cli("--resume", run_id.group(1)).code == 0
