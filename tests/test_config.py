"""Settings: precedence of the sources, validation messages, provider resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.config import ENV_VARS, PROJECT_ROOT, load_settings, redact
from llm_sched.errors import ConfigError


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    return cwd, home


def test_environment_beats_dotenv_beats_home_dotenv(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (home / ".env").write_text("OLLAMA_MODEL=from-home\nOLLAMA_HOST=http://home:1\nLLM_SCHED_TIMEOUT=7\n")
    (cwd / ".env").write_text("OLLAMA_MODEL=from-cwd\nOLLAMA_HOST=http://cwd:2\n")
    environ = {"OLLAMA_MODEL": "from-env"}
    settings = load_settings(environ=environ, cwd=cwd, home=home)
    assert settings.ollama_model == "from-env"
    assert settings.ollama_host == "http://cwd:2"
    assert settings.llm_timeout == 7.0
    assert settings.sources == {
        "ollama_model": "environment",
        "ollama_host": str(cwd / ".env"),
        "llm_timeout": str(home / ".env"),
    }


def test_flag_overrides_environment(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    settings = load_settings(
        {"LLM_SCHED_PROVIDER": "heuristic"}, environ={"LLM_SCHED_PROVIDER": "ollama"}, cwd=cwd, home=home
    )
    assert settings.provider == "heuristic"
    assert settings.sources["provider"] == "flag"


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    settings = load_settings(environ={}, cwd=cwd, home=home)
    assert settings.provider == "auto"
    assert settings.resolved_provider() == "replay"
    assert settings.configured_providers() == []
    assert settings.scenarios_dir == PROJECT_ROOT / "scenarios"


def test_empty_value_counts_as_unset(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / ".env").write_text("SAMBANOVA_API_KEY=\n")
    settings = load_settings(environ={"SAMBANOVA_API_KEY": "  "}, cwd=cwd, home=home)
    assert settings.sambanova_api_key is None
    assert not settings.is_configured("sambanova")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OLLAMA_MODEL": "m"}, "ollama"),
        ({"SAMBANOVA_API_KEY": "k", "OLLAMA_HOST": "h:1"}, "sambanova"),
        ({"SAMBASTUDIO_URL": "http://s/x", "SAMBASTUDIO_API_KEY": "k", "SAMBANOVA_API_KEY": "k"}, "sambastudio"),
        ({"SAMBASTUDIO_URL": "http://s/x"}, "replay"),  # a URL without its key is not configured
        ({"LLM_SCHED_PROVIDER": "heuristic", "OLLAMA_MODEL": "m"}, "heuristic"),
    ],
)
def test_auto_picks_first_configured_provider(tmp_path: Path, environ: dict[str, str], expected: str) -> None:
    cwd, home = _dirs(tmp_path)
    assert load_settings(environ=environ, cwd=cwd, home=home).resolved_provider() == expected


def test_malformed_dotenv_line_names_file_and_line_without_the_value(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / ".env").write_text("# comment\nOLLAMA_MODEL=m\nSAMBANOVA_API_KEY 'sk-secret-value\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, cwd=cwd, home=home)
    message = str(info.value)
    assert f"{cwd / '.env'}, line 3" in message
    assert "SAMBANOVA_API_KEY" in message
    assert "sk-secret-value" not in message


def test_unknown_provider_lists_the_valid_ones(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / ".env").write_text("LLM_SCHED_PROVIDER=chatgpt\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, cwd=cwd, home=home)
    message = str(info.value)
    assert "LLM_SCHED_PROVIDER" in message and str(cwd / ".env") in message
    for name in ("auto", "local", "openai", "sambastudio", "sambanova", "ollama", "replay", "heuristic"):
        assert name in message


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("SAMBASTUDIO_URL", "ftp://x/y", "not an http:// or https:// URL"),
        ("OLLAMA_HOST", "http://", "has no host name"),
        ("LLM_SCHED_TIMEOUT", "-1", "greater than 0"),
        ("LLM_SCHED_MAX_ATTEMPTS", "many", "valid integer"),
    ],
)
def test_bad_values_name_the_variable_and_the_problem(tmp_path: Path, var: str, value: str, fragment: str) -> None:
    cwd, home = _dirs(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={var: value}, cwd=cwd, home=home)
    assert var in str(info.value) and fragment in str(info.value)
    assert "(from environment)" in str(info.value)


def test_ollama_host_without_scheme_means_http(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    settings = load_settings(environ={"OLLAMA_HOST": "localhost:11434"}, cwd=cwd, home=home)
    assert settings.ollama_host == "http://localhost:11434"


def test_secrets_do_not_print_through_the_settings_object(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    settings = load_settings(environ={"SAMBANOVA_API_KEY": "sk-0123456789abcdefXYZ"}, cwd=cwd, home=home)
    assert "sk-0123456789abcdefXYZ" not in repr(settings) + str(settings.model_dump())


@pytest.mark.parametrize(
    ("key", "shown"),
    [("abcd0123456789wxyz", "abcd…wxyz"), ("short-key", "…(9 characters)"), (None, "(not set)")],
)
def test_redact_shows_only_the_ends_of_long_keys(key: str | None, shown: str) -> None:
    assert redact(key) == shown


def test_env_example_documents_every_variable() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    missing = [var for var in ENV_VARS.values() if var not in text]
    assert missing == []
