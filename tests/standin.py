"""A scripted stand-in LLM provider HTTP server for tests.

Speaks just enough of three wire protocols for the *real* clients to run
against 127.0.0.1: Ollama (``/api/tags``, ``/api/chat``), OpenAI-compatible
(``.../chat/completions``, ``.../models``; used by ``ChatSambaNova`` and the
``openai`` client) and SambaStudio generic v1/v2
(``/api[/v2]/predict/generic[/stream]/<p>/<e>``).
Every chat request pops the next scripted :class:`Reply` (else ``default``),
so one script drives any protocol; streaming is answered when asked for.

Server quirks, off by default (set the attributes after construction):

- ``refuse_json_schema``: the OpenAI-compatible endpoint refuses
  ``response_format={"type": "json_schema", ...}`` as llama.cpp's server does
  (HTTP 400, error body naming ``response_format`` and ``json_schema``) and
  takes ``{"type": "json_object", "schema": ...}``. A refused request is
  recorded but consumes no scripted reply. ``refusal_status = 500`` refuses as
  llama-cpp-python's server does (HTTP 500, an internal error naming both).
- ``api_key``: every request must carry ``Authorization: Bearer <api_key>``,
  else HTTP 401 (provider-shaped body).
- ``listing``: a :class:`Reply` that answers the model lists (paths ending in
  ``/api/tags`` or ``/models``) instead: an error ``code`` (``Reply.status(403)``)
  or, with code 200, its ``body`` as is (e.g. something that is not a list).

Hostile answers, for any request they answer (a chat request or ``listing``):
``Reply.flood(n)`` sends an ``n``-byte body made up while it is sent (the
server never holds it), with or without a ``Content-Length`` saying so;
``Reply.drip(seconds)`` sends the headers, then one byte every ``seconds``, forever.

A model missing from ``models`` simulates an unknown / not pulled model.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

__all__ = ["Reply", "RequestRecord", "StandIn", "is_readiness_probe"]


def serve_in_background(server: ThreadingHTTPServer, poll_interval: float = 0.02) -> ThreadingHTTPServer:
    """Serve ``server`` from a daemon thread; a short poll interval keeps shutting down fast."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True).start()
    return server


