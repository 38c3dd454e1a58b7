"""From a campaign configuration to its list of configurations, and the seeds of their repetitions.

Each configuration is the base scenario with one dimension's value applied:

- ``scale``: ``jobs`` x ``agents`` (every pair; nodes = agents x nodes_per_agent);
- ``failure_rate``: the agents' failure rate;
- ``failure_pattern``: random, cascading or partition;
- ``load_pattern``: constant, burst or Poisson arrivals at the base offered load;
- ``high_load``: that many jobs all arriving at time 0 (``batch``);
- ``byzantine``: that many Byzantine agents with the base behaviour (the agents policy only; a
  central scheduler asks nobody to agree);
- ``byzantine_behaviour``: max(1, base byzantine) Byzantine agents with that behaviour;
- ``advice``: who chooses the agents' awards: the heuristic, or a model (hybrid: close calls only;
  llm: every decision with a choice) under the base's budget of model calls per agents run (the
  central schedulers ask no model).

Seeds: repetition ``r`` (counted from 0) of every configuration uses seed ``base seed + r``. The
workload and failure streams are keyed by the seed alone, so within a dimension the values are
compared on common random numbers (the 5% failures of a seed are a subset of its 15% failures), and
within a configuration every policy meets the same jobs and the same failures (a paired design).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llm_sched.evaluation.config import BaseScenario, CampaignConfig
from llm_sched.sim.failures import FailureSpec
from llm_sched.sim.simulate import SyntheticSetup
from llm_sched.sim.workload import WorkloadSpec

DIMENSION_TITLES: dict[str, str] = {
    "scale": "Scale (jobs x agents)",
    "failure_rate": "Agent failure rate",
    "failure_pattern": "Failure pattern",
    "load_pattern": "Load (arrival) pattern",
    "high_load": "High load (jobs arriving at once)",
    "byzantine": "Byzantine agents",
    "byzantine_behaviour": "Byzantine behaviour",
    "advice": "Agents' advice (who chooses the award)",
}
# How each advice reads in a figure's tick, and (advice_label) in a configuration's label.
ADVICE_TICKS: dict[str, str] = {"heuristic": "heuristic", "hybrid": "hybrid", "llm": "LLM"}
_ADVICE_WHEN: dict[str, str] = {"hybrid": "model on close calls", "llm": "model on every choice"}


def advice_label(advice: str, budget: int) -> str:
    """``heuristic agents``, ``hybrid agents (model on close calls, at most 10 calls per run)``, ..."""
    if advice == "heuristic":
        return "heuristic agents"
    return f"{ADVICE_TICKS[advice]} agents ({_ADVICE_WHEN[advice]}, at most {budget} calls per run)"


@dataclass(frozen=True, slots=True)
class Configuration:
    """One point of one dimension: ``key`` is unique in the campaign, ``tick`` labels its figure."""

    key: str
    dimension: str
    label: str
    tick: str
    scenario: SyntheticSetup


def base_scenario(base: BaseScenario) -> SyntheticSetup:
    """The simulator scenario of the campaign's base settings."""
    return SyntheticSetup(
        agents=base.agents,
        nodes_per_agent=base.nodes_per_agent,
        workload=WorkloadSpec(jobs=base.jobs, arrival=base.arrival, load=base.load, burst_size=base.burst_size),
        failures=FailureSpec(
            rate=base.failure_rate, pattern=base.pattern, repair_mean=base.repair_mean, node_rate=base.node_rate,
            node_repair_mean=base.node_repair_mean, cascade_prob=base.cascade_prob,
            cascade_window=base.cascade_window, partition_fraction=base.partition_fraction,
        ),
        queue_on_failure=base.queue_on_failure,
        protocol=base.protocol,
        hop_delay=base.hop_delay,
        byzantine=base.byzantine,
        behaviour=base.behaviour,
        failover=base.failover,
        advice=base.advice,
        llm_budget=base.llm_budget,
    )


def configurations(config: CampaignConfig) -> list[Configuration]:
    """Every configuration of the campaign, dimension by dimension, values in the file's order."""
    base = base_scenario(config.base)
    dims = config.dimensions
    out: list[Configuration] = []
    if dims.scale is not None:
        for jobs in dims.scale.jobs:
            for agents in dims.scale.agents:
                out.append(Configuration(
                    f"scale-{jobs}x{agents}", "scale", f"{jobs} jobs, {agents} agents", f"{jobs}x{agents}",
                    replace(base, agents=agents, workload=replace(base.workload, jobs=jobs))))
    for rate in dims.failure_rate or ():
        pct = f"{100 * rate:g}%"
        out.append(Configuration(f"failure_rate-{pct}", "failure_rate", f"failure rate {pct}", pct,
                                 replace(base, failures=replace(base.failures, rate=rate))))
    for pattern in dims.failure_pattern or ():
        out.append(Configuration(f"failure_pattern-{pattern}", "failure_pattern", f"{pattern} failures", pattern,
                                 replace(base, failures=replace(base.failures, pattern=pattern))))
    for arrival in dims.load_pattern or ():
        out.append(Configuration(f"load_pattern-{arrival}", "load_pattern", f"{arrival} arrivals", arrival,
                                 replace(base, workload=replace(base.workload, arrival=arrival))))
    for jobs in dims.high_load or ():
        out.append(Configuration(f"high_load-{jobs}", "high_load", f"{jobs} jobs at once", str(jobs),
                                 replace(base, workload=replace(base.workload, jobs=jobs, arrival="batch"))))
    for count in dims.byzantine or ():
        label = f"{count} Byzantine ({base.behaviour.replace('_', ' ')})" if count else "no Byzantine agent"
        out.append(Configuration(f"byzantine-{count}", "byzantine", label, str(count), replace(base, byzantine=count)))
    for behaviour in dims.byzantine_behaviour or ():
        liars = max(1, base.byzantine)
        out.append(Configuration(f"byzantine_behaviour-{behaviour}", "byzantine_behaviour",
                                 f"{liars} Byzantine ({behaviour.replace('_', ' ')})", behaviour.replace("_", " "),
                                 replace(base, byzantine=liars, behaviour=behaviour)))
    for advice in dims.advice or ():
        out.append(Configuration(f"advice-{advice}", "advice", advice_label(advice, base.llm_budget),
                                 ADVICE_TICKS[advice], replace(base, advice=advice)))
    return out


def seed_of(config: CampaignConfig, repetition: int) -> int:
    """The seed of repetition ``repetition`` (from 0), the same in every configuration."""
    return config.seed + repetition


def seeds(config: CampaignConfig) -> list[int]:
    """Every repetition's seed, in order."""
    return [seed_of(config, r) for r in range(config.repetitions)]
