"""The event stream: ordering, the JSONL log and its hash chain, secrets scrubbed, comparison without timings."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from llm_sched.core.events import EventBus, JsonlSink, LLMCallEvent, PhaseStarted, ScenarioEnded, comparable, read_jsonl
from llm_sched.core.records import CallRecord, Message
from llm_sched.store.event_chain import GENESIS, Anchor, EventLogError, check_log, link, unseal

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


# -- the hash chain of the log (llm_sched.store.event_chain) ----------------------------------------------


def _log(path: Path, n: int = 5, end: bool = True) -> list[str]:
    """A log of ``n`` phase events (and the run's end); its lines."""
    sink = JsonlSink(path)
    bus = EventBus([sink])
    for i in range(n):
        bus.emit(PhaseStarted(phase=f"p{i}", description="x" * i))
    if end:
        bus.emit(ScenarioEnded(scenario="s", wall_s=1.0))
    sink.close()
    return path.read_text().splitlines(keepends=True)


def test_each_line_carries_the_hash_of_the_line_before_and_its_own_text(tmp_path: Path) -> None:
    lines = _log(tmp_path / "events.jsonl")
    prev = GENESIS
    for line in lines:
        body, value = unseal(line.rstrip("\n"))
        assert value == link(prev, body) and json.loads(line)["hash"] == value
        assert json.loads(body) == {k: v for k, v in json.loads(line).items() if k != "hash"}
        prev = value
    assert [row["seq"] for row in read_jsonl(tmp_path / "events.jsonl")] == list(range(6))


def test_the_same_events_give_the_same_hashes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        sink = JsonlSink(path)
        for seq in range(3):  # the same events, timestamps included
            sink(PhaseStarted(phase="p", seq=seq, ts=1.5))
        sink.close()
    assert a.read_bytes() == b.read_bytes()


def _edited(lines: list[str]) -> list[str]:
    lines[2] = lines[2].replace('"phase":"p2"', '"phase":"p9"')
    return lines


def _removed(lines: list[str]) -> list[str]:
    return lines[:2] + lines[3:]


def _reordered(lines: list[str]) -> list[str]:
    return [lines[0], lines[2], lines[1], *lines[3:]]


def _retimed(lines: list[str]) -> list[str]:
    lines[3] = re.sub(r'"ts":[0-9.]+', '"ts":1.0', lines[3])
    return lines


def _added(lines: list[str]) -> list[str]:
    return [*lines[:4], '{"kind":"phase_started","seq":4,"ts":0.0,"phase":"mine","description":""}\n', *lines[4:]]


def _rehashed_without_chain(lines: list[str]) -> list[str]:
    """An edit that recomputes the line's own hash, but not the chain after it."""
    body, _ = unseal(lines[2].rstrip("\n"))
    body = body.replace('"p2"', '"p9"')
    prev = json.loads(lines[1])["hash"]
    lines[2] = f'{body[:-1]},"hash":"{link(prev, body)}"}}\n'
    return lines


@pytest.mark.parametrize(("damage", "line", "why"), [
    (_edited, 3, "changed after it was written"),
    (_removed, 3, "seq 3 follows seq 1: lines were removed"),
    (_reordered, 2, "seq 2 follows seq 0"),
    (_retimed, 4, "changed after it was written"),
    (_added, 5, "has no hash but the lines before it have"),
    (_rehashed_without_chain, 4, "changed after it was written"),
])
def test_a_damaged_line_is_named_with_file_and_line(tmp_path: Path, damage: Callable[[list[str]], list[str]], line: int,
                                                    why: str) -> None:
    path = tmp_path / "events.jsonl"
    lines = _log(path)
    path.write_text("".join(damage(list(lines))))
    with pytest.raises(EventLogError, match=f"the event log {re.escape(str(path))} is damaged at line {line}: .*{why}"):
        read_jsonl(path)


def test_garbled_bytes_and_a_cut_line_are_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    data = "".join(_log(path)).encode()
    path.write_bytes(data[:300] + b"\xff\xfe" + data[302:])
    with pytest.raises(EventLogError, match="is damaged at line \\d: (it is not UTF-8|.*changed)"):
        read_jsonl(path)
    path.write_bytes(data[:-20])
    with pytest.raises(EventLogError, match="is damaged at line 6: the file ends in the middle of this line"):
        read_jsonl(path)


def test_lines_cut_from_the_end_are_found_against_what_the_ledger_stored(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = _log(path)
    ends = [sum(len(x.encode()) for x in lines[:i + 1]) for i in range(len(lines))]
    anchor = Anchor("j1", ends[3], 4, json.loads(lines[3])["hash"])  # a decision committed after line 4
    assert check_log(path, [anchor], complete=True).events == 6
    path.write_text("".join(lines[:5]))  # the run's end removed: the chain is intact, the log is not whole
    with pytest.raises(EventLogError, match="the run completed, but the log ends at line 5 \\(phase_started\\)"):
        check_log(path, [anchor], complete=True)
    path.write_text("".join(lines[:3]))  # cut before a committed decision
    with pytest.raises(EventLogError, match=f"is truncated: it ends at byte {ends[2]}, but the decision for job j1 "
                                            f"was committed when it reached byte {ends[3]}"):
        check_log(path, [anchor])
    other = Anchor("j1", ends[3], 4, "0" * 64)  # the ledger stored another chain: this log was made anew
    path.write_text("".join(lines))
    with pytest.raises(EventLogError, match="its hash is not the one stored with the decision for job j1"):
        check_log(path, [other])


def test_a_log_written_before_hashes_is_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    rows = [{"kind": "phase_started", "seq": i, "ts": 0.0, "phase": "p", "description": ""} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_jsonl(path) == rows
    check = check_log(path)
    assert (check.events, check.hashed, check.head) == (3, False, None)
    sink = JsonlSink(path, head=None)  # continued as it was written: without hashes
    sink(PhaseStarted(phase="p", seq=3))
    sink.close()
    assert [r["seq"] for r in read_jsonl(path)] == [0, 1, 2, 3] and "hash" not in path.read_text()


def test_comparable_leaves_out_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _log(path, n=1, end=False)
    (row,) = read_jsonl(path)
    assert "hash" in row and "hash" not in comparable(row)
