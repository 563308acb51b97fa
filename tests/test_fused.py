"""The compiled inner loop (ldnn.fused): its meta-gradients against autograd in float64, the
float32 default against the float64 exact meta-gradient at paper settings, replicates that
do not depend on each other, and resuming a killed run of three replicates."""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BASE_META, make_data
from ldnn import seeding
from ldnn.activations import init_subnetworks
from ldnn.config import ActivationConfig
from ldnn.metalearn import (MetaProblem, draw_inner_run, history, meta_gradient, meta_gradients,
                            meta_learn, uses_kernel)
from ldnn.tasks import TaskData, get

RTOL_SAME_ALGORITHM = 1e-12   # kernel vs autograd: the same float64 arithmetic, reordered
RTOL_FLOAT32 = 1e-4           # float32 default vs float64 exact, max-entry relative (issue target)
SPACING = 0.01


def relative_max_error(approx: dict, exact: dict) -> float:
    """max |a − e| / max |e| over every entry of every φ tensor."""
    a = torch.cat([approx[k].double().reshape(-1) for k in exact])
    e = torch.cat([exact[k].double().reshape(-1) for k in exact])
    return float((a - e).abs().max() / e.abs().max())


def tiny(task_name: str, base: str = "sin", dtype=torch.float64) -> tuple[MetaProblem, TaskData]:
    """A 40 → 6 → n_out problem on the shared Gaussian-cluster data (regression targets for
    an MSE task)."""
    task = get(task_name)
    data = make_data(dtype=dtype)
    if task.loss_kind == "mse":
        generator = torch.Generator().manual_seed(4)
        data = dataclasses.replace(
            data, y_train=torch.randn((data.x_train.shape[0], task.n_out), generator=generator,
                                      dtype=dtype))
    problem = MetaProblem(dataclasses.replace(task, n_in=40), (40, 6, task.n_out), base, 2,
                          ActivationConfig(3, 0.2, -3.0, 3.0, 7))
    return problem, data


@pytest.mark.parametrize("task_name", ["mnist1d", "van_der_pol"])
@pytest.mark.parametrize("kind", ["unrolled", "first_order"])
@pytest.mark.parametrize("first_range", [(-3.0, 3.0), (-0.1, 0.1)], ids=["covering", "widened"])
def test_kernel_meta_gradient_equals_autograd(task_name, kind, first_range):
    """Same spline table, same draws: the hand-written adjoint equals autograd's. A first
    range too narrow for the pre-activations makes the kernel widen the table and rerun."""
    problem, data = tiny(task_name)
    cfg = dataclasses.replace(BASE_META, meta_gradient=kind, spline_spacing=SPACING)
    assert uses_kernel(problem, cfg)
    assert_kernel_equals_autograd(problem, data, cfg, first_range)


def assert_kernel_equals_autograd(problem: MetaProblem, data: TaskData, cfg, first_range):
    """Two replicates' kernel losses, meta-gradients and table ranges against autograd's
    meta-gradient through the same tables; the range widens iff the first one is narrow."""
    phis = [init_subnetworks(2, 3, torch.Generator().manual_seed(s), torch.float64)
            for s in (1, 2)]
    runs = [draw_inner_run(problem, 60, cfg, torch.Generator().manual_seed(s), torch.float64)
            for s in (3, 4)]
    results = meta_gradients(problem, phis, runs, data, cfg, [first_range] * 2)
    for phi, run, (loss, grads, met) in zip(phis, runs, results):
        expected_loss, expected = meta_gradient(problem, phi, run, data, cfg)
        assert abs(float(loss - expected_loss)) <= RTOL_SAME_ALGORITHM * float(expected_loss)
        assert relative_max_error(grads, expected) <= RTOL_SAME_ALGORITHM
        widened = first_range == (-0.1, 0.1)
        assert met[0] <= first_range[0] and met[1] >= first_range[1]
        assert (met != first_range) == widened


