"""From the campaign's runs to its statistics: per configuration, policy and key metric a summary,
and per configuration, baseline and key metric the comparison with agents.

Input: the ``runs`` of ``results.json`` (one record per configuration x repetition x policy, with
the run's metrics; undefined values are None). Nothing here runs a simulation or reads a file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_sched.evaluation.metrics import KEY_METRICS, METRICS
from llm_sched.evaluation.stats import Comparison, SampleStats, compare, sample_stats, with_holm


@dataclass(frozen=True, slots=True)
class ConfigInfo:
    """What the analysis needs of a configuration (a row of ``results.json``'s ``configurations``)."""

    key: str
    dimension: str
    label: str
    tick: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """Every statistic of the campaign.

    ``values[config][policy][metric]``: the per-repetition values (None when undefined), in
    repetition order; ``summaries`` the same keys with a :class:`SampleStats`;
    ``comparisons[config][baseline][metric]``: agents against that baseline, paired by seed, with
    p-values Holm-adjusted over the configurations (one family per baseline and metric).
    """

    configs: tuple[ConfigInfo, ...]
    policies: tuple[str, ...]
    baselines: tuple[str, ...]
    repetitions: int
    values: dict[str, dict[str, dict[str, list[float | None]]]]
    summaries: dict[str, dict[str, dict[str, SampleStats]]]
    comparisons: dict[str, dict[str, dict[str, Comparison]]]

    def dimensions(self) -> list[str]:
        """The dimensions present, in the order of the configurations."""
        return list(dict.fromkeys(c.dimension for c in self.configs))

    def in_dimension(self, dimension: str) -> list[ConfigInfo]:
        """The configurations of one dimension, in order."""
        return [c for c in self.configs if c.dimension == dimension]


def values_by_config(runs: Iterable[Mapping[str, Any]], configs: Sequence[ConfigInfo], policies: Sequence[str],
                     repetitions: int, metrics: Sequence[str]) -> dict[str, dict[str, dict[str, list[float | None]]]]:
    """Arrange the runs as ``[config][policy][metric] -> values by repetition`` (None where missing)."""
    out = {c.key: {p: {m: [None] * repetitions for m in metrics} for p in policies} for c in configs}
    for run in runs:
        table = out.get(run["config"], {}).get(run["policy"])
        if table is None or not 0 <= run["repetition"] < repetitions:
            continue
        for m in metrics:
            v = run["metrics"].get(m)
            table[m][run["repetition"]] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    return out


def analyse(runs: Iterable[Mapping[str, Any]], configs: Sequence[ConfigInfo], policies: Sequence[str],
            repetitions: int) -> Analysis:
    """Summaries and comparisons of every configuration on the key metrics."""
    names = [m.name for m in KEY_METRICS]
    values = values_by_config(runs, configs, policies, repetitions, names)
    baselines = tuple(p for p in policies if p != "agents")
    summaries = {
        c.key: {p: {m: sample_stats(values[c.key][p][m]) for m in names} for p in policies} for c in configs
    }
    comparisons = {
        c.key: {
            b: {m: compare(values[c.key]["agents"][m], values[c.key][b][m], METRICS[m].better) for m in names}
            for b in baselines
        }
        for c in configs
    }
    # One family per baseline and metric: the same question asked of every configuration.
    for b in baselines:
        for m in names:
            family = with_holm([comparisons[c.key][b][m] for c in configs])
            for c, adjusted in zip(configs, family, strict=True):
                comparisons[c.key][b][m] = adjusted
    return Analysis(tuple(configs), tuple(policies), baselines, repetitions, values, summaries, comparisons)
