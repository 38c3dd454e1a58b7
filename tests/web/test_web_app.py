"""The web view's server (llm-sched serve): the runs list, each run's events as server-sent events
(a stored run, and a live one whose log grows while it is read), and what it refuses."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

import httpx
from rich.console import Console
from starlette.testclient import TestClient

from llm_sched.api import run_scenario_by_name
from llm_sched.cli import main as cli_main
from llm_sched.web.app import CSP, create_app
from llm_sched.web.runs import Event, EventTail, Problem, Reset, RunCatalog, run_folder

BASE = "http://127.0.0.1"  # a Host the app answers (it refuses others: DNS rebinding)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the healthy scenario (heuristic answers: fast, no model)."""
    runs = tmp_path_factory.mktemp("made")
    result = run_scenario_by_name("healthy", provider="heuristic", runs_dir=runs, console=Console(file=io.StringIO()))
    return result.run_dir


@pytest.fixture
def runs_dir(tmp_path: Path, stored: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(stored, runs / stored.name)
    return runs


@pytest.fixture
def client(runs_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(runs_dir, poll_s=0.02), base_url=BASE) as test_client:
        yield test_client


def lines_of(run: Path) -> list[bytes]:
    return (run / "events.jsonl").read_bytes().splitlines(keepends=True)


def rows_of(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines_of(run)]


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The stream's messages as {event, id, data} (comments and retry lines left out)."""
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {"event": "message"}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name in ("event", "id", "data"):
                fields[name] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            messages.append(fields)
    return messages


# -- the runs list -----------------------------------------------------------------------------


def test_runs_list_shows_a_stored_run(client: TestClient, stored: Path) -> None:
    response = client.get("/api/runs")
    assert response.status_code == 200
    [run] = response.json()["runs"]
    rows = rows_of(stored)
    assert run["id"] == stored.name
    assert run["scenario"] == "healthy"
    assert run["status"] == "done"
    assert run["decisions"] == sum(r["kind"] == "decision" for r in rows) > 0
    assert run["size"] == (stored / "events.jsonl").stat().st_size


def test_runs_list_says_live_stopped_and_done(runs_dir: Path, stored: Path) -> None:
    lines = lines_of(stored)
    for name in ("live-run", "stopped-run"):
        (runs_dir / name).mkdir()
        (runs_dir / name / "events.jsonl").write_bytes(b"".join(lines[:30]))
    old = time.time() - 3600
    os.utime(runs_dir / "stopped-run" / "events.jsonl", (old, old))
    (runs_dir / "not-a-run").mkdir()  # no events.jsonl: not listed
    (runs_dir / "llm_sched.db").write_bytes(b"")  # files beside the runs: not listed
    status = {r.id: r.status for r in RunCatalog(runs_dir).list()}
    assert status == {stored.name: "done", "live-run": "live", "stopped-run": "stopped"}


def test_listing_reads_only_what_was_appended(runs_dir: Path, stored: Path) -> None:
    lines = lines_of(stored)
    log = runs_dir / "growing" / "events.jsonl"
    log.parent.mkdir()
    log.write_bytes(b"".join(lines[:-1]) + lines[-1][:10])  # the last line half written
    catalog = RunCatalog(runs_dir)
    first = next(r for r in catalog.list() if r.id == "growing")
    assert (first.size, first.status) == (len(b"".join(lines[:-1])), "live")
    with log.open("ab") as handle:
        handle.write(lines[-1][10:])
    second = next(r for r in catalog.list() if r.id == "growing")
    assert (second.size, second.status) == (len(b"".join(lines)), "done")  # scenario_ended arrived
    assert second.decisions == sum(b'"kind":"decision"' in line for line in lines)
    # A resume cuts the log back to its last committed decision and goes on: counted anew, also when
    # it has grown past where the last count stopped by then.
    cut = max(i for i, line in enumerate(lines) if b'"kind":"decision"' in line)
    log.write_bytes(b"".join(lines[:cut]))
    third = next(r for r in catalog.list() if r.id == "growing")
    assert (third.decisions, third.status) == (second.decisions - 1, "live")
    log.write_bytes(b"".join(lines[: cut - 1]) + lines[cut] + b"".join(lines[cut - 1:]))  # one decision more
    assert next(r for r in catalog.list() if r.id == "growing").decisions == second.decisions + 1


def test_a_second_listing_of_200_runs_reads_no_log_again(tmp_path: Path, stored: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing cost stays flat as runs pile up: unchanged logs are known by size and time alone."""
    for i in range(200):
        shutil.copytree(stored, tmp_path / f"run-{i:03d}")
    catalog = RunCatalog(tmp_path)
    opened: list[Path] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    assert len(catalog.list()) == 200
    assert len({p for p in opened if p.name == "events.jsonl"}) == 200
    opened.clear()
    assert len(catalog.list()) == 200
    assert opened == []


# -- a stored run's events ---------------------------------------------------------------------


def test_stored_run_streams_every_event_then_done(client: TestClient, stored: Path) -> None:
    response = client.get(f"/api/runs/{stored.name}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    messages = parse_sse(response.text)
    events = [m for m in messages if m["event"] == "message"]
    rows = rows_of(stored)
    assert [e["data"] for e in events] == rows
    assert [int(e["id"]) for e in events] == [r["seq"] for r in rows]
    kinds = [m["event"] for m in messages if m["event"] != "message"]
    assert kinds == ["done"]  # the whole log was there at once: no caught-up before the end
    assert messages[-1]["event"] == "done"


def test_a_reconnect_continues_after_last_event_id(client: TestClient, stored: Path) -> None:
    response = client.get(f"/api/runs/{stored.name}/events", headers={"Last-Event-ID": "20"})
    ids = [int(m["id"]) for m in parse_sse(response.text) if m["event"] == "message"]
    assert ids == list(range(21, len(rows_of(stored))))


def test_summary_of_a_stored_run(client: TestClient, stored: Path, runs_dir: Path) -> None:
    response = client.get(f"/api/runs/{stored.name}/summary")
    assert response.status_code == 200
    assert response.json() == json.loads((stored / "summary.json").read_text())
    (runs_dir / "unfinished").mkdir()
    (runs_dir / "unfinished" / "events.jsonl").write_bytes(b"".join(lines_of(stored)[:5]))
    assert client.get("/api/runs/unfinished/summary").status_code == 404


# -- what it refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/api/runs/no-such-run/events",
    "/api/runs/no-such-run/summary",
    "/api/runs/..%2F..%2Fetc/events",
    "/api/runs/..%2Fruns/summary",
    "/api/runs/%2E%2E/events",
    "/api/runs/.hidden/events",
    "/api/runs/a%20b/events",
])
def test_bad_run_ids_are_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_a_link_out_of_the_runs_folder_is_404(client: TestClient, runs_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "events.jsonl").write_text('{"kind":"phase_started","seq":0,"ts":0,"phase":"x"}\n')
    (runs_dir / "escape").symlink_to(outside, target_is_directory=True)
    assert run_folder(runs_dir, "escape") is None
    assert client.get("/api/runs/escape/events").status_code == 404
    assert "escape" not in [r["id"] for r in client.get("/api/runs").json()["runs"]]


def test_security_headers_on_every_response(client: TestClient, stored: Path) -> None:
    for path in ("/", "/api/runs", "/static/app.js", f"/api/runs/{stored.name}/summary", "/api/runs/nope/events"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


def test_the_page_has_no_inline_script_or_style(client: TestClient) -> None:
    page = client.get("/").text
    assert '<script src="/static/app.js"' in page
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    for name in ("app.js", "style.css", "favicon.svg"):
        assert client.get(f"/static/{name}").status_code == 200
    script = client.get("/static/app.js").text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script


def test_a_foreign_host_name_is_refused(runs_dir: Path) -> None:
    with TestClient(create_app(runs_dir), base_url="http://attacker.example") as foreign:
        assert foreign.get("/api/runs").status_code == 400
    with TestClient(create_app(runs_dir), base_url="http://localhost:8765") as local:
        assert local.get("/api/runs").status_code == 200


# -- a live run --------------------------------------------------------------------------------


def test_a_live_run_delivers_events_as_they_are_appended(client: TestClient, runs_dir: Path, stored: Path) -> None:
    lines = lines_of(stored)
    log = runs_dir / "live" / "events.jsonl"
    log.parent.mkdir()
    log.write_bytes(b"".join(lines[:10]))

    def writer() -> None:
        with log.open("ab") as handle:
            for line in lines[10:]:
                # Each line in two writes, the first without its newline: not an event yet.
                handle.write(line[: len(line) // 2])
                handle.flush()
                time.sleep(0.005)
                handle.write(line[len(line) // 2:])
                handle.flush()

    thread = threading.Thread(target=writer)
    with client.stream("GET", "/api/runs/live/events") as response:
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if "event: caught-up" in text and thread.ident is None:
                thread.start()  # the backlog is out: the run goes on
            if "event: done" in text:
                break
    thread.join(5)
    messages = parse_sse(text)
    events = [m["data"] for m in messages if m["event"] == "message"]
    assert events == rows_of(stored)  # every event once, in order, none cut in half
    assert [m["event"] for m in messages if m["event"] != "message"] == ["caught-up", "done"]


def test_a_bad_line_is_reported_and_the_stream_goes_on(client: TestClient, runs_dir: Path, stored: Path) -> None:
    lines = lines_of(stored)
    log = runs_dir / "damaged" / "events.jsonl"
    log.parent.mkdir()
    log.write_bytes(b"".join(lines[:5]) + b"{not json\n" + b"".join(lines[5:]))
    messages = parse_sse(client.get("/api/runs/damaged/events").text)
    problems = [m["data"] for m in messages if m["event"] == "problem"]
    assert len(problems) == 1 and problems[0]["line"] == 6 and "not JSON" in problems[0]["message"]
    assert len([m for m in messages if m["event"] == "message"]) == len(lines)
    assert messages[-1]["event"] == "done"


# -- the tail reader ---------------------------------------------------------------------------


def test_tail_skips_a_half_written_last_line_until_it_is_complete(tmp_path: Path, stored: Path) -> None:
    lines = lines_of(stored)
    log = tmp_path / "events.jsonl"
    tail = EventTail(log)
    assert tail.poll() == []  # no log yet
    log.write_bytes(lines[0] + lines[1] + lines[2][:25])
    assert [e.seq for e in tail.poll() if isinstance(e, Event)] == [0, 1]
    assert tail.poll() == []  # still half written
    with log.open("ab") as handle:
        handle.write(lines[2][25:-1])
    assert tail.poll() == []  # everything but the newline
    with log.open("ab") as handle:
        handle.write(b"\n" + lines[3])
    assert [e.seq for e in tail.poll() if isinstance(e, Event)] == [2, 3]


def test_tail_reports_an_edited_line_and_shows_it(tmp_path: Path, stored: Path) -> None:
    lines = lines_of(stored)
    edited = lines[3].replace(b'"seq":3', b'"seq":3 ', 1)  # same event, other bytes: off the chain
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(lines[:3]) + edited + b"".join(lines[4:8]))
    entries = EventTail(log).poll()
    problems = [e for e in entries if isinstance(e, Problem)]
    assert len(problems) == 1 and problems[0].line == 4 and "hash" in problems[0].message
    assert [e.seq for e in entries if isinstance(e, Event)] == list(range(8))


def test_tail_reports_unknown_and_invalid_events(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"kind":"no_such_kind","seq":0}\n{"kind":"vote","seq":1}\n[1,2]\n\xff\n', encoding="latin-1")
    messages = [e.message for e in EventTail(log).poll() if isinstance(e, Problem)]
    assert len(messages) == 4
    assert "unknown event kind" in messages[0] and "does not validate" in messages[1]
    assert "not an event" in messages[2] and "UTF-8" in messages[3]


def test_tail_starts_again_when_the_log_is_cut_back(tmp_path: Path, stored: Path) -> None:
    lines = lines_of(stored)
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(lines[:10]))
    tail = EventTail(log)
    assert len(tail.poll()) == 10
    log.write_bytes(b"".join(lines[:6]))  # a resume cuts the log back to its last committed decision
    entries = tail.poll()
    assert isinstance(entries[0], Reset)
    assert [e.seq for e in entries if isinstance(e, Event)] == list(range(6))


# -- the command -------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "out of range"),
    (["--port", "-1"], "out of range"),
    (["--runs", "/no/such/folder"], "does not exist"),
])
def test_serve_refuses_bad_input(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", *args]) == 2
    assert message in capsys.readouterr().err


def test_serve_prints_its_url_answers_and_stops_cleanly_on_ctrl_c(runs_dir: Path, stored: Path) -> None:
    main_py = Path(__file__).resolve().parents[2] / "main.py"
    proc = subprocess.Popen([sys.executable, str(main_py), "serve", "--port", "0", "--runs", str(runs_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        assert found, first
        url = found.group(0)
        assert [r["id"] for r in httpx.get(f"{url}api/runs").json()["runs"]] == [stored.name]
        # An open stream of a run that never ends does not hold the server up when it stops.
        (runs_dir / "endless").mkdir()
        (runs_dir / "endless" / "events.jsonl").write_bytes((stored / "events.jsonl").read_bytes()[:2000])
        with httpx.stream("GET", f"{url}api/runs/endless/events", timeout=10) as stream:
            next(stream.iter_bytes())
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err and "ERROR" not in err