@pytest.mark.parametrize("first_range", [(-3.0, 3.0), (-0.1, 0.1)], ids=["covering", "widened"])
def test_hamiltonian_first_order_meta_gradient_equals_autograd(first_range):
    """A Hamiltonian network 4 → 6 → 1 fitted on its field: the compiled first-order
    meta-gradient equals autograd's through the same spline tables."""
    task = get("henon_heiles_hnn")
    generator = torch.Generator().manual_seed(5)
    data = TaskData(*(torch.randn(shape, generator=generator, dtype=torch.float64)
                      for shape in [(60, 4), (60, 4), (20, 4), (20, 4)]))
    problem = MetaProblem(task, (4, 6, 1), "sin", 2, ActivationConfig(3, 0.2, -3.0, 3.0, 7))
    cfg = dataclasses.replace(BASE_META, meta_gradient="first_order", spline_spacing=SPACING)
    assert uses_kernel(problem, cfg)
    assert not uses_kernel(problem, dataclasses.replace(cfg, meta_gradient="unrolled"))
    assert_kernel_equals_autograd(problem, data, cfg, first_range)


def test_kernel_is_not_used_where_it_does_not_apply():
    problem, _ = tiny("mnist1d")
    cfg = dataclasses.replace(BASE_META, spline_spacing=SPACING)
    assert not uses_kernel(problem, dataclasses.replace(cfg, spline_spacing=0))
    assert not uses_kernel(dataclasses.replace(problem, base="relu"), cfg)
    assert not uses_kernel(dataclasses.replace(problem, sizes=(40, 6, 6, 10)), cfg)
    assert not uses_kernel(dataclasses.replace(problem, task=get("henon_heiles_hnn")), cfg)


def test_non_finite_pre_activations_stop_with_a_clear_error():
    problem, data = tiny("van_der_pol")
    cfg = dataclasses.replace(BASE_META, spline_spacing=SPACING, inner_lr=1e30)
    phi = init_subnetworks(2, 3, torch.Generator().manual_seed(1), torch.float64)
    run = draw_inner_run(problem, 60, cfg, torch.Generator().manual_seed(3), torch.float64)
    with pytest.raises(FloatingPointError, match="diverged.*metalearn.outer_lr"):
        meta_gradients(problem, [phi], [run], data, cfg, [(-3.0, 3.0)])


@pytest.fixture(scope="module")
def mnist1d_data() -> TaskData:
    from ldnn.tasks import mnist1d
    arrays = mnist1d.generate(5000, 0.8, 42)
    return TaskData(*(torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_test",
                                                            "y_test")))


@pytest.mark.parametrize("kind", ["unrolled", "first_order"])
def test_float32_default_is_within_1e4_of_float64_exact_at_paper_settings(mnist1d_data, kind):
    """MNIST-1D, 40 → 100 → 10, 2 types, batch 200, 100 inner steps: the shipped path (float32
    data and network, spline tables built in float64, compiled inner loop) against the
    float64 meta-gradient through the exact sub-networks."""
    problem = MetaProblem(get("mnist1d"), (40, 100, 10), "sin", 2,
                          ActivationConfig(50, 0.2, -10.0, 10.0, 100))
    cfg = dataclasses.replace(BASE_META, meta_gradient=kind, spline_spacing=SPACING,
                              inner_epochs=5, batch_size=200)
    data64 = TaskData(*(t.double() if t.is_floating_point() else t for t in
                        (mnist1d_data.x_train, mnist1d_data.y_train, mnist1d_data.x_test,
                         mnist1d_data.y_test)))
    with seeding.deterministic():
        for seed in (0, 1):
            phi = init_subnetworks(2, 50, seeding.generator(seed, seeding.ACTIVATIONS))
            run = draw_inner_run(problem, 4000, cfg, seeding.generator(seed, seeding.INIT))
            run64 = dataclasses.replace(
                run, theta0=tuple(p.double() for p in run.theta0),
                noise=[n.double() for n in run.noise])
            (loss, grads, _), = meta_gradients(problem, [phi], [run], mnist1d_data, cfg,
                                               [(-10.0, 10.0)])
            exact_loss, exact = meta_gradient(problem, {k: v.double() for k, v in phi.items()},
                                              run64, data64,
                                              dataclasses.replace(cfg, spline_spacing=0))
            assert all(g.dtype == torch.float32 for g in grads.values())
            assert relative_max_error(grads, exact) <= RTOL_FLOAT32
            assert abs(float(loss) - float(exact_loss)) <= RTOL_FLOAT32 * float(exact_loss)


