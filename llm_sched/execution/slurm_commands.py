"""Typed wrappers over Slurm's commands (as of Slurm 22.05): nodes, jobs, submission, cancellation.

Every command runs as an argument list (never through a shell) with the caller's ``env`` laid over
this process's environment, so a caller points at one cluster with ``{"SLURM_CONF": path}``. A
command that is missing, times out or fails raises :class:`SlurmError` naming the command and what
Slurm printed on stderr.

What Slurm 22.05 prints, as read from the real commands:

- ``sinfo --json``: ``{"nodes": [...]}`` with ``name``, ``partitions`` (a list), ``cpus``,
  ``real_memory`` (MB), ``gres`` (``"gpu:4"``, ``""`` when none), ``temporary_disk`` (MB), ``state``
  (lowercase base state: ``idle``, ``mixed``, ``allocated``, ``down``, ``unknown``...) and
  ``state_flags`` (upper case: ``DRAIN``, ``NOT_RESPONDING``, ``FAIL``...), ``reason``.
- ``squeue --json``: ``{"jobs": [...]}`` with ``job_id``, ``name``, ``job_state`` (``PENDING``,
  ``RUNNING``, ``COMPLETED``, ``NODE_FAIL``...), ``nodes`` (a hostlist such as ``gpu-[01-02]``),
  ``partition``, ``state_reason``, ``user_name``, and ``exit_code`` as the raw wait status (exit 3 is
  768). It lists finished jobs too, until ``MinJobAge`` has passed, and it ignores ``--user`` and
  ``--jobs`` (22.05 applies no filter with ``--json``), so filtering is done here.
- ``scontrol show job`` has no ``--json`` in 22.05; ``-o`` puts the ``Key=Value`` pairs on one line.
- ``sacct`` needs slurmdbd: without it, it says "Slurm accounting storage is disabled".
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llm_sched.errors import UserError

COMMAND_TIMEOUT_S = 30.0
JOB_NAME_MAX = 64  # Slurm takes longer names; this keeps squeue's and the logs' columns readable
REASON_MAX = 200

NodeStateChange = Literal["down", "resume", "idle"]

# Flags under which Slurm does not start new work on a node (the base state may still say idle).
_UNUSABLE_STATES = frozenset({"down", "drained", "draining", "fail", "failing", "unknown", "error", "future"})
_UNUSABLE_FLAGS = frozenset({"drain", "fail", "not_responding", "maint", "powered_down", "powering_down",
                             "reboot_requested", "reboot_issued", "invalid_reg"})
# Final job states: the job holds no resources any more (COMPLETING still does).
ENDED_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
                          "DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"})
# What a node name, a partition or a GRES name may be here: no white space, no '=' or ',' that
# would change the meaning of a command argument or a slurm.conf line.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_BRACKET = re.compile(r"\[([^\]]*)\]")


class SlurmError(UserError):
    """A Slurm command is missing or failed; the message names the command and Slurm's own words."""


class SlurmNode(BaseModel):
    """One node as ``sinfo`` reports it."""

    model_config = ConfigDict(frozen=True)

    name: str
    partitions: tuple[str, ...] = ()
    cores: int
    memory_mb: int
    gpus: int = 0
    tmp_disk_mb: int = 0
    state: str  # lowercase: idle, mixed, allocated, down, drained, draining, unknown...
    flags: tuple[str, ...] = ()  # lowercase: drain, not_responding, completing...
    reason: str = ""

    @property
    def usable(self) -> bool:
        """Whether Slurm would start new work here (down, drained, draining, failed or silent nodes: no)."""
        return self.state not in _UNUSABLE_STATES and not _UNUSABLE_FLAGS.intersection(self.flags)


