"""The event stream: ordering, the JSONL log, secrets scrubbed, comparison without timings."""

from __future__ import annotations

from pathlib import Path

from llm_sched.events import EventBus, JsonlSink, LLMCallEvent, comparable, read_jsonl
from llm_sched.llm.records import CallRecord, Message

SECRET = "sk-event-secret-0123456789"


def _record(error: str | None = None, latency: float = 0.5) -> CallRecord:
    return CallRecord(provider="ollama", model="m", agent="gpu", step="vote", schema_name="Vote",
                      messages=[Message(role="user", content="hi")], raw=["{}"], latency_s=latency,
                      attempts=1, outcome="ok", error=error)


def test_events_are_numbered_in_order_and_written_one_per_line(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "run" / "events.jsonl")
    bus = EventBus([sink])
    for _ in range(3):
        bus.emit(LLMCallEvent(record=_record()))
    sink.close()
    lines = read_jsonl(tmp_path / "run" / "events.jsonl")
    assert [line["seq"] for line in lines] == [0, 1, 2]
    assert all(line["kind"] == "llm_call" for line in lines)


def test_known_secrets_never_reach_the_log(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "events.jsonl", secrets=[SECRET])
    EventBus([sink]).emit(LLMCallEvent(record=_record(error=f"401 for key {SECRET}")))
    sink.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert SECRET not in text and "[redacted]" in text


def test_comparable_ignores_only_timestamps_and_latencies() -> None:
    a = EventBus().emit(LLMCallEvent(record=_record(latency=0.1)))
    b = EventBus().emit(LLMCallEvent(record=_record(latency=0.9)))
    assert comparable(a) == comparable(b)
    c = EventBus().emit(LLMCallEvent(record=_record(error="different")))
    assert comparable(a) != comparable(c)
