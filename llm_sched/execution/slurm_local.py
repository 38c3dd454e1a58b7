"""A real Slurm cluster on one machine: one slurmctld and one slurmd per node, all on 127.0.0.1.

The nodes claim the resources of a scenario's pools (cores, memory, GPUs, disk) whatever this
machine has: ``SlurmdParameters=config_overrides`` makes slurmd report the configured node instead
of the hardware. Everything lives under one state folder (``slurm.conf``, state, spool, logs, pid
files, ``cluster.json``) on ports chosen free, so two clusters can run side by side and nothing
touches ``/etc`` or ``/var``. What Slurm 22.05 (Debian's build) needed, as found by running it:

- ``auth/none`` and ``cred/none`` exist, so no munge key is needed. They trust whoever connects, and
  slurmctld and slurmd listen on every interface: run this only on a machine (or container) whose
  ports are not reachable by others.
- A GPU GRES needs device files: a ``gres.conf`` line with ``Count`` but no ``File`` is dropped by
  slurmd ("Removing file-less GPU") and the node is drained (count 0 < 4). Each node gets
  ``<state>/dev/<node>/nvidia<i>`` as symlinks to ``/dev/null`` (regular files are refused as "not a
  valid character or block device"); jobs then see ``CUDA_VISIBLE_DEVICES``.
- ``ReturnToService=2`` puts a node set DOWN by ``scontrol`` back in service within milliseconds
  (its slurmd is still answering), so a node could never be taken down on purpose. ``1`` brings back
  nodes that were down for not responding, and leaves an administrator's DOWN until ``resume``.
- A job names no partition, so there is a default one, ``all``, holding every node; each pool's
  partition is listed first on its nodes (``sinfo`` gives a node's partitions in slurm.conf order).
- ``srun`` works inside batch jobs (``proctrack/linuxproc``, ``task/none``, no cgroups).
- ``scontrol update state=down`` ends a job on that node at once (``NODE_FAIL``, reason ``NodeDown``,
  ``ExitCode=0:15``; its processes are killed within a second); ``resume`` makes the node ``idle`` but
  ``not_responding`` for about a second, until slurmctld hears from its slurmd.
- slurmctld keeps a finished job ``MinJobAge`` seconds (300 here), then drops it on its next purge
  pass: with MinJobAge=10 a job was still shown 16 s after it ended and gone at 20 s. ``sacct``
  cannot help after that: without slurmdbd it answers "Slurm accounting storage is disabled".
- A job is scheduled about a second after ``sbatch`` (``batch_sched_delay=0``; the default waits up to
  3 s), the first one after start-up about 3 s.
- Starting takes about half a second; a job stops with its slurmd gone only if cancelled first (its
  ``slurmstepd`` outlives slurmd), which :func:`down` does.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_sched.core.model import Resources
from llm_sched.errors import UserError
from llm_sched.execution.slurm_commands import (
    NAME_PATTERN,
    SlurmError,
    SlurmNode,
    scancel,
    sinfo_nodes,
    squeue_jobs,
)
from llm_sched.loader import load_yaml, validated

DEFAULT_PARTITION = "all"
MIN_JOB_AGE_S = 300  # how long slurmctld keeps a finished job (scontrol show job, squeue --json)
SLURMD_TIMEOUT_S = 30  # a slurmd silent this long has its node marked DOWN (default 300)
REQUIRED = ("slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scontrol", "scancel")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CLUSTER_FILE = PROJECT_ROOT / "scenarios" / "clusters" / "specialists.yaml"
DEFAULT_DIR = Path("runs/slurm-local")
# Each job step has a Unix socket <spool>/<node>/<node>_<job>.<step>; longer than 107 bytes, the job
# fails to launch ("Unix socket path ... is too long (158 > 108)") and is held.
_SOCKET_PATH_MAX = 107
_STEP_SOCKET_SUFFIX = len("_4294967295.4294967295")
CONF_MARKER = "# A local Slurm cluster, written by llm_sched.execution.slurm_local (scripts/slurm-local)."
_PMIX_NOISE = re.compile(r"pmix|MPI: Cannot create context", re.IGNORECASE)
_UNSAFE_PATH_CHARS = set(" \t\n\r#=\"'")


# --- what the cluster is ---------------------------------------------------------------------------


class LocalNode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=NAME_PATTERN.pattern)
    partition: str = Field(pattern=NAME_PATTERN.pattern)
    cores: int = Field(ge=1)
    memory_mb: int = Field(ge=1)
    gpus: int = Field(0, ge=0)
    tmp_disk_mb: int = Field(0, ge=0)

    def describe(self) -> str:
        gpus = f", {self.gpus} GPUs" if self.gpus else ""
        return (f"{self.name}  partition {self.partition}: {self.cores} cores, {self.memory_mb / 1024:g} GB memory"
                f"{gpus}, {self.tmp_disk_mb / 1024:g} GB tmp disk")


class LocalClusterSpec(BaseModel):
    """The nodes of a local cluster; each node's partition is its pool's id."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    nodes: tuple[LocalNode, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> LocalClusterSpec:
        names = [n.name for n in self.nodes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"node names must be distinct; repeated: {', '.join(twice)}")
        if any(n.partition == DEFAULT_PARTITION for n in self.nodes):
            raise ValueError(f"a pool may not be named {DEFAULT_PARTITION!r}: that is the default partition")
        return self

    def partitions(self) -> dict[str, list[str]]:
        """Partition -> its nodes, in the order the pools come."""
        out: dict[str, list[str]] = {}
        for node in self.nodes:
            out.setdefault(node.partition, []).append(node.name)
        return out


