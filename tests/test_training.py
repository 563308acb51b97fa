"""Frozen-activation training of many seeds: vectorised vs looped, independence, divergence."""
from __future__ import annotations

import pytest
import torch

from ldnn import seeding
from ldnn.activations import arm_activation, init_subnetworks, learned, standard
from ldnn.networks import forward, init_mlp
from ldnn.training import train_seed, train_seeds

# Stacked (batched matmul) and single-seed runs differ only by float64 round-off,
# amplified over a few dozen SGD steps.
RTOL_VEC, ATOL_VEC = 1e-10, 1e-12
RTOL_MANUAL = 1e-12        # hand-written SGD steps, the same float64 operations

SIZES = (40, 6, 10)
KEYS = {"test_loss", "test_accuracy", "train_loss", "diverged", "participation"}


@pytest.fixture
def mixed_table():
    """Two learned types (sin base) tabulated on a grid, as the workflow freezes them."""
    phi = init_subnetworks(2, 3, torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = torch.linspace(-3, 3, 25, dtype=torch.float64)
    return grid, learned(phi, grid.expand(2, -1), "sin", 0.2)


def assert_same(a: dict, b: dict, index=None):
    for key in KEYS:
        x = a[key] if index is None else a[key][index]
        if key == "diverged":
            assert torch.equal(x, b[key])
        else:
            torch.testing.assert_close(x, b[key], rtol=RTOL_VEC, atol=ATOL_VEC, equal_nan=True)


@pytest.mark.parametrize("arm", ["relu", "tanh", "type2", "mixed"])
def test_train_seeds_equals_loop_over_train_seed(arm, task, tiny_data, train_cfg, mixed_table):
    activation, n_types = arm_activation(arm, *mixed_table)
    cfg = train_cfg()
    seeds = [0, 1, 2]
    together = train_seeds(task, tiny_data, SIZES, activation, n_types, cfg, seeds)
    assert set(together) == KEYS
    assert all(v.shape == (len(seeds),) for v in together.values())
    assert together["test_loss"].dtype == torch.float64
    assert not together["diverged"].any()
    for i, seed in enumerate(seeds):
        alone = train_seed(task, tiny_data, SIZES, activation, n_types, cfg, seed)
        assert all(v.shape == () for v in alone.values())
        assert_same(together, alone, i)
    # The seeds really are different networks.
    assert len(set(together["train_loss"].tolist())) == len(seeds)


def test_seed_result_does_not_depend_on_its_companions(task, tiny_data, train_cfg, mixed_table):
    activation, n_types = arm_activation("mixed", *mixed_table)
    cfg = train_cfg()
    alone = train_seeds(task, tiny_data, SIZES, activation, n_types, cfg, [3])
    among = train_seeds(task, tiny_data, SIZES, activation, n_types, cfg, [1, 2, 3])
    reordered = train_seeds(task, tiny_data, SIZES, activation, n_types, cfg, [3, 1])
    assert_same(among, {k: v[0] for k, v in alone.items()}, 2)
    assert_same(reordered, {k: v[0] for k, v in alone.items()}, 0)


def test_config_seed_changes_every_seed(task, tiny_data, train_cfg):
    a = train_seeds(task, tiny_data, SIZES, torch.tanh, 1, train_cfg(seed=0), [0, 1])
    b = train_seeds(task, tiny_data, SIZES, torch.tanh, 1, train_cfg(seed=1), [0, 1])
    assert (a["train_loss"] != b["train_loss"]).all()


def test_full_batch_training_is_sgd_with_momentum(task, tiny_data, train_cfg):
    """Two full-batch epochs by hand: v1 = g0, θ1 = θ0 − lr·v1; v2 = m·v1 + g1, θ2 = θ1 − lr·v2."""
    cfg = train_cfg(batch_size=tiny_data.x_train.shape[0], epochs=2, lr=0.1, momentum=0.7)
    seed = 4
    result = train_seed(task, tiny_data, SIZES, torch.tanh, 1, cfg, seed)

    theta = init_mlp(SIZES, seeding.generator(cfg.seed, seed, seeding.INIT), torch.float64)
    velocity = [torch.zeros_like(p) for p in theta]
    for _ in range(2):
        leaves = [p.clone().requires_grad_() for p in theta]
        loss = task.loss(forward(leaves, tiny_data.x_train, torch.tanh, 1), tiny_data.y_train)
        grads = torch.autograd.grad(loss, leaves)
        velocity = [cfg.momentum * v + g for v, g in zip(velocity, grads)]
        theta = [p - cfg.lr * v for p, v in zip(theta, velocity)]
    with torch.no_grad():
        train_loss = task.loss(forward(theta, tiny_data.x_train, torch.tanh, 1),
                               tiny_data.y_train)
        out = forward(theta, tiny_data.x_test, torch.tanh, 1)
    accuracy = (out.argmax(-1) == tiny_data.y_test).double().mean()
    # Full batches are a permutation of the training set: only the summation order differs.
    torch.testing.assert_close(result["train_loss"], train_loss, rtol=RTOL_MANUAL, atol=0)
    torch.testing.assert_close(result["test_loss"], task.loss(out, tiny_data.y_test),
                               rtol=RTOL_MANUAL, atol=0)
    assert float(result["test_accuracy"]) == float(accuracy)


def test_training_reduces_loss(task, tiny_data, train_cfg):
    theta0 = init_mlp(SIZES, seeding.generator(0, 0, seeding.INIT), torch.float64)
    with torch.no_grad():
        initial = task.loss(forward(theta0, tiny_data.x_train, torch.relu, 1),
                            tiny_data.y_train)
    result = train_seed(task, tiny_data, SIZES, torch.relu, 1, train_cfg(epochs=10), 0)
    assert float(result["train_loss"]) < 0.5 * float(initial)


def test_diverged_seed_is_flagged_and_others_unaffected(task, tiny_data, train_cfg):
    """With the exp activation and lr 0.1, seed 3 overflows to NaN while seed 0 stays finite."""
    cfg = train_cfg(lr=0.1)
    both = train_seeds(task, tiny_data, SIZES, torch.exp, 1, cfg, [0, 3])
    assert both["diverged"].tolist() == [False, True]
    assert torch.isfinite(both["train_loss"][0]) and not torch.isfinite(both["train_loss"][1])
    assert torch.isnan(both["test_accuracy"][1]) and torch.isfinite(both["test_accuracy"][0])
    good = train_seeds(task, tiny_data, SIZES, torch.exp, 1, cfg, [0])
    bad = train_seed(task, tiny_data, SIZES, torch.exp, 1, cfg, 3)
    assert_same(both, {k: v[0] for k, v in good.items()}, 0)
    assert_same(both, bad, 1)


def test_huge_learning_rate_diverges_every_seed_without_crashing(task, tiny_data, train_cfg):
    cfg = train_cfg(lr=1e6, epochs=10)
    result = train_seeds(task, tiny_data, SIZES, standard("relu"), 1, cfg, [0, 1, 2])
    assert result["diverged"].all()
    assert set(result) == KEYS and all(v.shape == (3,) for v in result.values())
    sane = train_seeds(task, tiny_data, SIZES, standard("relu"), 1, train_cfg(), [0, 1, 2])
    assert not sane["diverged"].any() and torch.isfinite(sane["train_loss"]).all()


def test_participation_is_that_of_the_trained_first_hidden_layer(task, tiny_data, train_cfg):
    from ldnn.analysis.participation import relative_participation
    from ldnn.networks import layers
    from ldnn.training import evaluate, fit_seeds

    cfg = train_cfg()
    params, diverged = fit_seeds(task, tiny_data, SIZES, torch.tanh, 1, cfg, [0, 1])
    result = evaluate(task, tiny_data, params, torch.tanh, 1, cfg, diverged)
    hidden = layers(params, tiny_data.x_test, torch.tanh, 1)[0]
    torch.testing.assert_close(result["participation"], relative_participation(hidden))
    assert ((result["participation"] > 0) & (result["participation"] <= 1)).all()
    torch.testing.assert_close(result["train_loss"],
                               train_seeds(task, tiny_data, SIZES, torch.tanh, 1, cfg,
                                           [0, 1])["train_loss"], rtol=0, atol=0)