class SlurmJob(BaseModel):
    """One job as ``squeue`` or ``scontrol show job`` reports it."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    name: str = ""
    state: str  # upper case, as Slurm spells it: PENDING, RUNNING, COMPLETING, COMPLETED, NODE_FAIL...
    nodes: tuple[str, ...] = ()  # expanded; empty while pending
    partition: str = ""
    reason: str = ""  # why pending, or why it ended (NodeDown, NonZeroExitCode...); "None" becomes ""
    user: str = ""
    exit_code: int | None = None  # the batch script's exit status, once the job has ended
    signal: int | None = None  # the signal that ended it (0: none), once the job has ended

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


# --- running a command -----------------------------------------------------------------------------


def run_slurm(args: Sequence[str], *, env: Mapping[str, str] | None = None, input: str | None = None,
              timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run one Slurm command and return its stdout; any failure is a :class:`SlurmError`."""
    command = " ".join(args)
    full_env = merged_env(env)
    conf = full_env.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        # Without its file a Slurm command looks for a configuration server (configless Slurm) and
        # may wait for the whole timeout: say at once what is wrong.
        raise SlurmError(f"SLURM_CONF names {one_line(conf, 300)}, which is not a file; give the slurm.conf of "
                         "the cluster (`scripts/slurm-local up N` writes runs/slurm-local/slurm.conf)")
    try:
        done = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout,
                              env=full_env, check=False)
    except FileNotFoundError:
        raise SlurmError(f"`{args[0]}` is not installed (not on PATH); Slurm's commands are needed "
                         f"(Debian: apt-get install slurm-wlm)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{command}` did not answer within {timeout:g} s; is slurmctld running "
                         f"(SLURM_CONF={one_line(conf or 'unset', 300)})?") from None
    if done.returncode != 0:
        said = one_line(done.stderr or done.stdout) or "no message"
        raise SlurmError(f"`{command}` failed (exit {done.returncode}): {said}")
    return done.stdout


def merged_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment with ``env`` over it (a caller may give only ``SLURM_CONF``)."""
    return {**os.environ, **(env or {})}


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line without control characters (Slurm's messages reach the user's terminal)."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def _json(args: Sequence[str], env: Mapping[str, str] | None) -> dict[str, Any]:
    out = run_slurm(args, env=env)
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise SlurmError(f"`{' '.join(args)}` printed no JSON ({exc.msg} at {exc.pos}): {one_line(out, 200)}") from None
    if not isinstance(data, dict):
        raise SlurmError(f"`{' '.join(args)}` printed JSON that is not an object")
    if data.get("errors"):
        raise SlurmError(f"`{' '.join(args)}` reported errors: {one_line(json.dumps(data['errors']), 500)}")
    return data


# --- nodes -----------------------------------------------------------------------------------------


def sinfo_nodes(*, env: Mapping[str, str] | None = None) -> list[SlurmNode]:
    """Every node of the cluster, from ``sinfo --json`` (a node in several partitions appears once)."""
    data = _json(["sinfo", "--json"], env)
    nodes: dict[str, SlurmNode] = {}
    for raw in data.get("nodes", []):
        node = node_from_sinfo(raw)
        nodes.setdefault(node.name, node)
    return list(nodes.values())


def node_from_sinfo(raw: Mapping[str, Any]) -> SlurmNode:
    """One entry of ``sinfo --json``'s ``nodes``."""
    flags = tuple(str(f).lower() for f in raw.get("state_flags") or ())
    return SlurmNode(
        name=str(raw["name"]),
        partitions=tuple(str(p) for p in raw.get("partitions") or ()),
        cores=int(raw.get("cpus") or 0),
        memory_mb=int(raw.get("real_memory") or 0),
        gpus=gres_gpus(str(raw.get("gres") or "")),
        tmp_disk_mb=int(raw.get("temporary_disk") or 0),
        state=node_state(str(raw.get("state") or "unknown"), flags),
        flags=flags,
        reason=one_line(str(raw.get("reason") or ""), REASON_MAX),
    )


def node_state(base: str, flags: Sequence[str]) -> str:
    """The state as ``sinfo`` names it: a draining node is ``draining`` while it still runs jobs, then ``drained``."""
    base = base.lower()
    if base == "down":
        return "down"
    if "drain" in flags:
        return "drained" if base == "idle" else "draining"
    if "fail" in flags:
        return "fail" if base == "idle" else "failing"
    return base


def gres_gpus(gres: str) -> int:
    """GPUs in a GRES string: ``gpu:4``, ``gpu:a100:2,gpu:v100:2``, ``gpu:4(S:0-1)``, ``gpu`` (one), ``(null)``."""
    total = 0
    for item in _split_top(gres, "(", ")"):
        fields = re.sub(r"\(.*?\)", "", item).strip().split(":")
        if fields[0] != "gpu":
            continue
        if len(fields) == 1:
            total += 1
            continue
        count = _gres_count(fields[-1])
        total += 1 if count is None and len(fields) == 2 else count or 0
    return total


def _gres_count(text: str) -> int | None:
    """``4`` -> 4, ``2K`` -> 2048; None when ``text`` is a type name (``gpu:a100``)."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", text.strip())
    if not match:
        return None
    return int(match.group(1)) * 1024 ** "_KMGT".index(match.group(2) or "_")


def _split_top(text: str, open_: str, close: str) -> list[str]:
    """``text`` split on commas outside ``open_ ... close`` (hostlists and GRES nest commas in brackets)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += (char == open_) - (char == close)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip() and p.strip() != "(null)"]


