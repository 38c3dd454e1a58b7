"""``--setup-env``: non-interactive writing, preserving foreign lines, mode 0600, refusing without a terminal."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llm_sched.envfile import merge_env_text, write_env_file
from llm_sched.errors import UserError
from tests.conftest import Cli
from tests.standin import StandIn

EXISTING = """\
# my project settings
DATABASE_URL=postgres://localhost/db   # inline comment kept
OLLAMA_MODEL=old-model

export OTHER_TOOL_TOKEN="keep me"
OLLAMA_MODEL=duplicate-that-would-win
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_non_interactive_writes_provider_settings_with_mode_0600(cli: Cli) -> None:
    result = cli("--setup-env", "--provider", "ollama", "--ollama-host", "http://gpu-box:11434",
                 "--ollama-model", "qwen2.5:7b", "--yes")
    assert result.code == 0, result.text
    env = cli.cwd / ".env"
    assert _mode(env) == 0o600
    text = env.read_text()
    assert "LLM_SCHED_PROVIDER=ollama\n" in text
    assert "OLLAMA_HOST=http://gpu-box:11434\n" in text
    assert "OLLAMA_MODEL=qwen2.5:7b\n" in text
    check = cli("--check")  # the written file is read back by the settings loader
    assert "http://gpu-box:11434" in check.out


def test_foreign_lines_and_comments_are_kept(cli: Cli) -> None:
    env = cli.cwd / ".env"
    env.write_text(EXISTING)
    result = cli("--setup-env", "--provider", "ollama", "--ollama-model", "new-model", "--yes")
    assert result.code == 0, result.text
    lines = env.read_text().splitlines()
    assert lines[:5] == [
        "# my project settings",
        "DATABASE_URL=postgres://localhost/db   # inline comment kept",
        "OLLAMA_MODEL=new-model",  # rewritten in place
        "",
        'export OTHER_TOOL_TOKEN="keep me"',
    ]
    assert "duplicate-that-would-win" not in env.read_text()
    assert lines.count("OLLAMA_MODEL=new-model") == 1
    assert "LLM_SCHED_PROVIDER=ollama" in lines and "OLLAMA_HOST=http://localhost:11434" in lines


def test_refuses_without_a_terminal_and_without_yes(cli: Cli) -> None:
    env = cli.cwd / ".env"
    env.write_text(EXISTING)
    result = cli("--setup-env", "--provider", "ollama")  # stdin is /dev/null, not a terminal
    assert result.code == 2
    assert "not a terminal" in result.err and "--yes" in result.err
    assert env.read_text() == EXISTING
    assert "Traceback" not in result.text


def test_api_key_read_from_stdin_is_written_but_never_printed(cli: Cli) -> None:
    key = "sk-setup-0123456789-SECRETKEY"
    result = cli("--setup-env", "--provider", "sambanova", "--api-key-stdin", "--yes", input=key + "\n")
    assert result.code == 0, result.text
    assert f"SAMBANOVA_API_KEY={key}\n" in (cli.cwd / ".env").read_text()
    assert key not in result.text
    assert "sk-s…TKEY" in result.out


def test_key_needed_but_not_given_is_a_clear_error(cli: Cli) -> None:
    result = cli("--setup-env", "--provider", "sambastudio", "--sambastudio-url", "https://studio.example/api/x",
                 "--yes")
    assert result.code == 2
    assert "SambaStudio API key is required" in result.err and "--api-key-stdin" in result.err
    assert not (cli.cwd / ".env").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--provider", "ollama", "--ollama-host", "ftp://x", "--yes"], "--ollama-host"),
        (["--provider", "sambastudio", "--sambastudio-url", "not a url", "--yes"], "--sambastudio-url"),
        (["--yes"], "--setup-env --yes needs --provider"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(cli: Cli, args: list[str], fragment: str) -> None:
    result = cli("--setup-env", *args, input="")
    assert result.code == 2
    assert fragment in result.err
    assert not (cli.cwd / ".env").exists()


def test_probe_on_request_refuses_to_write_an_unreachable_endpoint(cli: Cli, standin: StandIn) -> None:
    url = standin.url
    ok = cli("--setup-env", "--provider", "ollama", "--ollama-host", url, "--probe", "--yes")
    assert ok.code == 0, ok.text
    assert "ollama answers" in ok.out
    standin.stop()
    before = (cli.cwd / ".env").read_text()
    bad = cli("--setup-env", "--provider", "ollama", "--ollama-host", url, "--ollama-model", "other",
              "--probe", "--yes")
    assert bad.code == 2
    assert f"{url}/api/tags" in bad.err and "connection refused" in bad.err
    assert (cli.cwd / ".env").read_text() == before


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(EXISTING)

    def no_space(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(UserError, match="No space left on device"):
        write_env_file(env, {"OLLAMA_MODEL": "x"})
    assert env.read_text() == EXISTING
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_merge_quotes_values_that_need_it_and_round_trips() -> None:
    import io

    from dotenv import dotenv_values

    text = merge_env_text("", {"A": 'has space "and quotes" \\ # hash', "B": "plain-1.2:3", "C": None})
    assert dotenv_values(stream=io.StringIO(text)) == {"A": 'has space "and quotes" \\ # hash', "B": "plain-1.2:3"}


def _drive_on_a_terminal(cli: Cli, answers: list[tuple[str, str]]) -> str:
    """Run ``--setup-env`` on a pseudo-terminal, answering each prompt; return what the screen showed."""
    import pty
    import select
    import sys
    import time

    from tests.conftest import MAIN

    pid, fd = pty.fork()
    if pid == 0:  # child: become the CLI
        os.chdir(cli.cwd)
        os.execve(sys.executable, [sys.executable, str(MAIN), "--setup-env"], cli.env)
    screen = b""
    seen = 0  # only output after the last answer counts for the next prompt

    def read_until(marker: str, seconds: float = 15) -> bool:
        nonlocal screen, seen
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    screen += os.read(fd, 4096)
                except OSError:
                    return False
                if marker.encode() in screen[seen:]:
                    seen = len(screen)
                    return True
        return False

    try:
        for prompt, answer in answers:
            assert read_until(prompt), screen.decode(errors="replace")
            time.sleep(0.3)  # a person types after the prompt, once echo is off for keys
            os.write(fd, (answer + "\r").encode())
        read_until("Check it with")
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return screen.decode(errors="replace")


def test_interactive_setup_reads_the_key_without_echo(cli: Cli) -> None:
    key = "sk-interactive-0123456789-KEY"
    screen = _drive_on_a_terminal(cli, [
        ("Which provider?", "sambanova"), ("API key", key), ("API base URL", ""), ("model", ""),
        ("answers?", "n"), ("Write", "y"),
    ])
    assert key not in screen
    assert "sk-i…-KEY" in screen  # the summary shows it redacted
    env = cli.cwd / ".env"
    assert f"SAMBANOVA_API_KEY={key}" in env.read_text() and _mode(env) == 0o600


def test_interactive_setup_asks_again_after_a_bad_url(cli: Cli) -> None:
    screen = _drive_on_a_terminal(cli, [
        ("Which provider?", "ollama"), ("Ollama host URL", "ftp://nope"), ("Ollama host URL", "gpu-box:11434"),
        ("Ollama model", "m1"), ("answers?", "n"), ("Write", "y"),
    ])
    assert "not an http:// or https:// URL" in screen
    assert "OLLAMA_HOST=http://gpu-box:11434" in (cli.cwd / ".env").read_text()
