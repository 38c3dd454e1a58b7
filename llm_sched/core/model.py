"""Value types of the scheduling domain (immutable, validated at the boundary)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Specialty = Literal["gpu", "memory", "compute", "storage", "general"]
SPECIALTIES: tuple[str, ...] = get_args(Specialty)
JobKind = Literal["ai", "climate", "genomics", "physics", "analytics", "quantum", "graph", "fusion", "drug", "cosmology"]
JOB_KINDS: tuple[str, ...] = get_args(JobKind)

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Resources(BaseModel):
    """An amount of each resource on one node."""

    model_config = _FROZEN

    # strict and finite: a cluster file's `cores: true` was read as 1 core, `.inf` as endless memory
    cores: int = Field(0, ge=0, strict=True)
    memory_gb: float = Field(0, ge=0, strict=True, allow_inf_nan=False)
    gpus: int = Field(0, ge=0, strict=True)
    storage_gb: float = Field(0, ge=0, strict=True, allow_inf_nan=False)

    def plus(self, other: Resources) -> Resources:
        return Resources(
            cores=self.cores + other.cores,
            memory_gb=self.memory_gb + other.memory_gb,
            gpus=self.gpus + other.gpus,
            storage_gb=self.storage_gb + other.storage_gb,
        )

    def minus(self, other: Resources) -> Resources:
        """Difference, floored at zero (a node can be full, never negative)."""
        return Resources(
            cores=max(0, self.cores - other.cores),
            memory_gb=max(0.0, self.memory_gb - other.memory_gb),
            gpus=max(0, self.gpus - other.gpus),
            storage_gb=max(0.0, self.storage_gb - other.storage_gb),
        )

    def shortfalls(self, need: Resources) -> list[str]:
        """What ``need`` asks beyond what ``self`` has, one phrase per resource short."""
        out = []
        if need.cores > self.cores:
            out.append(f"{need.cores} cores needed, {self.cores} free")
        if need.memory_gb > self.memory_gb + 1e-9:
            out.append(f"{need.memory_gb:g} GB memory needed, {self.memory_gb:g} GB free")
        if need.gpus > self.gpus:
            out.append(f"{need.gpus} GPUs needed, {self.gpus} free")
        if need.storage_gb > self.storage_gb + 1e-9:
            out.append(f"{need.storage_gb:g} GB storage needed, {self.storage_gb:g} GB free")
        return out


class Node(BaseModel):
    """One compute node. ``load`` is the fraction of its cores busy with background work."""

    model_config = _FROZEN

    id: str = Field(min_length=1)
    capacity: Resources
    load: float = Field(0.0, ge=0.0, le=1.0)


class Pool(BaseModel):
    """The nodes one specialist agent watches."""

    model_config = _FROZEN

    id: str = Field(min_length=1)
    specialty: Specialty
    nodes: tuple[Node, ...] = Field(min_length=1)
    interconnect: str | None = None
    label: str | None = None  # what the system is called for, e.g. "hybrid" or "ai" (display only)

    @model_validator(mode="after")
    def _unique_nodes(self) -> Pool:
        ids = [n.id for n in self.nodes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"pool {self.id}: duplicate node ids {', '.join(duplicates)}")
        return self


class Job(BaseModel):
    """A job: ``nodes`` nodes, each needing ``per_node``, for ``runtime_s`` seconds."""

    model_config = _FROZEN

    id: str = Field(min_length=1)
    kind: JobKind
    nodes: int = Field(ge=1)
    per_node: Resources
    runtime_s: float = Field(gt=0)
    # Free text from whoever submitted the job: shown escaped, and put into a proposal prompt only
    # as quoted, capped data (agents/prompts.py, untrusted_data), never into a vote.
    name: str = ""
    description: str = ""

    def describe(self) -> str:
        need = self.per_node
        parts = [f"{need.cores} cores", f"{need.memory_gb:g} GB"]
        if need.gpus:
            parts.append(f"{need.gpus} GPUs")
        if need.storage_gb:
            parts.append(f"{need.storage_gb:g} GB storage")
        return f"{self.nodes} node{'s' if self.nodes > 1 else ''} x ({', '.join(parts)})"


class Placement(BaseModel):
    """Where a job runs: distinct nodes of one pool."""

    model_config = _FROZEN

    job_id: str
    pool: str
    nodes: tuple[str, ...]

    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """Identity for deterministic ordering and de-duplication (node order does not matter)."""
        return (self.job_id, self.pool, tuple(sorted(self.nodes)))
