"""``--check``: what is ready and what is not, as data (``CheckReport``) and as a rich table.

Only configured endpoints are probed, concurrently: each model list with a two-second timeout,
then (for Ollama, OpenAI-compatible servers and SambaNova) the chat endpoint with one tiny request
constrained to a JSON schema, under a run's per-call timeout, since a server may list its models
while its chat endpoint hangs. Keys are only ever shown redacted, and every text shown is made
printable (a server's answers may hold terminal escape sequences). Nothing here imports LangChain or
LangGraph.
"""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

from llm_sched.config import REMOTE_PROVIDERS, Settings, redact
from llm_sched.llm.probes import NEEDS, PROBE_TIMEOUT_S, ProbeResult, probe_configured, public_url
from llm_sched.safe_text import printable

Status = Literal["ok", "warn", "fail", "off"]
DIST_NAME = "llm-sched"
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class CheckRow:
    section: str
    item: str
    status: Status
    detail: str


@dataclass(frozen=True)
class CheckReport:
    rows: tuple[CheckRow, ...]
    provider: str
    verdict: str
    exit_code: int


def _python_row() -> CheckRow:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info[:2] >= MIN_PYTHON
    need = ".".join(map(str, MIN_PYTHON))
    return CheckRow("python", "Python", "ok" if ok else "fail", f"{version} (needs >= {need})")


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _package_rows() -> list[CheckRow]:
    """One row per dependency declared in the installed package's metadata (pyproject.toml)."""
    try:
        requirements = metadata.requires(DIST_NAME) or []
    except metadata.PackageNotFoundError:
        return [CheckRow("packages", DIST_NAME, "fail", "not installed: run `make demo` or `pip install -e .`")]
    rows = []
    for requirement in requirements:
        match = _REQ_NAME.match(requirement)
        if not match:
            continue
        name = match.group(1)
        extra = re.search(r'extra\s*==\s*"([^"]+)"', requirement)
        try:
            version = metadata.version(name)
            rows.append(CheckRow("packages", name, "ok", version))
        except metadata.PackageNotFoundError:
            if extra:
                rows.append(CheckRow("packages", name, "warn", f"not installed (optional, extra [{extra.group(1)}])"))
            else:
                rows.append(CheckRow("packages", name, "fail", "not installed (required)"))
    return rows


def _endpoint(settings: Settings, provider: str) -> str:
    if provider == "sambastudio":
        url = public_url(settings.sambastudio_url) if settings.sambastudio_url else "(no URL)"
        return f"{url}, key {redact(settings.sambastudio_api_key)}"
    if provider == "sambanova":
        key = redact(settings.sambanova_api_key)
        return f"{public_url(settings.sambanova_api_base)}, model {settings.sambanova_model}, key {key}"
    if provider == "openai":
        url = public_url(settings.openai_base_url) if settings.openai_base_url else "(no URL)"
        key = redact(settings.openai_api_key) if settings.openai_api_key else "none"
        return f"{url}, model {settings.openai_model or '(not set)'}, key {key}"
    return f"{public_url(settings.effective_ollama_host)}, model {settings.ollama_model}"


def probe_provider(settings: Settings, provider: str, timeout: float = PROBE_TIMEOUT_S, *,
                   chat: bool = False) -> ProbeResult:
    """Probe one remote provider with the given settings (``chat``: its chat endpoint too)."""
    if not settings.is_configured(provider):
        return ProbeResult(False, f"not configured ({NEEDS[provider]})")
    return probe_configured(settings, provider, timeout, chat=chat)


def _local_row(settings: Settings) -> CheckRow:
    """The local model: its file and size; loaded and asked one constrained question when it is the
    provider (loading it on every --check would slow the check down for everyone else)."""
    from llm_sched.errors import UserError
    from llm_sched.llm.local_transport import default_model_path, runtime

    try:
        path = settings.local_model or default_model_path()
    except UserError as exc:
        return CheckRow("providers", "local", "off", str(exc))
    if not path.is_file():
        return CheckRow("providers", "local", "fail", f"model file {path} does not exist")
    described = f"{path} ({path.stat().st_size / 1e6:.0f} MB), {runtime()}"
    if settings.resolved_provider() != "local":
        return CheckRow("providers", "local", "ok", f"{described}; --check --provider local loads it and asks it once")
    from llm_sched.llm.factory import build_transport, run_probe_answer

    try:
        transport = build_transport("local", settings)
        import time

        started = time.monotonic()
        answer = run_probe_answer(transport)
        took = time.monotonic() - started
    except UserError as exc:
        return CheckRow("providers", "local", "fail", f"{described}: {exc}")
    return CheckRow("providers", "local", "ok", f"{described}; loaded in {transport.loaded.load_s:.2f} s; "
                    f"constrained probe answer {answer!r} in {took:.2f} s")


