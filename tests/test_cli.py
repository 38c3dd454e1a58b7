"""The command line itself: overview, --help, --version, bad flags."""

from __future__ import annotations

import re

from llm_sched import __version__
from llm_sched.cli import MODES, build_parser
from tests.conftest import Cli


def test_no_flags_prints_overview_with_a_command_for_each_mode(cli: Cli) -> None:
    result = cli()
    assert result.code == 0
    assert "Byzantine" in result.out
    for command, _ in MODES:
        assert command in result.out


def test_help_lists_every_flag(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0
    flags = {opt for action in build_parser()._actions for opt in action.option_strings if opt.startswith("--")}
    shown = set(re.findall(r"--[a-z][a-z-]+", result.out))
    assert flags - shown == set()


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"llm-sched {__version__}"


def test_unknown_provider_flag_lists_valid_choices(cli: Cli) -> None:
    result = cli("--check", "--provider", "gpt")
    assert result.code == 2
    assert "invalid choice: 'gpt'" in result.err and "sambanova" in result.err


def test_help_and_check_do_not_import_langchain_or_langgraph(cli: Cli) -> None:
    probe = (
        "import sys; from llm_sched.cli import main; main(['--check']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'langgraph', "
        "'langchain_community', 'langchain_sambanova', 'httpx', 'ollama')))"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", probe], cwd=cli.cwd, env=cli.env, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
