"""Statistics of the campaign, with SciPy: means with bootstrap 95% confidence intervals, and agents
against a baseline paired by seed (Wilcoxon signed-rank, the matched-pairs rank-biserial effect
size, per-repetition win counts), with Holm's correction across configurations.

Why these: every policy of a configuration runs on the same jobs and failures for each seed, so the
samples are paired, and the metrics (waits, slowdowns, rates) are neither normal nor symmetric.
A bootstrap interval of the mean (BCa, or percentile) is made of means of resampled values, so it
never leaves the values' range, hence never the metric's domain (no negative wait, no completion
above 100%).

Undefined values (NaN, e.g. the MTTR of a run in which nothing was killed) are left out of a sample,
and a pair is used only when both of its values are defined; the sizes say how many remained.
Degenerate cases give ``None`` and a reason, never NaN or a warning:

- a sample with fewer than two values has no confidence interval;
- two samples whose every paired difference is zero are ``identical``;
- no defined pair at all is ``too few values``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

Better = Literal["higher", "lower"]

# Spreads below this fraction of the values' magnitude are rounding noise, not variance.
_REL_TOL = 1e-12
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261203  # fixed: the same values give the same interval in every run


def clean(values: Sequence[float | None]) -> list[float]:
    """The defined values (no None, no NaN)."""
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def _mean_var(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, 0.0
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    if math.sqrt(var) <= _REL_TOL * max(1.0, max(abs(x) for x in xs)):
        var = 0.0
    return mean, var


@dataclass(frozen=True, slots=True)
class SampleStats:
    """Mean of a sample with its 95% bootstrap confidence interval (None below two values)."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None


def sample_stats(values: Sequence[float | None], confidence: float = 0.95) -> SampleStats:
    """Mean, standard deviation and the bootstrap ``confidence`` interval (BCa; percentile where
    BCa is undefined) of the mean of the defined values. The interval lies within their range."""
    xs = clean(values)
    n = len(xs)
    if n == 0:
        return SampleStats(0, None, None, None, None)
    mean, var = _mean_var(xs)
    if n < 2:
        return SampleStats(1, mean, None, None, None)
    sd = math.sqrt(var)
    lo, hi = min(xs), max(xs)  # floating point may put a mean or an end a hair outside; a mean of values cannot be
    if sd == 0:
        mean = min(max(mean, lo), hi)  # n equal values: fsum(x) / n can differ from x in the last bit
        return SampleStats(n, mean, 0.0, mean, mean)
    low, high = _bootstrap(xs, confidence)
    return SampleStats(n, mean, sd, min(max(low, lo), hi), min(max(high, lo), hi))


def _bootstrap(xs: Sequence[float], confidence: float) -> tuple[float, float]:
    import numpy as np
    from scipy import stats

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate cases: the percentile method follows
            res = stats.bootstrap((np.asarray(xs),), np.mean, confidence_level=confidence, method=method,
                                  n_resamples=BOOTSTRAP_RESAMPLES, random_state=np.random.default_rng(BOOTSTRAP_SEED))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return min(xs), max(xs)  # pragma: no cover - the percentile method is defined for two distinct values


@dataclass(frozen=True, slots=True)
class Comparison:
    """Sample ``a`` (agents) against sample ``b`` (a baseline) on one metric, paired by seed.

    ``w``/``p``: the Wilcoxon signed-rank statistic and two-sided p-value of the paired differences
    a - b (zero differences dropped, SciPy's default; exact for few pairs); ``p_holm``: ``p`` after
    Holm's correction over the campaign's configurations (set by the analysis; ``p`` until then);
    ``r``: the matched-pairs rank-biserial correlation of a - b, in [-1, 1], positive when a is
    higher. ``wins``/``ties``/``losses`` count the pairs where a was better / equal / worse than b.
    ``note`` says why a test is missing: "identical", "too few values".
    """

    n: int  # pairs with both values defined
    mean_a: float | None
    mean_b: float | None
    w: float | None
    p: float | None
    r: float | None
    wins: int
    ties: int
    losses: int
    note: str = ""
    p_holm: float | None = None

    @property
    def identical(self) -> bool:
        return self.note == "identical"

    @property
    def difference(self) -> float | None:
        """mean(a) - mean(b)."""
        return None if self.mean_a is None or self.mean_b is None else self.mean_a - self.mean_b

    def significant(self, alpha: float = 0.05) -> bool:
        """Holm-adjusted Wilcoxon p below ``alpha``."""
        return self.p_holm is not None and self.p_holm < alpha


