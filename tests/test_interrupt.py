"""Ctrl-C at a pause between phases stops the run at once (exit 130) and leaves it resumable."""

from __future__ import annotations

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
        pressed = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        stopped_after = time.monotonic() - pressed
        shown += _read_until(controller, "\n", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    assert code == 130 and stopped_after < 3
    assert "Traceback" not in shown
    match = re.search(r"resume with python main\.py --resume (\S+)", shown)
    assert match, shown[-2000:]
    resumed = cli("--resume", match.group(1))
    assert resumed.code == 0, resumed.text
    assert "decisions committed" in resumed.out
