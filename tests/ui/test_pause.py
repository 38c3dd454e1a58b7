"""The pause between phases: Ctrl-C stops it whichever thread the kernel hands the signal to."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time

import pytest
from rich.console import Console

from llm_sched.ui.console import ConsoleView


class _Phase:
    kind = "phase_started"
    phase = "next"
    description = ""


def _paused_view(monkeypatch: pytest.MonkeyPatch) -> tuple[ConsoleView, int]:
    read_end, write_end = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end, "r"))
    view = ConsoleView(Console(file=io.StringIO()), pause=True)
    view.pause = True  # a pipe is no terminal; the wait itself is what is tested
    view(_Phase())  # the first phase starts without a pause
    return view, write_end


def test_ctrl_c_delivered_to_another_thread_stops_the_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT went to aiosqlite's thread in 1 of 15 runs; a main thread blocked in read never woke."""
    view, write_end = _paused_view(monkeypatch)
    before = signal.getsignal(signal.SIGINT)

    def interrupt_from_a_thread() -> None:
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    rescued: list[bool] = []

    def press_enter() -> None:  # the wait missed the signal: end it so that the test fails, not hangs
        rescued.append(True)
        os.write(write_end, b"\n")

    rescue = threading.Timer(20, press_enter)
    rescue.start()
    threading.Thread(target=interrupt_from_a_thread).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            view(_Phase())
    finally:
        rescue.cancel()
        os.close(write_end)
    assert not rescued, "Ctrl-C was noticed only once Enter was pressed"
    assert signal.getsignal(signal.SIGINT) is before  # the run's own handler is back


def test_enter_ends_the_pause_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    view, write_end = _paused_view(monkeypatch)
    os.write(write_end, b"\n")
    view(_Phase())
    assert view.pause and view._phases == 2
    os.close(write_end)


def test_standard_input_that_ends_stops_pausing_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    view, write_end = _paused_view(monkeypatch)
    os.close(write_end)
    view(_Phase())
    view(_Phase())
    assert not view.pause and view._phases == 3