def shut_down(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and release the port (nothing to do for None)."""
    if server is not None:
        server.shutdown()
        server.server_close()


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections when ten agents call at once, and the kernel makes
    # the client retry after a second: a real model server queues far more.
    request_queue_size = 128


@dataclass(frozen=True)
class RequestRecord:
    """One received HTTP request; ``headers`` keys are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None if absent / not JSON
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class Reply:
    """A scripted answer: assistant ``content`` or an HTTP error ``code``."""

    content: str = ""
    code: int = 200
    retry_after: float | None = None
    body: Any = None  # error body override (dict -> JSON, str -> raw)
    delay: float = 0.0
    fn: Callable[[RequestRecord], Reply] | None = None
    size: int = 0  # flood: a body of this many bytes, made up while it is sent
    declare_length: bool = False  # flood: say the size in Content-Length
    drip: float = 0.0  # seconds between the bytes of a body that never ends

    @classmethod
    def json(cls, obj: Any) -> Reply:
        """Assistant content is ``json.dumps(obj)``."""
        return cls(content=json.dumps(obj))

    @classmethod
    def text(cls, s: str) -> Reply:
        """Assistant content is the raw string ``s``."""
        return cls(content=s)

    @classmethod
    def status(cls, code: int, retry_after: float | None = None, body: Any = None) -> Reply:
        """An HTTP error with a provider-shaped JSON body (or ``body``)."""
        return cls(code=code, retry_after=retry_after, body=body)

    @classmethod
    def dynamic(cls, fn: Callable[[RequestRecord], Reply]) -> Reply:
        """Compute the reply from the request (e.g. echo an id in the prompt)."""
        return cls(fn=fn)

    @classmethod
    def flood(cls, size: int, *, code: int = 200, declare_length: bool = False) -> Reply:
        """A body of ``size`` bytes (the start of a JSON object, then padding), status ``code``."""
        return cls(code=code, size=size, declare_length=declare_length)

    @classmethod
    def dripping(cls, seconds: float) -> Reply:
        """Status 200 and the headers at once, then one byte every ``seconds``, until the client leaves."""
        return cls(drip=seconds)

    @property
    def hostile(self) -> bool:
        return bool(self.size or self.drip)

    def delayed(self, seconds: float) -> Reply:
        """Same reply, sent after sleeping ``seconds`` in the handler thread."""
        return replace(self, delay=seconds)


# llama.cpp's server (before it took json_schema) refused it with this 400 body.
LLAMA_CPP_REFUSAL = {"error": {
    "code": 400,
    "message": 'response_format type must be one of "text" or "json_object", but got: json_schema',
    "type": "invalid_request_error"}}
# llama-cpp-python's own server (0.3.x) refuses the same request with HTTP 500: its request validation
# error is reported as an internal error.
LLAMA_CPP_PYTHON_REFUSAL = {"error": {
    "message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be "
               "'text' or 'json_object'\", 'input': 'json_schema'}]",
    "type": "internal_server_error"}}


def _chunks(text: str, size: int = 16) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _tokens(obj: Any) -> int:
    # Rough 4-chars-per-token estimate: only needs to be plausible and > 0.
    return max(1, len(obj if isinstance(obj, str) else json.dumps(obj)) // 4)


class StandIn:
    """Threaded fake provider on 127.0.0.1:<ephemeral>; use as a context manager."""

    def __init__(self, models: Iterable[str] = ("llama3.1:8b",)) -> None:
        self.models: list[str] = list(models)
        self.default: Reply = Reply.json({"ok": True})
        self.refuse_json_schema: bool = False
        self.refusal_status: int = 400
        self.api_key: str | None = None
        self.listing: Reply | None = None
        # A constrained server answers the one-field readiness probe (`--check`, and the check before a
        # run) whatever else it is scripted to do; False: the probe takes the next scripted reply too.
        self.answer_probes: bool = True
        self._queue: deque[Reply] = deque()
        self._requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.stopping = threading.Event()  # ends dripping answers when the server stops

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> StandIn:
        """Bind an ephemeral port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"owner": self})
        server = _Server(("127.0.0.1", 0), handler)
        # Don't let stop() wait for handlers still sleeping in .delayed().
        server.block_on_close = False
        self._server = serve_in_background(server)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.stopping.set()
        self._server = shut_down(self._server)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        assert self._server is not None, "StandIn not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of all requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def script(self, *replies: Reply) -> None:
        """Queue replies, consumed one per chat request (FIFO)."""
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._requests.append(rec)

    def _next(self, rec: RequestRecord) -> Reply:
        if self.answer_probes and is_readiness_probe(rec.body):
            return Reply.json({"ready": "yes"})
        with self._lock:
            reply = self._queue.popleft() if self._queue else self.default
        while True:  # delays and dynamic replies may nest
            if reply.delay:
                time.sleep(reply.delay)
            if reply.fn is None:
                return reply
            reply = reply.fn(rec)


def is_readiness_probe(body: Any) -> bool:
    """Does this chat request ask for the readiness probe's schema (one property, ``ready``)?"""
    if not isinstance(body, dict):
        return False
    asked = body.get("format") or body.get("response_format") or {}
    schema = asked.get("json_schema", {}).get("schema", asked.get("schema", asked)) if isinstance(asked, dict) else {}
    return isinstance(schema, dict) and set(schema.get("properties", {})) == {"ready"}


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so close-delimited streams need no
    # chunked encoding and every request gets its own handler thread.
    protocol_version = "HTTP/1.0"
    owner: StandIn

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep pytest output clean

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # client gave up (e.g. its timeout beat a .delayed reply)

    def do_GET(self) -> None:
        rec = self._recv()
        path, models = rec.path, self.owner.models
        ollama = path.endswith("/api/tags")
        if self._refused_key(rec, openai=not ollama):
            return
        listing = self.owner.listing
        if listing is not None and (ollama or path.endswith("/models")):
            if listing.hostile:
                self._hostile(listing)
            elif listing.code != 200:
                self._error(listing, openai=not ollama)
            else:
                self._send(200, listing.body if listing.body is not None else {})
            return
        if path == "/api/tags":
            now = datetime.now(timezone.utc).isoformat()
            details = {"format": "gguf", "family": "llama", "parameter_size": "8.0B",
                       "quantization_level": "Q4_K_M"}
            self._send(200, {"models": [
                {"name": m, "model": m, "modified_at": now, "size": 4_920_753_328,
                 "digest": uuid.uuid5(uuid.NAMESPACE_DNS, m).hex * 2, "details": details}
                for m in models]})
        elif path.endswith("/models"):
            self._send(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "standin"} for m in models]})
        else:
            self._send(404, {"error": f"unknown path {path}"})

    def do_POST(self) -> None:
        rec = self._recv()
        path, body = rec.path, rec.body if isinstance(rec.body, dict) else {}
        if path == "/api/chat":
            answer = self._ollama
        elif path.endswith("/chat/completions"):
            answer = self._openai
        elif "/predict/generic/" in path:
            answer = self._studio
        else:
            self._send(404, {"error": f"unknown path {path}"})
            return
        if self._refused_key(rec, openai=answer == self._openai):
            return
        if answer == self._openai and self.owner.refuse_json_schema \
                and (body.get("response_format") or {}).get("type") == "json_schema":
            status = self.owner.refusal_status
            self._send(status, LLAMA_CPP_REFUSAL if status == 400 else LLAMA_CPP_PYTHON_REFUSAL)
            return
        reply = self.owner._next(rec)
        if reply.hostile:
            self._hostile(reply)
            return
        if reply.code != 200:
            self._error(reply, openai=answer == self._openai)
            return
        n_in = _tokens(body.get("messages") or body.get("items") or body.get("instances") or "")
        answer(path, body, reply.content, n_in, _tokens(reply.content))

    # -- protocols -----------------------------------------------------------
    def _ollama(self, path: str, body: dict[str, Any], text: str, n_in: int, n_out: int) -> None:
        head = {"model": body.get("model", "standin"),
                "created_at": datetime.now(timezone.utc).isoformat()}
        final = {**head, "done": True, "done_reason": "stop",
                 "prompt_eval_count": n_in, "eval_count": n_out}
        if not body.get("stream", True):  # Ollama streams unless told not to
            self._send(200, {**final, "message": {"role": "assistant", "content": text}})
            return
        parts = [{**head, "done": False, "message": {"role": "assistant", "content": c}}
                 for c in _chunks(text)]
        parts.append({**final, "message": {"role": "assistant", "content": ""}})
        self._stream("application/x-ndjson", [json.dumps(p) + "\n" for p in parts])

    def _openai(self, path: str, body: dict[str, Any], text: str, n_in: int, n_out: int) -> None:
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": body.get("model", "standin")}
        usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "finish_reason": "stop"}
            self._send(200, {**head, "object": "chat.completion", "choices": [choice],
                             "usage": usage})
            return

        def event(delta: dict[str, str], finish: str | None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        # Every delta carries "content": SambaStudio's SSE parser indexes it blindly.
        events = [event({"role": "assistant", "content": c}, None) for c in _chunks(text)]
        events += [event({"content": ""}, "stop", usage=usage), "data: [DONE]\n\n"]
        self._stream("text/event-stream", events)

    def _studio(self, path: str, body: dict[str, Any], text: str, n_in: int, n_out: int) -> None:
        v2 = path.startswith("/api/v2/")
        if "/generic/stream/" in path:  # NDJSON; the client json.loads every line, even blank
            lines = [{"result": {"items": [{"value": {"stream_token": c}}]} if v2
                      else {"responses": [{"stream_token": c}]}} for c in _chunks(text) or [""]]
            self._stream("application/json", [json.dumps(x) + "\n" for x in lines])
            return
        result = {"completion": text, "stop_reason": "end_of_text", "prompt_tokens_count": n_in,
                  "completion_tokens_count": n_out, "total_tokens_count": n_in + n_out}
        self._send(200, {"items": [{"id": "item0", "value": result}]} if v2
                   else {"predictions": [result]})

    # -- plumbing ------------------------------------------------------------
    def _refused_key(self, rec: RequestRecord, openai: bool) -> bool:
        """Answer 401 (and return True) when a key is required and not given."""
        key = self.owner.api_key
        if key is None or rec.headers.get("authorization") == f"Bearer {key}":
            return False
        body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                          "code": "invalid_api_key"}} if openai else {"error": "unauthorized"}
        self._error(Reply.status(401, body=body), openai=openai)
        return True

    def _recv(self) -> RequestRecord:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = RequestRecord(self.command, self.path, headers, body, time.monotonic())
        self.owner._record(rec)
        return rec

    def _error(self, reply: Reply, openai: bool) -> None:
        phrase = self.responses.get(reply.code, ("Error",))[0]
        body = reply.body
        if body is None:  # mimic each service's error envelope
            kind = "rate_limit_exceeded" if reply.code == 429 else phrase.lower().replace(" ", "_")
            body = {"error": {"message": phrase, "type": kind, "code": kind}} if openai \
                else {"error": phrase}
        ra = reply.retry_after
        self._send(reply.code, body, {} if ra is None else {"Retry-After": f"{ra:g}"})

    def _send(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``obj`` as JSON (a ``str`` is sent verbatim)."""
        data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _hostile(self, reply: Reply) -> None:
        """A flood (``reply.size`` bytes, written a block at a time) or a drip (a byte at a time)."""
        self.send_response(reply.code)
        self.send_header("Content-Type", "application/json")
        if reply.declare_length:
            self.send_header("Content-Length", str(reply.size))
        self.end_headers()
        if reply.drip:
            while not self.owner.stopping.wait(reply.drip):
                self.wfile.write(b" ")
                self.wfile.flush()
            return
        head = b'{"padding": "'
        self.wfile.write(head)
        block = b"x" * 65536
        left = reply.size - len(head)
        while left > 0 and not self.owner.stopping.is_set():
            self.wfile.write(block[:left])
            left -= len(block)

    def _stream(self, ctype: str, pieces: list[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.end_headers()  # no Content-Length: the HTTP/1.0 body ends at close
        for p in pieces:
            self.wfile.write(p.encode())
            self.wfile.flush()
