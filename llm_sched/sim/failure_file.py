"""A hand-written failure schedule for ``python main.py --simulate --failures FILE``, YAML or CSV.

Instead of drawing the outages from a rate and the seed (:func:`~llm_sched.sim.failures.draw_schedule`),
the user lists them. Each outage has the fields of :class:`~llm_sched.sim.failures.Outage`:

- ``kind``: ``agent`` (the agent and its pool of nodes go down, the jobs on it die), ``node`` (one node
  goes down, its job dies) or ``partition`` (the agents listed are cut off from the others; nothing dies).
- ``members``: agent indices (0 to K-1, K = ``--agents``), or for ``node`` one node index (0 to P-1, P =
  the machine's processors). ``agent`` with several members is one outage per agent, same times.
- ``start``, ``end``: seconds **from the trace's first submission** (the first job's submit time, not
  the Unix epoch nor the SWF header's start time), converted to the run's absolute times; end > start.
- ``detect`` (optional): when a monitor suspects the outage, seconds from the first submission too,
  with start <= detect <= end. By default it is what the drawn schedules use: the phi-accrual
  detector (:func:`~llm_sched.sim.detector.detection_time`, heartbeat 1 s, threshold 8) on a
  heartbeat history drawn from ``--seed`` and the outage's place in the file, capped at ``end``:
  0.5 to 1.6 s after ``start``, 1.1 s on average. Every policy run with the same seed and file meets
  the same detections. (``detect = start`` would make a file's outages look instant, unlike drawn ones.)

YAML (a mapping with one key, ``outages``; read with the C safe loader, :func:`llm_sched.loader.load_yaml`)::

    outages:
      - {kind: agent, members: [2], start: 3600, end: 7200}
      - {kind: node, members: [17], start: 600, end: 900, detect: 605}
      - {kind: partition, members: [0, 1], start: 10000, end: 12000}

CSV (a header line naming the columns; members separated by spaces or ``;``; ``detect`` may be left
empty; blank lines and lines starting with ``#`` are skipped)::

    kind,members,start,end,detect
    agent,2,3600,7200,
    node,17,600,900,605
    partition,0 1,10000,12000,

Problems are :class:`~llm_sched.errors.UserError` on one line naming the file, the outage (its place
and line), the field and what is allowed. Members beyond the cluster are refused once its size is
known (:meth:`FailurePlan.schedule`).
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from llm_sched.errors import UserError
from llm_sched.loader import load_yaml, problems, read_text
from llm_sched.sim.detector import DetectorConfig, detection_time
from llm_sched.sim.failures import FailureSchedule, OutageKind

WHAT = "failure schedule"
FIELDS: tuple[str, ...] = ("kind", "members", "start", "end", "detect")
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}
_SPLIT = re.compile(r"[\s;,]+")

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class OutageEntry(BaseModel):
    """One outage as written in the file (times relative to the trace's first submission)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["agent", "node", "partition"]
    members: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    start: Seconds
    end: Seconds
    detect: Seconds | None = None

    @field_validator("start", "end", "detect", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's yes/true would be read as 1 second
            raise ValueError(f"expected a number of seconds, got {value!r}")
        return value

    @field_validator("members", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # CSV: "0 1" or "0;1"
            value = [part for part in _SPLIT.split(value.strip()) if part]
        elif isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, list) and any(isinstance(v, bool) for v in value):
            raise ValueError(f"expected agent or node indices (whole numbers from 0), got {value!r}")
        return value

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"an index is listed twice in {value}")
        if info.data.get("kind") == "node" and len(value) != 1:
            raise ValueError(f"a node outage names one node index, got {value}")
        return sorted(value)

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: float, info: ValidationInfo) -> float:
        start = info.data.get("start")
        if start is not None and not value > start:
            raise ValueError(f"end ({_num(value)} s) must come after start ({_num(start)} s)")
        return value

    @field_validator("detect")
    @classmethod
    def _within(cls, value: float | None, info: ValidationInfo) -> float | None:
        start, end = info.data.get("start"), info.data.get("end")
        if value is not None and start is not None and end is not None and not start <= value <= end:
            raise ValueError(f"detect ({_num(value)} s) must lie from start ({_num(start)} s) "
                             f"to end ({_num(end)} s)")
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True, slots=True)
class PlannedOutage:
    """An entry of the file and where it is (``outage 3, line 12`` or ``line 4``)."""

    where: str
    entry: OutageEntry


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """The outages of a failure file, validated but not yet placed on a cluster or a clock."""

    path: str
    outages: tuple[PlannedOutage, ...]

    def schedule(self, agents: int, nodes: int, origin: float, seed: int,
                 detector: DetectorConfig | None = None) -> FailureSchedule:
        """The outages as a :class:`FailureSchedule` of absolute times (``origin``: the first
        submission), after checking every member against the cluster (``agents`` agents, ``nodes``
        nodes); a missing ``detect`` is drawn from ``seed`` (see the module)."""
        det = detector or DetectorConfig()
        raw: list[tuple[OutageKind, tuple[int, ...], float, float, float]] = []
        for index, planned in enumerate(self.outages):
            o = planned.entry
            if o.kind == "node":
                limit, noun, whole = nodes, "node", "the machine has {} nodes (one per processor)"
            else:
                limit, noun, whole = agents, "agent", "the run has {} agents (--agents)"
            for m in o.members:
                if m >= limit:
                    raise UserError(f"{self.path}: {planned.where}: members: {noun} {m} does not exist; "
                                    f"{whole.format(limit)}, numbered 0 to {limit - 1}")
            start, end = origin + o.start, origin + o.end
            groups = [(m,) for m in o.members] if o.kind == "agent" else [tuple(o.members)]
            for group in groups:
                if o.detect is not None:
                    detect = origin + o.detect
                else:
                    rng = random.Random(f"failures/{seed}/file/{index}/{group[0]}")
                    detect = min(end, detection_time(rng, start, det))
                raw.append((o.kind, group, start, max(start, min(detect, end)), end))
        last = max((t1 for *_, t1 in raw), default=origin)
        return FailureSchedule.build(raw, origin, last - origin)


