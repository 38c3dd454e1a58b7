"""Prompt templates from ``prompts/<specialty>.<step>.txt``: system part, ``---``, user part.

Placeholders are ``$name`` (``string.Template``); a missing value is an error, not a silent gap.
Text from outside the program (a job's name and description) enters a template only through
:func:`untrusted_data`: escaped, capped and unable to close the ``<<< >>>`` block the system prompt
declares to be data (ARCHITECTURE.md, principle 10).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from string import Template

from llm_sched.config import PROJECT_ROOT
from llm_sched.core.records import Message
from llm_sched.errors import UserError
from llm_sched.loader import read_text

PROMPTS_DIR = PROJECT_ROOT / "prompts"
SEPARATOR = "\n---\n"
UNTRUSTED_MAX_CHARS = 60  # per field, as the prompt shows it (escaped): enough to say what a job is
CUT_MARK = "...(cut)"  # ASCII: the mark reads the same escaped


@cache
def _load(path: Path) -> tuple[Template, Template]:
    text = read_text(path, "prompt template")
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


def untrusted_data(fields: dict[str, str], limit: int = UNTRUSTED_MAX_CHARS) -> str:
    """``fields`` as one JSON object for a ``<<< >>>`` block: each value cut to ``limit`` escaped
    characters (marked when cut), ASCII only, with no quote, newline, control character or angle
    bracket left raw, so the text can neither leave its string nor close the block."""
    return "{" + ", ".join(f"{_escaped(key)}: {_escaped(_capped(value, limit))}" for key, value in fields.items()) + "}"


def _escaped(text: str) -> str:
    # JSON string escaping (quotes, backslashes, control and non-ASCII characters such as
    # bidirectional overrides), and the angle brackets as well: they would spell the delimiters.
    return json.dumps(text, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")


def _capped(text: str, limit: int) -> str:
    """``text`` if its escaped form fits in ``limit`` characters, else its longest such prefix and
    :data:`CUT_MARK` (the limit counts what the prompt shows: an emoji escapes to 12 characters)."""
    if len(_escaped(text)) - 2 <= limit:
        return text
    used, kept = len(_escaped(CUT_MARK)) - 2, []
    for char in text:
        used += len(_escaped(char)) - 2
        if used > limit:
            break
        kept.append(char)
    return "".join(kept) + CUT_MARK