class PoolGroup(NamedTuple):
    """One node group of a pool, as a cluster file describes it (``size``: its count there, which sets
    the zero padding of the node names, as the scenario pads them)."""

    pool: str
    prefix: str
    per_node: Resources
    size: int = 0


def pool_order(groups: Sequence[PoolGroup]) -> list[str]:
    """The pools' ids in file order."""
    return list(dict.fromkeys(g.pool for g in groups))


def default_counts(pools: Sequence[str], total: int) -> dict[str, int]:
    """``total`` nodes dealt round-robin over ``pools`` in order (4 over 5 pools: the first four get one)."""
    counts = dict.fromkeys(pools, 0)
    for i in range(total):
        counts[pools[i % len(pools)]] += 1
    return {p: c for p, c in counts.items() if c}


def parse_pool_counts(text: str, pools: Sequence[str], total: int) -> dict[str, int]:
    """``gpu-pool=3,mem-pool=1`` (or ``gpu-pool,mem-pool``: ``total`` dealt over them) -> nodes per pool.

    Counts given must be at least 1 and sum to ``total`` when every pool has one; the nodes left over
    are dealt round-robin over the pools named without a count, each of which gets at least one.
    """
    given: dict[str, int | None] = {}
    for item in (part.strip() for part in text.split(",")):
        pool, sep, number = item.partition("=")
        pool = pool.strip()
        if not pool:
            raise UserError(f"--pools {text!r}: an empty pool name; expected POOL=N,POOL=N (pools: {', '.join(pools)})")
        if pool not in pools:
            raise UserError(f"--pools: unknown pool {pool!r}; the cluster file has: {', '.join(pools)}")
        if pool in given:
            raise UserError(f"--pools: pool {pool!r} is given twice")
        given[pool] = _positive(number, f"--pools {pool}") if sep else None
    if total < len(given):
        raise UserError(f"{total} nodes cannot cover the {len(given)} pools given in --pools (one node each at least)")
    fixed = sum(c for c in given.values() if c is not None)
    free = [p for p, c in given.items() if c is None]
    left = total - fixed
    if left < len(free) or (not free and left != 0):
        raise UserError(f"--pools {text!r} asks for {fixed} nodes"
                        f"{' and at least one for each pool without a count' if free else ''}, but N is {total}")
    counts = {p: c for p, c in given.items() if c is not None}
    counts.update(default_counts(free, left) if free else {})
    return {p: counts[p] for p in pools if counts.get(p)}  # file order


