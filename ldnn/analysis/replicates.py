"""Statistics of a claim across meta-learning replicates: the replicate is the unit.

Each study meta-learns its activations K times (replicates); every arm is trained with n
seeds per replicate. Seeds of one replicate share its learned activations, so they are
not independent samples of the method: a test that pools all seeds counts a replicate's
own luck as evidence (its false-positive rate grows with the between-replicate variance).
Here a claim that a beats b in a direction is judged on the replicates' effects:

- effect of replicate r: Cliff's delta δ_r = P(a > b) − P(a < b) over that replicate's
  seeds, signed so that positive is the claimed direction;
- test: one-sided one-sample t-test of mean δ_r > 0 over the K replicates (the summary-
  statistics approach to nested data: exact false-positive rate when the δ_r are normal,
  whatever the between-replicate variance; tested by simulation);
- interval: two-level percentile bootstrap of the mean δ_r, resampling replicates, then
  each replicate's seeds of a and of b;
- ICC: the between-replicate share of the variance of the seed-paired differences a − b
  (one-way ANOVA estimator), and in how many replicates δ_r > 0.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ldnn.analysis.statistics import _check_direction, cliffs_delta


def _signed(delta: float, direction: str) -> float:
    _check_direction(direction)
    return delta if direction == "greater" else -delta


def replicate_effects(a: np.ndarray, a_replicates: np.ndarray, b: np.ndarray,
                      b_replicates: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """The replicates that have values in both groups (K,) and each one's δ_r in the
    claimed direction (K,): a (n_a,), b (n_b,) with the replicate of each value."""
    shared = np.intersect1d(a_replicates, b_replicates)
    effects = [_signed(cliffs_delta(a[a_replicates == r], b[b_replicates == r]), direction)
               for r in shared]
    return shared, np.asarray(effects, dtype=np.float64)


def replicate_p(effects: np.ndarray) -> float:
    """One-sided p of a one-sample t-test that the mean effect exceeds 0 (NaN below two
    replicates; 0 or 1 when all effects are equal)."""
    effects = np.asarray(effects, dtype=np.float64)
    if effects.size < 2:
        return np.nan
    if np.ptp(effects) == 0:
        return 0.0 if effects[0] > 0 else 1.0
    return float(stats.ttest_1samp(effects, 0.0, alternative="greater").pvalue)


def two_level_bootstrap(a: np.ndarray, a_replicates: np.ndarray, b: np.ndarray,
                        b_replicates: np.ndarray, direction: str, resamples: int = 2000,
                        seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean replicate effect: each resample draws K replicates
    with replacement, then within each the seeds of a and of b with replacement."""
    shared, _ = replicate_effects(a, a_replicates, b, b_replicates, direction)
    if shared.size == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    groups = [(a[a_replicates == r], b[b_replicates == r]) for r in shared]
    means = np.empty(resamples)
    for i in range(resamples):
        chosen = rng.integers(0, len(groups), len(groups))
        means[i] = np.mean([_signed(cliffs_delta(rng.choice(groups[k][0], groups[k][0].size),
                                                 rng.choice(groups[k][1], groups[k][1].size)),
                                    direction) for k in chosen])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def icc(values: np.ndarray, groups: np.ndarray) -> float:
    """Intraclass correlation ICC(1) of values (n,) in groups (n,): the between-group share
    of the variance, (MSB − MSW) / (MSB + (n₀ − 1) MSW), clipped to [0, 1]; NaN with
    fewer than two groups or no within-group spread to compare with."""
    values, groups = np.asarray(values, np.float64), np.asarray(groups)
    labels = np.unique(groups)
    k, n = labels.size, values.size
    if k < 2 or n <= k:
        return np.nan
    sizes = np.array([np.sum(groups == g) for g in labels])
    means = np.array([values[groups == g].mean() for g in labels])
    between = np.sum(sizes * (means - values.mean()) ** 2) / (k - 1)
    within = sum(np.sum((values[groups == g] - m) ** 2) for g, m in zip(labels, means)) / (n - k)
    n0 = (n - np.sum(sizes ** 2) / n) / (k - 1)
    denominator = between + (n0 - 1) * within
    if denominator <= 0:
        return np.nan
    return float(np.clip((between - within) / denominator, 0.0, 1.0))
