"""Update a ``.env`` file in place: our keys rewritten, every other line and comment kept.

The file is replaced atomically (write a temporary file beside it, fsync, rename), so a crash
or a full disk leaves either the old file or the new one, never half of each. Mode is 0600
because the file may hold API keys.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dotenv.parser import parse_stream

from llm_sched.errors import UserError
from llm_sched.loader import FileMissing, read_text

_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@+,-]*$")


def format_assignment(key: str, value: str) -> str:
    """``KEY=value``, double-quoted (with escapes) when the value needs it, as python-dotenv reads."""
    if _PLAIN_VALUE.match(value):
        return f"{key}={value}\n"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{key}="{escaped}"\n'


def merge_env_text(existing: str, updates: Mapping[str, str | None]) -> str:
    """Return ``existing`` with ``updates`` applied.

    A key already present is rewritten on its first line (later duplicates are dropped, since
    python-dotenv would let them win); a ``None`` value removes the key; new keys are appended.
    Lines that fail to parse are kept verbatim: they are not ours to repair.
    """
    out: list[str] = []
    written: set[str] = set()
    for binding in parse_stream(io.StringIO(existing)):
        key = binding.key
        if binding.error or key is None or key not in updates:
            out.append(binding.original.string)
            continue
        if key not in written and updates[key] is not None:
            out.append(format_assignment(key, updates[key]))  # type: ignore[arg-type]
        written.add(key)
    new = [k for k, v in updates.items() if k not in written and v is not None]
    if new:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append("# written by llm-sched --setup-env\n")
        out.extend(format_assignment(k, updates[k]) for k in new)  # type: ignore[arg-type]
    return "".join(out)


def write_env_file(path: Path, updates: Mapping[str, str | None]) -> None:
    """Apply ``updates`` to the ``.env`` at ``path`` atomically, leaving it with mode 0600."""
    try:
        existing = read_text(path, ".env")  # the keys of a file we cannot read must not be lost by a rewrite
    except FileMissing:
        existing = ""
    text = merge_env_text(existing, updates)
    fd, tmp_name = tempfile.mkstemp(prefix=".env.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise UserError(f"{path}: could not write ({exc.strerror}); the old file is unchanged") from None
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