def _positive(text: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UserError(f"{what}: {text.strip()!r} is not a whole number") from None
    if value < 1:
        raise UserError(f"{what}: {value} nodes; a pool given gets at least 1")
    return value


def spec_from_pools(groups: Sequence[PoolGroup], counts: Mapping[str, int]) -> LocalClusterSpec:
    """The cluster with ``counts[pool]`` nodes in each pool, named ``<prefix><NN>`` as the scenario names them.

    A pool with several node groups has its nodes dealt round-robin over them; a pool without nodes
    has no partition. Memory and storage (GB) become Slurm's RealMemory and TmpDisk (MB).
    """
    unknown = sorted(set(counts) - {g.pool for g in groups})
    if unknown:
        raise UserError(f"unknown pools {', '.join(unknown)}; the cluster has: {', '.join(pool_order(groups))}")
    nodes: list[LocalNode] = []
    for pool in pool_order(groups):
        mine = [g for g in groups if g.pool == pool]
        for group, k in zip(mine, default_counts_per_group(len(mine), counts.get(pool, 0)), strict=True):
            width = max(2, len(str(max(k, group.size))))
            nodes.extend(_node(f"{group.prefix}{i:0{width}d}", pool, group.per_node) for i in range(1, k + 1))
    try:
        return LocalClusterSpec(nodes=tuple(nodes))
    except ValidationError as exc:
        raise UserError("cannot build the local cluster: " + "; ".join(e["msg"] for e in exc.errors())) from None


def default_counts_per_group(groups: int, total: int) -> list[int]:
    return [total // groups + (i < total % groups) for i in range(groups)]


def _node(name: str, pool: str, res: Resources) -> LocalNode:
    try:
        return LocalNode(name=name, partition=pool, cores=res.cores, memory_mb=max(1, round(res.memory_gb * 1024)),
                         gpus=res.gpus, tmp_disk_mb=round(res.storage_gb * 1024))
    except ValidationError as exc:  # a name Slurm cannot take, a node without cores
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))} {e['input']!r}: {e['msg']}" for e in exc.errors())
        raise UserError(f"pool {pool}: node {name} cannot be a Slurm node: {problems}") from None


# --- reading a cluster file (plain YAML: the execution layer does not import orchestration) ----------


class _GroupFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    count: int = Field(1, ge=1, strict=True)
    prefix: str = Field(min_length=1)
    per_node: Resources


class _PoolFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    nodes: _GroupFile | list[_GroupFile]


class _ClusterFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    pools: list[_PoolFile] = Field(min_length=1)


def load_pool_groups(path: Path) -> list[PoolGroup]:
    """The pools' node groups of a cluster file (``scenarios/clusters/*.yaml``), in file order."""
    spec = validated(_ClusterFile, load_yaml(path, "cluster"), path, "cluster")
    return [PoolGroup(p.id, g.prefix, g.per_node, g.count)
            for p in spec.pools for g in (p.nodes if isinstance(p.nodes, list) else [p.nodes])]


# --- slurm.conf --------------------------------------------------------------------------------------


