"""Statistics of a claim across meta-learning replicates: the replicate is the unit.

Each study meta-learns its activations K times (replicates); every arm is trained with n
seeds per replicate. Seeds of one replicate share its learned activations, so they are
not independent samples of the method: a test that pools all seeds counts a replicate's
own luck as evidence (its false-positive rate grows with the between-replicate variance).
Here a claim that a beats b in a direction is judged on the replicates' effects:

- effect of replicate r: the difference of the arms' seed means, d_r = mean f(a) − mean
  f(b) over that replicate's seeds, signed so that positive is the claimed direction; f is
  the logarithm for a loss (MSE: strictly positive, spread over decades), else the
  identity. Unlike a rank effect (Cliff's δ, bounded in [−1, 1]) it does not pile up at a
  bound when every seed of a replicate orders the same way;
- test: one-sided one-sample t-test of mean d_r > 0 over the K replicates (the summary-
  statistics approach to nested data; exact when the d_r are normal, which they are
  under a normal random replicate-by-arm effect whatever its size, and on the log scale
  for log-normal losses; tested by simulation). Its p rests on that normal model. The
  smallest p a distribution-free test of K replicates can give is 2^−K (the exact
  sign-flip test, all K effects one way); when the d_r do not vary the t-test is
  undefined and the sign-flip p, that bound, is reported. Below MIN_REPLICATES
  replicates the design gives no verdict;
- descriptive: Cliff's δ_r per replicate, its mean with a two-level percentile bootstrap
  interval (replicates, then seeds), the ICC (the between-replicate share of the variance
  of the seed-paired differences a − b) and in how many replicates d_r > 0.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ldnn.analysis.statistics import _check_direction, cliffs_delta


MIN_REPLICATES = 5              # fewer: "too few replicates", no verdict
LOG_METRICS = ("test_loss",)    # compared on the log scale (every value must be > 0)
T_TEST, SIGN_FLIP = "t-test, normal model", "sign-flip, exact"


def _signed(value: float, direction: str) -> float:
    _check_direction(direction)
    return value if direction == "greater" else -value


def _by_replicate(a: np.ndarray, a_replicates: np.ndarray, b: np.ndarray,
                  b_replicates: np.ndarray) -> tuple[np.ndarray, list]:
    shared = np.intersect1d(a_replicates, b_replicates)
    return shared, [(a[a_replicates == r], b[b_replicates == r]) for r in shared]


def replicate_deltas(a: np.ndarray, a_replicates: np.ndarray, b: np.ndarray,
                     b_replicates: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """The replicates that have values in both groups (K,) and each one's Cliff's δ_r in the
    claimed direction (K,): a (n_a,), b (n_b,) with the replicate of each value."""
    shared, groups = _by_replicate(a, a_replicates, b, b_replicates)
    return shared, np.array([_signed(cliffs_delta(x, y), direction) for x, y in groups],
                            dtype=np.float64)


def replicate_effects(a: np.ndarray, a_replicates: np.ndarray, b: np.ndarray,
                      b_replicates: np.ndarray, direction: str,
                      log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The replicates that have values in both groups (K,) and each one's d_r, the
    difference of the groups' means (of the logarithms with `log`) in the claimed
    direction (K,)."""
    if log and (np.any(a <= 0) or np.any(b <= 0)):
        raise ValueError("a log-scale effect needs values > 0")
    f = np.log if log else np.asarray
    shared, groups = _by_replicate(a, a_replicates, b, b_replicates)
    return shared, np.array([_signed(float(np.mean(f(x)) - np.mean(f(y))), direction)
                             for x, y in groups], dtype=np.float64)


def sign_flip_p(effects: np.ndarray) -> float:
    """Exact one-sided p of the sign-flip test of mean effect > 0: the share of the 2^K
    sign patterns whose mean is at least the observed one (K ≤ 20); never below 2^−K."""
    effects = np.asarray(effects, dtype=np.float64)
    signs = 1 - 2 * ((np.arange(2 ** effects.size)[:, None] >> np.arange(effects.size)) & 1)
    means = (signs * effects).mean(axis=1)
    return float(np.mean(means >= effects.mean() - 1e-12 * np.abs(effects).max(initial=0)))


def replicate_p(effects: np.ndarray) -> tuple[float, str]:
    """One-sided p that the mean effect exceeds 0, and how it was obtained: the t-test
    (normal model), or the exact sign-flip test where the effects do not vary (NaN below
    two replicates). Never 0."""
    effects = np.asarray(effects, dtype=np.float64)
    if effects.size < 2:
        return np.nan, ""
    if np.ptp(effects) == 0:
        return sign_flip_p(effects), SIGN_FLIP
    return float(stats.ttest_1samp(effects, 0.0, alternative="greater").pvalue), T_TEST


def two_level_bootstrap(a: np.ndarray, a_replicates: np.ndarray, b: np.ndarray,
                        b_replicates: np.ndarray, direction: str, resamples: int = 2000,
                        seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean Cliff's δ_r: each resample draws K replicates with
    replacement, then within each the seeds of a and of b with replacement."""
    shared, groups = _by_replicate(a, a_replicates, b, b_replicates)
    if shared.size == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
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
