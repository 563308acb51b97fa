"""The JAX peer of the benchmarks (benchmarks/jax_metalearn.py) against ldnn's
meta-gradient, in float64 on tiny problems fed the same random draws."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")

from ldnn.activations import init_subnetworks  # noqa: E402
from ldnn.metalearn import draw_inner_run, meta_gradient  # noqa: E402
from ldnn.tasks import TaskData, get  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import jax_metalearn as peer_module  # noqa: E402

RTOL_EXACT = 1e-9   # the same float64 computation, by autodiff instead of ldnn's backprop
RTOL_GRID = 1e-5    # Hermite splines, h = 0.01, against the exact meta-gradient
# XLA's backend optimisations (LLVM) change speed, not the computation, and halve compile time.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


@pytest.fixture(scope="module", autouse=True)
def float64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def regression_data(n_in: int, field, seed: int = 0) -> TaskData:
    """60 training states x ~ N(0, 0.5²) (n_in,) with targets field(x)."""
    x = 0.5 * torch.randn((90, n_in), generator=torch.Generator().manual_seed(seed),
                          dtype=torch.float64)
    y = field(x)
    return TaskData(x[:60], y[:60], x[60:], y[60:])


def van_der_pol(x):
    return torch.stack([x[:, 1], (1 - x[:, 0] ** 2) * x[:, 1] - x[:, 0]], -1)


def oscillator(x):
    """(q̇, ṗ) = (p, −q) of two harmonic oscillators."""
    return torch.cat([x[:, 2:], -x[:, :2]], -1)


@pytest.fixture
def problems(tiny_problem, tiny_data):
    return {"classification": (tiny_problem, tiny_data),
            "regression": (dataclasses.replace(tiny_problem, task=get("van_der_pol"),
                                               sizes=(2, 6, 2)), regression_data(2, van_der_pol)),
            "hamiltonian": (dataclasses.replace(tiny_problem, task=get("henon_heiles_hnn"),
                                                sizes=(4, 6, 1)), regression_data(4, oscillator))}


def relative_error(grads: dict, reference: dict[str, torch.Tensor]) -> float:
    a = np.concatenate([np.ravel(grads[k]) for k in reference])
    b = np.concatenate([v.numpy().ravel() for v in reference.values()])
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("method", ["unrolled", "first_order"])
@pytest.mark.parametrize("kind", ["classification", "regression", "hamiltonian"])
def test_jax_peer_equals_ldnn(problems, meta_cfg, kind, method):
    problem, data = problems[kind]
    cfg = meta_cfg(meta_gradient=method, spline_spacing=0)
    phi = init_subnetworks(problem.n_types, problem.activation.width,
                           torch.Generator().manual_seed(1), torch.float64)
    run = draw_inner_run(problem, data.x_train.shape[0], cfg, torch.Generator().manual_seed(2),
                         torch.float64)
    ref_loss, ref = meta_gradient(problem, phi, run, data, cfg)
    arrays = (peer_module.phi_to_jax(phi), peer_module.to_jax(run),
              peer_module.array(data.x_train), peer_module.array(data.y_train))
    for spacing, rtol in ((0, RTOL_EXACT), (peer_module.SPACING, RTOL_GRID)):
        peer = peer_module.peer_of(problem, method, cfg.inner_lr, cfg.inner_decay, spacing)
        step = peer_module.outer_step(peer).lower(*arrays).compile(FAST_COMPILE)
        loss, grads, span = step(*arrays)
        assert grads["w1"].dtype == np.float64
        assert peer.low <= float(span[0]) and float(span[1]) <= peer.high
        assert abs(float(loss) - float(ref_loss)) <= rtol * abs(float(ref_loss))
        assert relative_error(grads, ref) <= rtol, (spacing, relative_error(grads, ref))