def _float32_problem():
    problem, data = tiny("mnist1d", dtype=torch.float32)
    return problem, data, dataclasses.replace(BASE_META, spline_spacing=SPACING, outer_steps=3,
                                              replicates=3)


@pytest.mark.parametrize("kind", ["unrolled", "first_order"])
@pytest.mark.parametrize("spacing", [SPACING, 0], ids=["kernel", "autograd"])
def test_a_replicate_alone_equals_the_same_replicate_among_others(kind, spacing):
    problem, data, cfg = _float32_problem()
    cfg = dataclasses.replace(cfg, meta_gradient=kind, spline_spacing=spacing)
    together = meta_learn(problem, data, cfg)
    assert len(together) == 3 and [s.replicate for s in together] == [0, 1, 2]
    assert not torch.equal(together[0].phi["w1"], together[1].phi["w1"])
    (alone,) = meta_learn(problem, data, cfg, replicates=[1])
    h_together, h_alone = history(problem, together), history(problem, [alone])
    for k in ("outer_loss", "grad_norm", "snapshots"):
        assert np.array_equal(h_together[k][1], h_alone[k][0]), k
    assert all(torch.equal(together[1].phi[k], alone.phi[k]) for k in alone.phi)


@pytest.mark.parametrize("kind", ["unrolled", "first_order"])
def test_kernel_meta_learning_gives_the_same_bits_at_one_and_two_threads(kind):
    problem, data, cfg = _float32_problem()
    cfg = dataclasses.replace(cfg, meta_gradient=kind, replicates=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        (one,) = meta_learn(problem, data, cfg)
        torch.set_num_threads(2)
        (two,) = meta_learn(problem, data, cfg)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(one.phi[k], two.phi[k]) for k in one.phi)
    assert not torch.equal(one.phi["w1"], meta_learn(problem, data, dataclasses.replace(
        cfg, outer_steps=1))[0].phi["w1"])  # the steps changed φ


def test_checkpoint_of_another_replicate_count_is_ignored_with_a_log_line(tmp_path, caplog):
    problem, data, cfg = _float32_problem()
    checkpoint = tmp_path / "checkpoint.pt"
    meta_learn(problem, data, dataclasses.replace(cfg, outer_steps=1, checkpoint_every=1),
               checkpoint, replicates=[0])
    assert checkpoint.exists()
    with caplog.at_level(logging.INFO, logger="ldnn.metalearn"):
        (fresh,) = meta_learn(problem, data, dataclasses.replace(cfg, outer_steps=1,
                                                                 checkpoint_every=1),
                              checkpoint, replicates=[1])
    assert "replicates [0], not [1]" in caplog.text
    assert fresh.step == 1


KILLED_RUN = """
import dataclasses, sys, time, torch
sys.path.insert(0, {tests!r})
from test_fused import _float32_problem
from ldnn import metalearn
torch.set_num_threads({threads})
real = metalearn.meta_gradients
def slow(*args, **kwargs):
    time.sleep(0.2)
    return real(*args, **kwargs)
metalearn.meta_gradients = slow
problem, data, cfg = _float32_problem()
metalearn.meta_learn(problem, data, dataclasses.replace(cfg, outer_steps=8, checkpoint_every=1),
                     {checkpoint!r})
"""


def checkpoint_step(path: Path) -> int:
    return torch.load(path, weights_only=False)["states"][0]["step"]


def test_three_replicates_killed_by_sigkill_resume_bit_identically(tmp_path):
    problem, data, cfg = _float32_problem()
    cfg = dataclasses.replace(cfg, outer_steps=8, checkpoint_every=1)
    checkpoint = tmp_path / "checkpoint.pt"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), threads=torch.get_num_threads(),
                               checkpoint=str(checkpoint))
    process = subprocess.Popen([sys.executable, "-c", script], env=os.environ | {
        "PYTHONPATH": str(Path(__file__).parents[1])})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and checkpoint_step(checkpoint) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_step(checkpoint)
    assert 3 <= killed_at < 8
    resumed = meta_learn(problem, data, cfg, checkpoint)
    straight = meta_learn(problem, data, cfg)
    for a, b in zip(resumed, straight):
        assert a.step == b.step == 8
        assert all(torch.equal(a.phi[k], b.phi[k]) for k in a.phi)
        assert a.outer_loss == b.outer_loss and a.table_range == b.table_range
