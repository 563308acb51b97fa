"""Hamiltonian networks: a scalar H(q, p) whose gradient gives the vector field.

For a state z = (q, p) with q, p ∈ ℝᵈ, the field is (∂H/∂p, −∂H/∂q). The gradient is
taken with create_graph=True so that a loss on the field can be trained (and, during
meta-learning, differentiated once more).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def vector_field(energy: Callable[[Tensor], Tensor], state: Tensor) -> Tensor:
    """(∂H/∂p, −∂H/∂q) at `state` (..., 2d), with H = energy(state) of shape (..., 1) or (...,).

    Each output row must depend only on its own input row (true of any network applied
    row-wise), so the gradient of the summed energy is every row's own gradient.
    """
    with torch.enable_grad():
        if not state.requires_grad:
            state = state.detach().requires_grad_()
        (grad,) = torch.autograd.grad(energy(state).sum(), state, create_graph=True)
    d = state.shape[-1] // 2
    return torch.cat([grad[..., d:], -grad[..., :d]], dim=-1)
