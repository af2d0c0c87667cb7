"""eval/stats.py: known answers worked out by hand, and coverage of the 95% intervals in simulation."""
import math

import numpy as np
import pytest

from eval import stats


def test_mcnemar_exact_p_of_a_fixed_table_is_the_binomial_tail_by_hand():
    # discordant pairs: 1 only-A, 9 only-B; two-sided exact p = 2 * sum_{k<=1} C(10, k) / 2^10
    by_hand = 2 * (math.comb(10, 0) + math.comb(10, 1)) / 2 ** 10
    assert by_hand == 22 / 1024
    assert stats.mcnemar_exact(1, 9) == pytest.approx(by_hand)
    assert stats.mcnemar_exact(9, 1) == pytest.approx(by_hand)


def test_mcnemar_exact_without_discordant_pairs_is_one_and_balanced_tables_are_not_significant():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(5, 5) == 1.0  # 2 * P(X <= 5) capped at 1


def test_t_interval_of_a_known_sample_matches_the_hand_value():
    # 1..5: mean 3, sample sd sqrt(2.5), sem sqrt(0.5); t(0.975, 4 df) = 2.7764451 from a t table
    low, high = stats.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451 * math.sqrt(0.5)
    assert (low, high) == pytest.approx((3 - half, 3 + half), abs=1e-6)


def test_paired_t_pvalue_matches_the_t_statistic_by_hand():
    diffs = [1.0, 2.0, 3.0]  # mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 with 2 df
    # two-sided p for t = 2 sqrt 3 with 2 df: 1 - t / sqrt(t^2 + 2) (the closed form of the 2-df t cdf)
    t = 2 * math.sqrt(3)
    assert stats.paired_t_pvalue(diffs) == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-9)


def test_paired_gap_says_plainly_what_n_allows():
    one = stats.paired_gap([-0.2])
    assert one["mean"] == -0.2 and one["t_low"] is None and one["p"] is None and one["boot_low"] is None
    assert "nothing can be concluded" in one["note"]
    three = stats.paired_gap([-0.1, -0.3, -0.2])
    assert three["t_low"] < -0.2 < three["t_high"] and three["boot_low"] is None
    assert three["note"] == "t interval with 2 df; wide, and it assumes normal gaps"
    five = stats.paired_gap([-0.1, -0.3, -0.2, -0.25, -0.15])
    assert five["boot_low"] < -0.2 < five["boot_high"] and "bootstrap over 5 seeds" in five["note"]
    assert stats.paired_gap([])["note"] == "no paired seeds"


def test_identical_differences_have_a_point_interval_and_no_test():
    gap = stats.paired_gap([0.5] * 6)
    assert (gap["t_low"], gap["t_high"], gap["boot_low"], gap["boot_high"]) == (0.5, 0.5, 0.5, 0.5)
    assert gap["p"] is None


def test_bootstrap_is_seeded_and_reproducible():
    values = np.random.default_rng(3).normal(size=20)
    assert stats.bootstrap_interval(values) == stats.bootstrap_interval(values)


def test_t_interval_covers_the_true_mean_in_about_95_percent_of_draws():
    rng = np.random.default_rng(1234)
    true_mean = 1.0
    covered = 0
    for _ in range(400):
        low, high = stats.t_interval(rng.normal(true_mean, 2.0, size=5))
        covered += low <= true_mean <= high
    assert 0.90 <= covered / 400 <= 0.99


def test_bootstrap_interval_covers_the_true_mean_in_about_95_percent_of_draws():
    rng = np.random.default_rng(99)
    covered = 0
    for _ in range(400):
        low, high = stats.bootstrap_interval(rng.normal(0.0, 1.0, size=40), n_resamples=999)
        covered += low <= 0.0 <= high
    # the percentile bootstrap runs a little narrow at small n; 40 values puts it near 94%
    assert 0.90 <= covered / 400 <= 0.99


def test_fmt_interval_and_p():
    assert stats.fmt_interval(None, None) == "n/a"
    assert stats.fmt_interval(-0.12345, 0.5, 3) == "[-0.123, 0.500]"
    assert stats.fmt_p(None) == "n/a" and stats.fmt_p(0.021484375) == "0.0215"