def expand_hostlist(hostlist: str) -> list[str]:
    """``gpu-[01-03,07],mem-01`` -> gpu-01 gpu-02 gpu-03 gpu-07 mem-01 (as ``scontrol show hostnames``).

    Ranges keep the zero padding of their first bound; several bracket groups in one name multiply
    (``r[1-2]n[1-2]``). A malformed range is a :class:`SlurmError`.
    """
    names: list[str] = []
    for item in _split_top(hostlist.strip(), "[", "]"):
        pieces = _BRACKET.split(item)  # literal, group, literal, group, ..., literal
        choices = [[piece] if i % 2 == 0 else _expand_ranges(piece, hostlist) for i, piece in enumerate(pieces)]
        names.extend("".join(combo) for combo in itertools.product(*choices))
    return names


def _expand_ranges(group: str, hostlist: str) -> list[str]:
    out: list[str] = []
    for part in group.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise SlurmError(f"malformed host list {hostlist!r}: cannot read the range {part!r}")
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(high) < int(low) or int(high) - int(low) > 100_000:
            raise SlurmError(f"malformed host list {hostlist!r}: range {part!r} runs backwards or is too long")
        out.extend(f"{i:0{len(low)}d}" for i in range(int(low), int(high) + 1))
    return out


# --- jobs ------------------------------------------------------------------------------------------


def squeue_jobs(*, env: Mapping[str, str] | None = None, user: str | None = None) -> list[SlurmJob]:
    """The jobs slurmctld knows: pending, running, and those ended less than ``MinJobAge`` ago."""
    data = _json(["squeue", "--json"], env)
    jobs = [job_from_squeue(raw) for raw in data.get("jobs", [])]
    return [j for j in jobs if user is None or j.user == user]


def job_from_squeue(raw: Mapping[str, Any]) -> SlurmJob:
    """One entry of ``squeue --json``'s ``jobs``; ``exit_code`` there is the raw wait status."""
    state = str(raw.get("job_state") or "UNKNOWN").upper()
    status = raw.get("exit_code")
    exit_code = signal = None
    if state in ENDED_STATES and isinstance(status, int):
        exit_code, signal = (status >> 8) & 0xFF, status & 0x7F
    return SlurmJob(job_id=int(raw["job_id"]), name=str(raw.get("name") or ""), state=state,
                    nodes=tuple(expand_hostlist(str(raw.get("nodes") or ""))),
                    partition=str(raw.get("partition") or ""),
                    reason=_reason(raw.get("state_reason")), user=str(raw.get("user_name") or ""),
                    exit_code=exit_code, signal=signal)


def job_state(job_id: int, *, env: Mapping[str, str] | None = None) -> SlurmJob | None:
    """A job as ``scontrol show job`` knows it, also after it left the queue; None once slurmctld forgot it.

    slurmctld keeps a finished job for ``MinJobAge`` seconds (then purges it on its next sweep, a few
    seconds later); without slurmdbd, ``sacct`` cannot say anything after that.
    """
    try:
        out = run_slurm(["scontrol", "-o", "show", "job", str(int(job_id))], env=env)
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return None
        raise
    line = next((ln for ln in out.splitlines() if ln.startswith("JobId=")), None)
    return None if line is None else job_from_scontrol(line)


def job_from_scontrol(line: str) -> SlurmJob:
    """A job from one line of ``scontrol -o show job``."""
    fields = parse_key_values(line)
    state = fields.get("JobState", "UNKNOWN").upper()
    exit_code = signal = None
    match = re.fullmatch(r"(\d+):(\d+)", fields.get("ExitCode", ""))
    if state in ENDED_STATES and match:
        exit_code, signal = int(match.group(1)), int(match.group(2))
    nodelist = fields.get("NodeList", "")
    return SlurmJob(job_id=int(fields["JobId"]), name=fields.get("JobName", ""), state=state,
                    nodes=tuple(expand_hostlist("" if nodelist == "(null)" else nodelist)),
                    partition=fields.get("Partition", ""), reason=_reason(fields.get("Reason")),
                    user=fields.get("UserId", "").split("(")[0], exit_code=exit_code, signal=signal)


