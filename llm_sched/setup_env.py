"""``--setup-env``: choose a provider, give its settings, validate, write ``./.env``.

Interactive on a terminal (keys read without echo); non-interactive with ``--yes`` and flags, for
scripts. Without a terminal and without ``--yes`` it refuses rather than wait for input.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llm_sched.config import (
    DEFAULT_OLLAMA_HOST,
    ENV_VARS,
    PROVIDER_CHOICES,
    Settings,
    check_url,
    load_settings,
    redact,
)
from llm_sched.envcheck import probe_provider
from llm_sched.envfile import write_env_file
from llm_sched.errors import UserError

if TYPE_CHECKING:  # rich is imported only when a prompt is shown
    from rich.console import Console

SETUP_PROVIDERS = tuple(p for p in PROVIDER_CHOICES if p != "auto") + ("auto",)


@dataclass(frozen=True)
class SetupRequest:
    """What the command line said; ``None`` means "ask, or keep the current value"."""

    provider: str | None = None
    ollama_host: str | None = None
    ollama_model: str | None = None
    sambanova_api_base: str | None = None
    sambanova_model: str | None = None
    sambastudio_url: str | None = None
    api_key_stdin: bool = False
    probe: bool = False
    yes: bool = False


@dataclass(frozen=True)
class _Field:
    setting: str  # Settings field name, also the key into ENV_VARS
    label: str
    flag: str
    secret: bool = False
    url: bool = False


_FIELDS: dict[str, tuple[_Field, ...]] = {
    "ollama": (
        _Field("ollama_host", "Ollama host URL", "--ollama-host", url=True),
        _Field("ollama_model", "Ollama model", "--ollama-model"),
    ),
    "sambanova": (
        _Field("sambanova_api_key", "SambaNova Cloud API key", "--api-key-stdin", secret=True),
        _Field("sambanova_api_base", "SambaNova Cloud API base URL", "--sambanova-api-base", url=True),
        _Field("sambanova_model", "SambaNova Cloud model", "--sambanova-model"),
    ),
    "sambastudio": (
        _Field("sambastudio_url", "SambaStudio endpoint URL", "--sambastudio-url", url=True),
        _Field("sambastudio_api_key", "SambaStudio API key", "--api-key-stdin", secret=True),
    ),
}

Ask = Callable[[_Field, str | None], str]


def _current(settings: Settings, field: _Field) -> str | None:
    value = getattr(settings, field.setting)
    if value is None:
        return DEFAULT_OLLAMA_HOST if field.setting == "ollama_host" else None
    return value.get_secret_value() if field.secret else str(value)


def _validated(field: _Field, value: str) -> str:
    if not value:
        raise UserError(f"{field.label} is required (give it with {field.flag})")
    if field.url:
        try:
            return check_url(value, default_scheme="http" if field.setting == "ollama_host" else None)
        except ValueError as exc:
            raise UserError(f"{field.label} ({field.flag}): {exc}") from None
    return value


def _flag_value(request: SetupRequest, field: _Field, stdin_key: str | None) -> str | None:
    return stdin_key if field.secret else getattr(request, field.setting, None)


def _collect(provider: str, request: SetupRequest, settings: Settings, ask: Ask | None) -> dict[str, str]:
    """Values for the provider's fields: flag, else asked (interactive), else current setting."""
    stdin_key = sys.stdin.readline().strip() if request.api_key_stdin else None
    values: dict[str, str] = {}
    for field in _FIELDS.get(provider, ()):
        given = _flag_value(request, field, stdin_key) or None
        default = given or _current(settings, field)
        while True:
            raw = ask(field, default) if ask and not given else (default or "")
            try:
                values[field.setting] = _validated(field, raw.strip())
                break
            except UserError as exc:
                if ask is None or given:
                    raise
                _console().print(f"[red]{exc}[/]")
    return values


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _ask_field(field: _Field, default: str | None) -> str:
    from rich.prompt import Prompt

    if field.secret:
        hint = f" (Enter keeps {redact(default)})" if default else ""
        answer = Prompt.ask(f"{field.label}{hint}", password=True, default="", show_default=False)
        return answer or (default or "")
    return Prompt.ask(field.label, default=default or None) or ""


def _summary(provider: str, values: dict[str, str]) -> str:
    shown = [f"LLM_SCHED_PROVIDER={provider}"]
    for field in _FIELDS.get(provider, ()):
        value = values[field.setting]
        shown.append(f"{ENV_VARS[field.setting]}={redact(value) if field.secret else value}")
    return "\n".join(f"  {line}" for line in shown)


def _probe(provider: str, values: dict[str, str], settings: Settings) -> str | None:
    """Probe the new settings; return a failure description or ``None`` when it answers."""
    if provider not in _FIELDS:
        return None
    # The values just given count as configured (their source is this setup), then validate.
    data = settings.model_dump(exclude={"sources"}) | values
    trial = Settings(**data, sources=settings.sources | dict.fromkeys(values, "setup"))
    result = probe_provider(trial, provider)
    return None if result.ok else result.detail


def run_setup(request: SetupRequest, env_path: Path | None = None) -> Path:
    """Run the setup and write the ``.env``; returns its path. Raises ``UserError`` on bad input."""
    env_path = env_path or Path.cwd() / ".env"
    interactive = not request.yes
    if interactive and not sys.stdin.isatty():
        raise UserError(
            "--setup-env asks questions, but standard input is not a terminal.\n"
            "For scripts, give the settings as flags and add --yes, for example:\n"
            "  python main.py --setup-env --provider ollama --ollama-host http://localhost:11434 "
            "--ollama-model llama3.1:8b --yes"
        )
    settings = load_settings()
    provider = _choose_provider(request, settings, interactive)
    values = _collect(provider, request, settings, _ask_field if interactive else None)
    console = _console()
    if request.probe or (interactive and _confirm("Check now that the endpoint answers?", False)):
        failure = _probe(provider, values, settings)
        if failure and not (interactive and _confirm(f"It does not answer ({failure}). Write anyway?", False)):
            raise UserError(f"{provider} does not answer: {failure}; {env_path} was not changed")
        if not failure:
            console.print(f"[green]{provider} answers.[/]")
    console.print(f"Settings for {env_path}:\n{_summary(provider, values)}")
    if interactive and not _confirm(f"Write {env_path}?", True):
        raise UserError(f"nothing written; {env_path} is unchanged")
    updates = {"LLM_SCHED_PROVIDER": provider} | {ENV_VARS[k]: v for k, v in values.items()}
    write_env_file(env_path, updates)
    console.print(f"[green]Wrote {env_path} (mode 0600).[/] Check it with: python main.py --check")
    return env_path


def _confirm(question: str, default: bool) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(question, default=default)


def _choose_provider(request: SetupRequest, settings: Settings, interactive: bool) -> str:
    if request.provider:
        if request.provider not in SETUP_PROVIDERS:
            raise UserError(f"unknown provider {request.provider!r}; valid providers are: {', '.join(SETUP_PROVIDERS)}")
        return request.provider
    if not interactive:
        raise UserError(f"--setup-env --yes needs --provider, one of: {', '.join(SETUP_PROVIDERS)}")
    from rich.prompt import Prompt

    return Prompt.ask("Which provider?", choices=list(SETUP_PROVIDERS), default=settings.resolved_provider())
