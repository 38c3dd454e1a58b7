"""A federation whose decisions run on an executor (Slurm, local processes): what every member must
agree on for that, and the reports the executor files.

``federation up FILE --executor slurm`` reads the cluster from Slurm once and writes it into the
genesis with the executor's settings (:class:`ExecutionPlan`), so every member starts from the same
cluster, the one the jobs really run on. Capacity then comes back only when the executor says a job
ended, and a node leaves service only when it says so: the executor appends a :class:`Report` to the
job log, and the members decide it in log order like a job (an entry of the batch that must be
exactly the report's own, :func:`report_entry`). Every member applies the same reports at the same
place in the order, so their states stay equal to the node; a job the executor lost comes back as a
new job of the log (``<id>.r1``) for the members to place anew.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_sched.core.model import Pool
from llm_sched.protocols.messages import PlacementValue

REPORT_PREFIX = "!"  # an entry id no job id can have (job ids are names: letters, digits, '_', '.', '-')
REFUSED = REPORT_PREFIX + "refused:"  # the entry id of a log entry every member refused, then its position
REPORT_TAG = b"llm-sched/report/v1\x00"  # domain separation from votes and protocol messages


class ExecutionPlan(BaseModel):
    """Where the federation's decisions run, as its genesis fixes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    executor: Literal["local", "slurm"]
    time_scale: float = Field(gt=0, le=1000)
    slurm_conf: str | None = None
    pools: list[Pool] = Field(min_length=1)  # the cluster every member starts from


class Report(BaseModel):
    """What the executor saw: a job that ended (and how), or a node that went down or came back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ended: str | None = None  # job id
    state: Literal["completed", "failed", "lost"] | None = None
    node: str | None = None
    down: bool | None = None
    # The executor's count of its reports (1, 2, ...): two alike stay two entries, and a member takes
    # a report only when its number is above every one it took before (a replayed report changes nothing).
    number: int = Field(ge=1)
    reason: str = Field("", max_length=300)

    @model_validator(mode="after")
    def _one_kind(self) -> Report:
        if (self.ended is None) == (self.node is None):
            raise ValueError("a report is of a job that ended or of a node, not both or neither")
        if (self.ended is None) != (self.state is None) or (self.node is None) != (self.down is None):
            raise ValueError("a job report needs its state, a node report whether the node is down")
        return self

    @property
    def entry_id(self) -> str:
        if self.ended is not None:
            return f"{REPORT_PREFIX}ended:{self.ended}"
        return f"{REPORT_PREFIX}node:{self.node}:{'down' if self.down else 'up'}:{self.number}"

    def describe(self) -> str:
        if self.ended is not None:
            return f"executor: job {self.ended} {self.state}"
        return f"executor: node {self.node} {'down' if self.down else 'back up'}"


def report_entry(report: Report) -> PlacementValue:
    """The one batch entry a member accepts for ``report``: no placement, its id and what it says."""
    return PlacementValue(report.entry_id, None, report.describe())


def is_report(entry_id: str) -> bool:
    return entry_id.startswith(REPORT_PREFIX)


def report_statement(report: Report, federation: str) -> bytes:
    """What the executor's signature on ``report`` covers: the tag, the federation's name (a report
    cannot be replayed into another federation) and the report as canonical JSON."""
    fed = federation.encode()
    body = json.dumps(report.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
    return REPORT_TAG + len(fed).to_bytes(4, "big") + fed + body


def sign_report(report: Report, federation: str, key: Ed25519PrivateKey) -> str:
    """The executor's signature on ``report``, hex, as the job log entry carries it."""
    return key.sign(report_statement(report, federation)).hex()


@dataclass(frozen=True)
class ReportKey:
    """The executor's public key as the genesis fixes it: every member checks reports against it."""

    federation: str
    key: Ed25519PublicKey

    def signed(self, report: Report, signature: object) -> bool:
        if not isinstance(signature, str) or len(signature) != 128:
            return False
        try:
            self.key.verify(bytes.fromhex(signature), report_statement(report, self.federation))
        except (ValueError, InvalidSignature):
            return False
        return True
