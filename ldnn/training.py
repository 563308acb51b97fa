"""Training with frozen activations, many seeds at once, under a protocol (TrainConfig).

Seed s has its own initialisation and batch order (streams keyed by the config seed and
s), so a seed's result does not depend on which other seeds share its job. The
vectorised path stacks the seeds' parameters on a leading axis S: one batched matrix
product per layer evaluates all S networks, and the gradient of the sum of the per-seed
losses is every seed's own gradient. (torch.func.vmap of the same step was measured
3.4× slower on CPU.) Where it applies (one hidden layer, a standard or tabulated
activation), the stacked steps run in the compiled kernel (ldnn.compiled_training), in the
same arithmetic. `train_seed` is the same computation for one seed, written plainly, by
autograd.
With early stopping every seed stops on its own validation losses: seeds that stopped
keep their best parameters and are no longer trained while the others train on.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ldnn import compiled_training, seeding
from ldnn.forecast import METHODS, energy_drift, forecast_error
from ldnn.config import TrainConfig
from ldnn.analysis.participation import relative_participation
from ldnn.networks import Params, TypedActivation, forward, init_mlp, layers
from ldnn.tasks import Task, TaskData

log = logging.getLogger(__name__)

ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-8
LAST_EPOCHS = 0.2  # the share of a run's epochs over which the training loss must have settled


@dataclass
class Fit:
    """Trained parameters ([S,] …) and how training went, each ([S],): diverged (a
    training loss was not finite), epochs_run, best_epoch (of the parameters kept: the last
    without early stopping), validation_loss (of those parameters; NaN without validation)
    and epoch_losses ([S,] E), the mean batch loss of each epoch (NaN after a seed stopped)."""
    params: Params
    diverged: Tensor
    epochs_run: Tensor
    best_epoch: Tensor
    validation_loss: Tensor
    epoch_losses: Tensor


def split_validation(data: TaskData, fraction: float) -> tuple[TaskData, Tensor, Tensor]:
    """The training rows trained on, and the held-out validation rows x, y: the last
    ⌈fraction · N⌉ training rows (none for fraction 0). The test set is untouched."""
    n_val = math.ceil(fraction * data.x_train.shape[0])
    n_fit = data.x_train.shape[0] - n_val
    fit = TaskData(data.x_train[:n_fit], data.y_train[:n_fit], data.x_test, data.y_test,
                   data.trajectories, data.times)
    return fit, data.x_train[n_fit:], data.y_train[n_fit:]


def _batch_generators(seeds: Sequence[int], cfg: TrainConfig) -> list[torch.Generator]:
    return [seeding.generator(cfg.seed, s, seeding.BATCHES) for s in seeds]


def _epoch_order(generators: list[torch.Generator], n_train: int, batch_size: int) -> Tensor:
    """This epoch's shuffled batches of each seed: (K, S, B), K = ⌊N/B⌋."""
    per_epoch = n_train // batch_size
    orders = [torch.randperm(n_train, generator=g)[:per_epoch * batch_size] for g in generators]
    return torch.stack(orders).reshape(len(generators), per_epoch, batch_size).transpose(0, 1)


def _init(seed: int, cfg: TrainConfig, sizes: Sequence[int], dtype: torch.dtype) -> Params:
    return init_mlp(sizes, seeding.generator(cfg.seed, seed, seeding.INIT), dtype)


def fit_seeds(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
              n_types: int, cfg: TrainConfig, seeds: Sequence[int]) -> Fit:
    """Train one network per seed on the training rows (less the validation rows) under
    the protocol `cfg`; everything stacked over the seeds (S, …)."""
    dtype = data.x_train.dtype
    params = tuple(torch.stack(p) for p in zip(*(_init(s, cfg, sizes, dtype) for s in seeds)))
    return _fit(task, data, params, _batch_generators(seeds, cfg), True, activation, n_types,
                cfg)


def train_seeds(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
                n_types: int, cfg: TrainConfig, seeds: Sequence[int]) -> dict[str, Tensor]:
    """`fit_seeds`, then `evaluate`: each metric (S,)."""
    fit = fit_seeds(task, data, sizes, activation, n_types, cfg, seeds)
    return evaluate(task, data, fit, activation, n_types, cfg)


def train_seed(task: Task, data: TaskData, sizes: Sequence[int], activation: TypedActivation,
               n_types: int, cfg: TrainConfig, seed: int) -> dict[str, Tensor]:
    """One seed alone, unstacked: `train_seeds` must agree with a loop over this."""
    params = _init(seed, cfg, sizes, data.x_train.dtype)
    fit = _fit(task, data, params, _batch_generators([seed], cfg), False, activation, n_types,
               cfg)
    return evaluate(task, data, fit, activation, n_types, cfg)


