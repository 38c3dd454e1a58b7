"""The live web view of runs (``llm-sched serve``): a Starlette app that lists the run folders and
streams each run's events to one hand-written page (``static/``), which draws everything from them.

:mod:`.runs` lists and follows run folders (no web framework); :mod:`.app` serves them
(:func:`create_app`). Needs the ``web`` extra: ``pip install -e '.[web]'``.
"""

from __future__ import annotations
