"""The campaign's configuration file (``scenarios/evaluation/*.yaml``), validated with Pydantic.

A campaign is a base scenario and the dimensions varied one at a time around it (each value of a
dimension is one configuration; the scale dimension is the grid jobs x agents), the policies
compared, the number of seeded repetitions, the base seed and the deadline factor. Every problem
is a :class:`~llm_sched.errors.UserError` naming the file, the field and what is allowed.

Who chooses the agents' awards (``base.advice``, and the ``advice`` dimension): the heuristic (the
default: no model), or a model under a budget of ``base.llm_budget`` calls per agents run (``llm``:
every decision with a choice; ``hybrid``: close calls only; :mod:`llm_sched.agents.pool_adviser`).
Where the model's answers come from is one ``model:`` block for the whole campaign: a live
``provider`` (default: the configured one), whose answers each task records to
``<out>/cassettes/<configuration>-r<repetition>-<advice>.yaml``, or ``replay`` of such cassettes
(``cassettes``: their folder, default ``<out>/cassettes``).

A campaign whose agents are all heuristic stores (``results.json``, the ledger) exactly the
configuration it stored before these fields existed: they are written only when set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from llm_sched.agents.pool_adviser import AdviserMode
from llm_sched.agents.pool_agents import POOL_BEHAVIOURS
from llm_sched.config import Provider
from llm_sched.folders import scenario_file
from llm_sched.loader import load_yaml, validated
from llm_sched.protocols.quorum import byzantine_f
from llm_sched.sim.failures import Pattern
from llm_sched.sim.resilience import PROTOCOLS, Policy
from llm_sched.sim.workload import Arrival

# The resilience dimensions (every shipped campaign runs all of them), then the one that needs a model.
DIMENSIONS: tuple[str, ...] = ("scale", "failure_rate", "failure_pattern", "load_pattern", "high_load", "byzantine",
                               "byzantine_behaviour")
MODEL_DIMENSIONS: tuple[str, ...] = ("advice",)
ALL_DIMENSIONS: tuple[str, ...] = DIMENSIONS + MODEL_DIMENSIONS
LoadPattern = Literal["constant", "burst", "poisson"]
Behaviour = Literal[POOL_BEHAVIOURS]  # type: ignore[valid-type]

_STRICT = ConfigDict(extra="forbid", frozen=True)
# Every number is strict (``jobs: true`` is not 1 job), finite and bounded: no NaN, infinity or 20-digit
# value reaches the simulator, SQLite or msgpack.
MAX_JOBS = 1_000_000
MAX_AGENTS = 10_000
MAX_SECONDS = 1e9  # simulated seconds (about 31 years)
SEED_MAX = 2**63 - 1  # seeds are stored as SQLite INTEGERs; repetition r uses seed + r
MAX_LLM_BUDGET = 1_000_000  # model calls per agents run
DEFAULT_LLM_BUDGET = 10


def _without_defaults(model: BaseModel, data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``data`` (the model's dump) without the fields of ``names`` that hold their default: what a
    configuration that does not use them stored before they existed."""
    for key in names:
        if key in data and getattr(model, key) == type(model).model_fields[key].default:
            del data[key]
    return data


def _int(default: int, low: int, high: int, description: str = "") -> Any:
    return Field(default, ge=low, le=high, strict=True, description=description)


def _fraction(default: float, description: str = "") -> Any:
    return Field(default, ge=0, le=1, strict=True, allow_inf_nan=False, description=description)


def _seconds(default: float, description: str = "", *, positive: bool = True) -> Any:
    low = {"gt": 0} if positive else {"ge": 0}
    return Field(default, **low, le=MAX_SECONDS, strict=True, allow_inf_nan=False, description=description)


Jobs = Annotated[int, Field(ge=1, le=MAX_JOBS, strict=True)]
Agents = Annotated[int, Field(ge=1, le=MAX_AGENTS, strict=True)]
Rate = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # the range: Dimensions._rates says it plainly