class Layout(NamedTuple):
    """Where one cluster keeps its files, all under its state folder."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def gres(self) -> Path:
        return self.root / "gres.conf"

    @property
    def record(self) -> Path:
        return self.root / "cluster.json"

    @property
    def state(self) -> Path:
        return self.root / "ctld-state"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def dev(self) -> Path:
        return self.root / "dev"


def cluster_name(state_dir: Path) -> str:
    """A name unique to the state folder (Slurm wants lowercase, short)."""
    return "local-" + hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]


def slurm_user() -> str:
    """root when we are root (slurmd then runs jobs as their submitter), else the current user."""
    return "root" if os.geteuid() == 0 else getpass.getuser()


def slurm_conf(spec: LocalClusterSpec, state_dir: Path, *, ctld_port: int, node_ports: Mapping[str, int],
               user: str | None = None) -> str:
    """The slurm.conf of a local cluster: everything under ``state_dir``, one port per daemon on 127.0.0.1."""
    at = Layout(state_dir)
    lines = [
        CONF_MARKER,
        f"ClusterName={cluster_name(state_dir)}",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        # No munge: any local process may speak for any user. Fine for a private test machine only.
        "AuthType=auth/none",
        "CredType=cred/none",
        # Listen on 127.0.0.1 only (SlurmctldHost's and each NodeAddr), not on every interface.
        "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
        f"SlurmUser={user or slurm_user()}",
        # slurmd reports the configured node (64 cores, 512 GB, 4 GPUs), not this machine.
        "SlurmdParameters=config_overrides",
        f"StateSaveLocation={at.state}",
        f"SlurmdSpoolDir={at.spool}/%n",
        f"SlurmctldPidFile={at.run}/slurmctld.pid",
        f"SlurmdPidFile={at.run}/slurmd-%n.pid",
        f"SlurmctldLogFile={at.logs}/slurmctld.log",
        f"SlurmdLogFile={at.logs}/slurmd-%n.log",
        f"PlugStackConfig={at.root}/plugstack.conf",  # empty: /etc/slurm/plugstack.conf is the host's
        "MailProg=/bin/true",
        "ProctrackType=proctrack/linuxproc",  # no cgroups in a container
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # 1, not 2: with 2, a node set DOWN by scontrol is back in service at once (its slurmd answers).
        "ReturnToService=1",
        f"SlurmdTimeout={SLURMD_TIMEOUT_S}",
        f"MinJobAge={MIN_JOB_AGE_S}",
        "KillWait=5",  # seconds between SIGTERM and SIGKILL when a job is cancelled or its node goes down
        "SchedulerType=sched/backfill",
        # Schedule a batch job when it is submitted: by default sbatch's jobs wait up to 3 s for the next pass.
        "SchedulerParameters=batch_sched_delay=0",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
    ]
    if any(n.gpus for n in spec.nodes):
        lines.append("GresTypes=gpu")  # not AccountingStorageTRES=gres/gpu: slurmctld wants slurmdbd for that
    for node in spec.nodes:
        gres = f" Gres=gpu:{node.gpus}" if node.gpus else ""
        lines.append(f"NodeName={node.name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={node_ports[node.name]} "
                     f"CPUs={node.cores} Sockets=1 CoresPerSocket={node.cores} ThreadsPerCore=1 "
                     f"RealMemory={node.memory_mb} TmpDisk={node.tmp_disk_mb}{gres} State=UNKNOWN")
    for partition, names in spec.partitions().items():
        lines.append(f"PartitionName={partition} Nodes={','.join(names)} MaxTime=INFINITE State=UP")
    lines.append(f"PartitionName={DEFAULT_PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def gres_conf(spec: LocalClusterSpec, state_dir: Path) -> str | None:
    """gres.conf naming each GPU node's fake devices (:func:`device_files`), or None without GPUs."""
    gpu_nodes = [n for n in spec.nodes if n.gpus]
    if not gpu_nodes:
        return None
    lines = ["AutoDetect=off"]
    for node in gpu_nodes:
        files = "nvidia0" if node.gpus == 1 else f"nvidia[0-{node.gpus - 1}]"
        lines.append(f"NodeName={node.name} Name=gpu File={Layout(state_dir).dev / node.name / files}")
    return "\n".join(lines) + "\n"


def device_files(spec: LocalClusterSpec, state_dir: Path) -> None:
    """``dev/<node>/nvidia<i>`` -> /dev/null: slurmd wants a character device behind each GPU."""
    for node in spec.nodes:
        folder = Layout(state_dir).dev / node.name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(node.gpus):
            link = folder / f"nvidia{i}"
            if not link.is_symlink():
                link.symlink_to("/dev/null")


# --- running it -------------------------------------------------------------------------------------


@dataclass
class LocalCluster:
    """A running local cluster; ``env`` is what callers pass to every Slurm command."""

    spec: LocalClusterSpec
    state_dir: Path
    pids: dict[str, int]
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def conf(self) -> Path:
        return Layout(self.state_dir).conf

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    @property
    def nodes(self) -> tuple[LocalNode, ...]:
        return self.spec.nodes

    def down(self, timeout: float = 10.0) -> list[str]:
        """Stop the daemons (cancelling jobs first); what was stopped, as ``slurmd gpu-01``..."""
        stopped = down(self.state_dir, timeout=timeout)
        for proc in self._procs.values():  # ours to reap
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        return stopped


