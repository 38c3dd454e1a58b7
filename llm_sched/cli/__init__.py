"""Command line: ``python main.py [flags]`` or ``llm-sched [flags]``, the top of the import layers.

Modules, one job each: :mod:`.parser` (every flag), :mod:`.modes` (which mode runs, which flags go
with it), :mod:`.dispatch` (:func:`main`: parse, run the mode, turn errors into exit codes),
:mod:`.overview` (what ``python main.py`` alone prints), :mod:`.settings` (``--provider`` over the
settings) and one module per mode: :mod:`.scenario` (``--scenario``, ``--interactive``, ``--resume
RUN_ID``), :mod:`.experiment`, :mod:`.simulate`, :mod:`.campaign` (``--evaluate``), :mod:`.ledger`
(``--runs``, ``--show``, ``--verify``), :mod:`.check` and :mod:`.setup_env`.

Parsing is plain argparse and every mode imports what it needs when it runs, so ``--help``,
``--version`` and ``--check`` start fast.
"""

from llm_sched.cli.dispatch import main
from llm_sched.cli.overview import MODES
from llm_sched.cli.parser import build_parser

__all__ = ["MODES", "build_parser", "main"]
