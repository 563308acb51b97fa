"""Frozen-activation training of many seeds: vectorised vs looped, independence, divergence."""
from __future__ import annotations

import pytest
import torch

from ldnn import seeding
from ldnn.activations import arm_activation, init_subnetworks, learned, standard
from ldnn.networks import forward, init_mlp
from conftest import BASE_TRAIN
from ldnn.tasks import TaskData
from ldnn.training import evaluate, train_seed, train_seeds

# Stacked (batched matmul) and single-seed runs differ only by float64 round-off,
# amplified over a few dozen SGD steps.
RTOL_VEC, ATOL_VEC = 1e-10, 1e-12
RTOL_MANUAL = 1e-12        # hand-written SGD steps, the same float64 operations

SIZES = (40, 6, 10)
KEYS = {"test_loss", "test_accuracy", "train_loss", "diverged", "participation",
        "validation_loss", "train_change", "epochs_run", "best_epoch", "unconverged"}


@pytest.fixture
def mixed_table():
    """Two learned types (sin base) tabulated on a grid, as the workflow freezes them."""
    phi = init_subnetworks(2, 3, torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = torch.linspace(-3, 3, 25, dtype=torch.float64)
    return grid, learned(phi, grid.expand(2, -1), "sin", 0.2)


def assert_same(a: dict, b: dict, index=None):
    for key in KEYS:
        x = a[key] if index is None else a[key][index]
        if key in ("diverged", "unconverged", "epochs_run", "best_epoch"):
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


def test_huge_learning_rate_with_frozen_learned_tables_diverges_without_crashing(
        task, tiny_data, train_cfg, mixed_table):
    """The workflow's activations are spline tables: NaN inputs must flag, not crash."""
    activation, n_types = arm_activation("mixed", *mixed_table)
    result = train_seeds(task, tiny_data, SIZES, activation, n_types,
                         train_cfg(lr=1e6, epochs=10), [0, 1])
    assert result["diverged"].all() and torch.isnan(result["test_loss"]).all()


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
    fit = fit_seeds(task, tiny_data, SIZES, torch.tanh, 1, cfg, [0, 1])
    result = evaluate(task, tiny_data, fit, torch.tanh, 1, cfg)
    hidden = layers(fit.params, tiny_data.x_test, torch.tanh, 1)[0]
    torch.testing.assert_close(result["participation"], relative_participation(hidden))
    assert ((result["participation"] > 0) & (result["participation"] <= 1)).all()
    torch.testing.assert_close(result["train_loss"],
                               train_seeds(task, tiny_data, SIZES, torch.tanh, 1, cfg,
                                           [0, 1])["train_loss"], rtol=0, atol=0)


# Early stopping on a problem whose optimum is known: a network with the identity
# activation is affine, so its best training loss is the affine least-squares fit's.
# The parameters kept are the best on validation, not on training: within 1 % of the
# least-squares training loss (measured 0.3-0.4 %).
RTOL_OPTIMUM = 1e-2


def test_converged_protocol_reaches_the_known_optimum_and_stops_on_its_own():
    import dataclasses

    from ldnn.tasks import get
    from ldnn.training import fit_seeds, split_validation

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=generator, dtype=torch.float64)
    y = x @ torch.randn(3, 2, generator=generator, dtype=torch.float64) + 0.3 * torch.randn(
        400, 2, generator=generator, dtype=torch.float64)
    data = TaskData(x[:300], y[:300], x[300:], y[300:])
    task = dataclasses.replace(get("van_der_pol"), n_in=3)
    cfg = dataclasses.replace(BASE_TRAIN, protocol="converged", optimizer="adam", lr=0.02,
                              schedule="cosine", epochs=400, validation=0.2, patience=20,
                              min_improvement=1e-4, batch_size=40)
    fit = fit_seeds(task, data, (3, 4, 2), lambda z: z, 1, cfg, [0, 1])
    rows, x_val, y_val = split_validation(data, cfg.validation)
    assert x_val.shape[0] == 60 and torch.equal(x_val, data.x_train[240:])

    design = torch.cat([rows.x_train, torch.ones(240, 1, dtype=torch.float64)], 1)
    optimum = ((design @ torch.linalg.lstsq(design, rows.y_train).solution - rows.y_train) ** 2
               ).mean()
    result = evaluate(task, data, fit, lambda z: z, 1, cfg)
    assert (result["train_loss"] <= optimum * (1 + RTOL_OPTIMUM)).all()
    # Stopped before the cap, patience epochs after the parameters it kept, which are
    # the ones whose validation loss it reports.
    assert (fit.epochs_run < cfg.epochs).all()
    assert torch.equal(fit.epochs_run - fit.best_epoch, torch.full((2,), cfg.patience))
    predictions = forward(fit.params, x_val.expand(2, -1, -1), lambda z: z, 1)
    torch.testing.assert_close(((predictions - y_val) ** 2).mean((-2, -1)), fit.validation_loss,
                               rtol=1e-12, atol=0)
    assert not result["unconverged"].any()
    # The epoch losses end at the stop; over the last 20 % of them they no longer fell.
    assert torch.isnan(fit.epoch_losses[0, int(fit.epochs_run[0]):]).all()
    assert (result["train_change"] < cfg.unconverged_change).all()