def _predictor(task: Task, params: Params, activation: TypedActivation, n_types: int):
    """Predictions of every seed; inputs are expanded so that each seed owns its copy
    (a Hamiltonian network differentiates with respect to them)."""
    seeds_shape = params[0].shape[:-2]

    def predict(x: Tensor) -> Tensor:
        x = x.expand(*seeds_shape, *x.shape[-2:])
        return task.predict(lambda z: forward(params, z, activation, n_types), x)

    return predict


def _learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of step `step` (0-based) of `total`: constant or cosine to 0."""
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total))
    return cfg.lr


def _per_seed(mask: Tensor, like: Tensor) -> Tensor:
    """A per-seed mask ([S],) shaped to broadcast against a parameter ([S,] …)."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - mask.dim()))


class _Optimizer:
    """SGD with heavy-ball momentum or Adam, elementwise, so stacked seeds stay independent."""

    def __init__(self, cfg: TrainConfig, params: Params):
        self.cfg, self.steps = cfg, 0
        self.first = tuple(torch.zeros_like(p) for p in params)
        self.second = tuple(torch.zeros_like(p) for p in params)

    @torch.no_grad()
    def step(self, params: Params, grads: Sequence[Tensor], lr: float, running: Tensor) -> None:
        """One update of the running seeds ([S],); the others keep their values."""
        self.steps += 1
        state = params + self.first + self.second
        kept = None if running.all() else [s.clone() for s in state]
        if self.cfg.optimizer == "sgd":
            for p, v, g in zip(params, self.first, grads):
                v.mul_(self.cfg.momentum).add_(g)
                p.sub_(lr * v)
        else:
            (b1, b2), t = ADAM_BETAS, self.steps
            for p, m, v, g in zip(params, self.first, self.second, grads):
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denominator = (v / (1 - b2 ** t)).sqrt_().add_(ADAM_EPSILON)
                p.addcdiv_(m, denominator, value=-lr / (1 - b1 ** t))
        for new, old in zip(state, kept or ()):
            new.copy_(torch.where(_per_seed(running, new), new, old))


class _AutogradTrainer:
    """(Optionally stacked) params trained by autograd, one epoch per call."""

    def __init__(self, task: Task, data: TaskData, params: Params, activation: TypedActivation,
                 n_types: int, cfg: TrainConfig):
        self.task, self.data = task, data
        self.params = tuple(p.detach().requires_grad_() for p in params)
        self.predict = _predictor(task, self.params, activation, n_types)
        self.optimizer = _Optimizer(cfg, self.params)

    def epoch(self, order: Tensor, rates: Sequence[float], running: Tensor) -> Tensor:
        """Steps on batches order (K, [S,] B) at learning rates (K,) for the running seeds
        ([S]): the mean batch losses ([S,] K) before each step."""
        losses = []
        for index, rate in zip(order, rates):
            loss = self.task.loss(self.predict(self.data.x_train[index]), self.data.y_train[index])
            grads = torch.autograd.grad(loss.sum(), self.params, materialize_grads=True)
            self.optimizer.step(self.params, grads, rate, running)
            losses.append(loss.detach())
        return torch.stack(losses, -1)


