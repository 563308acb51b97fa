"""Learning tasks: each module provides its data generator and a `TASK` description."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ldnn.hamiltonian import vector_field

NAMES = ("mnist1d", "van_der_pol", "henon_heiles", "henon_heiles_hnn", "pendulum")


@dataclass(frozen=True)
class Task:
    """What training needs to know about a task.

    loss(prediction (..., B, …), target (..., B, …)) → mean loss (...) per leading index
    (a seed); metrics(prediction, target) → (..., M) named by `metric_names`, on the test
    set. The network maps n_in inputs to n_out outputs; a Hamiltonian task's network
    outputs the energy (n_out = 1) and its prediction is the vector field. `dataset` names
    the data set (and its generator module) when several tasks share one; `loss_kind` names
    the loss for the compiled inner loop (ldnn.fused): "mse" or "cross_entropy".
    A regression task whose targets are a polynomial of the inputs names its degree in
    `exact_degree` (0: none), and one whose data conserve an energy gives it as `energy`:
    states (..., d) → (...), NumPy or torch.
    """
    name: str
    n_in: int
    n_out: int
    loss: Callable[[Tensor, Tensor], Tensor]
    metrics: Callable[[Tensor, Tensor], Tensor]
    metric_names: tuple[str, ...]
    hamiltonian: bool = False
    dataset: str = ""
    loss_kind: str = "mse"
    exact_degree: int = 0
    energy: Callable | None = None

    def __post_init__(self):
        if not self.dataset:
            object.__setattr__(self, "dataset", self.name)

    def predict(self, network: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """The task's prediction from a network x (..., B, n_in) → (..., B, n_out)."""
        return vector_field(network, x) if self.hamiltonian else network(x)


@dataclass(frozen=True)
class TaskData:
    """Training and test arrays as tensors: x (N, n_in), y (N, …); for dynamical systems
    also the held-out test trajectories (M, K, d) sampled at `times` (K,), in float64."""
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    trajectories: Tensor | None = None
    times: Tensor | None = None

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> "TaskData":
        with np.load(path) as d:
            def tensor(a: np.ndarray) -> Tensor:
                t = torch.from_numpy(a)
                return t.to(dtype) if t.is_floating_point() else t
            arrays = [tensor(d[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
            if "test_trajectories" in d.files:
                arrays += [torch.from_numpy(d["test_trajectories"]), torch.from_numpy(d["times"])]
            return cls(*arrays)


def mse(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the batch and output axes: (..., B, d) → (...)."""
    return ((prediction - target) ** 2).mean((-2, -1))


def mse_metrics(prediction: Tensor, target: Tensor) -> Tensor:
    """Metrics of a regression task: the test MSE, (..., 1)."""
    return mse(prediction, target)[..., None]


def module(name: str):
    """The module of task `name`: its `TASK` and, if it names a data set, the generator
    `write(path, **settings)`."""
    if name not in NAMES:
        raise ValueError(f"unknown task {name!r}; choose from {list(NAMES)}")
    return importlib.import_module(f"ldnn.tasks.{name}")


def get(name: str) -> Task:
    """The Task called `name`."""
    return module(name).TASK
