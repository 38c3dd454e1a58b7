"""Where an experiment or a campaign finds its file and puts its results.

Both read a named YAML file shipped under ``scenarios/`` and write into an output folder named after
the instant they started; one implementation here keeps their lookups and messages alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from llm_sched.errors import UserError


def scenario_file(name: str, scenarios_dir: Path, folder: str, what: str) -> Path:
    """``NAME`` is ``<scenarios>/<folder>/NAME.yaml``; a name with a suffix or a slash is a path.

    A missing file is a :class:`UserError` that lists the shipped ones (``what``: ``campaign``...).
    """
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or "/" in name:
        file = candidate
    else:
        file = scenarios_dir / folder / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (scenarios_dir / folder).glob("*.yaml"))
        raise UserError(f"no {what} file {file}; shipped {what}s: {', '.join(known) or 'none'}")
    return file


def stamped_folder(parent: Path, now: datetime | None = None) -> Path:
    """``<parent>/<YYYYmmdd-HHMMSS>``, with a suffix ``-2``, ``-3``... when that exists already (not created)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    folder = parent / stamp
    k = 1
    while folder.exists():
        k += 1
        folder = parent / f"{stamp}-{k}"
    return folder


def refuse_file(folder: Path) -> None:
    """A :class:`UserError` when the output folder given is a file."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"the output folder {folder} is a file; give another --out")


def make_folder(folder: Path) -> None:
    """Create the output folder (and its parents); a :class:`UserError` when that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {folder}: {exc.strerror}") from None


def listing(names: Sequence[str]) -> str:
    """The first five of ``names`` (``...`` after them when there are more), for a message."""
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
