"""The public API: what the command line and the demo scripts use, and all they use.

    from llm_sched.api import run_scenario_by_name, print_summary

    result = run_scenario_by_name("supercomputers", provider="heuristic", seed=7)
    print_summary(result)

A run reads settings from the environment, ``./.env`` and ``~/.env`` (flags given here win), shows
its events on the console as they happen, writes ``events.jsonl`` and ``summary.json`` to a new
folder under ``runs/``, and returns them in a :class:`RunResult`. Every figure in the summary is
computed from that run's events.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from llm_sched.config import Settings, load_settings
from llm_sched.errors import UserError
from llm_sched.orchestration.runner import RunOptions, RunResult, ledger_path, resume_scenario, run_scenario
from llm_sched.orchestration.scenarios import Scenario, available_scenarios, load_scenario, with_protocol
from llm_sched.orchestration.summary import summarize
from llm_sched.ui.console import ConsoleView, summary_table

__all__ = [
    "RunOptions",
    "RunResult",
    "Scenario",
    "Settings",
    "UserError",
    "available_scenarios",
    "load_scenario",
    "load_settings",
    "print_runs",
    "print_summary",
    "resume_run",
    "run_scenario_by_name",
    "show_run",
    "summarize",
]


def run_scenario_by_name(
    name: str,
    *,
    provider: str | None = None,
    seed: int | None = None,
    transparent: bool = False,
    pause: bool = False,
    verbose: bool = False,
    options: RunOptions = RunOptions(),
    console: Console | None = None,
    runs_dir: Path | None = None,
    protocol: str | None = None,
) -> RunResult:
    """Run ``scenarios/<name>.yaml`` (or a path) and return its run folder, summary and events.

    ``provider``: local, openai, ollama, sambanova, sambastudio, replay (the shipped cassettes),
    heuristic or auto (the default: a configured endpoint, else the cassette, else heuristics).
    ``seed``: the scenario's own by default; another seed draws other background loads, so a
    cassette recorded with the scenario's seed cannot answer and auto falls back to heuristics.
    ``transparent`` shows the prompts and raw answers of each phase's first decision (``verbose``:
    of every decision); ``pause`` waits for Enter between phases (only on a terminal). ``options``:
    recording and fallback (:class:`RunOptions`). ``protocol``: the protocol that decides each vote
    round (pbft, tendermint, weighted), instead of the scenario's.
    """
    settings = load_settings({"LLM_SCHED_PROVIDER": provider} if provider else {})
    scenario = with_protocol(load_scenario(name, settings.scenarios_dir), protocol)
    view = ConsoleView(console, transparent=transparent, pause=pause, verbose=verbose)
    return run_scenario(scenario, settings, seed=seed, options=options, subscribers=[view], runs_dir=runs_dir)


def resume_run(
    run_id: str,
    *,
    scenario: str | None = None,
    transparent: bool = False,
    console: Console | None = None,
    runs_dir: Path | None = None,
) -> RunResult:
    """Continue the stored scenario run ``run_id`` (see ``print_runs``) after its last committed
    decision: the same scenario, seed and provider, the same final state and event log as a run
    that was never interrupted. A run that had completed is returned as stored. ``scenario``, if
    given (``--scenario NAME --resume RUN_ID``), must be the run's."""
    settings = load_settings()
    view = ConsoleView(console, transparent=transparent)
    return resume_scenario(run_id, settings, lambda name: load_scenario(name, settings.scenarios_dir),
                           subscribers=[view], runs_dir=runs_dir, expect=scenario)


def print_runs(console: Console | None = None) -> None:
    """The table of stored runs: id, kind, scenario, provider, seed, start, decisions, status."""
    from llm_sched.store.ledger import Ledger
    from llm_sched.store.run_health import log_state
    from llm_sched.ui.ledger_view import runs_table

    path = ledger_path(load_settings())
    console = console or Console(highlight=False)
    if not path.exists():
        console.print(f"no ledger at {path} yet: no runs stored")
        return
    with Ledger.open(path) as ledger:
        runs = ledger.runs()
        console.print(runs_table(runs, str(path), {r.run_id: log_state(r) for r in runs}))


def show_run(run_id: str, console: Console | None = None) -> bool:
    """Print one stored run's decisions, with the votes and reputation changes behind each; returns
    whether its event log is whole (False: damaged or missing, reported under the table)."""
    from llm_sched.names import check_name
    from llm_sched.store.ledger import Ledger, StoreError
    from llm_sched.store.run_health import log_state
    from llm_sched.ui.ledger_view import decisions_table

    check_name("run", run_id)
    path = ledger_path(load_settings())
    with Ledger.open(path) as ledger:
        run = ledger.run(run_id)
        if run is None:
            raise StoreError(f"no run {run_id} in the ledger {path} (python main.py --runs lists them)")
        decisions = ledger.decisions(run_id)
        state = log_state(run, decisions)
        (console or Console(highlight=False)).print(decisions_table(run, decisions, state))
    return not state.damaged


def verify_run(run_id: str, console: Console | None = None) -> bool:
    """Check every quorum certificate of a stored scenario run (see :mod:`llm_sched.orchestration.verify`) and say
    what was checked; a certificate that fails raises :class:`llm_sched.orchestration.verify.VerifyFailed` (exit 1)."""
    from llm_sched.names import check_name
    from llm_sched.orchestration.verify import verify_run as verify

    check_name("run", run_id)
    v = verify(ledger_path(load_settings()), run_id)
    (console or Console(highlight=False)).print(v.describe(), markup=False, soft_wrap=True)
    return True


def print_summary(result: RunResult, console: Console | None = None) -> None:
    """The end-of-run table (from the run's events) and where the run files are."""
    console = console or Console(highlight=False)
    console.print()
    console.print(summary_table(result.summary))
    console.print(f"run files: {result.run_dir / 'events.jsonl'}, {result.run_dir / 'summary.json'}")