def up(spec: LocalClusterSpec, state_dir: Path, *, timeout: float = 60.0) -> LocalCluster:
    """Write the configuration into ``state_dir``, start slurmctld and one slurmd per node, and return
    once ``sinfo`` shows every node idle (a :class:`SlurmError` with the logs' tails otherwise)."""
    require_slurm()
    state_dir = state_dir.resolve()
    check_state_dir(spec, state_dir)
    _clear_previous(state_dir)
    ctld_port, *ports = free_ports(1 + len(spec.nodes))
    _write_files(spec, state_dir, ctld_port, dict(zip([n.name for n in spec.nodes], ports, strict=True)))
    cluster = LocalCluster(spec, state_dir, {})
    deadline = time.monotonic() + timeout
    try:
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-f", str(cluster.conf)])
        _wait_port(cluster, ctld_port, deadline)  # slurmd's first registration then gets through
        for node in spec.nodes:
            _start(cluster, f"slurmd {node.name}", ["slurmd", "-D", "-N", node.name, "-f", str(cluster.conf)])
        _wait_idle(cluster, deadline, timeout)
    except BaseException:
        cluster.down(timeout=5)
        raise
    return cluster


def require_slurm() -> None:
    missing = [c for c in REQUIRED if shutil.which(c) is None]
    if missing:
        raise SlurmError(f"Slurm is not installed: {', '.join(missing)} not on PATH "
                         f"(Debian: apt-get install slurm-wlm)")


def check_state_dir(spec: LocalClusterSpec, state_dir: Path) -> None:
    """A :class:`UserError` for a folder slurm.conf cannot name, or too deep for slurmd's sockets."""
    if _UNSAFE_PATH_CHARS.intersection(str(state_dir)):
        raise UserError(f"state folder {str(state_dir)!r}: slurm.conf cannot hold a path with spaces, quotes, "
                        f"'#' or '='")
    longest = max(len(os.fsencode(Layout(state_dir).spool / n.name / n.name)) + _STEP_SOCKET_SUFFIX for n in spec.nodes)
    if longest > _SOCKET_PATH_MAX:
        raise UserError(f"state folder {state_dir} is too deep: slurmd's job sockets under it would have paths of "
                        f"up to {longest} bytes, more than the {_SOCKET_PATH_MAX} a Unix socket allows; "
                        f"choose a shorter --dir")
    if state_dir.exists() and not state_dir.is_dir():
        raise UserError(f"state folder {state_dir} is a file")
    if state_dir.is_dir() and any(state_dir.iterdir()) and not _holds_local_cluster(state_dir):
        # up clears the state, spool, run, log and dev folders it finds there: never someone else's
        raise UserError(f"state folder {state_dir} is not empty and holds no local cluster (no slurm.conf of ours); "
                        f"choose a new or empty --dir")


def _holds_local_cluster(state_dir: Path) -> bool:
    try:
        with open(Layout(state_dir).conf, encoding="utf-8") as conf:
            return conf.readline().rstrip("\n") == CONF_MARKER
    except (OSError, UnicodeDecodeError):
        return False


