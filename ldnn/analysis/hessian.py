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

HVP = Callable[[Tensor], Tensor]


def hvp_function(loss: Callable[[Tensor], Tensor], point: Tensor) -> HVP:
    """v ↦ H v, H the Hessian of the scalar loss(θ) at θ = point (n,)."""
    gradient = torch.func.grad(loss)

    def hvp(v: Tensor) -> Tensor:
        return torch.func.jvp(gradient, (point,), (v,))[1]

    return hvp


@dataclass(frozen=True)
class TraceEstimate:
    trace: float
    standard_error: float
    probes: int


def _rademacher(n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    return torch.randint(0, 2, (n,), generator=generator).to(dtype) * 2 - 1


def hutchinson_trace(hvp: HVP, n: int, generator: torch.Generator, relative_error: float = 0.01,
                     batch: int = 20, max_probes: int = 5000,
                     dtype: torch.dtype = torch.float64) -> TraceEstimate:
    """tr H from Rademacher probes, drawn `batch` at a time until the standard error of the
    mean is below relative_error·|tr H| (or max_probes are used)."""
    samples: list[float] = []
    while len(samples) < max_probes:
        for _ in range(batch):
            z = _rademacher(n, generator, dtype)
            samples.append(float(z @ hvp(z)))
        mean = float(np.mean(samples))
        error = float(np.std(samples, ddof=1) / np.sqrt(len(samples)))
        if error <= relative_error * abs(mean):
            break
    return TraceEstimate(mean, error, len(samples))


def lanczos(hvp: HVP, start: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """Tridiagonal coefficients of `steps` Lanczos iterations from `start` (n,), with full
    reorthogonalisation: alpha (k,), beta (k − 1,), k ≤ steps (fewer if the Krylov space
    is exhausted)."""
    basis = [start / start.norm()]
    alpha, beta = [], []
    for k in range(steps):
        w = hvp(basis[-1])
        alpha.append(float(w @ basis[-1]))
        q = torch.stack(basis)
        w = w - q.T @ (q @ w)
        w = w - q.T @ (q @ w)
        norm = float(w.norm())
        if k == steps - 1 or norm < 1e-10 * max(1.0, abs(alpha[-1])):
            break
        beta.append(norm)
        basis.append(w / norm)
    return torch.tensor(alpha, dtype=torch.float64), torch.tensor(beta, dtype=torch.float64)


def slq(hvp: HVP, n: int, probes: int, steps: int, generator: torch.Generator,
        dtype: torch.dtype = torch.float64) -> tuple[list[Tensor], list[Tensor]]:
    """Quadrature nodes and weights (each sums to 1) for `probes` random start vectors."""
    nodes, weights = [], []
    for _ in range(probes):
        alpha, beta = lanczos(hvp, _rademacher(n, generator, dtype), steps)
        tridiagonal = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
        values, vectors = torch.linalg.eigh(tridiagonal)
        nodes.append(values)
        weights.append(vectors[0] ** 2)
    return nodes, weights


def density(nodes: list[Tensor], weights: list[Tensor], grid: Tensor, width: float) -> Tensor:
    """The spectral density on `grid` (G,), Gaussian-smoothed with standard deviation `width`;
    it integrates to 1."""
    total = torch.zeros_like(grid, dtype=torch.float64)
    for theta, tau in zip(nodes, weights):
        gauss = torch.exp(-0.5 * ((grid[:, None] - theta[None]) / width) ** 2)
        total += (gauss * tau[None]).sum(-1) / (width * np.sqrt(2 * np.pi))
    return total / len(nodes)


def fraction_below(nodes: list[Tensor], weights: list[Tensor], threshold: float) -> float:
    """Estimated fraction of eigenvalues with |λ| < threshold."""
    return float(np.mean([float(tau[theta.abs() < threshold].sum())
                          for theta, tau in zip(nodes, weights)]))
