"""``python -m llm_sched ...``: the same command line as ``llm-sched`` and ``python main.py``."""

from llm_sched.cli import main

raise SystemExit(main())