def load_failure_file(path: str | PathLike[str]) -> FailurePlan:
    """Read and validate a failure file (``.yaml``, ``.yml`` or ``.csv``); a problem is a one-line
    :class:`UserError` naming the file, the outage, the field and what is allowed."""
    file = Path(path)
    kind = SUFFIXES.get(file.suffix.lower())
    if kind is None:
        raise UserError(f"{file}: a failure file ends in .yaml, .yml or .csv (got {file.suffix or 'no suffix'!r})")
    entries = _yaml_entries(file) if kind == "yaml" else _csv_entries(file)
    outages = []
    for where, data in entries:
        if not isinstance(data, dict):
            raise UserError(f"{file}: {where}: expected a mapping of {', '.join(FIELDS)} "
                            f"(e.g. {{kind: agent, members: [0], start: 60, end: 600}}), found {_kind(data)}")
        try:
            entry = OutageEntry.model_validate(data)
        except ValidationError as exc:
            raise UserError(f"{file}: {where}: " + "; ".join(problems(exc, OutageEntry))) from None
        outages.append(PlannedOutage(where, entry))
    return FailurePlan(str(file), tuple(outages))


def _yaml_entries(file: Path) -> list[tuple[str, object]]:
    import yaml

    try:
        data = load_yaml(file, WHAT)
    except UserError as exc:
        if str(exc).endswith("found a list"):  # a bare list of outages: say where it goes
            raise UserError(f"{exc}; put the list under the key 'outages:'") from None
        raise
    extra = sorted(str(k) for k in data if k != "outages")
    if extra:
        raise UserError(f"{file}: unknown top-level field {extra[0]!r}; the only one is 'outages' "
                        "(a list of outages with kind, members, start, end and optionally detect)")
    items = data.get("outages")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise UserError(f"{file}: outages: expected a list of outages, found {_kind(items)}")
    # The lines of the items, from the node tree (the text is already checked by load_yaml).
    lines: list[int] = []
    root = yaml.compose(read_text(file, WHAT), Loader=yaml.CSafeLoader)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "outages" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return [(f"outage {i + 1}" + (f", line {lines[i]}" if i < len(lines) else ""), item)
            for i, item in enumerate(items)]


def _csv_entries(file: Path) -> list[tuple[str, object]]:
    text = read_text(file, WHAT)
    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        return []
    header_line, header_text = rows[0]
    header = [h.strip() for h in next(csv.reader([header_text]))]
    unknown = [h for h in header if h not in FIELDS]
    if unknown or len(set(header)) != len(header):
        bad = unknown[0] if unknown else next(h for h in header if header.count(h) > 1)
        raise UserError(f"{file}: line {header_line}: the header names {bad!r} "
                        f"{'twice' if not unknown else 'which is no column'}; "
                        f"expected the columns {', '.join(FIELDS)} (detect optional), e.g. 'kind,members,start,end'")
    out: list[tuple[str, object]] = []
    for n, line in rows[1:]:
        cells = next(csv.reader([line]))
        if len(cells) > len(header):
            raise UserError(f"{file}: line {n}: {len(cells)} cells for {len(header)} columns "
                            f"({', '.join(header)}); put several members in one cell, separated by spaces or ';'")
        # An empty cell is a missing value (detect then takes its default).
        out.append((f"line {n}", {h: c.strip() for h, c in zip(header, cells) if c.strip()}))
    return out


def _kind(value: object) -> str:
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false"}
    return kinds.get(type(value), type(value).__name__)
