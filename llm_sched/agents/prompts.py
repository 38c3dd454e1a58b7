"""Prompt templates from ``prompts/<specialty>.<step>.txt``: system part, ``---``, user part.

Placeholders are ``$name`` (``string.Template``); a missing value is an error, not a silent gap.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

from llm_sched.config import PROJECT_ROOT
from llm_sched.errors import UserError
from llm_sched.llm.records import Message

PROMPTS_DIR = PROJECT_ROOT / "prompts"
SEPARATOR = "\n---\n"


@cache
def _load(path: Path) -> tuple[Template, Template]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"prompt template {path}: {exc.strerror}") from None
    if SEPARATOR not in text:
        raise UserError(f"prompt template {path}: no '---' line between the system and the user part")
    system, user = text.split(SEPARATOR, 1)
    return Template(system.strip()), Template(user.strip())


def render(specialty: str, step: str, values: dict[str, str], folder: Path = PROMPTS_DIR) -> list[Message]:
    """The chat messages for ``specialty`` at ``step`` ("proposal" or "vote") with ``values`` filled in."""
    path = folder / f"{specialty}.{step}.txt"
    system, user = _load(path)
    try:
        return [
            Message(role="system", content=system.substitute(values)),
            Message(role="user", content=user.substitute(values)),
        ]
    except KeyError as exc:
        raise UserError(f"prompt template {path}: no value for placeholder ${exc.args[0]}") from None


def template_hash(folder: Path = PROMPTS_DIR) -> str:
    """sha256 over every template (name and text): a cassette recorded from other prompts cannot replay."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.txt")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
