"""Frozen training in the compiled kernel (ldnn.compiled_training) against the autograd path:
same draws in float64, every task's loss, standard and tabulated activations, both
optimizers and schedules, early stopping; float32 against float64; which problems it takes."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import BASE_TRAIN, make_data
from ldnn import compiled_training, training
from ldnn.activations import arm_activation, init_subnetworks, learned, learned_slopes
from ldnn.tasks import TaskData, get
from ldnn.training import fit_seeds

RTOL_SAME_ARITHMETIC = 1e-10  # kernel vs autograd in float64: the same steps, reordered sums
RTOL_FLOAT32 = 1e-5           # float32 vs float64 parameters after 4 epochs, max-entry relative (measured 5e-7)
SEEDS = [0, 1, 2]
ADAM_COSINE = dict(optimizer="adam", lr=0.01, schedule="cosine")


def table(slopes: bool, dtype=torch.float64):
    """Two learned types (sin base) on a grid covering the pre-activations partly, so that
    some fall outside and are extrapolated: grid (P,), values (T, P)[, slopes (T, P)]."""
    phi = init_subnetworks(2, 3, torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64)
    values = learned(phi, grid.expand(2, -1), "sin", 0.2)
    arrays = (grid, values) + ((learned_slopes(phi, "sin", 0.2, grid),) if slopes else ())
    return tuple(a.to(dtype) for a in arrays)


def problem(task_name: str, dtype=torch.float64) -> tuple:
    """A task with 6 inputs (40 for MNIST-1D) on small synthetic data, and its layer sizes."""
    task = get(task_name)
    if task.loss_kind == "cross_entropy":
        data = make_data(dtype=dtype)
        return task, dataclasses.replace(data, x_train=data.x_train[:120],
                                         y_train=data.y_train[:120]), (40, 6, task.n_out)
    n_in = 4 if task.hamiltonian else 3
    generator = torch.Generator().manual_seed(5)
    x = torch.randn((150, n_in), generator=generator, dtype=dtype)
    y = torch.sin(x) if task.hamiltonian else torch.tanh(x @ torch.randn(
        (n_in, task.n_out), generator=generator, dtype=dtype))
    task = dataclasses.replace(task, n_in=n_in, n_out=1 if task.hamiltonian else task.n_out)
    return task, TaskData(x[:120], y[:120], x[120:], y[120:]), (n_in, 6, task.n_out)


def fit_both(task, data, sizes, arm, cfg):
    """The kernel's and autograd's fits of the same seeds and draws."""
    hermite = task.hamiltonian and arm in ("type2", "mixed")   # "linear": a linear table
    activation, n_types = arm_activation(arm.replace("linear", "mixed"),
                                         *table(hermite, data.x_train.dtype))
    assert compiled_training.supported(task, len(sizes) - 1, activation)
    kernel = fit_seeds(task, data, sizes, activation, n_types, cfg, SEEDS)
    reference = fit_seeds(task, data, sizes, activation, n_types,
                          dataclasses.replace(cfg, compiled=False), SEEDS)
    return kernel, reference


def max_relative(a, b) -> float:
    a, b = (torch.cat([p.reshape(-1).double() for p in x]) for x in (a, b))
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("task_name", ["mnist1d", "van_der_pol", "henon_heiles_hnn"])
@pytest.mark.parametrize("arm", ["relu", "tanh", "sin", "type2", "mixed", "linear"])
@pytest.mark.parametrize("schedule", [{}, ADAM_COSINE], ids=["sgd-constant", "adam-cosine"])
def test_kernel_equals_autograd_in_float64(task_name, arm, schedule):
    task, data, sizes = problem(task_name)
    cfg = dataclasses.replace(BASE_TRAIN, epochs=4, batch_size=30, **schedule)
    kernel, reference = fit_both(task, data, sizes, arm, cfg)
    assert max_relative(kernel.params, reference.params) <= RTOL_SAME_ARITHMETIC
    torch.testing.assert_close(kernel.epoch_losses, reference.epoch_losses,
                               rtol=RTOL_SAME_ARITHMETIC, atol=0)
    assert not torch.equal(kernel.params[0][0], kernel.params[0][1])  # seeds differ


@pytest.mark.parametrize("task_name", ["mnist1d", "henon_heiles_hnn"])
def test_early_stopping_decisions_are_the_autograd_ones(task_name):
    """Seeds stop at different epochs; a stopped seed is no longer trained (its kept
    parameters are those of its best epoch)."""
    task, data, sizes = problem(task_name)
    cfg = dataclasses.replace(BASE_TRAIN, epochs=60, batch_size=30, validation=0.25,
                              patience=3, min_improvement=0.01, **ADAM_COSINE)
    kernel, reference = fit_both(task, data, sizes, "mixed", cfg)
    assert torch.equal(kernel.epochs_run, reference.epochs_run)
    assert torch.equal(kernel.best_epoch, reference.best_epoch)
    assert len(set(kernel.epochs_run.tolist())) > 1 and (kernel.epochs_run < cfg.epochs).all()
    assert max_relative(kernel.params, reference.params) <= RTOL_SAME_ARITHMETIC
    torch.testing.assert_close(kernel.validation_loss, reference.validation_loss,
                               rtol=RTOL_SAME_ARITHMETIC, atol=0)


@pytest.mark.parametrize("task_name", ["mnist1d", "henon_heiles_hnn"])
def test_float32_kernel_is_close_to_float64(task_name, monkeypatch):
    """The same data and initial parameters (drawn in float64), trained in each dtype."""
    draw = training._init
    monkeypatch.setattr(training, "_init", lambda seed, cfg, sizes, dtype: tuple(
        p.to(dtype) for p in draw(seed, cfg, sizes, torch.float64)))
    task, data, sizes = problem(task_name)
    single = TaskData(*(a.float() if a.is_floating_point() else a for a in (
        data.x_train, data.y_train, data.x_test, data.y_test)))
    cfg = dataclasses.replace(BASE_TRAIN, epochs=4, batch_size=30, **ADAM_COSINE)
    fits = [fit_both(task, d, sizes, "mixed", cfg)[0] for d in (single, data)]
    assert fits[0].params[0].dtype == torch.float32
    assert max_relative(fits[0].params, fits[1].params) <= RTOL_FLOAT32


def test_a_diverging_seed_is_flagged_in_the_kernel_as_by_autograd():
    task, data, sizes = problem("van_der_pol")
    cfg = dataclasses.replace(BASE_TRAIN, epochs=3, batch_size=30, lr=50.0)
    kernel, reference = fit_both(task, data, sizes, "mixed", cfg)
    assert kernel.diverged.all() and torch.equal(kernel.diverged, reference.diverged)


def test_supported_says_which_networks_the_kernel_trains():
    task = get("mnist1d")
    mixed, _ = arm_activation("mixed", *table(False))
    assert compiled_training.supported(task, 2, mixed)
    assert compiled_training.supported(get("pendulum"), 2, mixed)
    assert not compiled_training.supported(task, 3, mixed)          # two hidden layers
    assert not compiled_training.supported(task, 2, torch.tanh)     # not a frozen activation
    wide = dataclasses.replace(get("pendulum"), n_out=2)
    assert not compiled_training.supported(wide, 2, mixed)          # a Hamiltonian has one output
