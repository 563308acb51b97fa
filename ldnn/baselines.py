"""Reference baselines shown beside trained networks: the training mean, least-squares
affine and polynomial fits for regression, and multinomial logistic regression for
classification. All are fitted on the whole training set in float64."""
from __future__ import annotations

from itertools import combinations_with_replacement
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ldnn.forecast import METHODS, energy_drift, forecast_error
from ldnn.tasks import Task, TaskData

Predictor = Callable[[Tensor], Tensor]

BASELINE = "baseline"  # the protocol column of the baselines' rows in a study's table

PENALTY = 1e-4      # L2 penalty on the logistic weights (standardised inputs), not the bias:
                    # small beside the cross-entropy, but it keeps separable data bounded
GRAD_TOL = 1e-6     # L-BFGS stops when every gradient entry is this small …
MAX_ITER = 1000     # … or after this many iterations


def monomials(x: Tensor, degree: int) -> Tensor:
    """Every monomial of the inputs of total degree ≤ degree, the constant first:
    x (..., n) → (..., C(n + degree, degree))."""
    n = x.shape[-1]
    features = [torch.ones_like(x[..., 0])]
    for k in range(1, degree + 1):
        for combo in combinations_with_replacement(range(n), k):
            feature = x[..., combo[0]]
            for i in combo[1:]:
                feature = feature * x[..., i]
            features.append(feature)
    return torch.stack(features, dim=-1)


def fit_polynomial(x: Tensor, y: Tensor, degree: int) -> Predictor:
    """Least squares y ≈ monomials(x, degree) · W on x (N, n_in), y (N, n_out):
    the predictor x (..., n_in) → (..., n_out), float64."""
    features = monomials(x.double().cpu(), degree)
    weight = torch.linalg.lstsq(features, y.double().cpu(), driver="gelsd").solution

    def predict(x: Tensor) -> Tensor:
        return monomials(x.double(), degree) @ weight.to(x.device)
    return predict


def fit_mean(y: Tensor) -> Predictor:
    """The training mean of y (N, n_out), predicted everywhere: x (..., n_in) → (..., n_out)."""
    mean = y.double().mean(0)

    def predict(x: Tensor) -> Tensor:
        return mean.to(x.device).expand(*x.shape[:-1], mean.shape[0])
    return predict


def logistic_loss(weight: Tensor, bias: Tensor, x: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the logits x · weight + bias plus PENALTY · |weight|²:
    weight (n_in, C), bias (C,), x (N, n_in), labels (N,) → ()."""
    logits = x @ weight + bias
    return F.cross_entropy(logits, labels) + PENALTY * (weight ** 2).sum()


def fit_logistic(x: Tensor, labels: Tensor, classes: int) -> tuple[Tensor, Tensor]:
    """The minimiser (weight (n_in, classes), bias (classes,)) of `logistic_loss` on x (N, n_in),
    labels (N,), from zero by full-batch L-BFGS in float64."""
    x = x.double()
    weight = torch.zeros(x.shape[-1], classes, dtype=torch.float64, device=x.device,
                         requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=MAX_ITER,
                                  tolerance_grad=GRAD_TOL, tolerance_change=0.0,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = logistic_loss(weight, bias, x, labels)
        loss.backward()
        return loss
    optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_logistic_predictor(x: Tensor, labels: Tensor, classes: int) -> Predictor:
    """Logistic regression on inputs standardised with the training mean and std:
    x (..., n_in) → logits (..., classes), float64."""
    x = x.double()
    mean, std = x.mean(0), x.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    weight, bias = fit_logistic((x - mean) / std, labels, classes)

    def predict(x: Tensor) -> Tensor:
        return (x.double() - mean) / std @ weight + bias
    return predict


def predictors(task: Task, data: TaskData) -> dict[str, Predictor]:
    """Baselines fitted on the whole training set, in float64, by name, each mapping
    x (..., n_in) → predictions (..., d) (float64) shaped like y and the task's predictions
    (d = n_out, except for a Hamiltonian task: its vector field, d = n_in):
    "mean", "affine" and, for an exact polynomial task, f"poly{degree}" for regression;
    "logistic" (logits) for classification."""
    if task.loss_kind == "cross_entropy":
        return {"logistic": fit_logistic_predictor(data.x_train, data.y_train, task.n_out)}
    if task.loss_kind != "mse":
        raise ValueError(f"no baselines for loss kind {task.loss_kind!r}")
    result = {"mean": fit_mean(data.y_train),
              "affine": fit_polynomial(data.x_train, data.y_train, 1)}
    if task.exact_degree > 0:
        result[f"poly{task.exact_degree}"] = fit_polynomial(data.x_train, data.y_train,
                                                            task.exact_degree)
    return result


def rows(task: Task, data: TaskData, forecast_horizon: float) -> list[dict]:
    """One row per baseline: {"arm": name, each of task.metric_names (test set),
    "train_loss" (whole training set), for data with trajectories "forecast_<method>" for
    each method in METHODS and, for a task with an energy, "energy_drift"}; values are
    Python floats."""
    y_train, y_test = data.y_train, data.y_test
    if y_train.is_floating_point():
        y_train, y_test = y_train.double(), y_test.double()
    result = []
    for name, predict in predictors(task, data).items():
        with torch.no_grad():
            metrics = task.metrics(predict(data.x_test), y_test)
            train_loss = task.loss(predict(data.x_train), y_train)
        row = {"arm": name}
        for i, metric in enumerate(task.metric_names):
            row[metric] = float(metrics[i])
        row["train_loss"] = float(train_loss)
        if data.trajectories is not None:
            for method in METHODS:
                row[f"forecast_{method}"] = float(forecast_error(
                    predict, data.trajectories, data.times, forecast_horizon, method,
                    torch.float64))
            if task.energy is not None:
                row["energy_drift"] = float(energy_drift(
                    predict, data.trajectories, data.times, forecast_horizon, task.energy))
        result.append(row)
    return result