def _clear_previous(state_dir: Path) -> None:
    """Refuse a cluster still running here; forget one that stopped or crashed (stale pids, its state and
    logs: a new cluster's logs should hold only its own lines, which an error quotes)."""
    running = {label: pid for label, pid in recorded_pids(state_dir).items() if _ours(pid, Layout(state_dir).conf)}
    if running:
        label, pid = next(iter(running.items()))
        raise UserError(f"a local Slurm cluster is already running in {state_dir} ({label}, pid {pid}); "
                        f"stop it first: scripts/slurm-local down --dir {state_dir}")
    at = Layout(state_dir)
    for folder in (at.state, at.spool, at.run, at.logs, at.dev):
        shutil.rmtree(folder, ignore_errors=True)
    at.record.unlink(missing_ok=True)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _write_files(spec: LocalClusterSpec, state_dir: Path, ctld_port: int, ports: dict[str, int]) -> None:
    at = Layout(state_dir)
    for folder in (at.root, at.state, at.logs, at.run, *(at.spool / n.name for n in spec.nodes)):
        folder.mkdir(parents=True, exist_ok=True)
    at.conf.write_text(slurm_conf(spec, state_dir, ctld_port=ctld_port, node_ports=ports), encoding="utf-8")
    (at.root / "plugstack.conf").write_text("", encoding="utf-8")
    gres = gres_conf(spec, state_dir)
    if gres is None:
        at.gres.unlink(missing_ok=True)
    else:
        device_files(spec, state_dir)
        at.gres.write_text(gres, encoding="utf-8")


