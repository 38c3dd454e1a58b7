"""Entry point: ``python main.py [flags]``. All behaviour lives in :mod:`llm_sched.cli`."""

from llm_sched.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
