"""A scripted fake model for tests: answers an agent's request from the facts in it, deterministically.

It is NOT a language model and nothing it produces is shipped: the product's cassettes are recorded
from a real model (SmolLM2-135M run by llama.cpp). The fake reads the answer schema the request asks
for (Ollama's ``format``, OpenAI's ``response_format``), takes the heuristic's first option with a
score on the schema's grid, and accepts a candidate exactly when the prompt says the feasibility
check passed. With ``faults`` it answers some prompts badly on purpose (broken JSON, an option that
was not offered) so that repairs and fallbacks happen in tests.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tests.standin import Reply, RequestRecord

_OPTION = re.compile(r"^([A-Z]): (\S+) .*\(([0-9.]+)\)$", re.M)
_JOB = re.compile(r"Job (\S+) \(")
FEASIBLE = "Feasibility check: feasible"


def schema_of(record: RequestRecord) -> dict[str, Any]:
    """The answer schema a request asks for, whatever the provider's wire format."""
    body = record.body or {}
    if isinstance(body.get("format"), dict):
        return body["format"]
    form = body.get("response_format") or {}
    return form.get("json_schema", {}).get("schema") or form.get("schema") or {}


def _prompt(record: RequestRecord) -> tuple[str, bool]:
    messages = (record.body or {}).get("messages", [])
    texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    repairing = len(texts) > 2 and "not valid" in texts[-1]
    return next((t for t in texts if _JOB.search(t)), ""), repairing


def _nearest(grid: list[float], value: float) -> float:
    return min(grid, key=lambda g: (abs(g - value), g))


def answer(record: RequestRecord, faults: bool = True) -> Reply:
    """The fake model's reply to one request."""
    schema = schema_of(record).get("properties", {})
    prompt, repairing = _prompt(record)
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 100 if faults else 50
    if "option_id" in schema:
        letters = schema["option_id"].get("enum") or [schema["option_id"].get("const")]
        if not repairing and bucket < 6:
            return Reply.text('{"option_id": "%s", "score": 0.9, "reasoning": "fits' % letters[0])
        if bucket >= 93:  # insists on an option that was not offered: invalid, the agent falls back
            return Reply.json({"option_id": "Z", "score": 0.9, "reasoning": "option Z is best"})
        scores = {letter: float(score) for letter, _pool, score in _OPTION.findall(prompt)}
        grid = schema["score"]["enum"]
        pool = next((p for letter, p, _s in _OPTION.findall(prompt) if letter == letters[0]), "that pool")
        return Reply.json({"option_id": letters[0], "score": _nearest(grid, scores.get(letters[0], grid[-1])),
                           "reasoning": f"{pool} has the best balance of fit, load and specialisation."})
    if not repairing and bucket < 4:
        return Reply.text("I accept this placement.")
    feasible = FEASIBLE in prompt
    return Reply.json({"decision": "accept" if feasible else "reject", "confidence": 0.9 if feasible else 1.0,
                       "reasoning": "The nodes have the capacity and suit this job." if feasible else
                       "The feasibility check failed, so I cannot accept."})
