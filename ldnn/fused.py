"""The inner loop of meta-learning as one compiled kernel with a hand-written adjoint.

For a network with one hidden layer, a cross-entropy or mean-squared-error loss (of its
outputs, or of a Hamiltonian network's field: first-order meta-gradient only) and
spline-tabulated activations, ldnn/csrc/inner_loop.cpp runs the whole inner loop (RMSprop
on mini-batches from a fresh init) and, for the unrolled meta-gradient, its exact reverse
pass with respect to the spline coefficients; autograd then carries that gradient from the
coefficients to the sub-network parameters φ. Replicates (independent meta-learning runs)
go through one call on a leading axis, one thread each.

The kernel is compiled on first use (ldnn.extensions).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ldnn import extensions
from ldnn.activations import SplineTable
from ldnn.extensions import LOSS_KINDS


def kernel():
    """The compiled extension (ldnn.extensions)."""
    return extensions.load("inner_loop.cpp")


def supported(loss_kind: str, sizes: tuple[int, ...], hamiltonian: bool, base: str,
              meta_gradient: str) -> bool:
    """Whether the kernel runs this problem: one hidden layer, a loss it knows, a smooth
    base (tabulated with the sub-network; ReLU's kink is not), and for a Hamiltonian
    network (one output, an MSE on its field) the first-order meta-gradient."""
    if hamiltonian and (meta_gradient != "first_order" or sizes[-1] != 1 or loss_kind != "mse"):
        return False
    return len(sizes) == 3 and loss_kind in LOSS_KINDS and base != "relu"


def stack_tables(tables: list[SplineTable]) -> tuple[Tensor, Tensor, Tensor]:
    """Coefficients of R tables padded to the longest: (R, T, I, 4) float64 (differentiable),
    first cell (R,) and cells per type (R,)."""
    longest = max(t.intervals for t in tables)
    padded = [torch.nn.functional.pad(t.coefficients, (0, 0, 0, longest - t.intervals))
              for t in tables]
    return (torch.stack(padded), torch.tensor([t.first for t in tables]),
            torch.tensor([t.intervals for t in tables]))


class _InnerLoop(torch.autograd.Function):
    """losses (R, K) of the inner loops as a function of the spline coefficients."""

    @staticmethod
    def forward(ctx, coefficients, first, intervals, spacing, x, y, batches, noise, theta0,
                lr, decay, kind):
        coef = coefficients.detach().to(x.dtype).contiguous()
        keep = ctx.needs_input_grad[0]
        losses, theta, ranges, *saved = kernel().forward(
            x, y, batches, noise, theta0, coef, first, intervals, spacing, lr, decay, kind, keep)
        ctx.inputs = (x, y, batches, noise, theta0, coef, first, intervals, spacing, lr, decay,
                      kind)
        ctx.shape = coefficients.shape
        if keep:
            ctx.save_for_backward(*saved)
        ctx.mark_non_differentiable(theta, ranges)
        return losses.to(x.dtype), theta, ranges

    @staticmethod
    def backward(ctx, grad_losses, _theta, _ranges):
        grad = kernel().backward(grad_losses.contiguous(), *ctx.inputs, *ctx.saved_tensors)
        return (grad.view(ctx.shape),) + (None,) * 11


def inner_loops(tables: list[SplineTable], x: Tensor, y: Tensor, batches: Tensor, noise: Tensor,
                theta0: Tensor, lr: float, decay: float, loss_kind: str
                ) -> tuple[Tensor, Tensor, Tensor]:
    """R inner loops, replicate r with `tables[r]`: x (N, D), y (N,) labels or (N, O) (a
    Hamiltonian network's: (N, D), its field's targets),
    batches (R, K, B), noise (R, K, H), theta0 (R, P) flat.

    Returns the losses (R, K), differentiable with respect to the tables' coefficients
    (the unrolled meta-gradient), the final parameters (R, P), and the range (R, 2) of the
    pre-activations met outside the table: (+inf, −inf) if none, NaN if one was not
    finite. A replicate that met any has invalid results: widen its table and run again.
    """
    coefficients, first, intervals = stack_tables(tables)
    return _InnerLoop.apply(coefficients, first, intervals, tables[0].spacing, x.contiguous(),
                            y.contiguous(), batches.contiguous(), noise.contiguous(),
                            theta0.contiguous(), lr, decay, LOSS_KINDS[loss_kind])
