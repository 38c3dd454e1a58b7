"""What a scheduler did with one job: the record that metrics and CSV output read."""

from __future__ import annotations

from typing import NamedTuple


class JobOutcome(NamedTuple):
    """Where and when one job ran. A NamedTuple: cheap to build by the hundred thousand."""

    job_id: int
    submit: float
    start: float
    end: float
    procs: int
    where: str  # the machine (or partition, or agent's pool) that ran the job

    @property
    def wait(self) -> float:
        """Seconds between submission and start."""
        return self.start - self.submit

    @property
    def run(self) -> float:
        """Seconds between start and end."""
        return self.end - self.start