def test_paper_protocol_after_few_epochs_counts_as_unconverged(task, tiny_data, train_cfg):
    result = train_seeds(task, tiny_data, SIZES, torch.tanh, 1, train_cfg(epochs=5), [0, 1])
    assert (result["epochs_run"] == 5).all() and (result["best_epoch"] == 5).all()
    assert torch.isnan(result["validation_loss"]).all()
    assert (result["train_change"] > 0.01).all() and result["unconverged"].all()


def test_loss_change_is_over_the_last_fifth_of_each_run():
    from ldnn.training import loss_change

    losses = torch.tensor([[10.0, 8, 6, 5, 4, 3, 2, 1.5, 1.2, 1.0],
                           [10.0, 9, 8, 7, 6, torch.nan, torch.nan, torch.nan, torch.nan,
                            torch.nan]])
    change = loss_change(losses, torch.tensor([10, 5]))
    torch.testing.assert_close(change, torch.tensor([(1.5 - 1.0) / 1.5, (7 - 6) / 7.0]))


def _rows(x: torch.Tensor) -> set[tuple]:
    return {tuple(r) for r in x.tolist()}


def test_validation_rows_are_training_rows_never_test_rows():
    import numpy as np

    from ldnn.tasks import henon_heiles, van_der_pol
    from ldnn.training import split_validation

    generated = {
        "van_der_pol": van_der_pol.generate(2.7, 10, 3, 5.0, 40, 3.0, 3.0, 0),
        "henon_heiles": henon_heiles.generate([0.1, 0.15], 5, 1, 5.0, 40, 0),
    }
    for name, arrays in generated.items():
        data = TaskData(*(torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_test",
                                                              "y_test")))
        rows, x_val, _ = split_validation(data, 0.2)
        assert x_val.shape[0] == np.ceil(0.2 * data.x_train.shape[0]), name
        assert torch.equal(torch.cat([rows.x_train, x_val]), data.x_train), name
        assert not _rows(x_val) & _rows(data.x_test), name
        assert torch.equal(rows.x_test, data.x_test), name
    # Hénon–Heiles: the last 20 % of 10 orbits are two whole orbits, one of each energy.
    energies = henon_heiles.henon_heiles.energy(x_val.double())
    assert torch.allclose(energies[:40], torch.tensor(0.1, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(energies[40:], torch.tensor(0.15, dtype=torch.float64), atol=1e-6)


def test_pendulum_validation_is_the_stretch_just_before_the_test_segment():
    import numpy as np
    import pandas as pd

    from ldnn.tasks import pendulum
    from ldnn.training import split_validation

    time = np.arange(500) * 0.0335
    frame = pd.DataFrame({"time": time, "theta": np.sin(time), "theta_dot": np.cos(time),
                          "theta_ddot": -np.sin(time)})
    arrays = pendulum.split(frame, 0.8)
    data = TaskData(*(torch.from_numpy(arrays[k]).double() for k in ("x_train", "y_train",
                                                                      "x_test", "y_test")))
    _, x_val, _ = split_validation(data, 0.1)
    states = torch.from_numpy(np.stack([np.sin(time), np.cos(time)], 1)).float().double()
    assert torch.equal(x_val, states[360:400])   # frames 360–399; the test set starts at 400
    assert torch.equal(data.x_test[0], states[400])


def test_unconverged_means_out_of_epochs_with_the_loss_still_falling(task, tiny_data, train_cfg):
    """Two seeds whose training losses both fall steeply: the one stopped early (epoch 5 of
    10) reached its validation plateau; the one that used all 10 epochs is unconverged."""
    from ldnn.training import Fit, fit_seeds

    cfg = train_cfg(epochs=10)
    fit = fit_seeds(task, tiny_data, SIZES, torch.tanh, 1, cfg, [0, 1])
    falling = torch.tensor([[2.0 ** -k for k in range(10)]] * 2, dtype=torch.float64)
    falling[0, 5:] = torch.nan
    fit = Fit(fit.params, fit.diverged, torch.tensor([5, 10]), torch.tensor([5, 10]),
              fit.validation_loss, falling)
    result = evaluate(task, tiny_data, fit, torch.tanh, 1, cfg)
    assert (result["train_change"] >= 0.5).all()
    assert result["unconverged"].tolist() == [False, True]
