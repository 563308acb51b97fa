"""Frozen training in the compiled kernel (ldnn/csrc/frozen_training.cpp).

For a network with one hidden layer, any task's loss (cross-entropy, mean squared error,
or that of a Hamiltonian network's field) and a standard or tabulated activation, the
kernel runs one epoch of mini-batch steps of every seed per call, with the optimizer of
ldnn.training (SGD with momentum or Adam) in the same arithmetic as its autograd path;
ldnn.training keeps the epochs, learning rates, early stopping and evaluation. Seeds are
stacked on a leading axis and spread over PyTorch's threads, one thread each.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ldnn import extensions
from ldnn.extensions import LOSS_KINDS, kernel_loss
from ldnn.activations import FrozenActivation
from ldnn.config import TrainConfig
from ldnn.networks import Params, block_size
from ldnn.tasks import Task, TaskData

ACTIVATION_KINDS = {None: -1, "relu": 0, "tanh": 1, "sin": 2, "zero": 3}
OPTIMIZER_KINDS = {"sgd": 0, "adam": 1}


def supported(task: Task, n_layers: int, activation) -> bool:
    """Whether the kernel trains this network: one hidden layer (n_layers = 2 weight
    layers), a loss it knows, and a FrozenActivation (a standard or tabulated one)."""
    return (n_layers == 2 and task.loss_kind in LOSS_KINDS
            and isinstance(activation, FrozenActivation)
            and activation.standard in ACTIVATION_KINDS
            and (not task.hamiltonian or (task.n_out == 1 and task.loss_kind == "mse")))


class Trainer:
    """The seeds' parameters (S, …) and optimizer state, trained one epoch per call.

    `params` are views into one flat (S, P) array that the kernel updates in place."""

    def __init__(self, task: Task, data: TaskData, params: Params, activation: FrozenActivation,
                 cfg: TrainConfig, betas: tuple[float, float], epsilon: float):
        seeds, dtype = params[0].shape[0], data.x_train.dtype
        self.theta = torch.cat([p.detach().reshape(seeds, -1) for p in params], 1).to(dtype)
        self.params = _views(self.theta, params)
        self.first, self.second = torch.zeros_like(self.theta), torch.zeros_like(self.theta)
        self.x, self.y = data.x_train.contiguous(), data.y_train.contiguous()
        self.hidden = params[0].shape[1]
        block_size(self.hidden, activation.n_types)  # the types split the layer evenly
        self.steps = 0
        if activation.standard:
            coefficients, ends, origin, step = (torch.zeros(0, dtype=dtype),
                                                torch.zeros(0, dtype=dtype), 0.0, 1.0)
        else:
            coefficients, ends, origin, step = activation.cells(dtype)
        self.arguments = (OPTIMIZER_KINDS[cfg.optimizer], cfg.momentum, *betas, epsilon,
                          ACTIVATION_KINDS[activation.standard], coefficients, ends,
                          activation.slopes is None, origin, step, self.hidden,
                          LOSS_KINDS[kernel_loss(task.loss_kind, task.hamiltonian)])

    def epoch(self, order: Tensor, rates: Sequence[float], running: Tensor) -> Tensor:
        """Steps on batches order (K, S, B) at learning rates (K,) for the running seeds
        (S,): the mean batch losses (S, K) before each step, NaN where a seed is not running."""
        losses = extensions.load("frozen_training.cpp").train_epoch(
            self.x, self.y, order.transpose(0, 1).contiguous(), self.theta, self.first,
            self.second, torch.tensor(rates, dtype=torch.float64), running, self.steps,
            *self.arguments)
        self.steps += order.shape[0]
        return losses.to(self.theta.dtype)


def _views(theta: Tensor, like: Params) -> Params:
    """Views of the flat (S, P) parameters shaped like the stacked `like` (S, …)."""
    sizes = [p[0].numel() for p in like]
    return tuple(part.view(p.shape) for part, p in zip(theta.split(sizes, 1), like))
