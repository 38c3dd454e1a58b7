"""What a user asks of a running federation: submit jobs, and its status.

``submit``: the jobs of a scenario file go to the job log, each with its arrival time (the file's
intervals between jobs, continuing after the last job already in the log) and its submission time
on this host's clock. A job id already in the log within the hour is not submitted twice.

``status``: the members that are up (the registry), each one's progress, view, leader and phi values
of its peers; the decision stream read whole, every record's certificate checked against the genesis,
and the jobs decided counted: "N decided". A job in two checked records with different placements would
be a safety violation and is reported as such.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_sched.errors import UserError
from llm_sched.federation.bus import REQUEST_TIMEOUT, connect, layout_for, registered
from llm_sched.federation.execution import REFUSED
from llm_sched.federation.keys import read_genesis
from llm_sched.federation.records import Record, check_record, decode_record
from llm_sched.federation.spec import Federation
from llm_sched.transport import wire


@dataclass
class Submitted:
    """What a submission did."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    first_position: int | None = None


async def submit(fed: Federation, jobs_file: Federation, servers: Sequence[str], replicas: int = 1,
                 pace: float = 0.0, creds: Path | None = None) -> Submitted:
    """Append the jobs of ``jobs_file`` to ``fed``'s job log, ``pace`` seconds apart (0: at once)."""
    nc = await connect(servers, f"{fed.name}/submit", creds=creds)
    try:
        js = nc.jetstream(timeout=REQUEST_TIMEOUT)
        await layout_for(js, fed.subjects, replicas, ", ".join(servers))
        start = await next_arrival(js, fed)
        out = Submitted()
        for spec, offset in jobs_file.job_specs():
            body = {"job": spec.model_dump(), "arrival": start + offset, "submitted": time.time()}
            ack = await publish_entry(js, fed.subjects.jobs, json.dumps(body).encode(), spec.id)
            (out.duplicates if ack.duplicate else out.accepted).append(spec.id)
            if not ack.duplicate and out.first_position is None:
                out.first_position = ack.seq
            if pace:
                await asyncio.sleep(pace)
        return out
    finally:
        await nc.drain()


async def publish_entry(js, subject: str, data: bytes, job_id: str, attempts: int = 20):  # noqa: ANN001, ANN202
    """Publish one entry of the job log (a job, or an executor's report), again while the bus fails over
    (a few seconds when a server is lost): its id is the message id, so a retry of a publish that did
    land is dropped as a duplicate. The answer's ``duplicate`` says whether someone published the id
    before this call: a duplicate after this call's own attempt went unanswered is that attempt,
    which landed (its answer was lost with the server), so it is not a duplicate."""
    import nats.errors
    from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

    unanswered = False
    for attempt in range(attempts):
        try:
            ack = await js.publish(subject, data, headers={"Nats-Msg-Id": job_id})
            return dataclasses.replace(ack, duplicate=False) if unanswered and ack.duplicate else ack
        except (nats.errors.TimeoutError, NoStreamResponseError, ServiceUnavailableError):
            unanswered = True
            if attempt == attempts - 1:
                raise UserError(f"the bus did not take job {job_id} after {attempts} attempts; the jobs before it "
                                f"were submitted, submit the file again to add the rest") from None
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
    raise AssertionError("unreachable")


async def next_arrival(js, fed: Federation) -> float:  # noqa: ANN001
    """Where new arrivals continue: one interval after the last job of the log (0 for an empty log)."""
    from nats.js.errors import NotFoundError

    try:
        msg = await js.get_msg(fed.subjects.jobs_stream, subject=fed.subjects.jobs)
    except NotFoundError:
        return 0.0
    interval = fed.scenario.phases[-1].job_interval_s if fed.scenario.phases else 0.0
    # The last entry that has an arrival (anyone on the bus may have appended something that has not).
    for position in range(msg.seq, 0, -1):
        if position != msg.seq:
            try:
                msg = await js.get_msg(fed.subjects.jobs_stream, seq=position)
            except NotFoundError:
                continue
        arrival = _arrival(msg.data or b"")
        if arrival is not None:
            return arrival + interval
    return 0.0


def _arrival(data: bytes) -> float | None:
    try:
        arrival = float(wire.parse_json(data)["arrival"])
    except (wire.WireError, ValueError, KeyError, TypeError):
        return None
    return arrival if math.isfinite(arrival) else None


