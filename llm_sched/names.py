"""Names that become parts of paths (scenario, run, experiment, cassette) are identifiers, checked.

A scenario's ``name`` once became a run folder and a cassette file name as written, so ``../../x``
wrote outside ``runs/``. Every such name now matches :data:`NAME_PATTERN` (1 to 64 letters, digits,
``_``, ``.``, ``-``, starting with a letter or digit: no ``/``, no ``..`` component, no hidden file),
and a path built from one is resolved and checked to lie inside its folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field

from llm_sched.errors import UserError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ALLOWED = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description=f"an identifier: {ALLOWED}")]
_NAME = re.compile(NAME_PATTERN)


def check_name(kind: str, value: str) -> str:
    """``value`` if it is a valid ``kind`` name, else a :class:`UserError` saying what is allowed."""
    if not _NAME.match(value):
        raise UserError(f"{kind} name {value[:80]!r} is not allowed: use {ALLOWED}")
    return value


def inside(folder: Path, path: Path) -> Path:
    """``path`` resolved, if it lies inside ``folder`` (resolved too); else a :class:`UserError`."""
    resolved, root = path.resolve(), folder.resolve()
    if not resolved.is_relative_to(root):
        raise UserError(f"{path} is outside {folder}: refused")
    return resolved
