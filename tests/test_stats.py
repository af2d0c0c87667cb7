"""eval/stats.py: known answers worked out by hand, and coverage of the 95% intervals in simulation."""
import math

import numpy as np
import pytest

from eval import seed_count, stats


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


def test_holm_adjusts_a_family_of_p_values_as_statsmodels_does():
    # statsmodels 0.14 multipletests([0.01, 0.04, 0.03, 0.005], method="holm")[1]; by hand: sorted
    # 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept at 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert stats.holm([0.04]) == [0.04]  # one test: nothing to adjust


def test_holm_leaves_comparisons_without_a_test_out_of_the_family():
    assert stats.holm([None, 0.02, None, 0.03]) == pytest.approx([None, 0.04, None, 0.04])
    assert stats.holm([None]) == [None] and stats.holm([]) == []


# ----------------------------------------------------------------------------- power of the paired t-test

# Known answers from an independent implementation: statsmodels 0.15.0,
# TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided") (its own root
# finder, to about 1e-7), and the published sample sizes for the paired / one-sample t-test at
# alpha 0.05 two-sided, power 0.80 (Cohen 1988, Table 2.4.1; G*Power): d = 0.5 needs 34 pairs,
# d = 0.8 needs 15, d = 1.0 needs 10.
STATSMODELS_DETECTABLE_EFFECT = {2: 11.549889754978167, 3: 3.264043552819638, 5: 1.6819970833232674,
                                 10: 0.9960019107624178, 30: 0.5292357045238948}


@pytest.mark.parametrize("n, effect", sorted(STATSMODELS_DETECTABLE_EFFECT.items()))
def test_the_smallest_detectable_effect_matches_statsmodels(n, effect):
    assert stats.detectable_effect(n) == pytest.approx(effect, rel=1e-6)
    assert stats.paired_t_power(effect, n) == pytest.approx(0.8, abs=1e-6)


@pytest.mark.parametrize("effect, pairs", [(0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_needed_matches_the_published_sample_size_table(effect, pairs):
    assert stats.seeds_needed(effect, 1.0) == pairs
    assert stats.paired_t_power(effect, pairs) >= 0.8 > stats.paired_t_power(effect, pairs - 1)
    # the same gap in nats at another spread: only the ratio gap / sd matters
    assert stats.seeds_needed(0.02 * effect, 0.02) == pairs


def test_power_at_the_detectable_gap_is_eighty_percent_in_simulation():
    """The definition, checked without scipy's noncentral t: draw 4,000 sets of 5 normal per-seed
    gaps with mean detectable_gap(sd, 5) and run the paired t-test on each: ~80% reject at 5%."""
    sd, n = 0.03, 5
    gap = stats.detectable_gap(sd, n)
    diffs = np.random.default_rng(7).normal(gap, sd, size=(4000, n))
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / math.sqrt(n))
    rejected = np.mean(np.abs(t) > 2.7764451)  # t(0.975, 4 df) from a t table
    assert 0.77 <= rejected <= 0.83  # 4,000 draws: standard error 0.6 points


def test_paired_gap_reports_the_detectable_gap_and_the_seeds_the_observed_gap_needs():
    gap = stats.paired_gap([-0.3, -0.25])  # mean -0.275, sd 0.025 * sqrt(2)
    sd = 0.025 * math.sqrt(2)
    assert gap["detectable"] == pytest.approx(sd * STATSMODELS_DETECTABLE_EFFECT[2], rel=1e-6)
    assert gap["seeds_needed"] == 3  # d = 7.78: under 11.55 (n = 2), over 3.26 (n = 3)
    assert stats.paired_gap([0.001, -0.001])["seeds_needed"] == "> 10000"  # a zero mean gap, never
    assert stats.paired_gap([0.5])["detectable"] is None and stats.paired_gap([0.5])["seeds_needed"] is None
    assert stats.paired_gap([0.5, 0.5])["seeds_needed"] is None  # no spread: nothing to plug in


def test_seed_count_works_out_the_paper_gap_under_both_readings_of_its_spread(capsys):
    """0.083 +- 0.007 nats: +- as the per-seed gap's std (d = 11.86, above the 11.55 that 2 seeds
    detect) or as each arm's std (the gap's std 0.0099, d = 8.38: 3 seeds)."""
    seed_count.main([])
    out = capsys.readouterr().out
    three = STATSMODELS_DETECTABLE_EFFECT[3]
    assert (f"| +-0.007 is the std of the per-seed gap | 0.0070 | {0.007 * STATSMODELS_DETECTABLE_EFFECT[2]:.4f} | "
            f"{0.007 * three:.4f} |") in out
    assert "| +-0.007 is each arm's std (independent arms) | 0.0099 | " in out
    assert f" | {math.sqrt(2) * 0.007 * three:.4f} | " in out
    assert "| +-0.007 is the std of the per-seed gap | 0.0070 | 2 |" in out
    assert "| +-0.007 is each arm's std (independent arms) | 0.0099 | 3 |" in out
