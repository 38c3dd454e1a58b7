"""Pull one JSON object out of a model's free text (bare, inside code fences, or after prose)."""

from __future__ import annotations

import json
from typing import Any

_DECODER = json.JSONDecoder()


def extract_json_object(text: str) -> dict[str, Any]:
    """Return the first JSON object in ``text``; raise ``ValueError`` when there is none.

    Scans each ``{`` and lets the standard decoder decide where the object ends, so braces inside
    strings and code fences need no special handling.
    """
    start = text.find("{")
    while start != -1:
        try:
            value, _end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise ValueError("no JSON object found in the answer")
