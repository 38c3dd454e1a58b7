"""Typed run events on one stream.

Everything that happens in a run is an event; the console, the JSONL run log and the metrics all
read this stream. Events carry a sequence number (deterministic) and a wall-clock timestamp
(not deterministic, excluded when two runs are compared).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llm_sched.llm.records import CallRecord

# Fields that differ between two runs with the same seed and cassette.
NONDETERMINISTIC_FIELDS = frozenset({"ts", "latency_s"})


class RunEvent(BaseModel):
    """Base of every event: ``kind`` names the type, ``seq`` orders the stream."""

    model_config = ConfigDict(frozen=True)

    kind: str
    seq: int = -1
    ts: float = 0.0


class LLMCallEvent(RunEvent):
    """One structured LLM call, whatever its outcome."""

    kind: Literal["llm_call"] = "llm_call"
    record: CallRecord


Subscriber = Callable[[RunEvent], None]


class EventBus:
    """Numbers events in emission order and hands each to every subscriber.

    Thread-safe: LLM calls made from worker threads (SambaStudio's client is synchronous) may emit.
    """

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._subscribers: list[Subscriber] = list(subscribers)
        self._lock = threading.Lock()
        self._seq = 0
        self.events: list[RunEvent] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: RunEvent) -> RunEvent:
        with self._lock:
            stamped = event.model_copy(update={"seq": self._seq, "ts": time.time()})
            self._seq += 1
            self.events.append(stamped)
            for subscriber in self._subscribers:
                subscriber(stamped)
        return stamped


class JsonlSink:
    """Appends each event as one JSON line; known secrets are replaced before anything is written."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self._secrets = [s for s in secrets if s]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")

    def __call__(self, event: RunEvent) -> None:
        line = event.model_dump_json()
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        self._handle.write(line + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def comparable(event: RunEvent | dict[str, Any]) -> dict[str, Any]:
    """The event as a dict without the fields that legitimately differ between identical runs."""
    data = event.model_dump(mode="json") if isinstance(event, RunEvent) else event
    return _strip(data)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in NONDETERMINISTIC_FIELDS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read an events file back as dicts (one per line)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


__all__ = ["EventBus", "JsonlSink", "LLMCallEvent", "RunEvent", "comparable", "read_jsonl"]
