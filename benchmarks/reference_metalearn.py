"""A straightforward implementation of Algorithm 1's meta-gradient, the yardstick for ldnn.

Written the textbook way: the network's parameters are one flat vector, the inner loop
differentiates with create_graph=True, and every type's sub-network is applied to every
pre-activation of its block. It consumes the same random draws (ldnn.metalearn.InnerRun)
as ldnn, so both meta-gradients can be compared number for number.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ldnn.metalearn import InnerRun


def _slices(sizes: list[int]) -> list[tuple[int, int, int, int]]:
    """(start of W, start of b, fan_in, fan_out) of each layer in the flat vector."""
    out, start = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append((start, start + fan_in * fan_out, fan_in, fan_out))
        start += fan_in * fan_out + fan_out
    return out


def _activation(x: Tensor, phi_t: Tensor, width: int, base, scale: float) -> Tensor:
    """base(x) + scale·MLP(x) with the sub-network's parameters as one flat vector."""
    w1, b1 = phi_t[:width].reshape(1, width), phi_t[width:2 * width]
    w2, b2 = phi_t[2 * width:3 * width].reshape(width, 1), phi_t[3 * width]
    hidden = torch.tanh(x.reshape(-1, 1) @ w1 + b1)
    return base(x) + scale * (hidden @ w2 + b2).reshape(x.shape)


def _forward(theta: Tensor, x: Tensor, phis: list[Tensor], sizes: list[int], width: int,
             base, scale: float, noise: list[Tensor]) -> Tensor:
    layers = _slices(sizes)
    h = x
    for layer, (w, b, fan_in, fan_out) in enumerate(layers):
        h = h @ theta[w:b].reshape(fan_out, fan_in).T + theta[b:b + fan_out]
        if layer < len(layers) - 1:
            block = fan_out // len(phis)
            h = torch.cat([_activation(h[:, t * block:(t + 1) * block], phi, width, base, scale)
                           for t, phi in enumerate(phis)], dim=1)
            h = h + noise[layer]
    return h


def meta_gradient(phi: dict[str, Tensor], run: InnerRun, x_train: Tensor, y_train: Tensor,
                  sizes: list[int], base, scale: float, inner_lr: float, inner_decay: float
                  ) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean inner loss and its unrolled meta-gradient, in ldnn's layout of φ (T, W)/(T,)."""
    n_types, width = phi["w1"].shape
    phis = [torch.cat([phi["w1"][t], phi["b1"][t], phi["w2"][t], phi["b2"][t:t + 1]])
            .detach().requires_grad_() for t in range(n_types)]
    theta = torch.cat([p.reshape(-1) for p in run.theta0]).detach().requires_grad_()
    square_avg = torch.ones_like(theta)
    losses = []
    for k, index in enumerate(run.batches):
        out = _forward(theta, x_train[index], phis, sizes, width, base, scale,
                       [n[k] for n in run.noise])
        loss = F.cross_entropy(out, y_train[index])
        (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
        square_avg = inner_decay * square_avg + (1 - inner_decay) * grad ** 2
        theta = theta - inner_lr * grad / (torch.sqrt(square_avg) + 1e-8)
        losses.append(loss)
    outer_loss = torch.stack(losses).mean()
    grads = torch.autograd.grad(outer_loss, phis)
    stacked = torch.stack(grads)
    return outer_loss.detach(), {"w1": stacked[:, :width], "b1": stacked[:, width:2 * width],
                                 "w2": stacked[:, 2 * width:3 * width], "b2": stacked[:, 3 * width]}