class BaseScenario(BaseModel):
    """The scenario every configuration starts from; a dimension changes one or two of its fields."""

    model_config = _STRICT

    jobs: int = _int(100, 1, MAX_JOBS, "jobs per run")
    agents: int = _int(10, 1, MAX_AGENTS, "resource agents, each owning one pool")
    nodes_per_agent: int = _int(8, 1, 100_000)
    arrival: Arrival = "poisson"
    load: float = Field(0.8, gt=0, le=1000, strict=True, allow_inf_nan=False,
                        description="offered load (work per machine time); ignored by batch")
    burst_size: int = _int(20, 1, MAX_JOBS)
    failure_rate: float = _fraction(0.15, "probability that an agent fails within the horizon")
    pattern: Pattern = "random"
    repair_mean: float = _seconds(14_400.0, "mean agent repair (or partition) time, seconds")
    node_rate: float = _fraction(0.05, "probability that a node fails within the horizon")
    node_repair_mean: float = _seconds(7_200.0)
    cascade_prob: float = _fraction(0.5)
    cascade_window: float = _seconds(600.0, positive=False)
    partition_fraction: float = _fraction(0.3)
    queue_on_failure: Literal["keep", "lose"] = "keep"
    protocol: str = "pbft"
    hop_delay: float = _seconds(0.01, "seconds per message delay", positive=False)
    byzantine: int = _int(0, 0, MAX_AGENTS, "Byzantine agents (at most f of n), chosen per seed")
    behaviour: Behaviour = "vote_flipping"
    # A central scheduler has a hot standby, as Slurm's backup controller: it takes over this many
    # seconds after the active one goes down (Slurm's default SlurmctldTimeout); null: no standby.
    failover: float | None = Field(120.0, ge=0, le=MAX_SECONDS, strict=True, allow_inf_nan=False,
                                   description="seconds for the central scheduler's hot standby to take over")
    # Who chooses the agents' awards: the recomputed heuristic, or a model (see the module).
    advice: AdviserMode = Field("heuristic", description="heuristic, llm (every choice) or hybrid (close calls)")
    llm_budget: int = _int(DEFAULT_LLM_BUDGET, 0, MAX_LLM_BUDGET, "model calls per agents run (llm, hybrid)")

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value not in PROTOCOLS:
            raise ValueError(f"unknown protocol {value!r}; allowed: {', '.join(PROTOCOLS)}")
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(self, handler(self), ("advice", "llm_budget"))