@seeding.deterministic()
def _fit(task: Task, data: TaskData, params: Params, generators: list[torch.Generator],
         stacked: bool, activation: TypedActivation, n_types: int, cfg: TrainConfig) -> Fit:
    """Train (optionally stacked) params under protocol `cfg`, batches drawn from one
    generator per seed; stacked, in the compiled kernel where `cfg.compiled` and it applies.
    A seed that stopped early is no longer trained."""
    data, x_val, y_val = split_validation(data, cfg.validation)
    if stacked and cfg.compiled and compiled_training.supported(task, len(params) // 2,
                                                                activation):
        trainer = compiled_training.Trainer(task, data, params, activation, cfg, ADAM_BETAS,
                                            ADAM_EPSILON)
    else:
        trainer = _AutogradTrainer(task, data, params, activation, n_types, cfg)
    params = trainer.params
    predict = _predictor(task, params, activation, n_types)
    seeds = (len(generators),) if stacked else ()
    diverged = torch.zeros(seeds, dtype=torch.bool)
    running = torch.ones(seeds, dtype=torch.bool)
    epochs_run = torch.full(seeds, cfg.epochs)
    best_epoch = torch.full(seeds, cfg.epochs)
    dtype = data.x_train.dtype
    best_loss = torch.full(seeds, torch.inf, dtype=dtype)
    best = tuple(p.detach().clone() for p in params)
    epoch_losses = []
    n_train = data.x_train.shape[0]
    per_epoch = n_train // cfg.batch_size
    total = per_epoch * cfg.epochs
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        order = _epoch_order(generators, n_train, cfg.batch_size)
        rates = [_learning_rate(cfg, (epoch - 1) * per_epoch + k, total) for k in range(per_epoch)]
        losses = trainer.epoch(order if stacked else order[:, 0], rates, running)
        diverged |= running & ~torch.isfinite(losses).all(-1)
        epoch_losses.append(torch.where(running, losses.sum(-1) / per_epoch, torch.nan))
        if cfg.patience:
            with torch.no_grad():
                loss = task.loss(predict(x_val).detach(), y_val)
            improved = running & (loss < best_loss * (1 - cfg.min_improvement))
            best_loss = torch.where(improved, loss, best_loss)
            best_epoch = torch.where(improved, epoch, best_epoch)
            best = tuple(torch.where(_per_seed(improved, b), p.detach(), b)
                         for p, b in zip(params, best))
            stops = running & (epoch - best_epoch >= cfg.patience)
            epochs_run = torch.where(stops, epoch, epochs_run)
            running &= ~stops
        if epoch % 10 == 0 or epoch == cfg.epochs or not running.any():
            log.info("epoch %d/%d  median epoch loss %.4g  running %d  diverged %d  %.1f s",
                     epoch, cfg.epochs, epoch_losses[-1].nanmedian(), int(running.sum()),
                     int(diverged.sum()), time.perf_counter() - started)
        if not running.any():
            break
    if not cfg.patience:
        best = tuple(p.detach().clone() for p in params)
        best_loss = torch.full(seeds, torch.nan, dtype=dtype)
    return Fit(best, diverged, epochs_run, best_epoch, best_loss,
               torch.stack(epoch_losses, dim=-1))


def loss_change(epoch_losses: Tensor, epochs_run: Tensor) -> Tensor:
    """Relative decrease of the mean training loss over the last 20 % of each run's epochs,
    (L(e₀) − L(E)) / |L(e₀)|, E = epochs_run, e₀ = E − max(1, round(0.2 E)) (≥ 1):
    epoch_losses ([S,] E_max), epochs_run ([S]) → ([S])."""
    window = torch.clamp((LAST_EPOCHS * epochs_run).round().long(), min=1)
    start = torch.clamp(epochs_run - window, min=1)
    before = epoch_losses.gather(-1, (start - 1)[..., None])[..., 0]
    end = epoch_losses.gather(-1, (epochs_run - 1)[..., None])[..., 0]
    return (before - end) / before.abs()


@seeding.deterministic()
def evaluate(task: Task, data: TaskData, fit: Fit, activation: TypedActivation,
             n_types: int, cfg: TrainConfig) -> dict[str, Tensor]:
    """Each metric ([S]) of the task on the test set; train_loss (on the rows trained on);
    participation (r = R/N of the first hidden layer on the test inputs); for data with
    test trajectories forecast_euler and forecast_rk4 (RMS error of rollouts of the learned
    field over cfg.forecast_horizon) and, where the task has an energy, energy_drift (its
    relative error at the horizon, median over the rk4 rollouts); the Fit's diagnostics,
    train_change (`loss_change`) and unconverged (the run used every epoch of its budget and
    its training loss still fell by more than cfg.unconverged_change over the last 20 % of
    them; a run stopped early reached its validation plateau);
    diverged. A diverged seed's values are NaN."""
    data, _, _ = split_validation(data, cfg.validation)
    params = tuple(p.detach().requires_grad_() for p in fit.params)
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
        if task.energy is not None:
            result["energy_drift"] = energy_drift(
                predict, data.trajectories, data.times, cfg.forecast_horizon, task.energy,
                dtype=data.x_train.dtype).to(train_loss.dtype)
    result["validation_loss"] = fit.validation_loss.to(train_loss.dtype)
    change = loss_change(fit.epoch_losses, fit.epochs_run)
    result["train_change"] = change.to(train_loss.dtype)
    nan = torch.tensor(float("nan"), dtype=train_loss.dtype)
    result = {k: torch.where(fit.diverged, nan, v) for k, v in result.items()}
    return result | {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                     "unconverged": (change > cfg.unconverged_change)
                                    & (fit.epochs_run == cfg.epochs),
                     "diverged": fit.diverged}
