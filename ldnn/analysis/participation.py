"""Participation ratio of hidden activity: how many neurons' worth of dimensions it fills.

For activity X (M samples × N neurons), centred over samples, C = XᵀX / M is the N × N
covariance and R = (tr C)² / tr C² = (Σλ)² / Σλ² over its eigenvalues λ: N when all
directions are equally used, 1 when the activity lies on a line. r = R / N.
"""
from __future__ import annotations

from torch import Tensor


def participation_ratio(activity: Tensor) -> Tensor:
    """R of activity (..., M, N), per leading index: (...)."""
    centred = activity - activity.mean(-2, keepdim=True)
    covariance = centred.mT @ centred / activity.shape[-2]
    trace = covariance.diagonal(dim1=-2, dim2=-1).sum(-1)
    return trace ** 2 / (covariance * covariance).sum((-2, -1))


def relative_participation(activity: Tensor) -> Tensor:
    """r = R / N of activity (..., M, N): (...), in (0, 1]."""
    return participation_ratio(activity) / activity.shape[-1]
