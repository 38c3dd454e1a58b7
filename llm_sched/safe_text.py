"""Text from outside (model answers, server bodies, job names, SQLite messages) made safe to show.

One sanitizer for every place such text reaches a terminal: control characters, escape sequences
among them, are shown as ``\\xNN`` so that they cannot move the cursor, clear the screen or retitle
the terminal, and the reader still sees that something was there.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL and the C1 controls: ESC starts every escape sequence (CSI,
# OSC), and \x9b is CSI on its own for terminals that take 8-bit controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def one_line(text: str) -> str:
    """``text`` printable and on one line (line breaks and runs of white space become one space)."""
    return printable(" ".join(text.split()))
