"""The campaign's configuration file (``scenarios/evaluation/*.yaml``), validated with Pydantic.

A campaign is a base scenario and the five dimensions varied one at a time around it (each value
of a dimension is one configuration; the scale dimension is the grid jobs x agents), the policies
compared, the number of seeded repetitions, the base seed and the deadline factor. Every problem
is a :class:`~llm_sched.errors.UserError` naming the file, the field and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llm_sched.errors import UserError
from llm_sched.sim.failures import Pattern
from llm_sched.sim.resilience import PROTOCOLS, Policy
from llm_sched.sim.workload import Arrival

DIMENSIONS: tuple[str, ...] = ("scale", "failure_rate", "failure_pattern", "load_pattern", "high_load")
LoadPattern = Literal["constant", "burst", "poisson"]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class BaseScenario(BaseModel):
    """The scenario every configuration starts from; a dimension changes one or two of its fields."""

    model_config = _STRICT

    jobs: int = Field(100, ge=1, le=1_000_000, description="jobs per run")
    agents: int = Field(10, ge=1, le=10_000, description="resource agents, each owning one pool")
    nodes_per_agent: int = Field(8, ge=1, le=100_000)
    arrival: Arrival = "poisson"
    load: float = Field(0.8, gt=0, description="offered load (work per machine time); ignored by batch")
    burst_size: int = Field(20, ge=1)
    failure_rate: float = Field(0.15, ge=0, le=1, description="probability that an agent fails within the horizon")
    pattern: Pattern = "random"
    repair_mean: float = Field(14_400.0, gt=0, description="mean agent repair (or partition) time, seconds")
    node_rate: float = Field(0.05, ge=0, le=1, description="probability that a node fails within the horizon")
    node_repair_mean: float = Field(7_200.0, gt=0)
    cascade_prob: float = Field(0.5, ge=0, le=1)
    cascade_window: float = Field(600.0, ge=0)
    partition_fraction: float = Field(0.3, ge=0, le=1)
    queue_on_failure: Literal["keep", "lose"] = "keep"
    protocol: str = "coordinator"
    hop_delay: float = Field(0.01, ge=0)

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value not in PROTOCOLS:
            raise ValueError(f"unknown protocol {value!r}; allowed: {', '.join(PROTOCOLS)}")
        return value


class ScaleDimension(BaseModel):
    """The scale grid: every job count with every agent count."""

    model_config = _STRICT

    jobs: tuple[int, ...] = Field(min_length=1)
    agents: tuple[int, ...] = Field(min_length=1)

    @field_validator("jobs", "agents")
    @classmethod
    def _positive_unique(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        return _unique(_positive(values))


class Dimensions(BaseModel):
    """The dimensions to sweep; a dimension left out is not run (the shipped files run all five)."""

    model_config = _STRICT

    scale: ScaleDimension | None = None
    failure_rate: tuple[float, ...] | None = Field(None, min_length=1)
    failure_pattern: tuple[Pattern, ...] | None = Field(None, min_length=1)
    load_pattern: tuple[LoadPattern, ...] | None = Field(None, min_length=1)
    high_load: tuple[int, ...] | None = Field(None, min_length=1, description="jobs arriving at once")

    @field_validator("failure_rate")
    @classmethod
    def _rates(cls, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if values is None:
            return None
        for v in values:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"failure rates are fractions in [0, 1] (0.15 for 15%), got {v}")
        return _unique(values)

    @field_validator("failure_pattern", "load_pattern")
    @classmethod
    def _distinct(cls, values: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if values is None else _unique(values)

    @field_validator("high_load")
    @classmethod
    def _sizes(cls, values: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if values is None else _unique(_positive(values))

    @model_validator(mode="after")
    def _not_empty(self) -> Dimensions:
        if all(getattr(self, d) is None for d in DIMENSIONS):
            raise ValueError(f"no dimension to run; give at least one of: {', '.join(DIMENSIONS)}")
        return self

    def present(self) -> tuple[str, ...]:
        """The dimensions this campaign runs, in the canonical order."""
        return tuple(d for d in DIMENSIONS if getattr(self, d) is not None)


class CampaignConfig(BaseModel):
    """A whole campaign (see the module)."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    description: str = ""
    repetitions: int = Field(ge=2, le=100_000, description="seeded repetitions per configuration (5 or more)")
    seed: int = Field(1, ge=0, description="repetition r (from 0) of every configuration uses seed + r")
    policies: tuple[Policy, ...] = Field(("agents", "fcfs", "easy"), min_length=2)
    deadline_factor: float | None = Field(
        1.2, ge=1.0, description="deadline = factor x the failure-free EASY makespan of the same jobs; null: none")
    base: BaseScenario = Field(default_factory=BaseScenario)
    dimensions: Dimensions

    @field_validator("policies")
    @classmethod
    def _policies(cls, values: tuple[Policy, ...]) -> tuple[Policy, ...]:
        values = _unique(values)
        if "agents" not in values:
            raise ValueError("the campaign compares agents with baselines: policies must include agents")
        return ("agents", *(p for p in values if p != "agents"))

    @property
    def baselines(self) -> tuple[str, ...]:
        """The policies agents are compared with."""
        return tuple(p for p in self.policies if p != "agents")


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


# Where an unknown field was found -> the model whose fields are allowed there.
_MODELS: dict[tuple[str, ...], type[BaseModel]] = {
    (): CampaignConfig, ("base",): BaseScenario, ("dimensions",): Dimensions, ("dimensions", "scale"): ScaleDimension,
}


def campaign_path(name: str, scenarios_dir: Path) -> Path:
    """``NAME`` is ``<scenarios>/evaluation/NAME.yaml``; a name with a suffix or a slash is a path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or "/" in name:
        file = candidate
    else:
        file = scenarios_dir / "evaluation" / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (scenarios_dir / "evaluation").glob("*.yaml"))
        raise UserError(f"no campaign file {file}; shipped campaigns: {', '.join(known) or 'none'}")
    return file


def load_campaign(file: Path, seed: int | None = None) -> CampaignConfig:
    """Read and validate ``file``; ``seed`` (the --seed flag) replaces the file's seed."""
    from llm_sched.scenarios import _read_yaml

    data = _read_yaml(file)
    if not isinstance(data, dict):
        found = "nothing" if data is None else type(data).__name__
        raise UserError(f"{file}: expected a mapping of campaign fields at the top level, found {found}")
    if seed is not None:
        data["seed"] = seed
    return parse_campaign(data, str(file))


def parse_campaign(data: dict[str, Any], where: str = "campaign") -> CampaignConfig:
    """Validate ``data``; a :class:`UserError` lists every problem as ``where: field: message``."""
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: invalid campaign\n" + explain(exc)) from None


def explain(error: ValidationError) -> str:
    """One line per problem: the dotted field, what is wrong, what was given, what is allowed."""
    lines = []
    for item in error.errors(include_url=False):
        loc = tuple(str(p) for p in item["loc"])
        field = ".".join(loc) or "(top level)"
        kind = item["type"]
        msg = item["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            model = _MODELS.get(loc[:-1])
            allowed = f"; allowed fields: {', '.join(model.model_fields)}" if model else ""
            msg = f"unknown field{allowed}"
        elif kind == "missing":
            msg = "required field is missing"
        elif kind != "value_error" and "input" in item:
            msg = f"{msg} (got {item['input']!r})"
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)