def _pairs(a: Sequence[float | None], b: Sequence[float | None]) -> list[tuple[float, float]]:
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    return [(float(x), float(y)) for x, y in zip(a, b, strict=True)
            if x is not None and y is not None and not math.isnan(x) and not math.isnan(y)]


def win_counts(a: Sequence[float | None], b: Sequence[float | None], better: Better) -> tuple[int, int, int]:
    """(wins, ties, losses) of ``a`` against ``b``, pair by pair (same index = same seed)."""
    wins = ties = losses = 0
    for x, y in _pairs(a, b):
        if x == y:
            ties += 1
        elif (x > y) == (better == "higher"):
            wins += 1
        else:
            losses += 1
    return wins, ties, losses


def rank_biserial(differences: Sequence[float]) -> float | None:
    """The matched-pairs rank-biserial correlation (Kerby 2014): (R+ - R-) / (R+ + R-) over the
    ranks of the non-zero |differences|; None when every difference is zero."""
    from scipy import stats

    nonzero = [d for d in differences if d != 0]
    if not nonzero:
        return None
    ranks = stats.rankdata([abs(d) for d in nonzero])
    plus = math.fsum(float(r) for r, d in zip(ranks, nonzero, strict=True) if d > 0)
    minus = math.fsum(float(r) for r, d in zip(ranks, nonzero, strict=True) if d < 0)
    return (plus - minus) / (plus + minus)


def compare(a: Sequence[float | None], b: Sequence[float | None], better: Better) -> Comparison:
    """Compare agents' values ``a`` with a baseline's ``b``, index by index (the same seed)."""
    from scipy import stats

    wins, ties, losses = win_counts(a, b, better)
    xa, xb = clean(a), clean(b)
    mean_a = _mean_var(xa)[0] if xa else None
    mean_b = _mean_var(xb)[0] if xb else None
    pairs = _pairs(a, b)
    base = dict(n=len(pairs), mean_a=mean_a, mean_b=mean_b, wins=wins, ties=ties, losses=losses)
    if not pairs:
        return Comparison(w=None, p=None, r=None, note="too few values", **base)  # type: ignore[arg-type]
    differences = [x - y for x, y in pairs]
    if all(d == 0 for d in differences):
        return Comparison(w=None, p=None, r=0.0, note="identical", **base)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few pairs: SciPy notes the p-value's coarseness; it is exact
        res = stats.wilcoxon(differences, alternative="two-sided")
    p = _finite(res.statistic), _finite(res.pvalue)
    return Comparison(w=p[0], p=p[1], r=rank_biserial(differences), p_holm=p[1], **base)  # type: ignore[arg-type]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of one family of p-values (None: no test, not in the family)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(order)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def with_holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """One family of comparisons (one baseline and metric over the configurations), Holm-adjusted."""
    adjusted = holm([c.p for c in comparisons])
    return [replace(c, p_holm=q) for c, q in zip(comparisons, adjusted, strict=True)]


def smallest_p(pairs: int) -> float | None:
    """The smallest two-sided p the exact Wilcoxon test can give with ``pairs`` non-zero pairs: 2 / 2^n."""
    return None if pairs < 1 else min(1.0, 2.0 / 2**pairs)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def show_p(p: float | None, note: str = "") -> str:
    """A p-value for a table: ``<0.001``, ``0.023``, or the reason there is none."""
    if p is None:
        return note or "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def show_effect(r: float | None, note: str = "") -> str:
    """The rank-biserial effect size for a table, or the reason there is none."""
    if note == "identical":
        return "identical"
    if r is None:
        return note or "-"
    return f"{r:+.2f}"
