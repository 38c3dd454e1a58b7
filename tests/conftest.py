"""Shared fixtures: an isolated command-line runner and the provider stand-in server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_sched.config import ENV_VARS
from tests.standin import StandIn

REPO = Path(__file__).resolve().parent.parent
MAIN = REPO / "main.py"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Cli:
    """Runs ``python main.py`` as a user would, in its own working folder and home folder."""

    cwd: Path
    home: Path
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> CliResult:
        proc = subprocess.run(
            [sys.executable, str(MAIN), *args],
            cwd=self.cwd,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


def clean_environ(home: Path) -> dict[str, str]:
    """The current environment without any llm-sched setting, with HOME pointing at ``home``."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}
    env.update(HOME=str(home), COLUMNS="200", PYTHONIOENCODING="utf-8")
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    return Cli(cwd=work, home=home, env=clean_environ(home))


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server
