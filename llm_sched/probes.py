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
    """What a probe found: ``ok`` means the endpoint can serve a run as configured; ``fix`` says
    what to do when it cannot."""

    ok: bool
    detail: str
    fix: str = ""


def public_url(url: str) -> str:
    """``url`` as it may be shown: no user, password or query string (they may hold a key)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparseable URL)"
    if not parts.scheme:
        return url.split("?", 1)[0]
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


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


def join_url(base: str, path: str) -> str:
    """``base`` with ``path`` appended to its path (not after its query string)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))


def _get(url: str, headers: dict[str, str], timeout: float) -> _Response:
    """GET ``url``; HTTP error statuses are returned, connection failures raise ``OSError``.

    Credentials in the URL (``user:password@``) are sent as Basic authentication, as HTTP clients do,
    rather than taken for part of the host name."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is not None:
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(login).decode(), **headers}
        host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return _Response(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return _Response(exc.code, exc.read() if exc.fp else b"")


def probe_ollama(host: str, model: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Ask Ollama's ``/api/tags`` whether it runs and has ``model`` pulled."""
    url = join_url(host, "/api/tags")
    try:
        response = _get(url, {}, timeout)
    except OSError as exc:
        return ProbeResult(False, f"{public_url(url)}: {describe_error(exc, timeout)}")
    if response.status != 200:
        return ProbeResult(False, f"{public_url(url)}: HTTP {response.status}")
    try:
        names = [m.get("name") or m.get("model") for m in json.loads(response.body)["models"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ProbeResult(False, f"{public_url(url)}: answered, but not with Ollama's model list")
    wanted = {model, f"{model}:latest"}
    if wanted.intersection(names):
        return ProbeResult(True, f"answers; model {model} is present")
    shown = ", ".join(sorted(n for n in names if n)[:5]) or "none"
    return ProbeResult(False, f"{public_url(url)} answers, but model {model} is not pulled (has: {shown}); "
                              f"run `ollama pull {model}`")


def _answered(url: str, headers: dict[str, str], timeout: float) -> ProbeResult | _Response:
    """The server's response, or why there is none worth having (unreachable, key refused, 5xx)."""
    try:
        response = _get(url, headers, timeout)
    except OSError as exc:
        return ProbeResult(False, f"{public_url(url)}: {describe_error(exc, timeout)}")
    if response.status in (401, 403):
        return ProbeResult(False, f"{public_url(url)}: the API key was rejected (HTTP {response.status})")
    if response.status >= 500:
        return ProbeResult(False, f"{public_url(url)}: server error (HTTP {response.status})")
    return response


def _probe_keyed(url: str, headers: dict[str, str], timeout: float) -> ProbeResult:
    # Any other HTTP answer proves reachability.
    answer = _answered(url, headers, timeout)
    return answer if isinstance(answer, ProbeResult) else ProbeResult(True, f"reachable (HTTP {answer.status})")


def probe_sambanova(api_base: str, api_key: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Ask SambaNova Cloud's OpenAI-compatible ``/models`` whether it answers and takes the key."""
    return _probe_keyed(join_url(api_base, "/models"), {"Authorization": f"Bearer {api_key}"}, timeout)


def probe_sambastudio(url: str, api_key: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Check that the SambaStudio endpoint answers HTTP (it only serves POST, so 405 is fine)."""
    return _probe_keyed(url, {"key": api_key, "Authorization": f"Bearer {api_key}"}, timeout)


def probe_openai(base_url: str, model: str, api_key: str | None, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Ask an OpenAI-compatible server's ``/models`` whether it answers, takes the key and serves ``model``."""
    url = join_url(base_url, "/models")
    response = _answered(url, {"Authorization": f"Bearer {api_key}"} if api_key else {}, timeout)
    if isinstance(response, ProbeResult):
        return response
    if response.status >= 400:
        return ProbeResult(False, f"{public_url(url)}: HTTP {response.status}")
    try:
        served = [m.get("id") for m in json.loads(response.body)["data"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ProbeResult(True, "reachable (its model list could not be read)")
    if served and model not in served:
        shown = ", ".join(sorted(str(m) for m in served if m)[:5])
        return ProbeResult(False, f"{public_url(url)} does not serve the model {model} (it serves: {shown})")
    return ProbeResult(True, f"answers; model {model} is served")


# What each provider needs configured, and what to do when it does not answer.
NEEDS = {
    "sambastudio": "set SAMBASTUDIO_URL and SAMBASTUDIO_API_KEY",
    "sambanova": "set SAMBANOVA_API_KEY",
    "openai": "set OPENAI_BASE_URL and OPENAI_MODEL",
    "ollama": "set OLLAMA_HOST or OLLAMA_MODEL",
}
_FIXES = {
    "ollama": "Start the server (ollama serve), pull the model (ollama pull NAME) or set OLLAMA_HOST/OLLAMA_MODEL",
    "openai": "Start the server, or set OPENAI_BASE_URL, OPENAI_MODEL and OPENAI_API_KEY to one that answers",
    "sambanova": "Check SAMBANOVA_API_KEY and SAMBANOVA_API_BASE (python main.py --setup-env)",
    "sambastudio": "Check SAMBASTUDIO_URL and SAMBASTUDIO_API_KEY (python main.py --setup-env)",
}


def probe_configured(settings: Any, provider: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Probe ``provider`` as ``settings`` (a :class:`llm_sched.config.Settings`) configure it."""
    result = _probe(settings, provider, timeout)
    return result if result.ok else ProbeResult(False, result.detail, _FIXES.get(provider, ""))


def _probe(settings: Any, provider: str, timeout: float) -> ProbeResult:
    if provider == "sambastudio":
        if not settings.sambastudio_url or settings.sambastudio_api_key is None:
            return ProbeResult(False, f"not configured ({NEEDS[provider]})")
        return probe_sambastudio(settings.sambastudio_url, settings.sambastudio_api_key.get_secret_value(), timeout)
    if provider == "sambanova":
        if settings.sambanova_api_key is None:
            return ProbeResult(False, f"not configured ({NEEDS[provider]})")
        return probe_sambanova(settings.sambanova_api_base, settings.sambanova_api_key.get_secret_value(), timeout)
    if provider == "openai":
        if not settings.openai_base_url or not settings.openai_model:
            return ProbeResult(False, f"not configured ({NEEDS[provider]})")
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return probe_openai(settings.openai_base_url, settings.openai_model, key, timeout)
    return probe_ollama(settings.effective_ollama_host, settings.ollama_model, timeout)
