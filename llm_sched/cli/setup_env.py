"""``python main.py --setup-env``: the guided setup that writes ./.env, or with ``--yes`` the flags' setup."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Run the setup from the flags; returns 0."""
    from llm_sched.setup_env import SetupRequest, run_setup

    request = SetupRequest(
        provider=args.provider,
        ollama_host=args.ollama_host,
        ollama_model=args.ollama_model,
        sambanova_api_base=args.sambanova_api_base,
        sambanova_model=args.sambanova_model,
        sambastudio_url=args.sambastudio_url,
        api_key_stdin=args.api_key_stdin,
        probe=args.probe,
        yes=args.yes,
    )
    run_setup(request)
    return 0
