"""A configured provider that cannot serve the run stops it at the start, with one message.

The message (exit code 2, no traceback) names the provider, the URL it tried without credentials,
and the fix. ``--allow-fallback`` runs the scenario on the agents' heuristics instead and says so in
the banner and in summary.json.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llm_sched.llm.probes import probe_ollama, probe_openai
from tests.conftest import Cli
from tests.standin import Reply, StandIn

MODEL = "standin-7b"
SECRETS = ("SECRETPASS", "SECRETQ")
FIXES = {"openai": "OPENAI_BASE_URL", "ollama": "OLLAMA_HOST"}  # each provider's fix names its settings


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server() -> Iterator[StandIn]:
    with StandIn(models=[MODEL]) as standin:
        yield standin


@dataclass(frozen=True)
class Case:
    """How to misconfigure a provider: the settings, the URL the message must show, and its cause."""

    provider: str
    settings: Callable[[StandIn, int], dict[str, str]]  # (the stand-in, a closed port) -> settings
    url: Callable[[StandIn, int], str]
    cause: str
    quirks: dict[str, Any] = field(default_factory=dict)  # StandIn attributes to set


def _port(server: StandIn) -> str:
    return server.url.rsplit(":", 1)[1]


CASES = {
    "openai-connection-refused": Case(
        "openai", lambda s, port: {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_MODEL": MODEL},
        lambda s, port: f"http://127.0.0.1:{port}/v1/models", "connection refused"),
    "ollama-connection-refused": Case(
        "ollama", lambda s, port: {"OLLAMA_HOST": f"http://127.0.0.1:{port}", "OLLAMA_MODEL": MODEL},
        lambda s, port: f"http://127.0.0.1:{port}/api/tags", "connection refused"),
    "openai-dns-failure": Case(
        "openai", lambda s, port: {"OPENAI_BASE_URL": "http://llm-sched-test.invalid/v1", "OPENAI_MODEL": MODEL},
        lambda s, port: "http://llm-sched-test.invalid/v1/models", "host name not found"),
    "ollama-dns-failure": Case(
        "ollama", lambda s, port: {"OLLAMA_HOST": "http://ollama.invalid:11434", "OLLAMA_MODEL": MODEL},
        lambda s, port: "http://ollama.invalid:11434/api/tags", "host name not found"),
    "openai-key-rejected-401": Case(
        "openai", lambda s, port: {"OPENAI_BASE_URL": f"{s.url}/v1", "OPENAI_MODEL": MODEL, "OPENAI_API_KEY": "wrong-key"},
        lambda s, port: f"{s.url}/v1/models", "the API key was rejected (HTTP 401)",
        {"api_key": "right-key"}),
    "openai-forbidden-403": Case(
        "openai", lambda s, port: {"OPENAI_BASE_URL": f"{s.url}/v1", "OPENAI_MODEL": MODEL},
        lambda s, port: f"{s.url}/v1/models", "HTTP 403", {"listing": Reply.status(403)}),
    "ollama-forbidden-403": Case(
        "ollama", lambda s, port: {"OLLAMA_HOST": s.url, "OLLAMA_MODEL": MODEL},
        lambda s, port: f"{s.url}/api/tags", "HTTP 403", {"listing": Reply.status(403)}),
    "openai-unknown-model": Case(
        "openai", lambda s, port: {"OPENAI_BASE_URL": f"{s.url}/v1", "OPENAI_MODEL": "no-such-model"},
        lambda s, port: f"{s.url}/v1/models", "does not serve the model no-such-model"),
    "ollama-model-not-pulled": Case(
        "ollama", lambda s, port: {"OLLAMA_HOST": s.url, "OLLAMA_MODEL": "no-such-model:7b"},
        lambda s, port: f"{s.url}/api/tags", "no-such-model:7b is not pulled"),
}
def configure(cli: Cli, server: StandIn, case: Case) -> str:
    """Set the case up; returns the URL the message must show."""
    for name, value in case.quirks.items():
        setattr(server, name, value)
    port = closed_port()  # per test: a port released long ago may have been taken since
    cli.env.update(case.settings(server, port), LLM_SCHED_TIMEOUT="2")
    return case.url(server, port)


def assert_one_clean_message(result: Any, provider: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr naming the provider and the fix; returns it."""
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert result.out.strip() == ""
    (message,) = result.err.strip().splitlines()
    assert message.startswith("error: ")
    assert f"the {provider} provider cannot be reached" in message
    assert FIXES[provider] in message
    assert "--allow-fallback" in message
    return message


