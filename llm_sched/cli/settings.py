"""The settings a run uses: the environment's, ./.env's and ~/.env's, with ``--provider`` over them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_sched.config import Settings


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings the flags set: ``--provider`` only."""
    return {"LLM_SCHED_PROVIDER": args.provider} if args.provider else {}


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings, with the flags' overrides applied."""
    from llm_sched.config import load_settings

    return load_settings(overrides(args))
