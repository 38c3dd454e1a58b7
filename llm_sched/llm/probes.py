"""Reachability probes for the LLM endpoints, used by ``--check``, ``--setup-env`` and a run's start.

Plain ``urllib`` with a short timeout: a probe must answer in about two seconds and must not pull
in LangChain or httpx, so that ``--check`` stays fast. Every answer is read bounded in size (the
client's limit) and in time (a server that drips a byte a second does not hold a probe up), and what
a probe reports is one printable line: a server's model names and error bodies are its own text.

A model list proves that a server runs, not that it answers: ``--check`` (``chat=True``) also sends
the chat endpoint one tiny request constrained to a JSON schema, as a run's calls are, under a run's
per-call timeout, and calls the provider ready only when a valid answer comes back.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from llm_sched.config import DEFAULT_MAX_RESPONSE_BYTES
from llm_sched.llm.extract import extract_json_object
from llm_sched.llm.openai_transport import ResponseForm, refuses_json_schema, response_format
from llm_sched.llm.transport import UnreadAnswer, check_answer_headers, read_bounded
from llm_sched.safe_text import one_line
from llm_sched.scrub import RAW_LIMIT, Scrubber, clip

PROBE_TIMEOUT_S = 2.0
CHAT_PROBED = ("ollama", "openai", "sambanova")  # SambaStudio's generic API has no chat form to ask
CHAT_QUESTION = "Are you ready? Answer yes or no."
NAME_LIMIT = 60  # how much of each model name a server lists is shown


class ReadyAnswer(BaseModel):
    """The chat probe's answer: its schema is what the endpoint is asked for, and what validates it."""

    ready: Literal["yes", "no"]


@dataclass(frozen=True)
class ProbeResult:
    """What a probe found: ``ok`` means the endpoint can serve a run as configured; ``fix`` says
    what to do when it cannot. ``detail`` is made one printable line of bounded length whatever
    a server put in it."""

    ok: bool
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", clip(one_line(self.detail)))


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

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


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


def _request(url: str, headers: dict[str, str], timeout: float, limit: int, data: bytes | None = None) -> _Response:
    """GET ``url`` (POST ``data`` as JSON when given); HTTP error statuses are returned, connection
    failures and timeouts raise ``OSError``, an answer over ``limit`` bytes :class:`UnreadAnswer`.
    The whole exchange takes at most about twice ``timeout``: each read waits ``timeout``, and no
    read starts after ``timeout``.

    Credentials in the URL (``user:password@``) are sent as Basic authentication, as HTTP clients do,
    rather than taken for part of the host name."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    if parts.username is not None:
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(login).decode(), **headers}
        host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    if data is not None:
        headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(url, data=data, headers=headers, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return _Response(response.status, _read(response, limit, deadline))
    except urllib.error.HTTPError as exc:
        # Of an error only the start is read: enough to say what went wrong.
        return _Response(exc.code, _read(exc, RAW_LIMIT, deadline, cut=True) if exc.fp else b"")


def _read(response: Any, limit: int, deadline: float, cut: bool = False) -> bytes:
    headers = response.headers
    check_answer_headers(headers.get("Content-Encoding"), None if cut else headers.get("Content-Length"), limit)
    return read_bounded(response.read1, limit, deadline, cut=cut)


def _fetch(url: str, headers: dict[str, str], timeout: float, limit: int) -> _Response | ProbeResult:
    """The server's answer to a GET, or why there is none (unreachable, silent, too large)."""
    try:
        return _request(url, headers, timeout, limit)
    except OSError as exc:
        return ProbeResult(False, f"{public_url(url)}: {describe_error(exc, timeout)}")
    except UnreadAnswer as exc:
        return ProbeResult(False, f"{public_url(url)}: {exc}")


def _names(names: list[Any]) -> str:
    """Up to five of the model names a server listed, each cut short: they are the server's text."""
    return ", ".join(sorted(str(n)[:NAME_LIMIT] for n in names if n)[:5]) or "none"