@pytest.mark.parametrize("name", list(CASES))
def test_an_unreachable_provider_stops_the_run_with_one_message(cli: Cli, server: StandIn, name: str) -> None:
    case = CASES[name]
    url = configure(cli, server, case)
    result = cli("--scenario", "healthy", "--provider", case.provider, timeout=30)
    message = assert_one_clean_message(result, case.provider)
    assert case.cause in message
    assert url in message
    assert not list(cli.cwd.rglob("summary.json"))  # stopped before any decision


def test_an_ollama_model_not_pulled_stops_the_run_naming_the_model_and_the_pull_command(
        cli: Cli, server: StandIn) -> None:
    configure(cli, server, CASES["ollama-model-not-pulled"])
    message = assert_one_clean_message(cli("--scenario", "healthy", "--provider", "ollama"), "ollama")
    assert "no-such-model:7b is not pulled" in message
    assert f"has: {MODEL}" in message
    assert "ollama pull no-such-model:7b" in message


def test_credentials_in_the_url_never_appear_in_the_message(cli: Cli) -> None:
    port = closed_port()
    cli.env.update(OPENAI_BASE_URL=f"http://user:SECRETPASS@127.0.0.1:{port}/v1?key=SECRETQ", OPENAI_MODEL=MODEL,
                   LLM_SCHED_TIMEOUT="2")
    result = cli("--scenario", "healthy", "--provider", "openai")
    message = assert_one_clean_message(result, "openai")
    assert f"http://127.0.0.1:{port}/v1" in message
    for secret in (*SECRETS, "user:"):
        assert secret not in result.text


def test_a_server_behind_a_url_with_userinfo_is_probed_at_its_host(server: StandIn) -> None:
    base = f"http://user:SECRETPASS@127.0.0.1:{_port(server)}"
    assert probe_openai(f"{base}/v1", MODEL, None).ok
    assert probe_ollama(base, MODEL).ok


def test_a_query_key_never_appears_when_the_ollama_host_answers_something_else(cli: Cli, server: StandIn) -> None:
    server.listing = Reply(code=200, body={"object": "list", "data": []})  # answers, but not as Ollama does
    cli.env.update(OLLAMA_HOST=f"{server.url}/?key=SECRETQ", OLLAMA_MODEL=MODEL, LLM_SCHED_TIMEOUT="2")
    result = cli("--scenario", "healthy", "--provider", "ollama")
    message = assert_one_clean_message(result, "ollama")
    assert "/api/tags" in message  # the URL probed, its query string left out
    assert "SECRETQ" not in result.text


# -- --allow-fallback ---------------------------------------------------------------------------------
def _run_files(cli: Cli) -> tuple[Path, dict[str, Any]]:
    (run,) = [p for p in (cli.cwd / "runs").iterdir() if p.is_dir()]
    return run, json.loads((run / "summary.json").read_text())


@pytest.mark.parametrize("name", ["openai-connection-refused", "openai-key-rejected-401", "ollama-model-not-pulled"])
def test_allow_fallback_runs_on_heuristics_and_says_so(cli: Cli, server: StandIn, name: str) -> None:
    case = CASES[name]
    configure(cli, server, case)
    result = cli("--scenario", "healthy", "--provider", case.provider, "--allow-fallback")
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    banner = " ".join(result.out.split())  # the console wraps long lines
    assert "fallback to heuristics (--allow-fallback)" in banner
    assert case.cause in banner
    run, summary = _run_files(cli)
    source = summary["source"]
    assert source["kind"] == "heuristic"
    assert "--allow-fallback" in source["detail"] and case.cause in source["detail"]
    assert summary["llm_calls"] == 0 and summary["committed"] == summary["jobs"] > 0
    assert not [r for r in server.requests if r.method == "POST"]  # no model was asked anything
    events = (run / "events.jsonl").read_text()
    assert "fallback to heuristics (--allow-fallback)" in events


def test_allow_fallback_keeps_credentials_in_the_url_out_of_the_banner_and_run_files(cli: Cli) -> None:
    cli.env.update(OPENAI_BASE_URL=f"http://user:SECRETPASS@127.0.0.1:{closed_port()}/v1?key=SECRETQ",
                   OPENAI_MODEL=MODEL, LLM_SCHED_TIMEOUT="2")
    result = cli("--scenario", "healthy", "--provider", "openai", "--allow-fallback")
    assert result.code == 0, result.text
    assert "fallback to heuristics (--allow-fallback)" in " ".join(result.out.split())
    run, summary = _run_files(cli)
    assert summary["source"]["kind"] == "heuristic"
    for secret in SECRETS:
        assert secret not in result.text
        for path in cli.cwd.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
