"""Reference baselines: exact polynomial fits, least squares against NumPy, logistic
regression at its optimum, and result rows on real Hénon–Heiles orbits."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ldnn import baselines
from ldnn.forecast import METHODS, forecast_error
from ldnn.physics import henon_heiles as hh
from ldnn.tasks import TaskData, get, henon_heiles
from ldnn.tasks.mnist1d import TASK as MNIST1D

EXACT_MSE = 1e-10          # a polynomial fit of the true degree on float64 targets
NOT_EXACT_MSE = 1e-3       # an affine fit of a cubic / quadratic misses by far more
LSTSQ_ATOL = 1e-10         # our least squares against NumPy's
TRAIN_ACCURACY = 0.95      # well-separated 3-class clusters
OPTIMUM_GRAD = 10 * baselines.GRAD_TOL  # max |∂(penalised loss)| at the fitted logistic weights
# Hénon–Heiles rows (generator arrays are float32, so fits see targets rounded to ~1e-7):
HH_EXACT_LOSS = 1e-12      # poly2 test / train MSE; measured 5e-17
HH_RK4_FORECAST = 1e-5     # poly2 rk4 forecast RMS, dt = 0.1 over 5 time units; measured 1.1e-6
HH_SAME_FORECAST = 1e-7    # |poly2 − exact field forecast|, each method; measured ≤ 3e-9
HH_ENERGY_DRIFT = 1e-5     # poly2 rk4 relative energy drift at the horizon; measured 1.7e-6
HH_MEAN_LOSS_RATIO = 1.25  # mean predictor: var(y_test) ≤ test MSE ≤ this · var; measured 1.04
HORIZON = 5.0


def uniform(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    return 2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1


def random_polynomial(generator: torch.Generator, n_in: int, n_out: int, degree: int):
    """A random polynomial map of total degree `degree` (2 or 3): x (N, n_in) → (N, n_out)."""
    constant = uniform(generator, (n_out,))
    linear = uniform(generator, (n_in, n_out))
    quadratic = uniform(generator, (n_in, n_in, n_out))
    cubic = uniform(generator, (n_in, n_in, n_in, n_out)) if degree == 3 else None

    def poly(x: torch.Tensor) -> torch.Tensor:
        y = constant + x @ linear + torch.einsum("ni,nj,ijk->nk", x, x, quadratic)
        if cubic is not None:
            y = y + torch.einsum("ni,nj,nl,ijlk->nk", x, x, x, cubic)
        return y
    return poly


def polynomial_data(n_in: int, n_out: int, degree: int, seed: int = 0) -> TaskData:
    generator = torch.Generator().manual_seed(seed)
    poly = random_polynomial(generator, n_in, n_out, degree)
    x_train, x_test = 2 * uniform(generator, (200, n_in)), 2 * uniform(generator, (100, n_in))
    return TaskData(x_train, poly(x_train), x_test, poly(x_test))


def test_poly_fit_of_the_true_degree_is_exact_and_affine_is_not():
    for task, n_in, degree in ((get("van_der_pol"), 2, 3),
                               (dataclasses.replace(get("henon_heiles"), energy=None), 4, 2)):
        data = polynomial_data(n_in, n_in, degree)
        fits = baselines.predictors(task, data)
        assert set(fits) == {"mean", "affine", f"poly{degree}"}
        errors = {name: float(((fit(data.x_test) - data.y_test) ** 2).mean())
                  for name, fit in fits.items()}
        assert errors[f"poly{degree}"] < EXACT_MSE, (task.name, errors)
        assert errors["affine"] > NOT_EXACT_MSE, (task.name, errors)


def test_monomials_count_every_term_up_to_the_degree():
    x = torch.arange(1.0, 5.0, dtype=torch.float64)
    assert baselines.monomials(x, 2).shape == (15,)       # C(4 + 2, 2)
    assert baselines.monomials(x[:2], 3).shape == (10,)   # C(2 + 3, 3)
    assert torch.equal(baselines.monomials(x[:2], 2), torch.tensor([1.0, 1, 2, 1, 2, 4],
                                                                   dtype=torch.float64))


def test_affine_matches_numpy_least_squares_and_mean_is_the_training_mean():
    generator = torch.Generator().manual_seed(1)
    x_train, y_train = uniform(generator, (50, 3)), uniform(generator, (50, 2))
    x_test = uniform(generator, (7, 3))
    data = TaskData(x_train, y_train, x_test, uniform(generator, (7, 2)))
    fits = baselines.predictors(dataclasses.replace(get("van_der_pol"), exact_degree=0), data)
    assert set(fits) == {"mean", "affine"}

    design = np.hstack([x_train.numpy(), np.ones((50, 1))])
    weight = np.linalg.lstsq(design, y_train.numpy(), rcond=None)[0]
    reference = np.hstack([x_test.numpy(), np.ones((7, 1))]) @ weight
    affine = fits["affine"](x_test)
    assert affine.dtype == torch.float64 and affine.shape == (7, 2)
    np.testing.assert_allclose(affine.numpy(), reference, rtol=0, atol=LSTSQ_ATOL)

    mean = fits["mean"](x_test)
    assert mean.shape == (7, 2)
    assert torch.equal(mean, y_train.mean(0).expand(7, 2))


def test_hamiltonian_task_baselines_predict_the_vector_field():
    data = polynomial_data(4, 4, 2)
    fits = baselines.predictors(get("henon_heiles_hnn"), data)   # network n_out is 1
    assert all(fit(data.x_test).shape == data.y_test.shape for fit in fits.values())


def clusters(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian clusters in 5-d, nearly separable, offset and scaled unevenly."""
    generator = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn((3, 5), generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (150,), generator=generator)
    x = means[labels] + torch.randn((150, 5), generator=generator, dtype=torch.float64)
    return 10 + x * torch.tensor([1.0, 5.0, 0.2, 1.0, 2.0], dtype=torch.float64), labels