def probe_ollama(host: str, model: str, timeout: float = PROBE_TIMEOUT_S,
                 limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> ProbeResult:
    """Ask Ollama's ``/api/tags`` whether it runs and has ``model`` pulled."""
    url = join_url(host, "/api/tags")
    response = _fetch(url, {}, timeout, limit)
    if isinstance(response, ProbeResult):
        return response
    if response.status != 200:
        return ProbeResult(False, f"{public_url(url)}: HTTP {response.status}")
    try:
        names = [m.get("name") or m.get("model") for m in json.loads(response.body)["models"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ProbeResult(False, f"{public_url(url)}: answered, but not with Ollama's model list")
    if {model, f"{model}:latest"}.intersection(n for n in names if isinstance(n, str)):
        return ProbeResult(True, f"answers; model {model} is present")
    return ProbeResult(False, f"{public_url(url)} answers, but model {model} is not pulled (has: {_names(names)}); "
                              f"run `ollama pull {model}`")


def _answered(url: str, headers: dict[str, str], timeout: float, limit: int) -> ProbeResult | _Response:
    """The server's response, or why there is none worth having (unreachable, key refused, 5xx)."""
    response = _fetch(url, headers, timeout, limit)
    if isinstance(response, ProbeResult):
        return response
    if response.status in (401, 403):
        return ProbeResult(False, f"{public_url(url)}: the API key was rejected (HTTP {response.status})")
    if response.status >= 500:
        return ProbeResult(False, f"{public_url(url)}: server error (HTTP {response.status})")
    return response


def _probe_keyed(url: str, headers: dict[str, str], timeout: float, limit: int) -> ProbeResult:
    # Any other HTTP answer proves reachability.
    answer = _answered(url, headers, timeout, limit)
    return answer if isinstance(answer, ProbeResult) else ProbeResult(True, f"reachable (HTTP {answer.status})")


def probe_sambanova(api_base: str, api_key: str, timeout: float = PROBE_TIMEOUT_S,
                    limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> ProbeResult:
    """Ask SambaNova Cloud's OpenAI-compatible ``/models`` whether it answers and takes the key."""
    return _probe_keyed(join_url(api_base, "/models"), {"Authorization": f"Bearer {api_key}"}, timeout, limit)


def probe_sambastudio(url: str, api_key: str, timeout: float = PROBE_TIMEOUT_S,
                      limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> ProbeResult:
    """Check that the SambaStudio endpoint answers HTTP (it only serves POST, so 405 is fine)."""
    return _probe_keyed(url, {"key": api_key, "Authorization": f"Bearer {api_key}"}, timeout, limit)


def probe_openai(base_url: str, model: str, api_key: str | None, timeout: float = PROBE_TIMEOUT_S,
                 limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> ProbeResult:
    """Ask an OpenAI-compatible server's ``/models`` whether it answers, takes the key and serves ``model``."""
    url = join_url(base_url, "/models")
    response = _answered(url, _bearer(api_key), timeout, limit)
    if isinstance(response, ProbeResult):
        return response
    if response.status >= 400:
        return ProbeResult(False, f"{public_url(url)}: HTTP {response.status}")
    try:
        served = [m.get("id") for m in json.loads(response.body)["data"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ProbeResult(True, "reachable (its model list could not be read)")
    if served and model not in served:
        return ProbeResult(False, f"{public_url(url)} does not serve the model {model} (it serves: {_names(served)})")
    return ProbeResult(True, f"answers; model {model} is served")


def _bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


# -- the chat probe -------------------------------------------------------------------------------------
def _question() -> dict[str, str]:
    return {"role": "user", "content": CHAT_QUESTION}


def probe_ollama_chat(host: str, model: str, timeout: float, limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> ProbeResult:
    """Ask Ollama's ``/api/chat`` one question with ``format`` set to :class:`ReadyAnswer`'s schema."""
    body = {"model": model, "messages": [_question()], "format": ReadyAnswer.model_json_schema(), "stream": False,
            "options": {"temperature": 0}}
    return _judge_chat(join_url(host, "/api/chat"), {}, [body], timeout, limit, lambda data: data["message"]["content"])


def probe_openai_chat(base_url: str, model: str, api_key: str | None, timeout: float,
                      limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> ProbeResult:
    """Ask an OpenAI-compatible ``/chat/completions`` one question in :class:`ReadyAnswer`'s schema:
    ``json_schema`` first, then llama.cpp's ``json_object`` form if the server refuses that."""

    def body(form: ResponseForm) -> dict[str, Any]:
        return {"model": model, "messages": [_question()], "response_format": response_format(ReadyAnswer, form),
                "temperature": 0}

    return _judge_chat(join_url(base_url, "/chat/completions"), _bearer(api_key),
                       [body("json_schema"), body("json_object")], timeout, limit,
                       lambda data: data["choices"][0]["message"]["content"], secret=api_key)


def _judge_chat(url: str, headers: dict[str, str], bodies: list[dict[str, Any]], timeout: float, limit: int,
                text_of: Callable[[Any], str], secret: str | None = None) -> ProbeResult:
    """Post ``bodies[0]`` (the next one only if the server refuses the response format) and say
    whether a valid :class:`ReadyAnswer` came back, and how fast."""
    started = time.monotonic()
    for body in bodies:
        answer = _post(url, headers, body, timeout, limit)
        if isinstance(answer, ProbeResult) or not refuses_json_schema(answer.status, answer.text):
            break
    took = time.monotonic() - started
    if isinstance(answer, ProbeResult):
        return answer
    if answer.status != 200:
        return _chat_refused(url, answer, secret)
    ready = _ready_answer(answer.body, text_of)
    if isinstance(ready, str):
        return ProbeResult(False, f"{public_url(url)}: the chat endpoint answered, but not with the JSON asked for "
                                  f"({_scrubbed(ready, secret)})")
    return ProbeResult(True, f"its chat endpoint answered a constrained request (ready: {ready.ready}) in {took:.2f} s")


def _ready_answer(body: bytes, text_of: Callable[[Any], str]) -> ReadyAnswer | str:
    """The answer in a chat response, or what is wrong with it."""
    try:
        text = text_of(json.loads(body))
    except (ValueError, KeyError, IndexError, TypeError):
        return "not a chat response"
    try:
        return ReadyAnswer.model_validate(extract_json_object(str(text)))
    except ValueError as exc:  # no JSON object, or one that does not validate (ValidationError is a ValueError)
        if isinstance(exc, ValidationError):
            return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors())[:200]
        return str(exc)


def _post(url: str, headers: dict[str, str], body: dict[str, Any], timeout: float,
          limit: int) -> _Response | ProbeResult:
    try:
        return _request(url, headers, timeout, limit, json.dumps(body).encode())
    except OSError as exc:
        cause = describe_error(exc, timeout)
        if cause.startswith("no answer within"):
            cause = f"the chat endpoint did not answer within {timeout:g} s (LLM_SCHED_TIMEOUT)"
        return ProbeResult(False, f"{public_url(url)}: {cause}")
    except UnreadAnswer as exc:
        return ProbeResult(False, f"{public_url(url)}: the chat endpoint's {exc}")


def _chat_refused(url: str, answer: _Response, secret: str | None) -> ProbeResult:
    if answer.status in (401, 403):
        return ProbeResult(False, f"{public_url(url)}: the API key was rejected (HTTP {answer.status})")
    excerpt = clip(_scrubbed(answer.text, secret), 200)
    return ProbeResult(False, f"{public_url(url)}: the chat endpoint answered HTTP {answer.status}: {excerpt}")


def _scrubbed(text: str, secret: str | None) -> str:
    """A server's text with the key (and anything credential-shaped) removed: it may echo the request."""
    return Scrubber([secret] if secret else [])(text)


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


def probe_configured(settings: Any, provider: str, timeout: float = PROBE_TIMEOUT_S, *,
                     chat: bool = False) -> ProbeResult:
    """Probe ``provider`` as ``settings`` (a :class:`llm_sched.config.Settings`) configure it; with
    ``chat``, then ask its chat endpoint one constrained question under a run's per-call timeout."""
    limit = settings.llm_max_response_bytes
    result = _probe(settings, provider, timeout, limit)
    if result.ok and chat and provider in CHAT_PROBED:
        answer = _probe_chat(settings, provider, settings.llm_timeout, limit)
        result = ProbeResult(True, f"{result.detail}; {answer.detail}") if answer.ok else answer
    return result if result.ok else ProbeResult(False, result.detail, _FIXES.get(provider, ""))


def _probe(settings: Any, provider: str, timeout: float, limit: int) -> ProbeResult:
    if provider == "sambastudio":
        if not settings.sambastudio_url or settings.sambastudio_api_key is None:
            return ProbeResult(False, f"not configured ({NEEDS[provider]})")
        return probe_sambastudio(settings.sambastudio_url, settings.sambastudio_api_key.get_secret_value(), timeout,
                                 limit)
    if provider == "sambanova":
        if settings.sambanova_api_key is None:
            return ProbeResult(False, f"not configured ({NEEDS[provider]})")
        return probe_sambanova(settings.sambanova_api_base, settings.sambanova_api_key.get_secret_value(), timeout,
                               limit)
    if provider == "openai":
        if not settings.openai_base_url or not settings.openai_model:
            return ProbeResult(False, f"not configured ({NEEDS[provider]})")
        return probe_openai(settings.openai_base_url, settings.openai_model, _key(settings.openai_api_key), timeout,
                            limit)
    return probe_ollama(settings.effective_ollama_host, settings.ollama_model, timeout, limit)


def _probe_chat(settings: Any, provider: str, timeout: float, limit: int) -> ProbeResult:
    if provider == "sambanova":
        return probe_openai_chat(settings.sambanova_api_base, settings.sambanova_model,
                                 _key(settings.sambanova_api_key), timeout, limit)
    if provider == "openai":
        return probe_openai_chat(settings.openai_base_url, settings.openai_model, _key(settings.openai_api_key),
                                 timeout, limit)
    return probe_ollama_chat(settings.effective_ollama_host, settings.ollama_model, timeout, limit)


def _key(secret: Any) -> str | None:
    return secret.get_secret_value() if secret is not None else None
