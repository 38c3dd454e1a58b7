"""Scenario files (YAML) -> validated :class:`Scenario` objects.

A scenario names its cluster (agents and pools, usually a shared file under ``clusters/``), its
phases (jobs, and the faults active while they run), the seed and the default provider. A scenario
may instead be a ``sequence`` of other scenarios run back to back on the same cluster. A malformed
file gets an error naming the file, the field and what was expected.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_sched.agents.byzantine import Behaviour
from llm_sched.config import ProviderChoice
from llm_sched.domain import ClusterState, Job, Node, Pool, Resources
from llm_sched.domain.model import JobKind, Specialty
from llm_sched.errors import UserError
from llm_sched.names import Name

_STRICT = ConfigDict(extra="forbid", frozen=True)


class AgentSpec(BaseModel):
    model_config = _STRICT
    id: str = Field(min_length=1)
    specialty: Specialty
    pool: str


class NodeGroup(BaseModel):
    """``count`` identical nodes named ``<prefix>NN``, each with a seeded background load in ``load``."""

    model_config = _STRICT
    count: int = Field(ge=1, le=10_000, strict=True)
    prefix: str = Field(min_length=1)
    per_node: Resources
    load: tuple[float, float] = (0.0, 0.0)

    @model_validator(mode="after")
    def _load_range(self) -> NodeGroup:
        low, high = self.load
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"load must be [low, high] with 0 <= low <= high <= 1, got [{low}, {high}]")
        return self


class PoolSpec(BaseModel):
    """A pool (or a whole supercomputer): one node group, or several with different node types."""

    model_config = _STRICT
    id: str = Field(min_length=1)
    specialty: Specialty
    label: str | None = None
    interconnect: str | None = None
    nodes: NodeGroup | list[NodeGroup]

    def groups(self) -> list[NodeGroup]:
        return self.nodes if isinstance(self.nodes, list) else [self.nodes]

    @model_validator(mode="after")
    def _distinct_prefixes(self) -> PoolSpec:
        prefixes = [g.prefix for g in self.groups()]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f"pool {self.id}: node groups need distinct prefixes, got {prefixes}")
        return self


class ClusterSpec(BaseModel):
    model_config = _STRICT
    agents: list[AgentSpec] = Field(min_length=4)
    pools: list[PoolSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _pools_exist(self) -> ClusterSpec:
        pools = {p.id for p in self.pools}
        for agent in self.agents:
            if agent.pool not in pools:
                raise ValueError(f"agent {agent.id} watches pool {agent.pool!r}, which is not in pools: {sorted(pools)}")
        ids = [a.id for a in self.agents]
        if len(set(ids)) != len(ids):
            raise ValueError("agent ids must be unique")
        return self

    def build_state(self, seed: int) -> ClusterState:
        rng = random.Random(seed)  # background loads are drawn from the scenario's seed
        pools = []
        for spec in self.pools:
            nodes = tuple(
                Node(id=f"{group.prefix}{i:0{_digits(group.count)}d}", capacity=group.per_node,
                     load=round(rng.uniform(*group.load), 3))
                for group in spec.groups()
                for i in range(1, group.count + 1)
            )
            pools.append(Pool(id=spec.id, specialty=spec.specialty, nodes=nodes, interconnect=spec.interconnect,
                              label=spec.label))
        return ClusterState(pools)


def _digits(count: int) -> int:
    """Zero-padding that keeps node ids sorting in numeric order: 2 digits up to 99 nodes, then 3..."""
    return max(2, len(str(count)))


class JobSpec(BaseModel):
    model_config = _STRICT
    id: str = Field(min_length=1)
    kind: JobKind
    name: str = ""
    # strict: `cores: true` is an error, not 1 core (a number must be written as a number); bounded so
    # that a 20-digit count is a clear error rather than an overflow further on.
    nodes: int = Field(ge=1, le=1_000_000, strict=True)
    cores: int = Field(ge=0, le=1_000_000, strict=True)
    memory_gb: float = Field(ge=0, le=1e9, strict=True, allow_inf_nan=False)
    gpus: int = Field(0, ge=0, le=1_000_000, strict=True)
    storage_gb: float = Field(0, ge=0, le=1e12, strict=True, allow_inf_nan=False)
    runtime_s: float = Field(gt=0, le=1e10, strict=True, allow_inf_nan=False)

    def job(self) -> Job:
        per_node = Resources(cores=self.cores, memory_gb=self.memory_gb, gpus=self.gpus, storage_gb=self.storage_gb)
        return Job(id=self.id, kind=self.kind, name=self.name, nodes=self.nodes, per_node=per_node, runtime_s=self.runtime_s)


RANDOM_AGENT = "random"


class FaultSpec(BaseModel):
    """``agent`` names the faulty agent, or is ``random``: one agent drawn from the run's seed (the
    same one for every phase), so that nothing in the scenario says in advance which agent lies."""

    model_config = _STRICT
    agent: str
    behaviour: Behaviour


class ConsensusSpec(BaseModel):
    """How agents agree. ``placement``: every agent proposes a placement in any pool. ``bidding``:
    every agent bids for the job on the pool it runs, with capacity claims that others verify.
    ``weighted``: votes weigh by reputation (quorum q/n of the total weight) instead of counting."""

    model_config = _STRICT
    method: Literal["placement", "bidding"] = "placement"
    weighted: bool = False


class Phase(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1)
    description: str = ""
    job_interval_s: float = Field(600.0, gt=0, description="simulated time between job submissions")
    faults: list[FaultSpec] = Field(default_factory=list)
    jobs: list[JobSpec] = Field(min_length=1)


class ScenarioFile(BaseModel):
    """The file as written: either ``phases`` (with a ``cluster``) or a ``sequence`` of scenarios."""

    model_config = _STRICT
    name: Name  # it names the run folders and cassettes: an identifier, never a path
    description: str = ""
    seed: int = Field(0, ge=0, le=2**63 - 1, strict=True)
    provider: ProviderChoice = "auto"
    cluster: str | None = None
    consensus: ConsensusSpec = ConsensusSpec()
    occupancy_view: bool = Field(False, description="report each pool's occupancy after every decision")
    phases: list[Phase] | None = None
    sequence: list[str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ScenarioFile:
        if (self.phases is None) == (self.sequence is None):
            raise ValueError("give either 'phases' (with 'cluster') or 'sequence', not both or neither")
        if self.phases is not None and self.cluster is None:
            raise ValueError("'phases' needs 'cluster': the file with the agents and pools")
        return self


class Scenario(BaseModel):
    """A loaded scenario: the cluster and every phase, sequences flattened."""

    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    seed: int
    provider: ProviderChoice
    path: Path
    cluster: ClusterSpec
    phases: list[Phase]
    consensus: ConsensusSpec = ConsensusSpec()
    occupancy_view: bool = False

    def jobs(self) -> list[Job]:
        return [spec.job() for phase in self.phases for spec in phase.jobs]

    def random_agent(self, seed: int) -> str:
        """The agent a ``random`` fault targets in a run with ``seed`` (drawn apart from the loads)."""
        return random.Random(f"faulty-agent-{seed}").choice(sorted(a.id for a in self.cluster.agents))


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such scenario file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - the C safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{path}{where}: not valid YAML: {problem}") from None


def _validated(model: type[BaseModel], data: Any, path: Path) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of fields at the top level, found {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {field}: {err['msg'].removeprefix('Value error, ')}")
        raise UserError(f"{path}: invalid scenario\n" + "\n".join(lines)) from None


def scenario_path(name: str, scenarios_dir: Path) -> Path:
    """``NAME`` means ``<scenarios_dir>/NAME.yaml``; anything with a suffix or a slash is a path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or "/" in name:
        return candidate
    return scenarios_dir / f"{name}.yaml"


