"""The Hessian of a training loss without forming it.

Hessian-vector products come from torch.func (forward-over-reverse); the trace from
Hutchinson's estimator E[zᵀHz] with Rademacher z; the spectral density from stochastic
Lanczos quadrature (SLQ): for a random unit v, Lanczos on H from v gives nodes θ_k (Ritz
values) and weights τ_k (squared first components of the Ritz vectors) with
Σ_k τ_k f(θ_k) ≈ vᵀ f(H) v, whose mean over v is tr f(H) / n.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ldnn.networks import apply_typed, flatten, forward, unflatten

HVP = Callable[[Tensor], Tensor]


def hvp_function(loss: Callable[[Tensor], Tensor], point: Tensor) -> HVP:
    """V ↦ V H for a batch of vectors V (B, n), H the Hessian of the scalar loss(θ) at
    θ = point (n,)."""
    gradient = torch.func.grad(loss)

    def hvp(v: Tensor) -> Tensor:
        return torch.func.jvp(gradient, (point,), (v,))[1]

    return torch.func.vmap(hvp)


def loss_hvp(task, data, params, activation, n_types: int) -> tuple[HVP, int]:
    """HVPs of `task`'s mean training loss on `data` for one network's params, and the
    number of parameters; computed in the dtype of the params and data."""
    def loss(flat: Tensor) -> Tensor:
        network = unflatten(flat, params)
        prediction = task.predict(lambda z: forward(network, z, activation, n_types), data.x_train)
        return task.loss(prediction, data.y_train)

    point = flatten(params)
    return hvp_function(loss, point), point.numel()


def exact_trace_supported(task, params) -> bool:
    """Whether `exact_trace` applies: one hidden layer, the network's outputs fitted
    directly (not a Hamiltonian's field) by cross-entropy or mean squared error."""
    return len(params) == 4 and not task.hamiltonian and task.loss_kind in ("cross_entropy", "mse")


def exact_trace(task, data, params, activation, n_types: int) -> float:
    """tr H of the mean training loss L = (1/N) Σ_b ℓ(o_b) of a one-hidden-layer network
    o = W2 σ(W1 x + b1) + b2, from its diagonal in closed form (one pass over the data):
    with g_b = ∇ℓ(o_b), G_b = ∇²ℓ(o_b) and w_j = W2[:, j],
    ∂²L/∂W2_kj² = ⟨G_b,kk a_bj²⟩, ∂²L/∂b2_k² = ⟨G_b,kk⟩,
    ∂²L/∂W1_jd² = ⟨x_bd² c_bj⟩, ∂²L/∂b1_j² = ⟨c_bj⟩, c_bj = σ′² w_jᵀG_b w_j + σ″ g_b·w_j,
    ⟨·⟩ the mean over the rows. σ′ and σ″ of the (elementwise) activation by autograd."""
    w1, b1, w2, b2 = params
    x, n = data.x_train, data.x_train.shape[0]
    z = (x @ w1.T + b1).detach().requires_grad_()
    with torch.enable_grad():
        a = apply_typed(activation, z, n_types)
        (slope,) = torch.autograd.grad(a.sum(), z, create_graph=True)
        curvature = (torch.autograd.grad(slope.sum(), z, allow_unused=True,
                                         materialize_grads=True)[0]
                     if slope.requires_grad else torch.zeros_like(z))  # piecewise linear
    a, slope = a.detach(), slope.detach()
    o = a @ w2.T + b2
    if task.loss_kind == "cross_entropy":
        p = torch.softmax(o, -1)
        g = p - torch.nn.functional.one_hot(data.y_train, o.shape[-1]).to(p.dtype)
        g_diagonal = p - p ** 2                                          # (N, O)
        wgw = p @ w2 ** 2 - (p @ w2) ** 2                                # (N, H)
    else:
        factor = 2 / o.shape[-1]
        g = factor * (o - data.y_train)
        g_diagonal = torch.full_like(o, factor)
        wgw = (factor * (w2 ** 2).sum(0)).expand(n, -1)
    c = slope ** 2 * wgw + curvature * (g @ w2)
    output_layer = (g_diagonal.T @ a ** 2).sum() + g_diagonal.sum()
    hidden_layer = (c.T @ x ** 2).sum() + c.sum()
    return float((output_layer + hidden_layer) / n)


@dataclass(frozen=True)
class TraceEstimate:
    trace: float
    standard_error: float
    probes: int


def _rademacher(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    return torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1


def hutchinson_trace(hvp: HVP, n: int, generator: torch.Generator, relative_error: float = 0.01,
                     batch: int = 50, max_probes: int = 5000,
                     dtype: torch.dtype = torch.float64) -> TraceEstimate:
    """tr H from Rademacher probes z (zᵀHz), drawn `batch` at a time until the standard
    error of the mean is below relative_error·|tr H| (or max_probes are used)."""
    samples = torch.empty(0, dtype=dtype)
    while samples.numel() < max_probes:
        z = _rademacher((batch, n), generator, dtype)
        samples = torch.cat([samples, (z * hvp(z)).sum(-1)])
        mean, error = float(samples.mean()), float(samples.std() / samples.numel() ** 0.5)
        if error <= relative_error * abs(mean):
            break
    return TraceEstimate(mean, error, samples.numel())


def lanczos(hvp: HVP, start: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """Tridiagonal coefficients of up to `steps` Lanczos iterations from each start vector
    (B, n) at once, fully reorthogonalised: alpha (B, k), beta (B, k − 1). All stop together
    when the Krylov space of one is exhausted."""
    basis = [start / start.norm(dim=-1, keepdim=True)]
    alpha, beta = [], []
    for k in range(steps):
        w = hvp(basis[-1])
        alpha.append((w * basis[-1]).sum(-1))
        q = torch.stack(basis, 1)                                   # (B, k, n)
        for _ in range(2):
            w = w - torch.einsum("bk,bkn->bn", torch.einsum("bkn,bn->bk", q, w), q)
        norm = w.norm(dim=-1)
        if k == steps - 1 or bool((norm < 1e-10 * alpha[-1].abs().clamp(min=1)).any()):
            break
        beta.append(norm)
        basis.append(w / norm[:, None])
    empty = torch.empty(start.shape[0], 0, dtype=start.dtype)
    return torch.stack(alpha, -1), torch.stack(beta, -1) if beta else empty


def slq(hvp: HVP, n: int, probes: int, steps: int, generator: torch.Generator,
        dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Quadrature nodes and weights (P, k), each row of weights summing to 1, for `probes`
    random start vectors."""
    alpha, beta = lanczos(hvp, _rademacher((probes, n), generator, dtype), steps)
    tridiagonal = torch.diag_embed(alpha) + torch.diag_embed(beta, 1) + torch.diag_embed(beta, -1)
    nodes, vectors = torch.linalg.eigh(tridiagonal)
    return nodes, vectors[:, 0, :] ** 2


def density(nodes: Tensor, weights: Tensor, grid: Tensor, width: float) -> Tensor:
    """The spectral density on `grid` (G,) from nodes and weights (P, k), Gaussian-smoothed
    with standard deviation `width`; it integrates to 1."""
    gauss = torch.exp(-0.5 * ((grid[:, None, None] - nodes[None]) / width) ** 2)
    return (gauss * weights[None]).sum((-2, -1)) / (nodes.shape[0] * width * np.sqrt(2 * np.pi))


def fraction_below(nodes: Tensor, weights: Tensor, threshold: float) -> float:
    """Estimated fraction of eigenvalues with |λ| < threshold."""
    return float((weights * (nodes.abs() < threshold)).sum(-1).mean())