def _readable(value: bytes) -> dict[str, Any] | None:
    """A member's registration or status as a JSON object; None when it is not one (anyone allowed on
    the bus may have written it: a status shows what it can read)."""
    try:
        body = wire.parse_json(value)
    except wire.WireError:
        return None
    return body if isinstance(body, dict) else None


@dataclass
class DecisionLog:
    """The decision stream, read whole and checked."""

    instances: int = 0
    records: int = 0  # records in the stream (a member may publish an instance's record again)
    jobs: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # job -> nodes (None: rejected)
    invalid: list[str] = field(default_factory=list)  # records whose certificate does not check
    conflicts: list[str] = field(default_factory=list)  # jobs decided differently by two checked records
    refused: dict[str, str] = field(default_factory=dict)  # log entries that were neither jobs nor signed reports
    submitted: int = 0
    decided_at: dict[str, float] = field(default_factory=dict)  # job -> when its record reached the stream

    @property
    def decided(self) -> int:
        return len(self.jobs)


async def read_decisions(js, fed: Federation, data: Path) -> DecisionLog:  # noqa: ANN001
    """Every record of the decision stream, each certificate checked against the genesis in ``data``."""
    from nats.js.errors import NotFoundError

    public = read_genesis(fed, data).public
    out = DecisionLog()
    info = await js.stream_info(fed.subjects.jobs_stream)
    out.submitted = info.state.messages
    seen: dict[int, Record] = {}
    seq = 1
    while True:
        try:
            msg = await js.get_msg(fed.subjects.decisions_stream, seq=seq, subject=fed.subjects.decided_all, next=True)
        except NotFoundError:
            break
        seq = msg.seq + 1
        out.records += 1
        try:
            record = decode_record(msg.data or b"")
        except wire.WireError as exc:
            out.invalid.append(f"stream message {msg.seq}: {exc}")
            continue
        problem = check_record(record, fed.name, public, fed.quorum)
        if problem is not None:
            out.invalid.append(f"instance {record.instance}: {problem}")
            continue
        _count(out, seen, record, msg.time)
    out.instances = len(seen)
    return out


def _count(out: DecisionLog, seen: dict[int, Record], record: Record, when: object) -> None:
    earlier = seen.setdefault(record.instance, record)
    if earlier is not record and earlier.batch != record.batch:
        out.conflicts.append(f"instance {record.instance} decided twice, differently")
    for entry in record.batch.entries:
        placed = entry.placement
        if entry.job_id in out.jobs and out.jobs[entry.job_id] != placed:
            out.conflicts.append(f"job {entry.job_id} decided twice, differently")
        out.jobs.setdefault(entry.job_id, placed)
        if entry.job_id.startswith(REFUSED):
            out.refused.setdefault(entry.job_id, entry.reason)


async def status(fed: Federation, servers: Sequence[str], data: Path, creds: Path | None = None) -> dict[str, object]:
    """Members up, their views of each other, the formation and final statuses, and the decision log."""
    import nats.errors

    nc = await connect(servers, f"{fed.name}/status", creds=creds)
    try:
        return await _status(nc, fed, data)
    except (nats.errors.TimeoutError, TimeoutError):
        raise UserError("the bus did not answer in time (a server may be failing over, which takes a few "
                        "seconds); try again") from None
    finally:
        await nc.drain()


async def _status(nc, fed: Federation, data: Path) -> dict[str, object]:  # noqa: ANN001
    from nats.js.errors import BucketNotFoundError

    js = nc.jetstream(timeout=REQUEST_TIMEOUT)
    try:
        registry = await js.key_value(fed.subjects.registry_bucket)
        store = await js.key_value(fed.subjects.status_bucket)
    except BucketNotFoundError:
        raise UserError(f"federation {fed.name} has no streams on this bus yet: start it with "
                        f"`llm-sched federation up FILE`") from None
    names = [m.name for m in fed.members]
    members = {k: body for k, v in (await registered(registry, names)).items() if (body := _readable(v)) is not None}
    kept = await registered(store, ["formation", "executor", *(f"final.{n}" for n in names)])
    extra = {k: body for k, v in kept.items() if (body := _readable(v)) is not None}
    log = await read_decisions(js, fed, data)
    return {"federation": fed.name, "members": members, "formation": extra.get("formation"),
            "final": {k.removeprefix("final."): v for k, v in extra.items() if k.startswith("final.")},
            "executor": extra.get("executor"),
            "submitted": log.submitted, "decided": log.decided, "instances": log.instances,
            "records": log.records, "invalid": log.invalid, "conflicts": log.conflicts, "refused": log.refused}
