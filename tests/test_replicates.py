"""Claims across meta-learning replicates: known answers of the pieces, and the test's
false-positive rate and power by simulation of nested data (replicates, then seeds)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ldnn.analysis.replicates import (icc, replicate_effects, replicate_p,
                                      two_level_bootstrap)
from ldnn.analysis.statistics import mann_whitney_p

REPLICATES, SEEDS = 8, 6          # the shipped design: metalearn.replicates × seeds per replicate
BETWEEN_SD = 0.5                  # between-replicate SD of the effect, in seed SDs
SIMULATIONS = 4000                # standard error of a 5 % rate: 0.34 points
NOMINAL, FPR_MARGIN = 0.05, 0.02  # the false-positive rate must lie within ±2 points
# Fig. 3's smallest effect (mixed vs type 2, ldnn 0.1): medians 0.656 vs 0.635, seed SD
# ≈ IQR / 1.35 ≈ 0.011, so ≈ 1.8 seed SDs.
FIG3_EFFECT = 1.8
FAMILY = 100                      # claims × protocols per design in the shipped config, about
POWER = 0.8


def nested(shift: float, between: float, replicates: int, seeds: int, simulations: int,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """a, b (simulations, replicates, seeds): b ~ N(0, 1); a ~ N(u_r, 1) with the
    replicate's own effect u_r ~ N(shift, between)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(shift, between, (simulations, replicates, 1))
    return (u + rng.normal(0, 1, (simulations, replicates, seeds)),
            rng.normal(0, 1, (simulations, replicates, seeds)))


def replicate_ps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """replicate_p of every simulation, vectorised (the same Cliff's deltas and t-test)."""
    delta = np.sign(a[..., :, None] - b[..., None, :]).mean((-1, -2))
    return stats.ttest_1samp(delta, 0.0, axis=1, alternative="greater").pvalue


def test_vectorised_simulation_matches_the_library():
    a, b = nested(0.3, BETWEEN_SD, REPLICATES, SEEDS, 5, seed=1)
    labels = np.repeat(np.arange(REPLICATES), SEEDS)
    for i in range(5):
        _, effects = replicate_effects(a[i].ravel(), labels, b[i].ravel(), labels, "greater")
        assert replicate_p(effects) == pytest.approx(replicate_ps(a, b)[i], rel=1e-12)


def test_replicate_test_keeps_its_false_positive_rate_where_pooling_fails():
    a, b = nested(0.0, BETWEEN_SD, REPLICATES, SEEDS, SIMULATIONS, seed=2)
    rate = np.mean(replicate_ps(a, b) < NOMINAL)
    assert abs(rate - NOMINAL) <= FPR_MARGIN
    # The paper's design: one meta-learning run, 50 seeds, every seed tested as independent.
    a, b = nested(0.0, BETWEEN_SD, 1, 50, 1000, seed=3)
    pooled = np.mean([mann_whitney_p(x.ravel(), y.ravel(), "greater") < NOMINAL
                      for x, y in zip(a, b)])
    assert pooled > 4 * NOMINAL              # measured 27.5 %


def test_replicate_test_has_power_for_fig3s_effect_after_holm():
    a, b = nested(FIG3_EFFECT, BETWEEN_SD, REPLICATES, SEEDS, SIMULATIONS, seed=4)
    # Holm's first step over the family: the smallest p must beat alpha / m.
    assert np.mean(replicate_ps(a, b) < NOMINAL / FAMILY) >= POWER


def test_effects_are_signed_toward_the_claim_and_per_replicate():
    a = np.array([3.0, 4.0, 0.0, 1.0])
    b = np.array([1.0, 2.0, 2.0, 3.0])
    groups = np.array([0, 0, 1, 1])
    shared, effects = replicate_effects(a, groups, b, groups, "greater")
    assert shared.tolist() == [0, 1] and effects.tolist() == [1.0, -1.0]
    _, effects = replicate_effects(a, groups, b, groups, "less")
    assert effects.tolist() == [-1.0, 1.0]


def test_replicate_p_is_the_one_sided_t_test():
    effects = np.array([0.2, 0.5, -0.1, 0.4])
    t = effects.mean() / (effects.std(ddof=1) / 2)
    assert replicate_p(effects) == pytest.approx(stats.t.sf(t, 3), rel=1e-12)
    assert replicate_p(np.array([1.0, 1.0, 1.0])) == 0.0
    assert replicate_p(np.array([-1.0, -1.0])) == 1.0
    assert np.isnan(replicate_p(np.array([0.5])))


ICC_TOL = 1e-12


def test_icc_of_a_balanced_design_is_the_anova_estimate():
    # Two groups of three: group means 1 and 3, within deviations ±1, 0.
    values = np.array([0.0, 1.0, 2.0, 2.0, 3.0, 4.0])
    groups = np.array([0, 0, 0, 1, 1, 1])
    between, within = 3 * 2.0 / 1, 4.0 / 4          # MSB = Σ n (m − m̄)² / (k − 1), MSW
    assert icc(values, groups) == pytest.approx((between - within) / (between + 2 * within),
                                                abs=ICC_TOL)
    assert icc(np.array([1.0, 2.0, 1.0, 2.0]), np.array([0, 0, 1, 1])) == 0.0
    assert np.isnan(icc(values, np.zeros(6)))


def test_two_level_bootstrap_brackets_a_clear_effect_and_is_reproducible():
    a, b = nested(1.5, 0.2, REPLICATES, SEEDS, 1, seed=5)
    labels = np.repeat(np.arange(REPLICATES), SEEDS)
    args = (a[0].ravel(), labels, b[0].ravel(), labels, "greater")
    low, high = two_level_bootstrap(*args, resamples=500, seed=0)
    _, effects = replicate_effects(*args)
    assert 0 < low < effects.mean() < high <= 1
    assert (low, high) == two_level_bootstrap(*args, resamples=500, seed=0)
