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
from ldnn.networks import Params, TypedActivation, forward, init_mlp
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


def train_seeds(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
                n_types: int, cfg: TrainConfig, seeds: Sequence[int]) -> dict[str, Tensor]:
    """Train one network per seed; returns each metric (S,), train_loss (S,) and diverged (S,),
    and for data with test trajectories forecast_euler and forecast_rk4 (S,), the RMS error
    of rollouts of the learned field over cfg.forecast_horizon.

    A seed is diverged if any training loss was not finite; it stays in the results, with
    NaN metrics.
    """
    dtype = data.x_train.dtype
    params = tuple(torch.stack(p) for p in zip(*(_init(s, cfg, sizes, dtype) for s in seeds)))
    orders = torch.stack([_batch_orders(s, cfg, data.x_train.shape[0]) for s in seeds], dim=1)
    return _train(task, data, params, orders, activation, n_types, cfg)


def train_seed(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
               n_types: int, cfg: TrainConfig, seed: int) -> dict[str, Tensor]:
    """One seed alone, unstacked: `train_seeds` must agree with a loop over this."""
    params = _init(seed, cfg, sizes, data.x_train.dtype)
    orders = _batch_orders(seed, cfg, data.x_train.shape[0])
    return _train(task, data, params, orders, activation, n_types, cfg)


@seeding.deterministic()
def _train(task: Task, data: TaskData, params: Params, orders: Tensor,
           activation: TypedActivation, n_types: int, cfg: TrainConfig) -> dict[str, Tensor]:
    """SGD with momentum over batches `orders` (steps, [S,] B) from (optionally stacked) params."""
    params = tuple(p.detach().requires_grad_() for p in params)

    seeds_shape = orders.shape[1:-1]

    def predict(x: Tensor) -> Tensor:
        """Predictions of every seed; inputs are expanded so that each seed owns its copy
        (a Hamiltonian network differentiates with respect to them)."""
        x = x.expand(*seeds_shape, *x.shape[-2:])
        return task.predict(lambda z: forward(params, z, activation, n_types), x)

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
    with torch.no_grad():
        metrics = task.metrics(predict(data.x_test).detach(), data.y_test)
        train_loss = task.loss(predict(data.x_train).detach(), data.y_train)
    result = {name: metrics[..., i] for i, name in enumerate(task.metric_names)}
    result["train_loss"] = train_loss
    if data.trajectories is not None:
        for method in METHODS:
            result[f"forecast_{method}"] = forecast_error(
                predict, data.trajectories, data.times, cfg.forecast_horizon, method,
                data.x_train.dtype).to(train_loss.dtype)
    nan = torch.tensor(float("nan"), dtype=train_loss.dtype)
    return {k: torch.where(diverged, nan, v) for k, v in result.items()} | {"diverged": diverged}
