"""Claim statistics against known answers: hand-worked Holm, Cliff's delta and exact
Mann–Whitney cases, bootstrap intervals against the asymptotic standard errors, a known
shift detected and equal groups not, at the nominal false-positive rate."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ldnn.analysis.statistics import (INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, bootstrap_ci,
                                      cliffs_delta, holm, mann_whitney_p, superiority, verdict)

ATOL = 1e-12               # exact arithmetic on small hand-worked cases, float64
ALPHA = 0.05
CI_RTOL = 0.25             # bootstrap 95 % interval half-widths vs 1.96·(asymptotic standard error)
COVERAGE_RANGE = (0.90, 0.99)   # of the true median by 200 intervals (nominal 0.95, sd 0.015)
FALSE_POSITIVE_RANGE = (0.02, 0.09)   # observed rate over 400 null draws at alpha 0.05 (±3 sd)


def test_holm_on_a_hand_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], atol=ATOL)


def test_holm_caps_at_one_keeps_nan_out_of_the_family_and_is_monotone():
    adjusted = holm(np.array([0.5, np.nan, 0.2, 0.9]))
    # m = 3 tested: 0.2·3 = 0.6, 0.5·2 = 1.0, 0.9·1 → max(1.0, 0.9) = 1.0
    np.testing.assert_allclose(adjusted, [1.0, np.nan, 0.6, 1.0], atol=ATOL)
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, 50)
    adjusted = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1)


@pytest.mark.parametrize("a, b, delta", [
    ([3, 4, 5], [1, 2], 1.0),                 # every pair a > b
    ([1, 2], [3, 4, 5], -1.0),
    ([1, 2, 3], [2, 2, 4], -1 / 3),           # 2 greater, 5 less, 2 ties of 9 pairs
    ([1, 1], [1, 1, 1], 0.0),                 # all ties
    ([0, 2], [1], 0.0),
])
def test_cliffs_delta_and_superiority_on_small_groups_with_ties(a, b, delta):
    assert cliffs_delta(np.array(a), np.array(b)) == pytest.approx(delta, abs=ATOL)
    assert superiority(np.array(a), np.array(b)) == pytest.approx((1 + delta) / 2, abs=ATOL)
    u = stats.mannwhitneyu(a, b).statistic     # U of a: pairs a > b plus half the ties
    assert superiority(np.array(a), np.array(b)) == pytest.approx(u / (len(a) * len(b)),
                                                                  abs=ATOL)


def test_mann_whitney_p_against_the_exact_small_case():
    # a = {3, 4, 5}, b = {1, 2}: U = 6 is the largest of C(5, 2) = 10 equally likely rank splits
    a, b = np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0])
    assert mann_whitney_p(a, b, "greater") == pytest.approx(1 / 10, abs=ATOL)
    assert mann_whitney_p(a, b, "less") == pytest.approx(1.0, abs=ATOL)
    assert mann_whitney_p(b, a, "less") == pytest.approx(1 / 10, abs=ATOL)
    # a = {2, 4}, b = {1, 3}: U = 3; U ≥ 3 for splits {3,4}, {2,4} of C(4, 2) = 6 → 2/6
    assert mann_whitney_p(np.array([2.0, 4.0]), np.array([1.0, 3.0]), "greater") == \
        pytest.approx(2 / 6, abs=ATOL)


def test_unknown_direction_is_an_error():
    with pytest.raises(ValueError, match="direction 'higher'"):
        mann_whitney_p(np.ones(3), np.zeros(3), "higher")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_intervals_match_the_asymptotic_normal_intervals(seed):
    n = 2000
    values = np.random.default_rng(seed).standard_normal(n)
    for statistic, standard_error in ((np.median, np.sqrt(np.pi / 2 / n)),   # normal median
                                      (np.mean, 1 / np.sqrt(n))):
        low, high = bootstrap_ci(values, statistic, resamples=4000, seed=seed)
        centre = statistic(values)
        assert centre - low == pytest.approx(1.96 * standard_error, rel=CI_RTOL)
        assert high - centre == pytest.approx(1.96 * standard_error, rel=CI_RTOL)


def test_bootstrap_intervals_of_the_median_cover_the_true_median():
    rng = np.random.default_rng(0)
    covered = [low < 1.0 < high for low, high in
               (bootstrap_ci(rng.exponential(1 / np.log(2), 200), np.median, resamples=1000,
                             seed=k) for k in range(200))]     # exponential with median 1
    assert COVERAGE_RANGE[0] < np.mean(covered) < COVERAGE_RANGE[1]


def test_bootstrap_is_deterministic_for_a_seed_and_varies_with_it():
    values = np.random.default_rng(5).exponential(size=40)
    first = bootstrap_ci(values, np.mean, resamples=1000, seed=3)
    assert bootstrap_ci(values, np.mean, resamples=1000, seed=3) == first
    assert bootstrap_ci(values, np.mean, resamples=1000, seed=4) != first
    assert np.isnan(bootstrap_ci(np.array([]), np.median)).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_known_shift_is_reproduced_and_its_reverse_is_not(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(1.0, 1.0, 50), rng.normal(0.0, 1.0, 50)
    p = mann_whitney_p(a, b, "greater")
    assert p < 1e-3
    assert verdict(p, cliffs_delta(a, b), "greater", ALPHA) == REPRODUCED
    p_reverse = mann_whitney_p(a, b, "less")
    assert p_reverse > 0.99
    assert verdict(p_reverse, cliffs_delta(a, b), "less", ALPHA) == NOT_REPRODUCED


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_groups_are_not_reproduced(seed):
    a = np.random.default_rng(seed).normal(size=50)
    b = np.random.default_rng(seed).permutation(a)
    p = mann_whitney_p(a, b, "greater")
    assert cliffs_delta(a, b) == 0.0 and p > 0.4
    assert verdict(p, 0.0, "greater", ALPHA) == NOT_REPRODUCED


def test_equal_distributions_are_detected_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    p = np.array([mann_whitney_p(rng.normal(size=30), rng.normal(size=30), "greater")
                  for _ in range(400)])
    assert FALSE_POSITIVE_RANGE[0] < np.mean(p < ALPHA) < FALSE_POSITIVE_RANGE[1]


@pytest.mark.parametrize("p_adjusted, delta, direction, expected", [
    (0.01, 0.8, "greater", REPRODUCED),
    (0.01, -0.8, "less", REPRODUCED),
    (0.30, 0.10, "greater", NOT_REPRODUCED),       # negligible effect
    (0.30, -0.10, "less", NOT_REPRODUCED),
    (0.90, -0.50, "greater", NOT_REPRODUCED),      # the other way
    (0.90, 0.50, "less", NOT_REPRODUCED),
    (0.08, 0.30, "greater", INCONCLUSIVE),         # claimed way, not significant
    (0.08, -0.30, "less", INCONCLUSIVE),
    (np.nan, np.nan, "greater", INCONCLUSIVE),     # a group without values
])
def test_verdict_rule(p_adjusted, delta, direction, expected):
    assert verdict(p_adjusted, delta, direction, ALPHA) == expected
