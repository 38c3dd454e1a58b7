"""The ledger's fence, checked before every write to a run's files: a process whose run was taken
over (a resume claimed it: a higher epoch) appends no event and writes no summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.core.events import RunEvent, read_jsonl
from llm_sched.orchestration.runner import run_scenario
from llm_sched.store.ledger import Ledger, RunFenced
from tests.store.faults import Place


class TakeOver:
    """A bus subscriber that, at the ``at``-th event of ``kind``, does what a second process resuming
    the run does in the ledger (claims it), bypassing the run's lock as a zombie's lost lock would."""

    def __init__(self, ledger: Path, runs: Path, kind: str, at: int = 1) -> None:
        self.ledger, self.runs, self.kind, self.left = ledger, runs, kind, at
        self.log_size: int | None = None  # the event log's size when the run was taken over

    def __call__(self, event: RunEvent) -> None:
        if event.kind != self.kind or self.left == 0:
            return
        self.left -= 1
        if self.left:
            return
        with Ledger.open(self.ledger) as other:
            (run,) = other.runs()
            other.claim_run(run.run_id, "scenario")
        (folder,) = [p for p in self.runs.iterdir() if p.is_dir()]
        self.log_size = (folder / "events.jsonl").stat().st_size


def test_a_process_whose_run_was_taken_over_appends_no_further_event(place: Place) -> None:
    take_over = TakeOver(place.ledger, place.runs, "job_submitted", at=3)  # its proposals, votes... to come
    with pytest.raises(RunFenced, match="taken over by another process \\(epoch 2, this one has 1\\)"):
        run_scenario(place.scenario(), place.settings(), subscribers=[take_over])
    (run,) = place.runs_stored()
    log = place.runs / run.run_id / "events.jsonl"
    assert take_over.log_size is not None and log.stat().st_size == take_over.log_size
    kinds = [e["kind"] for e in read_jsonl(log)]
    assert kinds[-1] == "job_submitted" and kinds.count("job_submitted") == 3  # nothing after the take-over
    assert not (place.runs / run.run_id / "summary.json").exists()
    assert (run.epoch, run.decisions) == (2, 2)


def test_a_process_whose_run_was_taken_over_at_its_end_writes_no_summary(place: Place) -> None:
    take_over = TakeOver(place.ledger, place.runs, "scenario_ended")
    with pytest.raises(RunFenced, match="taken over"):
        run_scenario(place.scenario(), place.settings(), subscribers=[take_over])
    (run,) = place.runs_stored()
    assert not (place.runs / run.run_id / "summary.json").exists()
    assert (place.runs / run.run_id / "events.jsonl").stat().st_size == take_over.log_size
    assert run.status == "running"  # left to the process that claimed it
