"""The web view in a real browser: headless Chromium (the system's, driven by Playwright) on the app
served by uvicorn. A stored Byzantine run shows what its event log holds; a run written while the
page is open updates as it goes and turns from live to done.

Skipped when Chromium or Playwright is not installed (``pip install -e '.[web]'``; no browser is
downloaded: ``playwright install`` is never needed). ``LLM_SCHED_SAVE_SCREENSHOT=1`` saves the
screenshot as docs/screenshots/web-view.png (the README's); otherwise it goes to a temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llm_sched.api import run_scenario_by_name
from llm_sched.store.event_chain import GENESIS, HASH_FIELD, seal

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and Path(p).exists()), None)
if CHROMIUM is None:
    pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[web]')")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install -e '.[web]')")
web_app = pytest.importorskip("llm_sched.web.app", reason="Starlette is not installed (pip install -e '.[web]')")

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "screenshots" / "web-view.png"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def stored(runs_dir: Path) -> Path:
    """A Byzantine run (heuristic answers): rejects, a blocked proposal, reputations that drop."""
    made = runs_dir.parent / "made"
    result = run_scenario_by_name("byzantine", provider="heuristic", runs_dir=made, console=Console(file=io.StringIO()))
    return Path(shutil.copytree(result.run_dir, runs_dir / result.run_dir.name))


@pytest.fixture(scope="module")
def base_url(runs_dir: Path) -> Iterator[str]:
    app = web_app.create_app(runs_dir, poll_s=0.05)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    app.state.stopping.set()
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser(stored: Path) -> Iterator[Any]:
    # After the run is made: Playwright's sync API keeps an event loop running in this thread, and a
    # scenario run starts one of its own (asyncio.run), which it cannot do inside another.
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    context.close()
    assert errors == [], errors  # no script error, no resource refused by the CSP


def rows_of(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def expected_reputations(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each agent's last reputation: from its last reputation event, else from network_status."""
    last: dict[str, float] = {}
    for row in rows:
        if row["kind"] == "network_status":
            last.update({a["agent"]: a["reputation"] for a in row["agents"]})
        elif row["kind"] == "reputation":
            last[row["agent"]] = row["new"]
    return last


def test_a_stored_run_shows_what_its_log_holds(page: Any, base_url: str, stored: Path, tmp_path: Path) -> None:
    rows = rows_of(stored)
    summary = json.loads((stored / "summary.json").read_text())
    decisions = [r["decision"] for r in rows if r["kind"] == "decision"]
    committed = sorted(d["job_id"] for d in decisions if d["outcome"] == "commit")
    started = rows[0]

    page.goto(f"{base_url}/")
    page.click(f'#runs a[data-run="{stored.name}"]')
    page.wait_for_selector("body[data-status=done]")
    page.wait_for_function("document.querySelectorAll('#gantt rect.bar').length > 0")

    assert page.text_content("#run-title") == stored.name
    assert page.text_content("#h-scenario") == "byzantine"
    assert page.text_content("#h-source") == started["provider"] == "heuristic"
    assert page.text_content("#h-nfq") == f"{started['n']} / {started['f']} / {started['quorum']}"
    assert page.text_content("#h-executor") == "sim (simulated clock)" and started["executor"] == "sim"
    assert page.text_content("#badge") == "done"
    assert int(page.text_content("#stat-decisions")) == len(decisions) == summary["jobs"]
    assert page.locator("#decisions tbody tr").count() == len(decisions)
    assert page.locator('#decisions tbody tr[data-outcome="reject"]').count() == summary["rejected"] > 0

    reputations = expected_reputations(rows)
    shown = page.eval_on_selector_all("#rep-list li", "els => els.map(e => [e.dataset.agent, e.dataset.value])")
    assert sorted(agent for agent, _ in shown) == sorted(started["agents"])
    assert {agent: float(value) for agent, value in shown} == reputations
    assert min(reputations.values()) < 1.0  # the Byzantine agent lost reputation
    excluded = [r["agent"] for r in rows if r["kind"] == "agent_excluded"]
    for agent in excluded:
        assert page.locator(f'#rep-list li[data-agent="{agent}"] .pill.excluded').count() == 1

    bars = page.eval_on_selector_all("#gantt rect.bar", "els => els.map(e => e.dataset.job)")
    assert sorted(bars) == committed
    assert page.locator("#gantt path.rejected").count() == summary["rejected"]

    target = SCREENSHOT if os.environ.get("LLM_SCHED_SAVE_SCREENSHOT") == "1" else tmp_path / "web-view.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_a_live_run_updates_as_it_is_written(page: Any, base_url: str, runs_dir: Path, stored: Path) -> None:
    lines = (stored / "events.jsonl").read_bytes().splitlines(keepends=True)
    kinds = [json.loads(line)["kind"] for line in lines]
    decided = [i for i, kind in enumerate(kinds) if kind == "decision"]
    first_part = decided[1] + 1  # up to the second decision
    live = runs_dir / "29991231T000000Z-byzantine-live"
    live.mkdir()
    log = live / "events.jsonl"
    log.write_bytes(b"".join(lines[:first_part]))

    page.goto(f"{base_url}/#run={live.name}")
    page.wait_for_selector("body[data-status=live]")
    page.wait_for_function("document.getElementById('stat-decisions').textContent === '2'")
    assert page.text_content("#badge") == "live"
    assert page.locator("#gantt line.now-line").count() == 1  # a run in progress shows where it is

    seen = {2}
    with log.open("ab") as handle:
        for i, line in enumerate(lines[first_part:], first_part):
            handle.write(line)
            handle.flush()
            if kinds[i] == "decision":  # the run goes on step by step: one decision at a time
                time.sleep(0.25)
                seen.add(int(page.text_content("#stat-decisions")))
                assert page.text_content("#badge") == "live"
    page.wait_for_selector("body[data-status=done]")
    assert page.text_content("#badge") == "done"
    assert int(page.text_content("#stat-decisions")) == len(decided)
    assert len(seen) >= 3, seen  # it rose while the run went on, not only at the end
    assert page.locator("#gantt line.now-line").count() == 0


HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def test_text_from_a_run_is_shown_as_text(page: Any, base_url: str, runs_dir: Path, stored: Path) -> None:
    """A job name and a vote's reasoning holding markup: shown as written, nothing runs."""
    rows = rows_of(stored)
    for row in rows:
        if row["kind"] == "job_submitted" and row["job"]["id"] == "b-01":
            row["job"]["name"] = HOSTILE
        if row["kind"] == "vote" and row["vote"] is not None:
            row["vote"]["reasoning"] = HOSTILE
    hostile = runs_dir / "29991231T000001Z-hostile"
    hostile.mkdir()
    head, lines = GENESIS, []
    for row in rows:  # sealed again: a valid log, not one the page warns about
        line, head = seal(head, json.dumps({k: v for k, v in row.items() if k != HASH_FIELD}, separators=(",", ":")))
        lines.append(line + "\n")
    (hostile / "events.jsonl").write_text("".join(lines))

    page.goto(f"{base_url}/#run={hostile.name}")
    page.wait_for_selector("body[data-status=done]")
    assert page.text_content('#decisions tr[data-job="b-01"] .job-name') == HOSTILE
    assert HOSTILE in page.locator("#vote-list .why").first.text_content()
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.is_hidden("#problems")