def available_scenarios(scenarios_dir: Path) -> list[str]:
    return sorted(p.stem for p in scenarios_dir.glob("*.yaml"))


def load_scenario(name: str, scenarios_dir: Path, _seen: tuple[str, ...] = ()) -> Scenario:
    """Load and validate a scenario by name or path; sequences are flattened into phases."""
    path = scenario_path(name, scenarios_dir)
    if not path.exists() and not _seen:
        known = ", ".join(available_scenarios(scenarios_dir)) or "none"
        raise UserError(f"no scenario {name!r} ({path} does not exist); available: {known}")
    spec: ScenarioFile = _validated(ScenarioFile, _read_yaml(path), path)
    if spec.sequence is not None:
        return _load_sequence(spec, path, scenarios_dir, (*_seen, str(path)))
    cluster_path = (path.parent / spec.cluster).resolve()  # type: ignore[operator]
    cluster: ClusterSpec = _validated(ClusterSpec, _read_yaml(cluster_path), cluster_path)
    _check_faults(spec.phases or [], cluster, path)
    return Scenario(name=spec.name, description=spec.description, seed=spec.seed, provider=spec.provider, path=path,
                    cluster=cluster, phases=list(spec.phases or []), consensus=spec.consensus,
                    occupancy_view=spec.occupancy_view)


def _load_sequence(spec: ScenarioFile, path: Path, scenarios_dir: Path, seen: tuple[str, ...]) -> Scenario:
    parts = []
    for item in spec.sequence or []:
        if str(scenario_path(item, path.parent)) in seen:
            raise UserError(f"{path}: sequence includes {item!r}, which includes this file again")
        parts.append(load_scenario(str(scenario_path(item, path.parent)), scenarios_dir, seen))
    clusters = {p.cluster.model_dump_json() for p in parts}
    if len(clusters) != 1:
        raise UserError(f"{path}: every scenario in a sequence must use the same cluster")
    phases = [phase for part in parts for phase in part.phases]
    ids = [job.id for phase in phases for job in phase.jobs]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: job ids must be unique across the scenarios of a sequence")
    if len({p.consensus for p in parts}) != 1:
        raise UserError(f"{path}: every scenario in a sequence must use the same consensus settings")
    return Scenario(name=spec.name, description=spec.description, seed=spec.seed, provider=spec.provider, path=path,
                    cluster=parts[0].cluster, phases=phases, consensus=parts[0].consensus,
                    occupancy_view=spec.occupancy_view or any(p.occupancy_view for p in parts))


def _check_faults(phases: list[Phase], cluster: ClusterSpec, path: Path) -> None:
    agents = {a.id for a in cluster.agents}
    for i, phase in enumerate(phases):
        for j, fault in enumerate(phase.faults):
            if fault.agent not in agents and fault.agent != RANDOM_AGENT:
                raise UserError(f"{path}: phases.{i}.faults.{j}.agent: unknown agent {fault.agent!r}; "
                                f"agents are: {', '.join(sorted(agents))} (or {RANDOM_AGENT})")
        ids = [spec.id for spec in phase.jobs]
        if len(set(ids)) != len(ids):
            raise UserError(f"{path}: phases.{i}.jobs: job ids must be unique within a phase")
    all_ids = [spec.id for phase in phases for spec in phase.jobs]
    if len(set(all_ids)) != len(all_ids):
        raise UserError(f"{path}: job ids must be unique across phases")


