"""Choosing an executor: ``--executor sim|local|slurm`` and the scale of its clock."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llm_sched.execution.base import EXECUTORS, Executor

# Wall seconds per simulated second for the real executors: a 2-hour scenario job runs 7.2 s.
DEFAULT_TIME_SCALE = 0.001


class ExecutorChoice(BaseModel):
    """Where a run's committed jobs run. ``time_scale``: wall seconds per simulated second (local
    and slurm); ``slurm_conf``: the Slurm configuration to use (None: Slurm's own default, or
    ``SLURM_CONF`` as the environment sets it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field("sim", pattern=f"^({'|'.join(EXECUTORS)})$")
    time_scale: float = Field(DEFAULT_TIME_SCALE, gt=0, le=1000)
    slurm_conf: Path | None = None


def make_executor(choice: ExecutorChoice, folder: Path) -> Executor:
    """The executor ``choice`` names; ``folder`` takes what the jobs write (their nodes, output)."""
    if choice.kind == "local":
        from llm_sched.execution.local import LocalExecutor

        return LocalExecutor(folder, choice.time_scale)
    if choice.kind == "slurm":
        from llm_sched.execution.slurm import SlurmExecutor

        return SlurmExecutor(folder, choice.time_scale, choice.slurm_conf)
    from llm_sched.execution.sim import SimExecutor

    return SimExecutor()
