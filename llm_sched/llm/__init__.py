"""The LLM layer: ask "answer this prompt as an instance of this Pydantic model" of any provider.

Public API: :func:`llm_session` (settings -> an :class:`LLMSession`: the client, where its answers come
from, record/replay), :class:`LLMClient` and its ``structured`` call, :class:`Answer`, :class:`CallRecord`, :class:`CallContext`, :class:`Message`.
Imports are lazy so that ``--help`` and ``--check`` never load the client libraries.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "llm_session": "llm_sched.llm.factory",
    "LLMSession": "llm_sched.llm.factory",
    "LLMSource": "llm_sched.llm.factory",
    "preflight": "llm_sched.llm.factory",
    "build_transport": "llm_sched.llm.factory",
    "LLMClient": "llm_sched.llm.client",
    "RetryPolicy": "llm_sched.llm.client",
    "ReplayMissError": "llm_sched.llm.client",
    "Answer": "llm_sched.core.records",
    "CallRecord": "llm_sched.core.records",
    "CallContext": "llm_sched.core.records",
    "Message": "llm_sched.core.records",
    "Outcome": "llm_sched.core.records",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
