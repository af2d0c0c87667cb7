"""Confidence intervals and paired tests for the eval reports (scipy.stats does the arithmetic).

- `paired_gap(diffs)`: for arm - baseline differences paired by seed, the mean, a 95% t interval
  (n - 1 degrees of freedom), a percentile bootstrap interval when n >= 5, the two-sided paired
  t-test p-value (H0: mean difference 0) and a plain note on what n allows one to conclude;
- `bootstrap_interval(values)`: percentile bootstrap interval of the mean, seeded;
- `mcnemar_exact(only_a, only_b)`: McNemar's exact test on a 2x2 table of paired yes/no
  outcomes, i.e. the two-sided binomial test of the discordant counts against p = 1/2.
Not a script; import it: `from eval.stats import paired_gap, mcnemar_exact`.
"""
import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_MIN_N = 5  # below this a bootstrap interval only echoes the few values there are
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # fixed: the same inputs give the same interval every time


def t_interval(values, confidence=CONFIDENCE):
    """(low, high) of the Student-t interval for the mean of values (floats); None with n < 2."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    mean, sem = values.mean(), stats.sem(values)
    if sem == 0:
        return float(mean), float(mean)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def bootstrap_interval(values, confidence=CONFIDENCE, seed=BOOTSTRAP_SEED, n_resamples=BOOTSTRAP_RESAMPLES):
    """(low, high) percentile bootstrap interval of the mean of values; None with n < 2.

    Resamples the values with replacement; to bootstrap paired differences pass the differences.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    if np.all(values == values[0]):  # every resample has the same mean
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_t_pvalue(diffs):
    """Two-sided p of the paired t-test (one-sample t-test of the differences against 0).

    None with n < 2, or when every difference is the same (no spread: the test is undefined).
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    if len(diffs) < 2 or np.all(diffs == diffs[0]):
        return None
    return float(stats.ttest_1samp(diffs, 0.0).pvalue)


def n_note(n):
    """What n paired seeds allow one to say, in words."""
    if n == 0:
        return "no paired seeds"
    if n == 1:
        return "one seed: no interval, no test; nothing can be concluded"
    if n < BOOTSTRAP_MIN_N:
        return f"t interval with {n - 1} df; wide, and it assumes normal gaps"
    return f"t interval with {n - 1} df; bootstrap over {n} seeds"


def paired_gap(diffs):
    """Summary of paired differences (arm - baseline, one per seed), as a dict.

    Keys: n, mean, std (sample), t_low/t_high (95% t interval, None for n < 2), boot_low/boot_high
    (95% percentile bootstrap, None for n < 5), p (paired t-test, None for n < 2 or no spread), note.
    """
    diffs = [float(d) for d in diffs]
    n = len(diffs)
    t = t_interval(diffs)
    boot = bootstrap_interval(diffs) if n >= BOOTSTRAP_MIN_N else None
    return dict(n=n, mean=float(np.mean(diffs)) if n else None,
                std=float(np.std(diffs, ddof=1)) if n >= 2 else None,
                t_low=t and t[0], t_high=t and t[1], boot_low=boot and boot[0], boot_high=boot and boot[1],
                p=paired_t_pvalue(diffs), note=n_note(n))


def mcnemar_exact(only_a, only_b):
    """Two-sided exact McNemar p from the discordant counts (int): P under Binomial(only_a + only_b, 1/2).

    1.0 when there are no discordant pairs (nothing tells the two apart).
    """
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(stats.binomtest(only_a, n, 0.5).pvalue)


def fmt_interval(low, high, digits=4, suffix=""):
    """'[low, high]' or 'n/a' when there is no interval."""
    if low is None or high is None or math.isnan(low):
        return "n/a"
    return f"[{low:.{digits}f}{suffix}, {high:.{digits}f}{suffix}]"


def fmt_p(p):
    """A p-value for a table: 3 significant digits, 'n/a' when there is none."""
    return "n/a" if p is None else f"{p:.3g}"
