"""Claims across meta-learning replicates: known answers of the pieces, and the test's
false-positive rate and power by simulation of nested data (replicates, then seeds)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ldnn.analysis.replicates import (SIGN_FLIP, T_TEST, icc, replicate_deltas,
                                      replicate_effects, replicate_p, sign_flip_p,
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
           seed: int, within: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """a, b (simulations, replicates, seeds): b ~ N(0, within); a ~ N(u_r, within) with the
    replicate's own effect u_r ~ N(shift, between)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(shift, between, (simulations, replicates, 1))
    return (u + rng.normal(0, within, (simulations, replicates, seeds)),
            rng.normal(0, within, (simulations, replicates, seeds)))


def replicate_ps(a: np.ndarray, b: np.ndarray, log: bool = False) -> np.ndarray:
    """replicate_p of every simulation, vectorised (the same effects and t-test)."""
    f = np.log if log else np.asarray
    effects = f(a).mean(-1) - f(b).mean(-1)
    return stats.ttest_1samp(effects, 0.0, axis=1, alternative="greater").pvalue


def test_vectorised_simulation_matches_the_library():
    a, b = nested(0.3, BETWEEN_SD, REPLICATES, SEEDS, 5, seed=1)
    labels = np.repeat(np.arange(REPLICATES), SEEDS)
    for log, (x, y) in ((False, (a, b)), (True, (np.exp(a), np.exp(b)))):
        for i in range(5):
            _, effects = replicate_effects(x[i].ravel(), labels, y[i].ravel(), labels,
                                           "greater", log=log)
            p, method = replicate_p(effects)
            assert method == T_TEST
            assert p == pytest.approx(replicate_ps(x, y, log)[i], rel=1e-12)


def false_positive_rate(a: np.ndarray, b: np.ndarray, log: bool = False) -> float:
    return float(np.mean(replicate_ps(a, b, log) < NOMINAL))


def test_replicate_test_keeps_its_false_positive_rate_where_pooling_fails():
    a, b = nested(0.0, BETWEEN_SD, REPLICATES, SEEDS, SIMULATIONS, seed=2)
    assert abs(false_positive_rate(a, b) - NOMINAL) <= FPR_MARGIN
    # The paper's design: one meta-learning run, 50 seeds, every seed tested as independent.
    a, b = nested(0.0, BETWEEN_SD, 1, 50, 1000, seed=3)
    pooled = np.mean([mann_whitney_p(x.ravel(), y.ravel(), "greater") < NOMINAL
                      for x, y in zip(a, b)])
    assert pooled > 4 * NOMINAL              # measured 27.5 %


SATURATING_WITHIN = 0.05   # seed SD against a between-replicate SD of 1: δ_r is ±1 mostly


def test_false_positive_rate_holds_where_rank_effects_saturate():
    a, b = nested(0.0, 1.0, REPLICATES, SEEDS, SIMULATIONS, seed=6, within=SATURATING_WITHIN)
    labels = np.repeat(np.arange(REPLICATES), SEEDS)
    deltas = [replicate_deltas(x.ravel(), labels, y.ravel(), labels, "greater")[1]
              for x, y in zip(a[:200], b[:200])]
    assert np.mean(np.abs(np.concatenate(deltas)) == 1) > 0.5    # the scenario saturates
    assert abs(false_positive_rate(a, b) - NOMINAL) <= FPR_MARGIN


def test_false_positive_rate_holds_for_heavy_tailed_positive_losses():
    """Log-normal MSE (seed SD of log 1, so single networks spread over decades)."""
    a, b = nested(0.0, BETWEEN_SD, REPLICATES, SEEDS, SIMULATIONS, seed=7)
    a, b = np.exp(a), np.exp(b)
    assert abs(false_positive_rate(a, b, log=True) - NOMINAL) <= FPR_MARGIN


def test_replicate_test_has_power_for_fig3s_effect_after_holm():
    a, b = nested(FIG3_EFFECT, BETWEEN_SD, REPLICATES, SEEDS, SIMULATIONS, seed=4)
    # Holm's first step over the family: the smallest p must beat alpha / m.
    assert np.mean(replicate_ps(a, b) < NOMINAL / FAMILY) >= POWER


def test_effects_are_signed_toward_the_claim_and_per_replicate():
    a = np.array([3.0, 4.0, 0.5, 1.0])
    b = np.array([1.0, 2.0, 2.0, 3.0])
    groups = np.array([0, 0, 1, 1])
    shared, deltas = replicate_deltas(a, groups, b, groups, "greater")
    assert shared.tolist() == [0, 1] and deltas.tolist() == [1.0, -1.0]
    _, deltas = replicate_deltas(a, groups, b, groups, "less")
    assert deltas.tolist() == [-1.0, 1.0]
    _, effects = replicate_effects(a, groups, b, groups, "greater")
    assert effects.tolist() == [2.0, -1.75]
    _, effects = replicate_effects(a, groups, b, groups, "less", log=True)
    assert effects == pytest.approx([-np.log(12 ** 0.5 / 2 ** 0.5), np.log(6 ** 0.5 / 0.5 ** 0.5)],
                                    rel=1e-12)
    with pytest.raises(ValueError, match="> 0"):
        replicate_effects(a - 1, groups, b, groups, "less", log=True)


def test_replicate_p_is_the_one_sided_t_test_and_never_zero():
    effects = np.array([0.2, 0.5, -0.1, 0.4])
    t = effects.mean() / (effects.std(ddof=1) / 2)
    assert replicate_p(effects) == (pytest.approx(stats.t.sf(t, 3), rel=1e-12), T_TEST)
    # Equal effects: the t-test is undefined; the exact sign-flip p is the design's floor.
    assert replicate_p(np.full(8, 1.0)) == (2.0 ** -8, SIGN_FLIP)
    assert replicate_p(np.array([-1.0, -1.0])) == (1.0, SIGN_FLIP)
    assert replicate_p(np.zeros(3)) == (1.0, SIGN_FLIP)
    assert np.isnan(replicate_p(np.array([0.5]))[0])


def test_sign_flip_p_counts_sign_patterns():
    # [3, 1, −1]: of the 8 patterns, means ≥ 1 are (3, 1, −1), (3, 1, 1), (3, −1, 1): 3/8.
    assert sign_flip_p(np.array([3.0, 1.0, -1.0])) == 3 / 8
    assert sign_flip_p(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == 1 / 32


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
    _, deltas = replicate_deltas(*args)
    assert 0 < low < deltas.mean() < high <= 1
    assert (low, high) == two_level_bootstrap(*args, resamples=500, seed=0)
