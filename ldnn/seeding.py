"""Reproducibility: independent random streams, one torch.Generator per (seed, index,
purpose), and deterministic kernels."""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

INIT, BATCHES, NOISE, ACTIVATIONS = range(4)


def generator(*keys: int) -> torch.Generator:
    """A generator whose stream depends only on `keys` (e.g. config seed, seed index, purpose)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Use deterministic kernels inside the block (e.g. the scatter-add behind the backward
    of indexing, which otherwise sums in thread-dependent order), then restore the setting."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