def _start(cluster: LocalCluster, label: str, args: list[str]) -> None:
    """Start one daemon in the foreground (-D) in its own session; its stderr goes to ``log/<label>.stderr``."""
    at = Layout(cluster.state_dir)
    with open(at.logs / f"{label.replace(' ', '-')}.stderr", "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, **cluster.env}, cwd=cluster.state_dir, start_new_session=True)
    cluster._procs[label] = proc
    cluster.pids[label] = proc.pid
    _write_record(cluster)


def _write_record(cluster: LocalCluster) -> None:
    """``cluster.json``: what another process needs to find and stop this cluster."""
    at = Layout(cluster.state_dir)
    record = {"cluster_name": cluster_name(cluster.state_dir), "conf": str(at.conf), "pids": cluster.pids,
              "nodes": [n.model_dump() for n in cluster.spec.nodes]}
    tmp = at.record.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(at.record)


def _wait_port(cluster: LocalCluster, port: int, deadline: float) -> None:
    while True:
        _check_alive(cluster)
        if _listening(port):
            return
        if time.monotonic() > deadline:
            _check_alive(cluster)  # a daemon's own reason first
            raise SlurmError(f"slurmctld did not listen on port {port}; {log_tails(cluster.state_dir)}")
        time.sleep(0.1)


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``, read from /proc/net/tcp: a probe connection would
    make slurmctld log an error ("Zero Bytes were transmitted or received")."""
    wanted = f"0100007F:{port:04X}"
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True  # cannot tell: let slurmd's registration retry
    return any(fields[1] == wanted and fields[3] == "0A" for fields in (row.split() for row in rows))


def _wait_idle(cluster: LocalCluster, deadline: float, timeout: float) -> None:
    wanted = {n.name for n in cluster.nodes}
    seen: list[SlurmNode] = []
    while True:
        _check_alive(cluster)
        try:
            seen = sinfo_nodes(env=cluster.env)
        except SlurmError:
            seen = []  # slurmctld still starting
        idle = {n.name for n in seen if n.state == "idle" and n.usable}
        if wanted <= idle:
            return
        if time.monotonic() > deadline:
            _check_alive(cluster)
            states = ", ".join(f"{n.name} {n.state}{' (' + n.reason + ')' if n.reason else ''}"
                               for n in seen if n.name in wanted) or "no node reported"
            raise SlurmError(f"the local cluster's nodes were not all idle after {timeout:g} s ({states}); "
                             f"{log_tails(cluster.state_dir)}")
        time.sleep(0.25)


def _check_alive(cluster: LocalCluster) -> None:
    """Fail fast when a daemon exited, or logged a fatal error (slurmctld may hang on after one)."""
    for label, proc in cluster._procs.items():
        if proc.poll() is not None:
            raise SlurmError(f"{label} exited at start (status {proc.returncode}); {log_tails(cluster.state_dir)}")
        fatal = _fatal_line(Layout(cluster.state_dir).logs / f"{label.replace(' ', '-')}.log")
        if fatal:
            raise SlurmError(f"{label} could not start: {fatal}; {log_tails(cluster.state_dir)}")


def _fatal_line(log: Path) -> str | None:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return next((line.split("] ", 1)[-1] for line in text.splitlines() if "fatal:" in line), None)


def log_tails(state_dir: Path, lines: int = 5) -> str:
    """The last lines of each daemon's log, for an error message: its log file, or what it printed on
    stderr when it has none (a daemon that cannot read slurm.conf dies before opening its log). The
    daemons' complaint at start that PMIx is not installed is left out: it is harmless (MpiDefault=none)."""
    logs = Layout(state_dir).logs
    parts = []
    for stderr in sorted(logs.glob("*.stderr")):
        log = stderr.with_suffix(".log")
        for candidate in (log, stderr):
            try:
                text = candidate.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            tail = [t.strip() for t in text.splitlines() if not _PMIX_NOISE.search(t)][-lines:]
            if tail:
                parts.append(f"{candidate}: " + " | ".join(tail))
                break
    return "logs: " + ("; ".join(parts) if parts else f"none in {logs}")


# --- stopping it ---------------------------------------------------------------------------------------


def recorded_pids(state_dir: Path) -> dict[str, int]:
    """The daemons' pids as ``cluster.json`` and the pid files record them (either may be missing)."""
    at = Layout(state_dir)
    pids: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):  # none, or damaged
        pids.update({str(k): int(v) for k, v in json.loads(at.record.read_text(encoding="utf-8"))["pids"].items()})
    for pid_file in sorted(at.run.glob("*.pid")):
        label = pid_file.stem.replace("slurmd-", "slurmd ", 1)
        try:
            pids.setdefault(label, int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


def _ours(pid: int, conf: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) process started with this cluster's slurm.conf: a stale
    pid may belong to some other process by now."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return str(conf).encode() in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def down(state_dir: Path, *, timeout: float = 10.0) -> list[str]:
    """Stop the cluster recorded in ``state_dir``: cancel its jobs, then SIGTERM the slurmd's and slurmctld,
    SIGKILL what is left after ``timeout``; pid files and ``cluster.json`` are removed. Logs stay."""
    state_dir = state_dir.resolve()
    at = Layout(state_dir)
    running = {label: pid for label, pid in recorded_pids(state_dir).items() if _ours(pid, at.conf)}
    if "slurmctld" in running:
        serving = {label.split(" ", 1)[1] for label in running if label.startswith("slurmd ")}
        _cancel_all(state_dir, serving, time.monotonic() + min(timeout, 10.0))
    slurmds = {k: v for k, v in running.items() if k != "slurmctld"}
    _terminate(slurmds, at.conf, timeout)
    _terminate({k: v for k, v in running.items() if k == "slurmctld"}, at.conf, timeout)
    for pid in _leftover_steps(at.conf):
        _signal(pid, signal.SIGKILL)
    for pid_file in at.run.glob("*.pid"):
        pid_file.unlink(missing_ok=True)
    at.record.unlink(missing_ok=True)
    return sorted(running)


def _cancel_all(state_dir: Path, serving: set[str], deadline: float) -> None:
    """Cancel every job through Slurm, so that their processes end with them (a job's processes outlive
    a stopped slurmd), and wait until those on nodes whose slurmd still runs are gone (the others are
    left to :func:`_leftover_steps`)."""
    env = {"SLURM_CONF": str(Layout(state_dir).conf)}
    try:
        for job in squeue_jobs(env=env):
            if not job.ended:
                scancel(job.job_id, env=env)
        while time.monotonic() < deadline and any(not j.ended and set(j.nodes) <= serving
                                                  for j in squeue_jobs(env=env)):
            time.sleep(0.2)
    except SlurmError:
        pass  # slurmctld not answering: the daemons are stopped anyway


def _leftover_steps(conf: Path) -> list[int]:
    """Job steps of this cluster still running (their slurmd died before the jobs could be cancelled):
    each ``slurmstepd`` whose environment names this slurm.conf, with every process under it."""
    parents: dict[int, int] = {}
    steps: list[int] = []
    marker = b"SLURM_CONF=" + str(conf).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            parents[int(entry.name)] = int(rest[1])
            if name == "slurmstepd" and marker in (entry / "environ").read_bytes().split(b"\0"):
                steps.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(steps), list(steps)
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return sorted(found)


def _terminate(pids: Mapping[str, int], conf: Path, timeout: float) -> None:
    for pid in pids.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_ours(pid, conf) for pid in pids.values()):
        time.sleep(0.1)
    for pid in pids.values():
        if _ours(pid, conf):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def status(state_dir: Path) -> tuple[dict[str, bool], list[SlurmNode]]:
    """Which recorded daemons run, and the nodes as sinfo reports them (none when slurmctld is not up)."""
    state_dir = state_dir.resolve()
    conf = Layout(state_dir).conf
    alive = {label: _ours(pid, conf) for label, pid in recorded_pids(state_dir).items()}
    nodes = sinfo_nodes(env={"SLURM_CONF": str(conf)}) if alive.get("slurmctld") else []
    return alive, nodes


