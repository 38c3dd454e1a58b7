"""The web view's Starlette app: the page, the runs list, and each run's events as server-sent events.

The server only sends events as the run wrote them; the page computes everything it shows from them.
Run ids come from URLs: each is checked as a name and resolved inside the runs folder (404 otherwise).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_sched.web.runs import EVENTS, SUMMARY, Event, EventTail, Problem, Reset, RunCatalog, run_folder

STATIC = Path(__file__).parent / "static"
# No inline script or style, nothing from another origin: text from a run (job names, model output)
# cannot become code even if some of it were ever put into the page as markup.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
# Host names a browser uses for a server on this machine. Any other Host header is refused, so a web
# page cannot read the runs through a name of its own that resolves here (DNS rebinding).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
POLL_S = 0.25  # how often a followed log is looked at
HEARTBEAT_S = 10.0  # a comment line this often keeps proxies from closing a quiet stream


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (pure ASGI: streaming responses pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(runs_dir: Path, *, allowed_hosts: Sequence[str] | None = None,
               poll_s: float = POLL_S, heartbeat_s: float = HEARTBEAT_S) -> Starlette:
    """The app serving the runs in ``runs_dir``. ``allowed_hosts``: the Host names it answers
    (default :data:`LOCAL_HOSTS`; ``["*"]``: any, for a server bound to a public address).

    ``app.state.stopping``: set it when the server shuts down, and every open event stream ends
    (a stream of a live run never ends by itself, and the server waits for its connections)."""
    catalog = RunCatalog(runs_dir)
    stopping = threading.Event()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    async def runs(request: Request) -> Response:
        rows = await anyio.to_thread.run_sync(catalog.list)
        return _json({"runs_dir": str(runs_dir), "runs": [r.as_json() for r in rows]})

    async def summary(request: Request) -> Response:
        folder = run_folder(runs_dir, request.path_params["run_id"])
        if folder is None:
            return _not_found("no such run")
        try:
            data = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _not_found("this run has no summary yet (it has not finished)")
        except (OSError, ValueError) as exc:
            return _json({"error": f"the summary cannot be read: {exc}"}, 500)
        return _json(data)

    async def events(request: Request) -> Response:
        folder = run_folder(runs_dir, request.path_params["run_id"])
        if folder is None:
            return _not_found("no such run")
        stream = _event_stream(EventTail(folder / EVENTS), _last_event_id(request), poll_s, heartbeat_s, stopping)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    routes = [
        Route("/", page),
        Route("/api/runs", runs),
        Route("/api/runs/{run_id}/summary", summary),
        Route("/api/runs/{run_id}/events", events),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = list(LOCAL_HOSTS if allowed_hosts is None else allowed_hosts)
    middleware = [Middleware(SecurityHeaders), Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.stopping = stopping
    return app


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers={"cache-control": "no-store"})


def _not_found(message: str) -> Response:
    return _json({"error": message}, 404)


def _last_event_id(request: Request) -> int:
    """The ``seq`` a reconnecting page saw last (-1: none); the stream goes on after it."""
    try:
        return int(request.headers.get("last-event-id", "-1"))
    except ValueError:
        return -1


def sse(data: Any, *, event: str | None = None, id: int | None = None) -> bytes:
    """One server-sent event. ``json.dumps`` escapes every line break inside strings, so ``data``
    is one line and text from the run cannot start a field of its own."""
    head = (f"id: {id}\n" if id is not None else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _event_stream(tail: EventTail, after: int, poll_s: float, heartbeat_s: float,
                        stopping: threading.Event) -> AsyncIterator[bytes]:
    """Every event so far, then each one appended; ``caught-up`` once the backlog is sent, ``done``
    (and the end of the stream) after scenario_ended. Ends too when ``stopping`` is set."""
    yield b"retry: 2000\n\n"  # reconnect quickly; the page sends Last-Event-ID and misses nothing
    caught_up, quiet = False, 0.0
    while not stopping.is_set():
        entries = await anyio.to_thread.run_sync(tail.poll)
        for entry in entries:
            if isinstance(entry, Reset):
                after = -1
                yield sse({"reason": "the event log was cut back (a resumed run): reading it again"}, event="reset")
            elif isinstance(entry, Problem):
                yield sse({"line": entry.line, "message": entry.message}, event="problem")
            elif isinstance(entry, Event) and entry.seq > after:
                yield sse(entry.row, id=entry.seq)
            if isinstance(entry, Event) and entry.kind == "scenario_ended":
                yield sse({"seq": entry.seq}, event="done")
                return
        if entries:
            quiet = 0.0
            continue  # a long backlog comes in pieces: read on before sleeping
        if not caught_up:
            caught_up = True
            yield sse({"line": tail.line}, event="caught-up")
        await anyio.sleep(poll_s)
        quiet += poll_s
        if quiet >= heartbeat_s:
            quiet = 0.0
            yield b": heartbeat\n\n"
