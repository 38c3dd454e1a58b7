"""``python main.py --check``: the environment (Python, packages, LLM endpoints, cassettes), checked."""

from __future__ import annotations

import argparse

from llm_sched.cli.settings import settings_for


def run(args: argparse.Namespace) -> int:
    """Check and print the report; returns its exit code (0 ready, 1 broken)."""
    from llm_sched.envcheck import render_check, run_check

    report = run_check(settings_for(args))
    render_check(report)
    return report.exit_code
