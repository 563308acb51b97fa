"""Shared tiny fixtures: a synthetic 40-feature, 10-class problem in float64.

The shapes match ldnn.tasks.mnist1d.TASK (n_in=40, n_out=10) so its loss and metrics
can be reused, but there are only 60 training and 30 test examples so every test runs
in well under a second on one core.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from ldnn.config import ActivationConfig, MetaConfig, TrainConfig
from ldnn.metalearn import MetaProblem
from ldnn.tasks import TaskData
from ldnn.tasks.mnist1d import TASK

N_TRAIN, N_TEST = 60, 30
N_IN, N_OUT = TASK.n_in, TASK.n_out


def make_data(seed: int = 0, dtype: torch.dtype = torch.float64) -> TaskData:
    """Gaussian class clusters: x = mean[y] + noise, 40 features, 10 classes."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn((N_OUT, N_IN), generator=generator, dtype=dtype)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, N_OUT, (n,), generator=generator)
        x = means[y] + 0.5 * torch.randn((n, N_IN), generator=generator, dtype=dtype)
        return x, y

    x_train, y_train = split(N_TRAIN)
    x_test, y_test = split(N_TEST)
    return TaskData(x_train, y_train, x_test, y_test)


@pytest.fixture
def task():
    return TASK


@pytest.fixture
def tiny_data() -> TaskData:
    return make_data()


@pytest.fixture
def act_cfg() -> ActivationConfig:
    return ActivationConfig(width=3, scale=0.2, low=-3.0, high=3.0, points=7)


@pytest.fixture
def tiny_problem(act_cfg) -> MetaProblem:
    return MetaProblem(task=TASK, sizes=(N_IN, 4, N_OUT), base="sin", n_types=2,
                       activation=act_cfg)


BASE_META = MetaConfig(meta_gradient="unrolled", spline_spacing=0, outer_steps=4, outer_lr=0.4,
                       outer_momentum=0.8, grad_clip=0.1, inner_lr=0.01, inner_decay=0.8,
                       inner_epochs=2, batch_size=20, noise=0.1, snapshot_every=2,
                       checkpoint_every=2, seed=0, replicates=1)

BASE_TRAIN = TrainConfig(protocol="paper", optimizer="sgd", lr=0.05, momentum=0.8,
                         schedule="constant", epochs=3, validation=0, patience=0,
                         min_improvement=0, batch_size=20, seed=0, forecast_horizon=1.0,
                         unconverged_change=0.01)


@pytest.fixture
def meta_cfg():
    """A factory: meta_cfg(**changes) → a tiny MetaConfig."""
    return lambda **changes: dataclasses.replace(BASE_META, **changes)


@pytest.fixture
def train_cfg():
    """A factory: train_cfg(**changes) → a tiny TrainConfig."""
    return lambda **changes: dataclasses.replace(BASE_TRAIN, **changes)
