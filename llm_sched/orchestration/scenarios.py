"""Scenario files (YAML) -> validated :class:`Scenario` objects.

A scenario names its cluster (agents and pools, usually a shared file under ``clusters/``), its
phases (jobs, and the faults active while they run), the seed and the default provider. A scenario
may instead be a ``sequence`` of other scenarios run back to back on the same cluster. A malformed
file gets an error naming the file, the field and what was expected.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_sched.agents.byzantine import Behaviour
from llm_sched.config import ProviderChoice
from llm_sched.core import ClusterState, Job, Node, Pool, Resources
from llm_sched.core.model import JobKind, Specialty
from llm_sched.errors import UserError
from llm_sched.loader import load_yaml, validated
from llm_sched.names import Name, check_name

_STRICT = ConfigDict(extra="forbid", frozen=True)


# Who may answer one agent instead of the run's model (llm/factory.py ModelChoice): a live provider,
# or "heuristic" for an agent that asks no model.
AgentProvider = Literal["local", "openai", "ollama", "sambanova", "sambastudio", "heuristic"]
# A model name or GGUF path as providers spell them (qwen2.5:0.5b, org/Model-7B, models/x.gguf):
# printable ASCII without spaces, so it can be shown on a terminal and in a banner as written.
MODEL_NAME_PATTERN = r"^[!-~]{1,200}$"


class AgentSpec(BaseModel):
    model_config = _STRICT
    id: Name  # named in every prompt and on the screen: an identifier, never free text
    specialty: Specialty
    pool: str
    # In a live run, the model that answers this agent when not the run's: agents that do not all
    # share one model cannot all be swayed by the same text alike. None: the run's provider / model.
    provider: AgentProvider | None = None
    model: str | None = Field(None, pattern=MODEL_NAME_PATTERN)

    @model_validator(mode="after")
    def _model_needs_a_provider_that_serves_one(self) -> AgentSpec:
        if self.model is not None and self.provider in ("heuristic", "sambastudio"):
            raise ValueError(f"agent {self.id}: provider {self.provider} takes no model (the "
                             f"{'agent asks no model' if self.provider == 'heuristic' else 'endpoint fixes it'})")
        return self


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


    def described(self, pools: list[Pool]) -> list[Pool]:
        """Pools from elsewhere (a Slurm cluster's partitions), each with what this cluster says of a pool
        of the same name (its specialty, label, interconnect): Slurm knows a partition's nodes, not what
        it is for."""
        spec = {p.id: p for p in self.pools}
        return [p if p.id not in spec else p.model_copy(update={
            "specialty": spec[p.id].specialty, "label": spec[p.id].label, "interconnect": spec[p.id].interconnect})
            for p in pools]


def _digits(count: int) -> int:
    """Zero-padding that keeps node ids sorting in numeric order: 2 digits up to 99 nodes, then 3..."""
    return max(2, len(str(count)))


# Bounds on a job's free text as a scenario may write it; a prompt gets far less (agents/specialist.py).
JOB_NAME_MAX_CHARS = 200
JOB_DESCRIPTION_MAX_CHARS = 2000


class JobSpec(BaseModel):
    model_config = _STRICT
    # The id is printed, stored and named in prompts as the program's own fact: an identifier, never
    # free text (the name and description are the job's free text).
    id: Name
    kind: JobKind
    name: str = Field("", max_length=JOB_NAME_MAX_CHARS)
    description: str = Field("", max_length=JOB_DESCRIPTION_MAX_CHARS)
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
        return Job(id=self.id, kind=self.kind, name=self.name, description=self.description, nodes=self.nodes,
                   per_node=per_node, runtime_s=self.runtime_s)


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
    ``weighted``: votes weigh by reputation (quorum q/n of the total weight) instead of counting.
    ``protocol``: pbft, tendermint or weighted (Byzantine-tolerant cores whose replicas validate)."""

    model_config = _STRICT
    method: Literal["placement", "bidding"] = "placement"
    weighted: bool = False
    # The protocol that decides each vote round (see engine.round): by default PBFT,
    # or the reputation-weighted voting core when votes are weighted.
    protocol: Literal["pbft", "tendermint", "weighted"] | None = None

    @property
    def decided_by(self) -> str:
        """The protocol that decides: the one named, else ``weighted`` for weighted votes, else ``pbft``."""
        return self.protocol or ("weighted" if self.weighted else "pbft")


def with_protocol(scenario: Scenario, protocol: str | None) -> Scenario:
    """``scenario`` decided by ``protocol`` (None: as it is)."""
    if protocol is None:
        return scenario
    consensus = scenario.consensus.model_copy(update={"protocol": protocol})
    return scenario.model_copy(update={"consensus": consensus})


class Phase(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1)
    description: str = ""
    job_interval_s: float = Field(600.0, gt=0, le=1e9, allow_inf_nan=False,
                                  description="simulated time between job submissions")
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
    phases: list[Phase] | None = Field(None, min_length=1)  # an empty scenario ran and committed nothing
    sequence: list[str] | None = Field(None, min_length=1)

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


# The two names other modules (faults, experiments) import; the reading itself is llm_sched.loader's.
def scenario_path(name: str, scenarios_dir: Path) -> Path:
    """``NAME`` means ``<scenarios_dir>/NAME.yaml``; anything with a suffix or a slash is a path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or "/" in name:
        return candidate
    return scenarios_dir / f"{check_name('scenario', name)}.yaml"  # a name, never a path: 400 characters hit OSError


def available_scenarios(scenarios_dir: Path) -> list[str]:
    return sorted(p.stem for p in scenarios_dir.glob("*.yaml"))


def load_scenario(name: str, scenarios_dir: Path, _seen: tuple[str, ...] = ()) -> Scenario:
    """Load and validate a scenario by name or path; sequences are flattened into phases."""
    path = scenario_path(name, scenarios_dir)
    if not path.exists() and not _seen:
        known = ", ".join(available_scenarios(scenarios_dir)) or "none"
        raise UserError(f"no scenario {name!r} ({path} does not exist); available: {known}")
    spec = validated(ScenarioFile, load_yaml(path, "scenario"), path, "scenario")
    if spec.sequence is not None:
        return _load_sequence(spec, path, scenarios_dir, (*_seen, str(path)))
    cluster_path = (path.parent / spec.cluster).resolve()  # type: ignore[operator]
    cluster = validated(ClusterSpec, load_yaml(cluster_path, "cluster"), cluster_path, "cluster")
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
    twice = _repeated(job.id for phase in phases for job in phase.jobs)
    if twice:
        raise UserError(f"{path}: job ids must be unique across the scenarios of a sequence; repeated: {twice}")
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
        twice = _repeated(spec.id for spec in phase.jobs)
        if twice:
            raise UserError(f"{path}: phases.{i}.jobs: job ids must be unique within a phase; repeated: {twice}")
    twice = _repeated(spec.id for phase in phases for spec in phase.jobs)
    if twice:
        raise UserError(f"{path}: job ids must be unique across phases; repeated: {twice}")


def _repeated(ids: Iterable[str]) -> str:
    """The ids given more than once, in order of first repeat ("" when none), for the message."""
    seen: set[str] = set()
    twice: dict[str, None] = {}  # ordered, without duplicates
    for job_id in ids:
        if job_id in seen:
            twice[job_id] = None
        seen.add(job_id)
    return ", ".join(twice)


