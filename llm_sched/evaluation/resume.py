"""Resuming experiments and campaigns: the ledger run behind an output folder, and its units.

A campaign (a unit is one (configuration, repetition)) and an experiment (a unit is one (method,
repetition)) record each finished unit in the ledger (:mod:`llm_sched.store.ledger`) as soon as this
process has it, in one transaction. A run killed at any instant therefore loses at most the units
in progress, and ``--resume DIR`` runs only the others (a new run never writes into an output folder
that holds anything unless ``--force``: see :mod:`llm_sched.experiments.output` and
:func:`llm_sched.evaluation.output.open_folder`).

The ledger run of a folder is found by ``(kind, absolute folder)``; resuming claims it (its epoch
goes up, so a forgotten process still writing to it is refused from then on). Run ids read
``<kind>-<YYYYmmdd-HHMMSS>-<6 hex digits>``. Only the process that owns the run writes the ledger:
a campaign's worker processes return their results to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from llm_sched.store.ledger import RESUME_COMMANDS, Ledger, RunInfo, RunKind, RunStatus, StoreError, a_kind


def folder_key(folder: Path | str) -> str:
    """How a folder is stored as a run's ``run_dir``: absolute, symbolic links resolved."""
    return str(Path(folder).expanduser().resolve())


def new_run_id(kind: str, folder: Path | str, config: Mapping[str, Any]) -> str:
    """``<kind>-<timestamp>-<6 hex digits>`` (the digits hash the folder, the config and the instant)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    text = f"{folder_key(folder)}|{json.dumps(config, sort_keys=True)}|{time.time_ns()}|{os.getpid()}"
    return f"{kind}-{stamp}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def find_stored(ledger_path: Path, kind: RunKind, target: str) -> RunInfo | None:
    """The stored run ``--resume TARGET`` names: a run id, or the output folder of a run of ``kind``.

    None when the ledger knows neither (the ledger file is not created for the question). A run or
    folder of another kind is a :class:`StoreError` saying how that one is resumed.
    """
    if not Path(ledger_path).is_file():
        return None
    with Ledger.open(ledger_path) as ledger:
        info = ledger.run(target)
        folder = folder_key(target)
        if info is None:
            info = ledger.find_run(kind, folder)
        if info is None:
            for other in ("campaign", "experiment", "scenario"):
                if other != kind:
                    info = ledger.find_run(other, folder)  # type: ignore[arg-type]
                    if info is not None:
                        break
    if info is not None and info.kind != kind:
        what = (f"run {target} is {a_kind(info.kind)} run" if info.run_id == target else
                f"the folder {folder} holds {a_kind(info.kind)} (ledger run {info.run_id})")
        how = RESUME_COMMANDS.get(info.kind, "").format(target=target)
        raise StoreError(f"--resume {target}: {what}, not {a_kind(kind)}" + (f"; resume it with {how}" if how else ""))
    return info


@dataclass
class DurableRun:
    """This process's hold on a ledger run: its id and epoch, and the units stored before it started."""

    ledger: Ledger
    run_id: str
    epoch: int
    resumed: bool
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    recorded: int = 0  # units this process recorded

    def record(self, unit: str, result: Mapping[str, Any]) -> None:
        """Store a finished unit (one transaction; a write from a fenced-off epoch is refused)."""
        if self.ledger.record_unit(self.run_id, self.epoch, unit, result):
            self.recorded += 1

    def fenced(self) -> bool:
        """Whether another process has claimed the run since (this one must stop writing)."""
        try:
            info = self.ledger.run(self.run_id)
        except StoreError:
            return False
        return info is not None and info.epoch != self.epoch

    def finish(self, status: RunStatus) -> None:
        """Close the run (see :meth:`Ledger.finish_run`: closing it as failed never raises)."""
        self.ledger.finish_run(self.run_id, self.epoch, status)

    def close(self) -> None:
        self.ledger.close()


@contextmanager
def holding(durable: DurableRun | None) -> Iterator[None]:
    """Around the work on a ledger run: finish it ``completed`` when the work returns, ``failed``
    when it raises (Ctrl-C included), and close it either way. None: no ledger, nothing to do."""
    status: RunStatus = "failed"
    try:
        yield
        status = "completed"
    finally:
        if durable is not None:
            try:
                durable.finish(status)
            finally:
                durable.close()


def open_run(ledger_path: Path, kind: RunKind, folder: Path, *, name: str, provider: str, seed: int,
             config: Mapping[str, Any], claim: str | None = None,
             reuse: Callable[[RunInfo], bool] = lambda info: True) -> DurableRun:
    """Claim the run ``claim`` (``--resume``), else the latest run of ``kind`` in ``folder`` when
    ``reuse`` accepts it, else record a new run. The caller closes the result."""
    ledger = Ledger.open(ledger_path)
    try:
        info = ledger.run(claim) if claim is not None else ledger.find_run(kind, folder_key(folder))
        if claim is not None and info is None:
            raise StoreError(f"no run {claim} in the ledger {ledger.path}")
        if info is not None and (claim is not None or reuse(info)):
            info, epoch = ledger.claim_run(info.run_id, kind)
            return DurableRun(ledger, info.run_id, epoch, True, ledger.units(info.run_id))
        run_id = new_run_id(kind, folder, config)
        epoch = ledger.create_run(run_id, kind, name, provider, seed, config, folder_key(folder))
        return DurableRun(ledger, run_id, epoch, False)
    except BaseException:
        ledger.close()
        raise


def first_difference(old: Any, new: Any, path: str = "", whole: str = "configuration") -> str:
    """The first field where two JSON-like values differ, as ``field: OLD there, NEW now``; ``whole``
    names the values themselves when they differ at the top (not two dicts)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(new) + [k for k in old if k not in new]:
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key, whole)
    return f"{path or whole}: {json.dumps(old)} there, {json.dumps(new)} now"