def parse_key_values(line: str) -> dict[str, str]:
    """``Key=Value Key=Value`` as scontrol prints it; a word without ``=`` continues the previous value
    (``Command=/a b`` has a space), and a value may hold ``=`` (``TRES=cpu=1,mem=1G``)."""
    fields: dict[str, str] = {}
    key = None
    for word in line.split():
        name, sep, value = word.partition("=")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_:/]*", name):
            key = name
            fields[key] = value
        elif key is not None:
            fields[key] += " " + word
    return fields


def _reason(value: object) -> str:
    text = one_line(str(value or ""), REASON_MAX)
    return "" if text in ("None", "(null)") else text


# --- submitting, cancelling, node states -----------------------------------------------------------


def sanitize_job_name(text: str, limit: int = JOB_NAME_MAX) -> str:
    """A job name safe to pass to Slurm and to show: only ``[A-Za-z0-9._-]`` (runs of others become
    one ``_``), at most ``limit`` characters, never empty (job names are untrusted text)."""
    name = _NAME_UNSAFE.sub("_", text).strip("_")[:limit]
    return name or "job"


def check_name(what: str, name: str) -> str:
    """``name`` if it is a plain Slurm name (node, partition); otherwise a :class:`SlurmError`."""
    if not NAME_PATTERN.fullmatch(name):
        raise SlurmError(f"invalid {what} {name!r}: expected letters, digits, '.', '_' or '-' (at most 63)")
    return name


def sbatch(script: str, *, name: str, nodelist: Sequence[str], nodes: int, ntasks_per_node: int, mem_mb: int,
           gpus: int, output: Path, env: Mapping[str, str] | None = None, extra: Sequence[str] = (),
           partition: str | None = None) -> int:
    """Submit ``script`` (given on stdin, it must start with ``#!``) to run on exactly ``nodelist``; the job id.

    ``mem_mb`` and ``gpus`` are per node. The job is never requeued: a job whose node fails ends
    ``NODE_FAIL`` and the caller decides what to do. ``mem_mb`` below 1 asks 1 MB, since Slurm reads
    ``--mem=0`` as "all the node's memory". Without ``partition`` Slurm uses the default partition
    (the local cluster's ``all`` holds every node). ``output`` is made absolute; Slurm expands ``%j``
    (job id) and other ``%`` patterns in it. ``extra``: more ``--option=value`` arguments.
    """
    if not nodelist:
        raise SlurmError("sbatch: an empty node list; a job must name the nodes it runs on")
    args = ["sbatch", "--parsable", f"--job-name={sanitize_job_name(name)}",
            f"--nodelist={','.join(check_name('node name', n) for n in nodelist)}", f"--nodes={int(nodes)}",
            f"--ntasks-per-node={max(1, int(ntasks_per_node))}", f"--mem={max(1, int(mem_mb))}M",
            "--no-requeue", f"--output={Path(output).resolve()}"]
    if gpus > 0:
        args.append(f"--gres=gpu:{int(gpus)}")
    if partition is not None:
        args.append(f"--partition={check_name('partition', partition)}")
    options = list(extra)
    if any(not option.startswith("--") for option in options):  # a bare word would be read as the script file
        raise SlurmError(f"sbatch: extra options must be --name=value, got {options!r}")
    args.extend(options)
    out = run_slurm(args, env=env, input=script).strip()
    match = re.fullmatch(r"(\d+)(;\S+)?", out)  # "ID" or "ID;cluster"
    if not match:
        raise SlurmError(f"`sbatch --parsable` printed {one_line(out, 200)!r}, not a job id")
    return int(match.group(1))


def scancel(job_id: int, *, env: Mapping[str, str] | None = None) -> None:
    """Cancel a job; a job that already ended (or that slurmctld forgot) is no error."""
    try:
        run_slurm(["scancel", str(int(job_id))], env=env)
    except SlurmError as exc:
        if "Invalid job id" not in str(exc) and "already completing or completed" not in str(exc):
            raise


def set_node_state(node: str, state: NodeStateChange, reason: str, *, env: Mapping[str, str] | None = None) -> None:
    """``scontrol update nodename=NODE state=STATE reason=...``: ``down`` kills the node's jobs (they end
    NODE_FAIL), ``resume`` and ``idle`` put it back in service."""
    if state not in ("down", "resume", "idle"):
        raise SlurmError(f"set_node_state: state {state!r} is not one of down, resume, idle")
    args = ["scontrol", "update", f"nodename={check_name('node name', node)}", f"state={state}"]
    why = one_line(reason, REASON_MAX)
    if why or state == "down":  # Slurm refuses state=down without a reason
        args.append(f"reason={why or 'set down'}")
    run_slurm(args, env=env)
