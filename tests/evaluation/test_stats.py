"""The campaign's statistics on samples whose answers are known by hand or from SciPy directly."""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from llm_sched.evaluation.stats import (
    compare,
    holm,
    rank_biserial,
    sample_stats,
    show_effect,
    show_p,
    smallest_p,
    win_counts,
    with_holm,
)


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> None:
    warnings.simplefilter("error")  # pytest restores the filters after each test


def test_bootstrap_interval_of_a_known_sample_holds_the_mean_and_is_reproducible() -> None:
    s = sample_stats([1, 2, 3, 4, 5])
    assert (s.n, s.mean) == (5, 3.0) and s.sd == pytest.approx(math.sqrt(2.5))
    assert s.low is not None and s.high is not None and 1 <= s.low < 3.0 < s.high <= 5
    assert sample_stats([1, 2, 3, 4, 5]) == s  # a fixed seed: the same interval every time


@given(st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=2, max_size=30))
@settings(max_examples=60, deadline=None)
def test_an_interval_never_leaves_the_values_range(values: list[float]) -> None:
    # A completion rate in [0, 1] gets an interval in [0, 1]; a wait >= 0 one >= 0: the t interval
    # of the earlier reports gave 117% completion and negative waits on skewed samples.
    warnings.simplefilter("ignore")  # hypothesis may pick nearly constant samples
    s = sample_stats(values)
    assert s.low is not None and s.high is not None
    assert min(values) <= s.low <= s.high <= max(values)


def test_a_skewed_sample_gets_an_interval_the_t_interval_would_push_below_zero() -> None:
    waits = [0.0, 0.0, 0.0, 0.0, 5000.0]  # four seeds without a wait, one long one
    s = sample_stats(waits)
    t_half = float(sp.t.ppf(0.975, 4)) * s.sd / math.sqrt(5)  # type: ignore[operator]
    assert s.mean is not None and s.mean - t_half < 0  # what the t interval said
    assert s.low is not None and s.low >= 0.0


def test_undefined_values_are_left_out() -> None:
    s = sample_stats([1.0, None, math.nan, 3.0])
    assert (s.n, s.mean) == (2, 2.0) and s.low is not None and 1.0 <= s.low <= s.high <= 3.0  # type: ignore[operator]


@pytest.mark.parametrize("values, n, mean", [([], 0, None), ([math.nan, None], 0, None), ([7.0], 1, 7.0)])
def test_too_small_samples_have_no_interval(values: list[float | None], n: int, mean: float | None) -> None:
    s = sample_stats(values)
    assert (s.n, s.mean, s.low, s.high) == (n, mean, None, None)


def test_constant_sample_has_a_zero_width_interval() -> None:
    s = sample_stats([0.25] * 6)
    assert (s.mean, s.sd, s.low, s.high) == (0.25, 0.0, 0.25, 0.25)


def test_wilcoxon_by_hand() -> None:
    # Agents lower on all 5 seeds: W = 0; exact two-sided p = 2 / 2^5 = 0.0625, the smallest 5 pairs give.
    c = compare([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], "lower")
    assert (c.n, c.w, c.p) == (5, 0.0, pytest.approx(0.0625)) and c.p == smallest_p(5)
    assert c.r == -1.0 and (c.wins, c.ties, c.losses) == (5, 0, 0)
    assert not c.significant()  # five seeds can never reach p < 0.05 with this test


def test_wilcoxon_and_the_effect_size_match_scipy() -> None:
    a = [2.1, 3.4, 1.9, 5.6, 4.4, 3.3, 2.8, 6.0]
    b = [6.0, 7.2, 1.1, 8.8, 6.6, 2.0, 5.5, 9.0]
    c = compare(a, b, "higher")
    ref = sp.wilcoxon([x - y for x, y in zip(a, b)])
    assert c.w == pytest.approx(ref.statistic) and c.p == pytest.approx(ref.pvalue)
    # R+ = ranks of the positive differences (0.8 and 1.3: ranks 1 and 2); R- = the rest (33).
    assert c.r == pytest.approx((3 - 33) / 36)


def test_rank_biserial_ignores_zero_differences_and_is_none_without_any() -> None:
    assert rank_biserial([0.0, 1.0, -2.0]) == pytest.approx((1 - 2) / 3)
    assert rank_biserial([0.0, 0.0]) is None


def test_holm_by_hand_and_the_family_it_adjusts() -> None:
    # Sorted 0.01, 0.03, 0.04 of m = 3: 0.03, max(0.03, 0.06), max(0.06, 0.04).
    assert holm([0.01, 0.04, None, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), None, pytest.approx(0.06)]
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    strong = compare(list(range(12)), [x + 3 + x % 2 for x in range(12)], "lower")
    assert strong.p is not None and strong.p < 0.05
    family = with_holm([strong] * 30)
    assert all(c.p_holm == min(1.0, 30 * strong.p) for c in family)  # one test among 30 is corrected for all


def test_win_counts_pair_by_repetition_and_skip_undefined() -> None:
    a = [1.0, 5.0, 3.0, math.nan, 2.0]
    b = [2.0, 4.0, 3.0, 1.0, None]
    assert win_counts(a, b, "lower") == (1, 1, 1)
    assert win_counts(a, b, "higher") == (1, 1, 1)
    assert win_counts([1.0, 2.0], [0.0, 0.0], "higher") == (2, 0, 0)
    with pytest.raises(ValueError):
        win_counts([1.0], [1.0, 2.0], "lower")


def test_identical_pairs_say_identical() -> None:
    c = compare([1.0, 2.0, 2.0], [1.0, 2.0, 2.0], "lower")
    assert c.identical and (c.p, c.r) == (None, 0.0)
    assert show_p(c.p, c.note) == "identical" and show_effect(c.r, c.note) == "identical"
    constant = compare([1.0] * 5, [1.0] * 5, "higher")
    assert constant.identical and (constant.wins, constant.ties, constant.losses) == (0, 5, 0)


def test_the_same_values_on_other_seeds_are_not_identical() -> None:
    c = compare([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], "lower")  # same values, other pairing
    assert not c.identical and c.p is not None


def test_constant_but_different_samples_still_get_a_test() -> None:
    # Messages per decision: agents always 18, a central scheduler always 0.
    c = compare([18.0] * 6, [0.0] * 6, "lower")
    assert c.p == pytest.approx(2 / 2**6) and c.r == 1.0 and (c.wins, c.ties, c.losses) == (0, 0, 6)


@pytest.mark.parametrize("a, b", [([], []), ([math.nan], [1.0]), ([1.0, None], [None, 2.0])])
def test_too_few_values(a: list[float], b: list[float]) -> None:
    c = compare(a, b, "lower")
    assert (c.n, c.p, c.r, c.note) == (0, None, None, "too few values")
    for value in (c.w, c.p, c.r, c.mean_a, c.mean_b):
        assert value is None or math.isfinite(value)


def test_formatting() -> None:
    assert show_p(0.0004) == "<0.001" and show_p(0.0234) == "0.023" and show_p(None) == "-"
    assert show_effect(-0.5) == "-0.50" and show_effect(None) == "-"
    assert smallest_p(0) is None and smallest_p(1) == 1.0