def test_logistic_regression_fits_clusters_at_a_stationary_point():
    x, labels = clusters()
    z = (x - x.mean(0)) / x.std(0)
    weight, bias = baselines.fit_logistic(z, labels, 3)
    weight.requires_grad_()
    bias.requires_grad_()
    gradients = torch.autograd.grad(baselines.logistic_loss(weight, bias, z, labels),
                                    (weight, bias))
    assert max(float(g.abs().max()) for g in gradients) < OPTIMUM_GRAD

    task = dataclasses.replace(MNIST1D, n_in=5, n_out=3)
    predict = baselines.predictors(task, TaskData(x, labels, x, labels))["logistic"]
    logits = predict(x)
    assert logits.dtype == torch.float64 and logits.shape == (150, 3)
    assert torch.allclose(logits, z @ weight.detach() + bias.detach())
    assert float((logits.argmax(-1) == labels).double().mean()) > TRAIN_ACCURACY


def test_rows_of_a_classification_task(tiny_data):
    [row] = baselines.rows(MNIST1D, tiny_data, HORIZON)
    assert set(row) == {"arm", "test_loss", "test_accuracy", "train_loss"}
    assert row["arm"] == "logistic" and all(isinstance(row[k], float) for k in row if k != "arm")
    assert 0 < row["train_loss"] < row["test_loss"]


def henon_heiles_data() -> TaskData:
    arrays = henon_heiles.generate(energies=[0.1, 0.15], train_orbits=2, test_orbits=1,
                                   duration=5.0, samples=51, seed=0)
    x_train, y_train, x_test, y_test = (torch.from_numpy(arrays[k]).double()
                                        for k in ("x_train", "y_train", "x_test", "y_test"))
    return TaskData(x_train, y_train, x_test, y_test,
                    torch.from_numpy(arrays["test_trajectories"]),
                    torch.from_numpy(arrays["times"]))


def test_rows_on_henon_heiles_orbits():
    data = henon_heiles_data()
    rows = {row["arm"]: row for row in baselines.rows(get("henon_heiles"), data, HORIZON)}
    assert set(rows) == {"mean", "affine", "poly2"}
    forecasts = [f"forecast_{method}" for method in METHODS]
    for row in rows.values():
        assert set(row) == {"arm", "test_loss", "train_loss", *forecasts, "energy_drift"}
        assert all(isinstance(row[k], float) for k in row if k != "arm")

    poly2 = rows["poly2"]
    assert poly2["test_loss"] < HH_EXACT_LOSS and poly2["train_loss"] < HH_EXACT_LOSS
    # The fitted field is the true one, so its rollouts err only as the integrator does.
    assert poly2["forecast_rk4"] < HH_RK4_FORECAST
    for method in METHODS:
        exact = float(forecast_error(hh.field, data.trajectories, data.times, HORIZON, method))
        assert abs(poly2[f"forecast_{method}"] - exact) < HH_SAME_FORECAST, method
    assert poly2["energy_drift"] < HH_ENERGY_DRIFT

    assert rows["affine"]["test_loss"] > NOT_EXACT_MSE
    assert rows["affine"]["forecast_rk4"] > 100 * HH_RK4_FORECAST

    variance = float(data.y_test.var(0, unbiased=False).mean())
    assert variance <= rows["mean"]["test_loss"] <= HH_MEAN_LOSS_RATIO * variance
