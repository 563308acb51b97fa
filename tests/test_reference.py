"""ldnn's meta-gradient against the textbook reference implementation in benchmarks/."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from ldnn.activations import init_subnetworks
from ldnn.metalearn import draw_inner_run, meta_gradient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import reference_metalearn  # noqa: E402

RTOL_EXACT = 1e-10     # the same float64 computation, organised differently
RTOL_HERMITE = 1e-5    # Hermite splines: O(h³) approximation of the exact meta-gradient


def relative_error(a: dict, b: dict) -> float:
    flat_a = torch.cat([v.reshape(-1) for v in a.values()])
    flat_b = torch.cat([b[k].reshape(-1) for k in a])
    return float(torch.linalg.norm(flat_a - flat_b) / torch.linalg.norm(flat_b))


def test_ldnn_meta_gradient_equals_reference(tiny_problem, tiny_data, meta_cfg):
    phi = init_subnetworks(2, tiny_problem.activation.width, torch.Generator().manual_seed(1),
                           torch.float64)
    run = draw_inner_run(tiny_problem, tiny_data.x_train.shape[0], meta_cfg(),
                         torch.Generator().manual_seed(2), torch.float64)
    ref_loss, ref = reference_metalearn.meta_gradient(
        phi, run, tiny_data.x_train, tiny_data.y_train, list(tiny_problem.sizes), torch.sin,
        tiny_problem.activation.scale, meta_cfg().inner_lr, meta_cfg().inner_decay)
    for spacing, rtol in ((0, RTOL_EXACT), (0.01, RTOL_HERMITE)):
        loss, grads = meta_gradient(tiny_problem, phi, run, tiny_data,
                                    meta_cfg(spline_spacing=spacing))
        assert abs(float(loss - ref_loss)) <= rtol * abs(float(ref_loss))
        assert relative_error(grads, ref) <= rtol
