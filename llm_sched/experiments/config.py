"""Experiment configuration: the YAML file, the command-line overrides, and every check that must
pass before anything runs.

``load_experiment(path, overrides)`` reads ``scenarios/experiments/NAME.yaml`` (or nothing: the
defaults below, which ``scenarios/experiments/default.yaml`` spells out), lets flags override any
field, validates the result with Pydantic and then checks what needs several fields at once: known
methods, n >= 3f+1 for a Byzantine-tolerant method (f = Byzantine + crashed agents), n >= 2f+1
crashed agents for a crash-tolerant one, no more faulty agents than agents, a fault plan whose
faults all have targets inside 0..n-1. Every problem is a :class:`~llm_sched.errors.UserError`
naming the field (and the flag that sets it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm_sched.agents.byzantine import PROTOCOL_BEHAVIOUR
from llm_sched.errors import UserError
from llm_sched.folders import scenario_file
from llm_sched.loader import load_yaml, validated
from llm_sched.names import Name
from llm_sched.protocols.quorum import byzantine_f, crash_f

AgentMode = Literal["heuristic", "llm", "hybrid"]
Intensity = Literal["light", "medium", "heavy", "chaos"]
AGENT_MODES: tuple[str, ...] = ("heuristic", "llm", "hybrid")
INTENSITIES: tuple[str, ...] = ("light", "medium", "heavy", "chaos")
DEFAULT_METHODS = ("pbft", "tendermint", "multi_paxos")

# field -> the flag that overrides it, for error messages
FLAGS: dict[str, str] = {
    "methods": "--methods", "agents": "--agents", "byzantine": "--byzantine", "crash": "--crash",
    "jobs": "--jobs", "repetitions": "--repetitions", "seed": "--seed", "agent_mode": "--agent-mode",
    "faults": "--faults", "intensity": "--intensity", "out": "--out",
}


# Bounds every number of the file and the flags: strict, so `agents: true` is not read as 1 agent; finite
# and bounded, so no NaN, infinity or 20-digit value reaches the simulator, SQLite or msgpack.
MAX_AGENTS = 100
MAX_SIM_SECONDS = 1e9  # simulated seconds (about 31 years): far beyond any run, finite for every sum
SEED_MAX = 2**63 - 1  # the seed is stored as a SQLite INTEGER


def _count(default: int, low: int, high: int, description: str = "") -> Any:
    return Field(default, ge=low, le=high, strict=True, description=description)


def _seconds(default: float, description: str) -> Any:
    return Field(default, gt=0, le=MAX_SIM_SECONDS, strict=True, allow_inf_nan=False, description=description)


class ExperimentConfig(BaseModel):
    """One experiment: which methods, how many agents and faulty agents, which jobs, how often."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = "default"  # it names the experiment's cassette: an identifier, never a path
    description: str = ""
    methods: tuple[str, ...] = Field(DEFAULT_METHODS, min_length=1)
    agents: int = _count(7, 2, MAX_AGENTS, "n, agents taking part in every decision")
    byzantine: int = _count(2, 0, MAX_AGENTS, "agents Byzantine for the whole run, drawn per repetition")
    byzantine_behaviours: tuple[str, ...] = Field(
        ("equivocate", "alter"), min_length=1,
        description="behaviours of the Byzantine agents, assigned in turn (see transport.harness.BEHAVIOURS)")
    crash: int = _count(0, 0, MAX_AGENTS, "honest agents that crash once, drawn per repetition")
    crash_downtime: float | None = _seconds(40.0, "simulated seconds down; null: never restart")
    jobs: int = _count(5, 1, 1000, "placement decisions per run")
    oversized_every: int = _count(5, 0, 1000, "every k-th job asks more than any pool has (0: none)")
    repetitions: int = _count(3, 1, 10_000)
    seed: int = _count(0, 0, SEED_MAX)
    agent_mode: AgentMode = "heuristic"
    faults: str | None = Field(None, description="a fault plan file (llm_sched.experiments.faults)")
    intensity: Intensity | None = Field(None, description="a fault preset drawn per repetition")
    fault_horizon: float = _seconds(100.0, "simulated seconds over which preset and crash faults fall")
    max_time: float = _seconds(5_000.0, "simulated seconds before a run gives up")
    cluster: str | None = Field(None, description="cluster file; default scenarios/clusters/specialists.yaml")
    allow_beyond_tolerance: bool = Field(False, strict=True, description="run even when the faulty agents exceed f")
    out: str | None = None

    @field_validator("methods", mode="before")
    @classmethod
    def _split_methods(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [m.strip() for m in value.split(",") if m.strip()]
            if not value:
                raise ValueError("no method given; e.g. pbft,tendermint,multi_paxos")
        return value

    @field_validator("byzantine_behaviours", mode="before")
    @classmethod
    def _split_behaviours(cls, value: Any) -> Any:
        # The agents' behaviours (agents.byzantine) are accepted by name and run as their protocol
        # form, so every mode speaks of one catalogue: vote_flipping is vote-against here.
        items = [b.strip() for b in value.split(",") if b.strip()] if isinstance(value, str) else value
        return [PROTOCOL_BEHAVIOUR.get(b, b) if isinstance(b, str) else b for b in items] \
            if isinstance(items, (list, tuple)) else items

    def behaviour_of(self, k: int) -> str:
        """The behaviour of the k-th Byzantine agent (behaviours are assigned in turn)."""
        return self.byzantine_behaviours[k % len(self.byzantine_behaviours)]


def load_experiment(
    path: str | Path | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    scenarios_dir: Path | None = None,
) -> ExperimentConfig:
    """The experiment of ``path`` (None: the defaults) with ``overrides`` applied, fully checked.

    ``path`` may be a name (``scenarios/experiments/NAME.yaml``) or a file. Relative ``faults`` and
    ``cluster`` paths in a file are relative to that file; given as overrides, to the working folder.
    """
    from llm_sched.config import PROJECT_ROOT

    scenarios_dir = scenarios_dir or PROJECT_ROOT / "scenarios"
    data: dict[str, Any] = {}
    where = "experiment defaults"
    if path is not None:
        file = experiment_path(str(path), scenarios_dir)
        data = load_yaml(file, "experiment")  # an empty file is an error: it cannot mean "the defaults"
        where = str(file)
        for key in ("faults", "cluster"):
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                data[key] = str(file.parent / data[key])
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = validated(ExperimentConfig, data, where, "experiment", label=_with_flag)
    return check_experiment(config, where, scenarios_dir)


def experiment_path(name: str, scenarios_dir: Path) -> Path:
    """``NAME`` is ``<scenarios>/experiments/NAME.yaml``; anything with a suffix or a slash is a path."""
    return scenario_file(name, scenarios_dir, "experiments", "experiment")


def _with_flag(field: str) -> str:
    """``agents (--agents)``: the flag that sets a field, for messages about overrides."""
    flag = FLAGS.get(field.split(".", 1)[0])
    return f"{field} ({flag})" if flag else field


def check_experiment(config: ExperimentConfig, where: str, scenarios_dir: Path) -> ExperimentConfig:
    """Checks across fields; returns the config with method names made canonical."""
    from llm_sched.protocols.registry import get_method
    from llm_sched.transport.harness import BEHAVIOURS

    methods = tuple(dict.fromkeys(get_method(m).name for m in config.methods))
    unknown = [b for b in config.byzantine_behaviours if b not in BEHAVIOURS]
    if unknown:
        raise UserError(f"{where}: byzantine_behaviours: unknown behaviour {unknown[0]!r}; "
                        f"behaviours are: {', '.join(BEHAVIOURS)}, or an agent behaviour run as its protocol form "
                        f"({', '.join(f'{a} = {p}' for a, p in PROTOCOL_BEHAVIOUR.items())})")
    n, b, c = config.agents, config.byzantine, config.crash
    if b + c > n:
        raise UserError(f"{where}: {b} Byzantine (--byzantine) + {c} crashed (--crash) agents is more than "
                        f"the {n} agents (--agents)")
    if not config.allow_beyond_tolerance:
        for name in methods:
            _check_tolerance(get_method(name).name, get_method(name).fault_model, n, b, c, where)
    if config.faults is not None:
        from llm_sched.experiments.faults import load_fault_plan

        load_fault_plan(config.faults, n)  # a fault with no target, ids outside 0..n-1: UserError
    cluster = Path(config.cluster) if config.cluster else scenarios_dir / "clusters" / "specialists.yaml"
    if not cluster.is_file():
        raise UserError(f"{where}: cluster: no cluster file {cluster}")
    return config.model_copy(update={"methods": methods, "cluster": str(cluster.resolve())})


def _check_tolerance(method: str, model: str, n: int, b: int, c: int, where: str) -> None:
    if model == "byzantine":
        f = b + c
        if n < 3 * f + 1:
            raise UserError(
                f"{where}: {method} tolerates f faulty agents only with n >= 3f+1: n={n} agents with "
                f"f={f} faulty ({b} Byzantine + {c} crashed) needs at least {3 * f + 1} agents "
                f"(n={n} tolerates f={byzantine_f(n)}); lower --byzantine/--crash, raise --agents, "
                "or set allow_beyond_tolerance: true in the experiment file")
    elif n < 2 * c + 1:
        raise UserError(
            f"{where}: {method} tolerates f crashed agents only with n >= 2f+1: n={n} agents with f={c} "
            f"crashed needs at least {2 * c + 1} agents (n={n} tolerates f={crash_f(n)}); lower --crash, "
            "raise --agents, or set allow_beyond_tolerance: true in the experiment file")