# --- command line ------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line on stderr, exit 2 (argparse would print the usage too)."""
        print(f"slurm-local: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slurm-local", description="A real Slurm cluster on this machine, shaped like a "
                     "scenario's pools (one slurmctld, one slurmd per node, all on 127.0.0.1).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    start = sub.add_parser("up", help="write the configuration and start the daemons")
    start.add_argument("n", metavar="N", help="how many nodes in all")
    start.add_argument("--cluster", type=Path, default=DEFAULT_CLUSTER_FILE, metavar="FILE",
                       help="cluster file with the pools (default scenarios/clusters/specialists.yaml)")
    start.add_argument("--pools", metavar="POOL=N,...",
                       help="nodes per pool, e.g. gpu-pool=3,mem-pool=1 (default: N dealt round-robin over the pools)")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every node idle")
    for name, helptext in (("down", "stop the daemons"), ("status", "show the daemons and the nodes")):
        sub.add_parser(name, help=helptext)
    for command in sub.choices.values():
        command.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder (default runs/slurm-local)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            return _cli_up(args)
        if args.command == "down":
            stopped = down(args.dir)
            print(f"stopped {', '.join(stopped)}" if stopped else f"no local cluster running in {args.dir}")
            return 0
        return _cli_status(args.dir)
    except UserError as exc:
        print(f"slurm-local: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a state folder that cannot be created or written
        print(f"slurm-local: {exc.strerror or exc}: {exc.filename or args.dir}", file=sys.stderr)
        return 2


def _cli_up(args: argparse.Namespace) -> int:
    total = _positive_n(args.n)
    groups = load_pool_groups(args.cluster)
    pools = pool_order(groups)
    counts = parse_pool_counts(args.pools, pools, total) if args.pools else default_counts(pools, total)
    require_slurm()  # after the input's checks, which need no Slurm
    cluster = up(spec_from_pools(groups, counts), args.dir, timeout=args.timeout)
    for node in cluster.nodes:
        print(node.describe())
    print(f"{len(cluster.nodes)} nodes up; logs in {Layout(cluster.state_dir).logs}")
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


def _positive_n(text: str) -> int:
    try:
        total = int(text)
    except ValueError:
        raise UserError(f"N must be a whole number of nodes, got {text!r}") from None
    if total < 1:
        raise UserError(f"N must be at least 1 node, got {total}")
    return total


def _cli_status(state_dir: Path) -> int:
    alive, nodes = status(state_dir)
    if not alive:
        print(f"no local cluster recorded in {state_dir}")
        return 1
    for label, running in sorted(alive.items()):
        print(f"{label}: {'running' if running else 'not running'}")
    for node in nodes:
        flags = f" [{','.join(node.flags)}]" if node.flags else ""
        reason = f" ({node.reason})" if node.reason else ""
        print(f"{node.name}  {','.join(node.partitions)}  {node.state}{flags}{reason}  {node.cores} cores  "
              f"{node.memory_mb} MB  {node.gpus} GPUs  {node.tmp_disk_mb} MB tmp")
    print(f"export SLURM_CONF={Layout(state_dir.resolve()).conf}")
    return 0 if all(alive.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
