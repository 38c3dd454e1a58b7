"""The campaign's statistics on samples whose answers are known by hand or from SciPy directly."""

from __future__ import annotations

import math
import warnings

import pytest
from scipy import stats as sp

from llm_sched.evaluation.stats import cohens_d, compare, sample_stats, show_d, show_p, win_counts


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> None:
    warnings.simplefilter("error")  # pytest restores the filters after each test


def test_confidence_interval_of_a_known_sample() -> None:
    s = sample_stats([1, 2, 3, 4, 5])
    # sd = sqrt(2.5); t(0.975, 4) = 2.776445; half = 2.776445 * sqrt(2.5) / sqrt(5) = 1.963243
    assert (s.n, s.mean) == (5, 3.0)
    assert s.sd == pytest.approx(math.sqrt(2.5))
    assert s.half == pytest.approx(1.963243, abs=1e-6)
    assert (s.low, s.high) == (pytest.approx(1.036757, abs=1e-6), pytest.approx(4.963243, abs=1e-6))


def test_undefined_values_are_left_out() -> None:
    s = sample_stats([1.0, None, math.nan, 3.0])
    assert (s.n, s.mean) == (2, 2.0)
    assert s.half == pytest.approx(sp.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2))


@pytest.mark.parametrize("values, n, mean", [([], 0, None), ([math.nan, None], 0, None), ([7.0], 1, 7.0)])
def test_too_small_samples_have_no_interval(values: list[float | None], n: int, mean: float | None) -> None:
    s = sample_stats(values)
    assert (s.n, s.mean, s.half, s.low, s.high) == (n, mean, None, None, None)


def test_constant_sample_has_a_zero_width_interval() -> None:
    s = sample_stats([0.25] * 6)
    assert (s.mean, s.sd, s.half) == (0.25, 0.0, 0.0)


def test_mann_whitney_by_hand() -> None:
    # No a beats any b: U = 0; exact two-sided p = 2 / C(6, 3) = 0.1.
    c = compare([1, 2, 3], [4, 5, 6], "lower")
    assert c.mw_u == 0.0
    assert c.mw_p == pytest.approx(0.1)
    assert (c.wins, c.ties, c.losses) == (3, 0, 0)


def test_welch_and_mann_whitney_match_scipy() -> None:
    a = [2.1, 3.4, 1.9, 5.6, 4.4, 3.3, 2.8]
    b = [6.0, 7.2, 5.1, 8.8, 6.6]
    c = compare(a, b, "higher")
    welch = sp.ttest_ind(a, b, equal_var=False)
    mw = sp.mannwhitneyu(a, b, alternative="two-sided")
    assert c.welch_t == pytest.approx(welch.statistic)
    assert c.welch_p == pytest.approx(welch.pvalue)
    assert c.mw_u == pytest.approx(mw.statistic)
    assert c.mw_p == pytest.approx(mw.pvalue)
    assert c.significant()
    assert c.note == ""


def test_cohens_d_by_hand() -> None:
    # Means 3 and 5, both variances 2.5: pooled sd sqrt(2.5), d = -2 / 1.5811 = -1.264911.
    assert cohens_d([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]) == pytest.approx(-1.264911, abs=1e-6)
    # Unequal sizes: pooled variance ((3-1) * 1 + (2-1) * 0.5) / 3 = 2.5 / 3.
    assert cohens_d([1, 2, 3], [2, 3]) == pytest.approx((2.0 - 2.5) / math.sqrt(2.5 / 3))


def test_win_counts_pair_by_repetition_and_skip_undefined() -> None:
    a = [1.0, 5.0, 3.0, math.nan, 2.0]
    b = [2.0, 4.0, 3.0, 1.0, None]
    assert win_counts(a, b, "lower") == (1, 1, 1)
    assert win_counts(a, b, "higher") == (1, 1, 1)
    assert win_counts([1.0, 2.0], [0.0, 0.0], "higher") == (2, 0, 0)
    with pytest.raises(ValueError):
        win_counts([1.0], [1.0, 2.0], "lower")


def test_identical_samples_say_identical() -> None:
    c = compare([1.0, 2.0, 2.0], [2.0, 1.0, 2.0], "lower")
    assert c.identical
    assert (c.mw_p, c.welch_p, c.d) == (None, None, 0.0)
    assert show_p(c.mw_p, c.note) == "identical" and show_d(c.d, c.note) == "identical"
    constant = compare([1.0] * 5, [1.0] * 5, "higher")
    assert constant.identical and (constant.wins, constant.ties, constant.losses) == (0, 5, 0)


def test_constant_but_different_samples_have_no_variance() -> None:
    # Messages per decision: agents always 18, a central scheduler always 0.
    c = compare([18.0] * 5, [0.0] * 5, "lower")
    assert c.note == "no variance"
    assert c.welch_t is None and c.welch_p is None and c.d is None
    assert c.mw_p is not None and 0 < c.mw_p < 0.05  # Mann-Whitney still applies
    assert (c.wins, c.ties, c.losses) == (0, 0, 5)
    assert show_p(c.welch_p, c.note) == "no variance" and show_d(c.d, c.note) == "no variance"


def test_one_constant_sample_still_gets_welch_and_d() -> None:
    c = compare([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], "higher")
    assert c.welch_p is not None and c.d is not None and c.note == ""


def test_nearly_identical_values_raise_no_precision_warning() -> None:
    # SciPy's ttest_ind warns of catastrophic cancellation here; the campaign must stay silent.
    a = [0.9999999999999999, 1.0, 1.0]
    b = [0.5, 0.5000000000000001, 0.5]
    c = compare(a, b, "higher")
    assert c.note == "no variance" and c.welch_p is None


@pytest.mark.parametrize("a, b", [([], [1.0, 2.0]), ([math.nan], [1.0]), ([1.0], [2.0])])
def test_too_few_values(a: list[float], b: list[float]) -> None:
    c = compare(a, b, "lower")
    assert c.welch_p is None and c.d is None and c.note == "too few values"
    for value in (c.mw_u, c.mw_p, c.welch_t, c.welch_p, c.d, c.mean_a, c.mean_b):
        assert value is None or math.isfinite(value)


def test_formatting() -> None:
    assert show_p(0.0004) == "<0.001" and show_p(0.0234) == "0.023" and show_p(None) == "-"
    assert show_d(-1.2649) == "-1.26" and show_d(None) == "-"
