"""Training with frozen activations, many seeds at once.

Seed s has its own initialisation and batch order (streams keyed by the config seed and
s), so a seed's result does not depend on which other seeds share its job. The
vectorised path stacks the seeds' parameters on a leading axis S: one batched matrix
product per layer evaluates all S networks, and the gradient of the sum of the per-seed
losses is every seed's own gradient. (torch.func.vmap of the same step was measured
3.4× slower on CPU.) `train_seed` is the same computation for one seed, written plainly.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

import torch
from torch import Tensor

from ldnn import seeding
from ldnn.forecast import METHODS, forecast_error
from ldnn.config import TrainConfig
from ldnn.analysis.participation import relative_participation
from ldnn.networks import Params, TypedActivation, forward, init_mlp, layers
from ldnn.tasks import Task, TaskData

log = logging.getLogger(__name__)


def _batch_orders(seed: int, cfg: TrainConfig, n_train: int) -> Tensor:
    """Shuffled batch indices of every epoch for one seed: (epochs·K, B), K = ⌊N/B⌋."""
    generator = seeding.generator(cfg.seed, seed, seeding.BATCHES)
    per_epoch = n_train // cfg.batch_size
    orders = [torch.randperm(n_train, generator=generator)[:per_epoch * cfg.batch_size]
              for _ in range(cfg.epochs)]
    return torch.cat(orders).reshape(-1, cfg.batch_size)


def _init(seed: int, cfg: TrainConfig, sizes: Sequence[int], dtype: torch.dtype) -> Params:
    return init_mlp(sizes, seeding.generator(cfg.seed, seed, seeding.INIT), dtype)


def fit_seeds(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
              n_types: int, cfg: TrainConfig, seeds: Sequence[int]) -> tuple[Params, Tensor]:
    """Train one network per seed: the trained parameters stacked over seeds (S, …) and
    diverged (S,), true if any training loss of that seed was not finite."""
    dtype = data.x_train.dtype
    params = tuple(torch.stack(p) for p in zip(*(_init(s, cfg, sizes, dtype) for s in seeds)))
    orders = torch.stack([_batch_orders(s, cfg, data.x_train.shape[0]) for s in seeds], dim=1)
    return _fit(task, data, params, orders, activation, n_types, cfg)


def train_seeds(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
                n_types: int, cfg: TrainConfig, seeds: Sequence[int]) -> dict[str, Tensor]:
    """`fit_seeds`, then `evaluate`: each metric (S,)."""
    params, diverged = fit_seeds(task, data, sizes, activation, n_types, cfg, seeds)
    return evaluate(task, data, params, activation, n_types, cfg, diverged)


def train_seed(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
               n_types: int, cfg: TrainConfig, seed: int) -> dict[str, Tensor]:
    """One seed alone, unstacked: `train_seeds` must agree with a loop over this."""
    params = _init(seed, cfg, sizes, data.x_train.dtype)
    orders = _batch_orders(seed, cfg, data.x_train.shape[0])
    params, diverged = _fit(task, data, params, orders, activation, n_types, cfg)
    return evaluate(task, data, params, activation, n_types, cfg, diverged)


def _predictor(task: Task, params: Params, activation: TypedActivation, n_types: int):
    """Predictions of every seed; inputs are expanded so that each seed owns its copy
    (a Hamiltonian network differentiates with respect to them)."""
    seeds_shape = params[0].shape[:-2]

    def predict(x: Tensor) -> Tensor:
        x = x.expand(*seeds_shape, *x.shape[-2:])
        return task.predict(lambda z: forward(params, z, activation, n_types), x)

    return predict


@seeding.deterministic()
def _fit(task: Task, data: TaskData, params: Params, orders: Tensor,
         activation: TypedActivation, n_types: int, cfg: TrainConfig) -> tuple[Params, Tensor]:
    """SGD with momentum over batches `orders` (steps, [S,] B) from (optionally stacked) params."""
    params = tuple(p.detach().requires_grad_() for p in params)
    predict = _predictor(task, params, activation, n_types)
    seeds_shape = orders.shape[1:-1]
    velocity = tuple(torch.zeros_like(p) for p in params)
    diverged = torch.zeros(seeds_shape, dtype=torch.bool)
    steps_per_epoch = orders.shape[0] // cfg.epochs
    started = time.perf_counter()
    for k, index in enumerate(orders):
        losses = task.loss(predict(data.x_train[index]), data.y_train[index])
        grads = torch.autograd.grad(losses.sum(), params, materialize_grads=True)
        with torch.no_grad():
            for p, v, g in zip(params, velocity, grads):
                v.mul_(cfg.momentum).add_(g)
                p.sub_(cfg.lr * v)
        diverged |= ~torch.isfinite(losses.detach())
        epoch = (k + 1) // steps_per_epoch
        if (k + 1) % steps_per_epoch == 0 and (epoch % 10 == 0 or epoch == cfg.epochs):
            log.info("epoch %d/%d  median batch loss %.4f  diverged %d  %.1f s", epoch,
                     cfg.epochs, losses.detach().median(), int(diverged.sum()),
                     time.perf_counter() - started)
    return tuple(p.detach() for p in params), diverged


@seeding.deterministic()
def evaluate(task: Task, data: TaskData, params: Params, activation: TypedActivation,
             n_types: int, cfg: TrainConfig, diverged: Tensor) -> dict[str, Tensor]:
    """Each metric (S,) of the task on the test set, train_loss, participation (r = R/N of
    the first hidden layer on the test inputs), for data with test trajectories
    forecast_euler and forecast_rk4 (RMS error of rollouts of the learned field over
    cfg.forecast_horizon), and diverged (S,). A diverged seed's values are NaN."""
    params = tuple(p.detach().requires_grad_() for p in params)
    predict = _predictor(task, params, activation, n_types)
    with torch.no_grad():
        metrics = task.metrics(predict(data.x_test).detach(), data.y_test)
        train_loss = task.loss(predict(data.x_train).detach(), data.y_train)
        hidden = layers(params, data.x_test, activation, n_types)[0]
    result = {name: metrics[..., i] for i, name in enumerate(task.metric_names)}
    result["train_loss"] = train_loss
    result["participation"] = relative_participation(hidden.double()).to(train_loss.dtype)
    if data.trajectories is not None:
        for method in METHODS:
            result[f"forecast_{method}"] = forecast_error(
                predict, data.trajectories, data.times, cfg.forecast_horizon, method,
                data.x_train.dtype).to(train_loss.dtype)
    nan = torch.tensor(float("nan"), dtype=train_loss.dtype)
    return {k: torch.where(diverged, nan, v) for k, v in result.items()} | {"diverged": diverged}
