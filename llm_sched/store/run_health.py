"""Is a stored run's event log whole? Its hash chain intact and in agreement with what the ledger
stored for each decision (:func:`llm_sched.store.event_chain.check_log`). ``--runs`` and ``--show`` report
what this finds; a damaged log is never taken as good and never a crash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llm_sched.store.event_chain import Anchor, EventLogError, check_log
from llm_sched.store.ledger import DecisionRecord, RunInfo


@dataclass(frozen=True, slots=True)
class LogState:
    cell: str  # the state in a word, as the tables show it: ok, DAMAGED, missing, unchecked (no hashes), -
    problem: str | None = None  # the damage, with file and line

    @property
    def damaged(self) -> bool:
        return self.problem is not None


def log_state(run: RunInfo, decisions: list[DecisionRecord] | None = None) -> LogState:
    """The state of a scenario run's event log; with ``decisions``, checked against each one's anchor."""
    if run.kind != "scenario" or not run.run_dir:
        return LogState("-")
    marks = [a for a in (Anchor.of(d.job_id, d.resume) for d in decisions or []) if a is not None]
    try:
        check = check_log(Path(run.run_dir) / "events.jsonl", marks, complete=run.status == "completed",
                          decisions=run.decisions)
    except EventLogError as exc:
        return LogState("missing" if "missing" in str(exc) else "DAMAGED", str(exc))
    return LogState("ok" if check.hashed or check.events == 0 else "unchecked (no hashes)")
