"""MNIST-1D (Greydanus & Kobak): 1-d digit signals of length 40, 10 classes.

Data come from the mnist1d package's generator, never its download path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mnist1d.data import get_dataset_args, get_templates, make_dataset
from mnist1d.transform import (corr_noise_like, iid_noise_like, interpolate, pad, shear,
                                translate)
from torch import Tensor

from ldnn.io import write_npz
from ldnn.tasks import Task


def generate(num_samples: int, train_split: float, seed: int) -> dict[str, np.ndarray]:
    """The generator's data set: x_train (N·split, 40) float32, y_train (N·split,) int64, …"""
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, train_split, seed
    data = make_dataset(args)
    return {"x_train": data["x"].astype(np.float32), "y_train": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64)}


def write(path: str | Path, num_samples: int, train_split: float, seed: int) -> None:
    write_npz(path, **generate(num_samples, train_split, seed))


def construction(digit: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """The generator's steps applied to one digit's template: [(step name, signal (L,)), …]."""
    args = get_dataset_args()
    rng_state = np.random.get_state()
    np.random.seed(seed)
    try:
        x = get_templates()["x"][digit]
        steps = [("template", x)]
        x = pad(x + 1e-8, args.padding)
        x = interpolate(x, args.template_len + args.padding[-1])
        steps.append(("pad", x))
        x = x * (1 + args.scale_coeff * (np.random.rand() - 0.5))
        x = translate(x, args.max_translation)
        steps.append(("scale, translate", x))
        mask = x != 0
        x = mask * x + (1 - mask) * corr_noise_like(x, args.corr_noise_scale)
        x = x + iid_noise_like(x, args.iid_noise_scale)
        steps.append(("noise", x))
        x = interpolate(shear(x, args.shear_scale), args.final_seq_length)
        steps.append(("shear, subsample", x))
    finally:
        np.random.set_state(rng_state)
    return steps


def _loss(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy: logits (..., B, 10), labels (..., B) → (...)."""
    target = target.expand(output.shape[:-1])
    return F.cross_entropy(output.movedim(-1, 1), target, reduction="none").mean(-1)


def _metrics(output: Tensor, target: Tensor) -> Tensor:
    accuracy = (output.argmax(-1) == target).to(output.dtype).mean(-1)
    return torch.stack([_loss(output, target), accuracy], dim=-1)


TASK = Task(name="mnist1d", n_in=40, n_out=10, loss=_loss, metrics=_metrics,
            metric_names=("test_loss", "test_accuracy"), loss_kind="cross_entropy")
