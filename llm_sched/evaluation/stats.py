"""Statistics of the campaign, with SciPy: means with 95% confidence intervals, and agents against a
baseline (Mann-Whitney U, Welch's t, Cohen's d, per-repetition win counts).

Undefined values (NaN, e.g. the MTTR of a run in which nothing was killed) are left out of a sample;
the sample sizes say how many remained. Degenerate cases give ``None`` and a reason, never NaN or
a warning:

- a sample with fewer than two values has no confidence interval and no test;
- two identical samples (the same values, in any order) are reported as ``identical``;
- two samples that are each constant but differ have no variance: Welch's t and Cohen's d are
  undefined (the difference is the same in every run), Mann-Whitney U still applies.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"]

# Spreads below this fraction of the values' magnitude are rounding noise, not variance.
_REL_TOL = 1e-12


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
    """Mean of a sample with its t-based 95% confidence interval (``half`` None below two values)."""

    n: int
    mean: float | None
    sd: float | None
    half: float | None  # half-width of the 95% confidence interval

    @property
    def low(self) -> float | None:
        return None if self.mean is None or self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.mean is None or self.half is None else self.mean + self.half


def sample_stats(values: Sequence[float | None], confidence: float = 0.95) -> SampleStats:
    """Mean, standard deviation and the t-based ``confidence`` interval of the defined values."""
    from scipy import stats

    xs = clean(values)
    n = len(xs)
    if n == 0:
        return SampleStats(0, None, None, None)
    mean, var = _mean_var(xs)
    if n < 2:
        return SampleStats(1, mean, None, None)
    sd = math.sqrt(var)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n) if sd > 0 else 0.0
    return SampleStats(n, mean, sd, half)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Sample ``a`` (agents) against sample ``b`` (a baseline) on one metric.

    ``d`` is Cohen's d of a - b (pooled standard deviation): positive when a's mean is higher.
    ``wins``/``ties``/``losses`` count the repetitions where a was better / equal / worse than b
    on the same seed (pairs where either value is undefined are left out). ``note`` says why a
    test is missing: "identical", "no variance", "too few values".
    """

    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    mw_u: float | None
    mw_p: float | None
    welch_t: float | None
    welch_p: float | None
    d: float | None
    wins: int
    ties: int
    losses: int
    note: str = ""

    @property
    def identical(self) -> bool:
        return self.note == "identical"

    @property
    def difference(self) -> float | None:
        """mean(a) - mean(b)."""
        return None if self.mean_a is None or self.mean_b is None else self.mean_a - self.mean_b

    def significant(self, alpha: float = 0.05) -> bool:
        """Mann-Whitney's p below ``alpha``."""
        return self.mw_p is not None and self.mw_p < alpha


def win_counts(a: Sequence[float | None], b: Sequence[float | None], better: Better) -> tuple[int, int, int]:
    """(wins, ties, losses) of ``a`` against ``b``, pair by pair (same index = same seed)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    wins = ties = losses = 0
    for x, y in zip(a, b, strict=True):
        if x is None or y is None or math.isnan(x) or math.isnan(y):
            continue
        if x == y:
            ties += 1
        elif (x > y) == (better == "higher"):
            wins += 1
        else:
            losses += 1
    return wins, ties, losses


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Cohen's d of a - b with the pooled standard deviation; None when it is undefined."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, va = _mean_var(a)
    mb, vb = _mean_var(b)
    pooled = math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
    if pooled == 0:
        return 0.0 if ma == mb else None
    return (ma - mb) / pooled


def compare(a: Sequence[float | None], b: Sequence[float | None], better: Better) -> Comparison:
    """Compare agents' values ``a`` with a baseline's ``b``.

    The win counts pair the samples by index (the campaign's samples are in repetition order, None
    where a run's value is undefined); samples of different lengths are not paired and get none.
    """
    from scipy import stats

    wins, ties, losses = win_counts(a, b, better) if len(a) == len(b) else (0, 0, 0)
    xa, xb = clean(a), clean(b)
    mean_a = _mean_var(xa)[0] if xa else None
    mean_b = _mean_var(xb)[0] if xb else None
    base = dict(n_a=len(xa), n_b=len(xb), mean_a=mean_a, mean_b=mean_b, wins=wins, ties=ties, losses=losses)
    if not xa or not xb:
        return Comparison(mw_u=None, mw_p=None, welch_t=None, welch_p=None, d=None, note="too few values", **base)
    if sorted(xa) == sorted(xb):
        return Comparison(mw_u=None, mw_p=None, welch_t=None, welch_p=None, d=0.0, note="identical", **base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the degenerate cases are handled below; nothing leaks out
        mw = stats.mannwhitneyu(xa, xb, alternative="two-sided")
        mw_u, mw_p = _finite(mw.statistic), _finite(mw.pvalue)
        welch_t = welch_p = None
        note = ""
        if len(xa) < 2 or len(xb) < 2:
            note = "too few values"
        else:
            (ma, va), (mb, vb) = _mean_var(xa), _mean_var(xb)
            if va == 0 and vb == 0:
                note = "no variance"
            else:
                t = stats.ttest_ind_from_stats(ma, math.sqrt(va), len(xa), mb, math.sqrt(vb), len(xb),
                                               equal_var=False)
                welch_t, welch_p = _finite(t.statistic), _finite(t.pvalue)
    return Comparison(mw_u=mw_u, mw_p=mw_p, welch_t=welch_t, welch_p=welch_p, d=cohens_d(xa, xb), note=note, **base)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def show_p(p: float | None, note: str = "") -> str:
    """A p-value for a table: ``<0.001``, ``0.023``, or the reason there is none."""
    if p is None:
        return note or "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def show_d(d: float | None, note: str = "") -> str:
    """Cohen's d for a table, or the reason there is none."""
    if note == "identical":
        return "identical"
    if d is None:
        return note or "-"
    return f"{d:+.2f}"