class ScaleDimension(BaseModel):
    """The scale grid: every job count with every agent count."""

    model_config = _STRICT

    jobs: tuple[Jobs, ...] = Field(min_length=1)
    agents: tuple[Agents, ...] = Field(min_length=1)

    @field_validator("jobs", "agents")
    @classmethod
    def _positive_unique(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        return _unique(_positive(values))


class Dimensions(BaseModel):
    """The dimensions to sweep; a dimension left out is not run (the shipped files run all five)."""

    model_config = _STRICT

    scale: ScaleDimension | None = None
    failure_rate: tuple[Rate, ...] | None = Field(None, min_length=1)
    failure_pattern: tuple[Pattern, ...] | None = Field(None, min_length=1)
    load_pattern: tuple[LoadPattern, ...] | None = Field(None, min_length=1)
    high_load: tuple[Jobs, ...] | None = Field(None, min_length=1, description="jobs arriving at once")
    byzantine: tuple[Annotated[int, Field(ge=0, strict=True)], ...] | None = Field(
        None, min_length=1, description="Byzantine agents, base behaviour")
    byzantine_behaviour: tuple[Behaviour, ...] | None = Field(
        None, min_length=1, description="behaviours, each of max(1, base byzantine) agents")
    advice: tuple[AdviserMode, ...] | None = Field(
        None, min_length=1, description="who chooses the agents' awards: heuristic, hybrid, llm (needs a model)")

    @field_validator("failure_rate")
    @classmethod
    def _rates(cls, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if values is None:
            return None
        for v in values:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"failure rates are fractions in [0, 1] (0.15 for 15%), got {v}")
        return _unique(values)

    @field_validator("failure_pattern", "load_pattern", "byzantine", "byzantine_behaviour", "advice")
    @classmethod
    def _distinct(cls, values: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if values is None else _unique(values)

    @field_validator("high_load")
    @classmethod
    def _sizes(cls, values: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if values is None else _unique(_positive(values))

    @model_validator(mode="after")
    def _not_empty(self) -> Dimensions:
        if all(getattr(self, d) is None for d in ALL_DIMENSIONS):
            raise ValueError(f"no dimension to run; give at least one of: {', '.join(ALL_DIMENSIONS)}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(self, handler(self), MODEL_DIMENSIONS)

    def present(self) -> tuple[str, ...]:
        """The dimensions this campaign runs, in the canonical order."""
        return tuple(d for d in ALL_DIMENSIONS if getattr(self, d) is not None)


class CampaignModel(BaseModel):
    """Where the model's answers come from, for every llm or hybrid agents run of the campaign."""

    model_config = _STRICT

    provider: Provider | None = Field(
        None, description="a live provider (local, openai, ollama, sambanova, sambastudio), whose answers are "
        "recorded to <out>/cassettes; replay (those cassettes); heuristic (no model). Default: the configured "
        "provider (LLM_SCHED_PROVIDER)")
    cassettes: str | None = Field(None, min_length=1, max_length=4096, strict=True,
                                  description="replay: the folder of the cassettes (default: <out>/cassettes)")

    @model_validator(mode="after")
    def _cassettes_to_replay(self) -> CampaignModel:
        if self.cassettes is not None and self.provider != "replay":
            raise ValueError("cassettes is the folder a replay reads: give it with provider: replay (a live "
                             "provider records into <out>/cassettes)")
        if self.cassettes is not None and "\0" in self.cassettes:
            raise ValueError("cassettes: a folder name cannot hold a NUL character")
        return self


class CampaignConfig(BaseModel):
    """A whole campaign (see the module)."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    description: str = ""
    repetitions: int = Field(ge=2, le=100_000, strict=True,
                             description="seeded repetitions per configuration (5 or more)")
    seed: int = _int(1, 0, SEED_MAX, "repetition r (from 0) of every configuration uses seed + r")
    policies: tuple[Policy, ...] = Field(("agents", "fcfs", "easy"), min_length=2)
    deadline_factor: float | None = Field(
        1.2, ge=1.0, le=1000, strict=True, allow_inf_nan=False,
        description="deadline = factor x the failure-free EASY makespan of the same jobs; null: none")
    base: BaseScenario = Field(default_factory=BaseScenario)
    dimensions: Dimensions
    model: CampaignModel | None = Field(None, description="where the llm and hybrid agents' answers come from")

    @field_validator("policies")
    @classmethod
    def _policies(cls, values: tuple[Policy, ...]) -> tuple[Policy, ...]:
        values = _unique(values)
        if "agents" not in values:
            raise ValueError("the campaign compares agents with baselines: policies must include agents")
        return ("agents", *(p for p in values if p != "agents"))

    @model_validator(mode="after")
    def _byzantine_within_tolerance(self) -> CampaignConfig:
        # The scale dimension changes n with the base's liars; the Byzantine dimensions change the
        # liars at the base's n.
        dims, base = self.dimensions, self.base
        checks = [(base.byzantine, n) for n in (base.agents, *(dims.scale.agents if dims.scale else ()))]
        checks += [(count, base.agents) for count in dims.byzantine or ()]
        if dims.byzantine_behaviour:
            checks.append((max(1, base.byzantine), base.agents))
        for liars, n in checks:
            if liars > byzantine_f(n):
                raise ValueError(f"{liars} Byzantine agents among {n}: at most f = {byzantine_f(n)} may be "
                                 "Byzantine for the quorum to stay safe and live")
        return self

    @model_validator(mode="after")
    def _last_seed_fits(self) -> CampaignConfig:
        if self.seed + self.repetitions - 1 > SEED_MAX:
            raise ValueError(f"seed + repetitions - 1 (the last repetition's seed) must be at most {SEED_MAX:,}; "
                             f"lower seed to {SEED_MAX - self.repetitions + 1:,} or less")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(self, handler(self), ("model",))

    @property
    def baselines(self) -> tuple[str, ...]:
        """The policies agents are compared with."""
        return tuple(p for p in self.policies if p != "agents")

    @property
    def advice_modes(self) -> tuple[str, ...]:
        """Who chooses the agents' awards in some configuration: the base's advice, then the dimension's."""
        return tuple(dict.fromkeys((self.base.advice, *(self.dimensions.advice or ()))))

    @property
    def needs_model(self) -> bool:
        """Whether some agents run asks a model (llm or hybrid advice)."""
        return any(mode != "heuristic" for mode in self.advice_modes)


def _positive(values: tuple[int, ...]) -> tuple[int, ...]:
    for v in values:
        if v < 1:
            raise ValueError(f"values must be positive, got {v}")
    return values


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{v!r} is listed twice")
        seen.add(v)
    return values


def campaign_path(name: str, scenarios_dir: Path) -> Path:
    """``NAME`` is ``<scenarios>/evaluation/NAME.yaml``; a name with a suffix or a slash is a path."""
    return scenario_file(name, scenarios_dir, "evaluation", "campaign")


def load_campaign(file: Path, seed: int | None = None) -> CampaignConfig:
    """Read and validate ``file``; ``seed`` (the --seed flag) replaces the file's seed."""
    data = load_yaml(file, "campaign")
    if seed is not None:
        data["seed"] = seed
    return parse_campaign(data, str(file))


def parse_campaign(data: dict[str, Any], where: str = "campaign") -> CampaignConfig:
    """Validate ``data``; a :class:`UserError` lists every problem as ``where: field: message``."""
    return validated(CampaignConfig, data, where, "campaign")
