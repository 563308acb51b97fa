"""Statistics of a claim that one group of seeds beats another.

A claim compares the values a (n_a,) of one group with b (n_b,) of another in a stated
direction: "greater" (a's values tend to exceed b's) or "less". The evidence is the
one-sided Mann–Whitney U test in that direction; the effect size is Cliff's delta
δ = P(a > b) − P(a < b) and the probability of superiority P(a > b) + ½P(a = b) = (1 + δ)/2.
Over a family of claims the p-values are Holm–Bonferroni adjusted, and each claim gets a
verdict:

- "reproduced": the Holm-adjusted p is below alpha (the test is one-sided, so the effect
  points the claimed way);
- "not reproduced": not significant, and the effect is negligible (|δ| < 0.147, Romano et
  al. 2006) or points the other way;
- "inconclusive": not significant, but a non-negligible effect in the claimed direction
  (more seeds might settle it), or a group has no values.

Medians and means come with percentile-bootstrap 95 % confidence intervals from a fixed
seed, so the same values give the same intervals.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats

NEGLIGIBLE_DELTA = 0.147      # |Cliff's delta| below this is negligible (Romano et al. 2006)
DIRECTIONS = ("greater", "less")
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
MW_EXACT, MW_NORMAL = "Mann–Whitney, exact", "Mann–Whitney, normal approximation"


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {DIRECTIONS}")


def bootstrap_ci(values: np.ndarray, statistic: Callable = np.median, resamples: int = 10000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of `statistic` (called with axis=1) of values (n,):
    `resamples` resamples of n with replacement drawn from seed `seed`."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.nan, np.nan
    index = np.random.default_rng(seed).integers(0, values.size, (resamples, values.size))
    replicates = statistic(values[index], axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def mann_whitney_method(a: np.ndarray, b: np.ndarray) -> str:
    """How mann_whitney_p computes its p: exactly when a group has fewer than 8 values and no
    value repeats, else by the normal approximation."""
    values = np.concatenate([a, b])
    if min(len(a), len(b)) < 8 and np.unique(values).size == values.size:
        return MW_EXACT
    return MW_NORMAL


def mann_whitney_p(a: np.ndarray, b: np.ndarray, direction: str) -> float:
    """One-sided Mann–Whitney U p-value for a (n_a,) exceeding ("greater") or falling below
    ("less") b (n_b,), by mann_whitney_method."""
    _check_direction(direction)
    method = "exact" if mann_whitney_method(a, b) == MW_EXACT else "asymptotic"
    return float(stats.mannwhitneyu(a, b, alternative=direction, method=method).pvalue)


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) − P(a < b) over all n_a·n_b pairs, in [−1, 1]; ties count for neither."""
    difference = np.subtract.outer(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return float(np.mean(np.sign(difference)))


def superiority(a: np.ndarray, b: np.ndarray) -> float:
    """Probability of superiority P(a > b) + ½P(a = b) = U_a / (n_a n_b) = (1 + δ) / 2."""
    return (1 + cliffs_delta(a, b)) / 2


def holm(p: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values (m,): the k-th smallest p times (m − k + 1),
    made non-decreasing in that order and capped at 1; NaN entries stay NaN and do not count."""
    p = np.asarray(p, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def verdict(p_adjusted: float, delta: float, direction: str, alpha: float) -> str:
    """The verdict of one claim (module docstring) from its adjusted one-sided p and δ(a, b)."""
    _check_direction(direction)
    if np.isnan(p_adjusted) or np.isnan(delta):
        return INCONCLUSIVE
    if p_adjusted < alpha:
        return REPRODUCED
    claimed = delta if direction == "greater" else -delta
    if claimed < NEGLIGIBLE_DELTA:
        return NOT_REPRODUCED
    return INCONCLUSIVE