def _provider_rows(settings: Settings, probes: dict[str, ProbeResult]) -> list[CheckRow]:
    rows = []
    for provider in REMOTE_PROVIDERS:
        if provider not in probes:
            rows.append(CheckRow("providers", provider, "off", f"not configured ({NEEDS[provider]})"))
            continue
        result = probes[provider]
        status: Status = "ok" if result.ok else "fail"
        rows.append(CheckRow("providers", provider, status, f"{_endpoint(settings, provider)}: {result.detail}"))
    rows.append(_local_row(settings))
    rows.append(CheckRow("providers", "heuristic", "ok", "always available (no model: agents use their heuristics)"))
    return rows


def _cassette_row(settings: Settings) -> CheckRow:
    folder = settings.cassettes_dir
    cassettes = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if cassettes:
        return CheckRow("providers", "replay", "ok", f"{len(cassettes)} cassettes in {folder}")
    return CheckRow("providers", "replay", "warn", f"no cassettes in {folder}: replay falls back to heuristics")


def _probe_all(settings: Settings, timeout: float) -> dict[str, ProbeResult]:
    wanted = [p for p in REMOTE_PROVIDERS if settings.is_configured(p) or settings.provider == p]
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        futures = {p: pool.submit(probe_provider, settings, p, timeout, chat=True) for p in wanted}
        return {p: f.result() for p, f in futures.items()}


def _verdict(
    settings: Settings, probes: dict[str, ProbeResult], broken_packages: bool, cassettes: bool, rows: list[CheckRow]
) -> tuple[str, int]:
    provider = settings.resolved_provider()
    how = "chosen by LLM_SCHED_PROVIDER" if settings.provider != "auto" else "auto"
    local = next((r for r in rows if r.item == "local"), None)
    if provider == "local" and local is not None and local.status != "ok":
        return f"A run would use local ({how}), but it is not ready: {local.detail}", 1
    if provider in probes and not probes[provider].ok:
        return f"A run would use {provider} ({how}), but it is not ready: {probes[provider].detail}", 1
    if broken_packages:
        return f"A run would use {provider} ({how}), but required packages are missing.", 1
    if provider == "replay":
        answers = "the shipped cassettes answer" if cassettes else "no cassettes are shipped, so heuristics answer"
        return f"A run would use replay ({how}): {answers}.", 0
    return f"A run would use {provider} ({how}).", 0


def run_check(settings: Settings, timeout: float = PROBE_TIMEOUT_S) -> CheckReport:
    """Gather every check for ``settings``; probes run only for configured endpoints."""
    probes = _probe_all(settings, timeout)
    cassette_row = _cassette_row(settings)
    rows = [_python_row(), *_package_rows(), *_provider_rows(settings, probes), cassette_row]
    broken = any(r.status == "fail" for r in rows if r.section in ("python", "packages"))
    verdict, code = _verdict(settings, probes, broken, cassettes=cassette_row.status == "ok", rows=rows)
    return CheckReport(tuple(rows), settings.resolved_provider(), verdict, code)


_STYLE = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red"), "off": ("-", "dim")}


def render_check(report: CheckReport) -> None:
    """Print the report as one rich table followed by the verdict line."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="llm-sched environment check", show_lines=False)
    table.add_column("section", style="cyan", no_wrap=True)
    table.add_column("item", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for row in report.rows:
        label, style = _STYLE[row.status]
        table.add_row(row.section, row.item, Text(label, style=style), Text(printable(row.detail)))
    console = Console()
    console.print(table)
    style = "green" if report.exit_code == 0 else "bold red"
    console.print(Text(printable(report.verdict), style=style))
