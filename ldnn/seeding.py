"""Independent, reproducible random streams: one torch.Generator per (seed, index, purpose)."""
from __future__ import annotations

import numpy as np
import torch

INIT, BATCHES, NOISE, ACTIVATIONS = range(4)


def generator(*keys: int) -> torch.Generator:
    """A generator whose stream depends only on `keys` (e.g. config seed, seed index, purpose)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
