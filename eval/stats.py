"""Confidence intervals and paired tests for the eval reports (scipy.stats does the arithmetic).

- `paired_gap(diffs)`: for arm - baseline differences paired by seed, the mean, a 95% t interval
  (n - 1 degrees of freedom), a percentile bootstrap interval when n >= 5, the two-sided paired
  t-test p-value (H0: mean difference 0) and a plain note on what n allows one to conclude;
- `bootstrap_interval(values)`: percentile bootstrap interval of the mean, seeded;
- `mcnemar_exact(only_a, only_b)`: McNemar's exact test on a 2x2 table of paired yes/no
  outcomes, i.e. the two-sided binomial test of the discordant counts against p = 1/2;
- `holm(pvalues)`: Holm's step-down adjusted p-values for a family of comparisons, so that a
  sweep that compares many arms says which gaps survive the number of tests made;
- power of the paired t-test, exact from the noncentral t distribution (`scipy.stats.nct`, not a
  normal approximation): `paired_t_power(effect, n)`, `detectable_gap(sd, n)` (the smallest
  gap n seeds detect) and `seeds_needed(gap, sd)` (the seeds a gap needs), at POWER and ALPHA.
Not a script; import it: `from eval.stats import paired_gap, mcnemar_exact`.
"""
import math

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
BOOTSTRAP_MIN_N = 5  # below this a bootstrap interval only echoes the few values there are
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # fixed: the same inputs give the same interval every time
ALPHA = 0.05  # two-sided test level of the power calculations
POWER = 0.8   # the power the detectable gap and the seed counts are computed at
MAX_SEEDS = 10_000  # seeds_needed says "more than this" above it


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
    (95% percentile bootstrap, None for n < 5), p (paired t-test, None for n < 2 or no spread),
    detectable (detectable_gap at the observed std and this n; None for n < 2), seeds_needed
    (needed_text for the observed mean at the observed std: an int or '> 10000'; None for n < 2 or
    a zero std), note. Both take the observed std as the true one: with few seeds it is itself
    uncertain (a plug-in estimate, not a guarantee).
    """
    diffs = [float(d) for d in diffs]
    n = len(diffs)
    t = t_interval(diffs)
    boot = bootstrap_interval(diffs) if n >= BOOTSTRAP_MIN_N else None
    mean = float(np.mean(diffs)) if n else None
    std = float(np.std(diffs, ddof=1)) if n >= 2 else None
    spread = std is not None and std > 0 and math.isfinite(std)
    return dict(n=n, mean=mean, std=std,
                t_low=t and t[0], t_high=t and t[1], boot_low=boot and boot[0], boot_high=boot and boot[1],
                p=paired_t_pvalue(diffs), detectable=detectable_gap(std, n) if spread else None,
                seeds_needed=needed_text(mean, std) if spread else None, note=n_note(n))


# ----------------------------------------------------------------------------- power

def paired_t_power(effect, n, alpha=ALPHA):
    """Power (a probability) of the two-sided paired t-test at level alpha with n >= 2 pairs, when
    the true mean gap is `effect` standard deviations of the per-seed gap (Cohen's d_z).

    Exact: under the alternative the t statistic follows the noncentral t distribution with n - 1
    degrees of freedom and noncentrality effect * sqrt(n) (scipy.stats.nct), and the test rejects
    when |t| > t_crit, the 1 - alpha/2 quantile of Student's t; no normal approximation.
    (Cohen 1988, ch. 2; the same quantity as G*Power's and statsmodels' TTestPower.)
    """
    if n < 2:
        raise ValueError(f"the paired t-test needs n >= 2 pairs, got {n}")
    df, nc = n - 1, abs(effect) * math.sqrt(n)
    t_crit = stats.t.ppf(1 - alpha / 2, df)
    # P(t < -t_crit) is written as sf(t_crit, df, -nc) (-t is noncentral t at -nc): scipy's
    # nct.cdf returns NaN that far into the lower tail, its sf does not
    return float(stats.nct.sf(t_crit, df, nc) + stats.nct.sf(t_crit, df, -nc))


def detectable_effect(n, power=POWER, alpha=ALPHA):
    """The smallest effect (in standard deviations of the per-seed gap) that the two-sided paired
    t-test with n >= 2 seeds detects with the given power: paired_t_power(effect, n) == power."""
    high = 1.0
    while paired_t_power(high, n, alpha) < power:  # power grows with the effect: bracket, then solve
        high *= 2
    return float(optimize.brentq(lambda d: paired_t_power(d, n, alpha) - power, 0.0, high, xtol=1e-10))


def detectable_gap(sd, n, power=POWER, alpha=ALPHA):
    """The smallest mean gap (units of sd: nats, %) that n paired seeds detect with `power` when the
    per-seed gaps have standard deviation sd: sd * detectable_effect(n). None for n < 2."""
    return None if n < 2 else float(sd) * detectable_effect(n, power, alpha)


def seeds_needed(gap, sd, power=POWER, alpha=ALPHA, max_n=MAX_SEEDS):
    """The fewest paired seeds (int >= 2) at which the two-sided paired t-test detects a true mean
    gap `gap` with `power` when the per-seed gaps have standard deviation sd (> 0); None when even
    max_n seeds do not (a zero gap never is)."""
    effect = abs(gap) / sd
    if paired_t_power(effect, max_n, alpha) < power:
        return None
    low, high = 1, 2  # power(low) < power <= power(high); power grows with n
    while paired_t_power(effect, high, alpha) < power:
        low, high = high, min(2 * high, max_n)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if paired_t_power(effect, mid, alpha) >= power else (mid, high)
    return high


def mcnemar_exact(only_a, only_b):
    """Two-sided exact McNemar p from the discordant counts (int): P under Binomial(only_a + only_b, 1/2).

    1.0 when there are no discordant pairs (nothing tells the two apart).
    """
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(stats.binomtest(only_a, n, 0.5).pvalue)


def holm(pvalues):
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective multiple
    test procedure"), in the input's order: the k-th smallest of m p-values becomes
    max over j <= k of min(1, (m - j + 1) * p_(j)). A comparison is significant at family-wise
    level alpha when its adjusted p <= alpha; unlike Bonferroni (m * p) it loses no power where
    the smaller p-values already passed. None entries (no test) stay None and are not counted in m.
    (The same values as statsmodels' multipletests(method="holm"), without the dependency.)"""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted, running = list(pvalues), 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def fmt_interval(low, high, digits=4, suffix=""):
    """'[low, high]' or 'n/a' when there is no interval."""
    if low is None or high is None or math.isnan(low):
        return "n/a"
    return f"[{low:.{digits}f}{suffix}, {high:.{digits}f}{suffix}]"


def fmt_p(p):
    """A p-value for a table: 3 significant digits, 'n/a' when there is none."""
    return "n/a" if p is None else f"{p:.3g}"


def needed_text(gap, sd):
    """seeds_needed(gap, sd) for a table or CSV: the count (int), or '> 10000' past MAX_SEEDS."""
    n = seeds_needed(gap, sd)
    return f"> {MAX_SEEDS}" if n is None else n
