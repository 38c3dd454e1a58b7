"""Reachability probes for the LLM endpoints, used by ``--check`` and ``--setup-env``.

Plain ``urllib`` with a short timeout: a probe must answer in about two seconds and must not pull
in LangChain or httpx, so that ``--check`` stays fast.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ProbeResult:
    """What a probe found: ``ok`` means the endpoint can serve a run as configured."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes


def describe_error(exc: BaseException, timeout: float) -> str:
    """A short human cause for a failed connection ("connection refused", "no answer in 2 s")."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def _get(url: str, headers: dict[str, str], timeout: float) -> _Response:
    """GET ``url``; HTTP error statuses are returned, connection failures raise ``OSError``."""
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return _Response(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return _Response(exc.code, exc.read() if exc.fp else b"")


def probe_ollama(host: str, model: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Ask Ollama's ``/api/tags`` whether it runs and has ``model`` pulled."""
    url = f"{host.rstrip('/')}/api/tags"
    try:
        response = _get(url, {}, timeout)
    except OSError as exc:
        return ProbeResult(False, f"{url}: {describe_error(exc, timeout)}")
    if response.status != 200:
        return ProbeResult(False, f"{url}: HTTP {response.status}")
    try:
        names = [m.get("name") or m.get("model") for m in json.loads(response.body)["models"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ProbeResult(False, f"{url}: answered, but not with Ollama's model list")
    wanted = {model, f"{model}:latest"}
    if wanted.intersection(names):
        return ProbeResult(True, f"answers; model {model} is present")
    shown = ", ".join(sorted(n for n in names if n)[:5]) or "none"
    return ProbeResult(False, f"answers, but model {model} is not pulled (has: {shown}); run `ollama pull {model}`")


def _probe_keyed(url: str, headers: dict[str, str], timeout: float) -> ProbeResult:
    # Any HTTP answer proves reachability; only 401/403 (key) and 5xx (service) are failures.
    try:
        response = _get(url, headers, timeout)
    except OSError as exc:
        return ProbeResult(False, f"{url}: {describe_error(exc, timeout)}")
    if response.status in (401, 403):
        return ProbeResult(False, f"{url}: the API key was rejected (HTTP {response.status})")
    if response.status >= 500:
        return ProbeResult(False, f"{url}: server error (HTTP {response.status})")
    return ProbeResult(True, f"reachable (HTTP {response.status})")


def probe_sambanova(api_base: str, api_key: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Ask SambaNova Cloud's OpenAI-compatible ``/models`` whether it answers and takes the key."""
    return _probe_keyed(f"{api_base.rstrip('/')}/models", {"Authorization": f"Bearer {api_key}"}, timeout)


def probe_sambastudio(url: str, api_key: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Check that the SambaStudio endpoint answers HTTP (it only serves POST, so 405 is fine)."""
    return _probe_keyed(url, {"key": api_key, "Authorization": f"Bearer {api_key}"}, timeout)
