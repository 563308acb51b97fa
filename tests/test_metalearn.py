"""Meta-learning: meta-gradients against finite differences, determinism, resuming."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ldnn import metalearn, seeding
from ldnn.activations import init_subnetworks, learned
from ldnn.metalearn import (draw_inner_run, history, inner_loop, load_params, meta_gradient,
                            merge_results, meta_learn, save_result, snapshot)
from ldnn.networks import blockwise, forward

# Central differences in float64 with step H_FD: truncation O(H²) ≈ 1e-9 relative,
# round-off ≈ ε·|L|/H ≈ 1e-12 absolute; observed worst relative error ≈ 4e-8.
H_FD = 1e-4
RTOL_FD = 1e-6
ATOL_FD = 1e-10            # gradient entries here are ≳ 1e-4
RTOL_AUTOGRAD = 1e-12      # two autograd evaluations of the same float64 expression
RTOL_SAME = 1e-12          # the same float64 loss computed with and without a graph


def phi64(problem, seed: int = 1):
    return init_subnetworks(problem.n_types, problem.activation.width,
                            torch.Generator().manual_seed(seed), dtype=torch.float64)


def perturbed(phi, name, index, delta):
    out = {k: v.clone() for k, v in phi.items()}
    out[name].view(-1)[index] += delta
    return out


def central_difference(fn, phi):
    """∂fn/∂φ for every entry of every φ tensor, by central differences."""
    return {name: torch.tensor([(fn(perturbed(phi, name, i, H_FD))
                                 - fn(perturbed(phi, name, i, -H_FD))) / (2 * H_FD)
                                for i in range(value.numel())],
                               dtype=torch.float64).reshape(value.shape)
            for name, value in phi.items()}


def assert_matches_fd(grads, fd):
    assert set(grads) == set(fd) == {"w1", "b1", "w2", "b2"}
    for name in fd:
        g, f = grads[name], fd[name]
        assert g.shape == f.shape and g.dtype == torch.float64
        assert (g.abs() > 10 * ATOL_FD).all(), "gradient too small for a relative check"
        err = (g - f).abs()
        assert (err <= RTOL_FD * g.abs() + ATOL_FD).all(), (
            f"{name}: max relative error {float((err / g.abs()).max()):.2e}")


@pytest.fixture
def inner_run(tiny_problem, tiny_data, meta_cfg):
    """One frozen set of inner-loop draws (θ0, batches, noise), reused by every evaluation."""
    return draw_inner_run(tiny_problem, tiny_data.x_train.shape[0], meta_cfg(),
                          torch.Generator().manual_seed(2), dtype=torch.float64)


# --------------------------------------------------------------------------- inner runs


def test_draw_inner_run_shapes_and_batches(tiny_problem, meta_cfg):
    cfg = meta_cfg(inner_epochs=3, batch_size=25)      # 60 // 25 = 2 batches per epoch
    run = draw_inner_run(tiny_problem, 60, cfg, torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    assert run.batches.shape == (6, 25)
    assert [n.shape for n in run.noise] == [(6, 4)]
    assert run.noise[0].dtype == torch.float64 and run.noise[0].abs().max() <= cfg.noise
    assert [tuple(p.shape) for p in run.theta0] == [(4, 40), (4,), (10, 4), (10,)]
    for epoch in range(3):      # no example twice within an epoch
        indices = run.batches[2 * epoch:2 * epoch + 2].reshape(-1)
        assert len(set(indices.tolist())) == 50 and indices.max() < 60
    again = draw_inner_run(tiny_problem, 60, cfg, torch.Generator().manual_seed(0),
                           dtype=torch.float64)
    assert torch.equal(run.batches, again.batches) and torch.equal(run.noise[0], again.noise[0])


def test_inner_loop_is_rmsprop(tiny_problem, tiny_data, meta_cfg, inner_run):
    """Two RMSprop steps written out by hand (square average starts at 1)."""
    cfg = meta_cfg()
    run = dataclasses.replace(inner_run, batches=inner_run.batches[:2],
                              noise=[n[:2] for n in inner_run.noise])
    phi = phi64(tiny_problem)
    theta, losses = inner_loop(tiny_problem, phi, run, tiny_data, cfg, differentiable=False)
    assert losses.shape == (2,)

    def loss(th, k):
        index = run.batches[k]
        act = lambda z: learned(phi, z, "sin", tiny_problem.activation.scale)  # noqa: E731
        out = forward(th, tiny_data.x_train[index], act, 2, [n[k] for n in run.noise])
        return tiny_problem.task.loss(out, tiny_data.y_train[index])

    th = [p.clone().requires_grad_() for p in run.theta0]
    sq = [torch.ones_like(p) for p in th]
    expected_losses = []
    for k in range(2):
        value = loss(th, k)
        expected_losses.append(float(value.detach()))
        grads = torch.autograd.grad(value, th)
        sq = [cfg.inner_decay * s + (1 - cfg.inner_decay) * g ** 2 for s, g in zip(sq, grads)]
        th = [(p - cfg.inner_lr * g / (s.sqrt() + 1e-8)).detach().requires_grad_()
              for p, g, s in zip(th, grads, sq)]
    np.testing.assert_allclose(losses.numpy(), expected_losses, rtol=RTOL_SAME)
    for p, e in zip(theta, th):
        torch.testing.assert_close(p.detach(), e.detach(), rtol=RTOL_SAME, atol=0)


# --------------------------------------------------------------------------- meta-gradients


def test_unrolled_meta_gradient_matches_finite_differences(tiny_problem, tiny_data, meta_cfg,
                                                           inner_run):
    cfg = meta_cfg(meta_gradient="unrolled")
    phi = phi64(tiny_problem)
    outer_loss, grads = meta_gradient(tiny_problem, phi, inner_run, tiny_data, cfg)

    def outer(p):
        _, losses = inner_loop(tiny_problem, p, inner_run, tiny_data, cfg, differentiable=False)
        return float(losses.mean())

    assert outer_loss.ndim == 0
    assert abs(float(outer_loss) - outer(phi)) <= RTOL_SAME * abs(float(outer_loss))
    assert_matches_fd(grads, central_difference(outer, phi))


# Hermite splines make the meta-gradient an O(h³) approximation of the exact one.
RTOL_HERMITE = 1e-5


@pytest.mark.parametrize("kind", ["unrolled", "first_order"])
def test_hermite_meta_gradient_agrees_with_exact(tiny_problem, tiny_data, meta_cfg, inner_run,
                                                 kind):
    phi = phi64(tiny_problem)
    exact_loss, exact = meta_gradient(tiny_problem, phi, inner_run, tiny_data,
                                      meta_cfg(meta_gradient=kind, spline_spacing=0))
    loss, approx = meta_gradient(tiny_problem, phi, inner_run, tiny_data,
                                 meta_cfg(meta_gradient=kind, spline_spacing=0.01))
    assert abs(float(loss - exact_loss)) <= RTOL_HERMITE * abs(float(exact_loss))
    flat_exact = torch.cat([g.reshape(-1) for g in exact.values()])
    flat_approx = torch.cat([g.reshape(-1) for g in approx.values()])
    assert torch.linalg.norm(flat_approx - flat_exact) <= RTOL_HERMITE * torch.linalg.norm(flat_exact)


def test_meta_gradient_leaves_phi_untouched(tiny_problem, tiny_data, meta_cfg, inner_run):
    phi = phi64(tiny_problem)
    before = {k: v.clone() for k, v in phi.items()}
    meta_gradient(tiny_problem, phi, inner_run, tiny_data, meta_cfg())
    assert all(torch.equal(phi[k], before[k]) and not phi[k].requires_grad for k in phi)


def test_first_order_meta_gradient_is_gradient_at_fixed_final_theta(tiny_problem, tiny_data,
                                                                    meta_cfg, inner_run):
    cfg = meta_cfg(meta_gradient="first_order")
    phi = phi64(tiny_problem)
    final_batch = inner_run.final_batch
    outer_loss, grads = meta_gradient(tiny_problem, phi, inner_run, tiny_data, cfg)

    theta_T, losses = inner_loop(tiny_problem, phi, inner_run, tiny_data, cfg,
                                 differentiable=False)
    theta_T = tuple(p.detach() for p in theta_T)
    last_noise = [n[-1] for n in inner_run.noise]
    x, y = tiny_data.x_train[final_batch], tiny_data.y_train[final_batch]
    scale = tiny_problem.activation.scale

    def final_loss(p):
        # Written independently of metalearn._loss: σ_t = sin + scale·g_t in type blocks.
        act = blockwise([lambda z, t=t: learned({k: v[t:t + 1] for k, v in p.items()},
                                                z[..., None, :], "sin", scale)[..., 0, :]
                         for t in range(tiny_problem.n_types)])
        out = forward(theta_T, x, act, tiny_problem.n_types, last_noise)
        return tiny_problem.task.loss(out, y)

    # Outer loss: the mean inner loss, the same value as the unrolled variant reports.
    assert abs(float(outer_loss) - float(losses.mean())) <= RTOL_SAME * float(outer_loss)
    unrolled_loss, unrolled_grads = meta_gradient(tiny_problem, phi, inner_run, tiny_data,
                                                  meta_cfg(meta_gradient="unrolled"))
    assert abs(float(outer_loss) - float(unrolled_loss)) <= RTOL_SAME * float(outer_loss)

    leaves = {k: v.clone().requires_grad_() for k, v in phi.items()}
    reference = dict(zip(leaves, torch.autograd.grad(final_loss(leaves), list(leaves.values()))))
    for name in phi:
        torch.testing.assert_close(grads[name], reference[name], rtol=RTOL_AUTOGRAD, atol=0)
    assert_matches_fd(grads, central_difference(lambda p: float(final_loss(p)), phi))
    # It is a different quantity from the unrolled meta-gradient.
    assert not torch.allclose(grads["w2"], unrolled_grads["w2"], rtol=1e-2)


def test_meta_gradient_rejects_unknown_method(tiny_problem, tiny_data, meta_cfg, inner_run):
    with pytest.raises(ValueError, match="unknown meta_gradient"):
        meta_gradient(tiny_problem, phi64(tiny_problem), inner_run, tiny_data,
                      meta_cfg(meta_gradient="second_order"))


def test_meta_learn_rejects_unknown_method(tiny_problem, tiny_data, meta_cfg):
    with pytest.raises(ValueError, match="unknown meta_gradient"):
        meta_learn(tiny_problem, tiny_data, meta_cfg(meta_gradient="bogus"))


# --------------------------------------------------------------------------- outer loop


def test_one_outer_step_is_clipped_sgd(tiny_problem, tiny_data, meta_cfg):
    """Step 1 by hand: same generator streams, φ1 = φ0 − lr·clamp(g), momentum1 = clamp(g)."""
    cfg = meta_cfg(outer_steps=1, grad_clip=0.005)
    (state,) = meta_learn(tiny_problem, tiny_data, cfg)

    phi0 = init_subnetworks(2, tiny_problem.activation.width,
                            seeding.generator(cfg.seed, seeding.ACTIVATIONS, 0), torch.float64)
    generator = seeding.generator(cfg.seed, seeding.INIT, 0)
    run = draw_inner_run(tiny_problem, 60, cfg, generator, torch.float64)
    loss, grads = meta_gradient(tiny_problem, phi0, run, tiny_data, cfg)
    assert any((g.abs() > cfg.grad_clip).any() for g in grads.values()), "clip not exercised"
    for name, g in grads.items():
        clipped = g.clamp(-cfg.grad_clip, cfg.grad_clip)
        assert torch.equal(state.momentum[name], clipped)
        assert torch.equal(state.phi[name], phi0[name] - cfg.outer_lr * clipped)
    assert state.step == 1 and state.outer_loss == [float(loss)]
    norms = [float(torch.cat([g[t].reshape(-1) for g in grads.values()]).norm())
             for t in range(2)]
    assert state.grad_norm == [norms]
    assert torch.equal(state.generator_state, generator.get_state())


def test_meta_learn_is_deterministic(tiny_problem, tiny_data, meta_cfg):
    cfg = meta_cfg(outer_steps=3)
    (a,) = meta_learn(tiny_problem, tiny_data, cfg)
    (b,) = meta_learn(tiny_problem, tiny_data, cfg)
    assert all(torch.equal(a.phi[k], b.phi[k]) for k in a.phi)
    assert all(torch.equal(a.momentum[k], b.momentum[k]) for k in a.momentum)
    ha, hb = history(tiny_problem, [a]), history(tiny_problem, [b])
    assert all(np.array_equal(ha[k], hb[k]) for k in ha)
    (c,) = meta_learn(tiny_problem, tiny_data, meta_cfg(outer_steps=3, seed=1))
    assert not torch.equal(a.phi["w1"], c.phi["w1"])


@pytest.mark.parametrize("steps, every, expected_steps", [(4, 2, [0, 2, 4]),
                                                          (5, 2, [0, 2, 4, 5]),
                                                          (3, 10, [0, 3])])
def test_history_shapes(tiny_problem, tiny_data, meta_cfg, steps, every, expected_steps):
    cfg = meta_cfg(outer_steps=steps, snapshot_every=every, meta_gradient="first_order")
    states = meta_learn(tiny_problem, tiny_data, dataclasses.replace(cfg, replicates=2))
    h = history(tiny_problem, states)
    act = tiny_problem.activation
    assert h["outer_loss"].shape == (2, steps)
    assert h["grad_norm"].shape == (2, steps, tiny_problem.n_types)
    assert h["snapshot_steps"].tolist() == expected_steps
    assert h["snapshots"].shape == (2, len(expected_steps), tiny_problem.n_types, act.points)
    assert h["replicates"].tolist() == [0, 1]
    assert h["snapshots"].dtype == np.float64
    np.testing.assert_array_equal(h["grid"], np.linspace(act.low, act.high, act.points))
    assert np.isfinite(h["outer_loss"]).all() and (h["grad_norm"] >= 0).all()
    # The first snapshot is the initial activation, the last the final one.
    for r, state in enumerate(states):
        phi0 = init_subnetworks(2, act.width, seeding.generator(cfg.seed, seeding.ACTIVATIONS, r),
                                torch.float64)
        np.testing.assert_array_equal(h["snapshots"][r, 0], snapshot(tiny_problem, phi0))
        np.testing.assert_array_equal(h["snapshots"][r, -1], snapshot(tiny_problem, state.phi))


def test_snapshot_is_learned_activation_on_capture_grid(tiny_problem):
    phi = phi64(tiny_problem)
    act = tiny_problem.activation
    values = snapshot(tiny_problem, phi)
    grid = np.linspace(act.low, act.high, act.points)
    assert values.shape == (2, act.points)
    for t in range(2):
        g = sum(phi["w2"][t, j].item() * np.tanh(phi["w1"][t, j].item() * grid
                                                  + phi["b1"][t, j].item())
                for j in range(act.width)) + phi["b2"][t].item()
        np.testing.assert_allclose(values[t], np.sin(grid) + act.scale * g, rtol=0, atol=1e-13)


class Interrupted(Exception):
    pass


def test_resume_after_interruption_is_bit_identical(tiny_problem, tiny_data, meta_cfg,
                                                    tmp_path, monkeypatch):
    cfg = meta_cfg(outer_steps=4, checkpoint_every=2, snapshot_every=1)
    (straight,) = meta_learn(tiny_problem, tiny_data, cfg)

    checkpoint = tmp_path / "ckpt.pt"
    real = metalearn.meta_gradient
    calls = []

    def crash_on_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(metalearn, "meta_gradient", crash_on_third_step)
    with pytest.raises(Interrupted):
        meta_learn(tiny_problem, tiny_data, cfg, checkpoint=checkpoint)
    assert checkpoint.exists()

    calls.clear()
    monkeypatch.setattr(metalearn, "meta_gradient",
                        lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    (resumed,) = meta_learn(tiny_problem, tiny_data, cfg, checkpoint=checkpoint)
    assert len(calls) == 2, "the resumed run should only redo steps 3 and 4"
    assert resumed.step == straight.step == 4
    assert all(torch.equal(resumed.phi[k], straight.phi[k]) for k in straight.phi)
    assert all(torch.equal(resumed.momentum[k], straight.momentum[k]) for k in straight.phi)
    assert torch.equal(resumed.generator_state, straight.generator_state)
    hs, hr = history(tiny_problem, [straight]), history(tiny_problem, [resumed])
    assert hs.keys() == hr.keys()
    assert all(np.array_equal(hs[k], hr[k]) for k in hs)

    # A finished checkpoint is returned as is, without any further step.
    calls.clear()
    (again,) = meta_learn(tiny_problem, tiny_data, cfg, checkpoint=checkpoint)
    assert calls == [] and all(torch.equal(again.phi[k], straight.phi[k]) for k in straight.phi)


def test_checkpoint_of_other_settings_is_ignored(tiny_problem, tiny_data, meta_cfg, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    meta_learn(tiny_problem, tiny_data, meta_cfg(outer_steps=2, seed=1), checkpoint=checkpoint)
    cfg = meta_cfg(outer_steps=2)
    (fresh,) = meta_learn(tiny_problem, tiny_data, cfg)
    (from_foreign,) = meta_learn(tiny_problem, tiny_data, cfg, checkpoint=checkpoint)
    assert all(torch.equal(fresh.phi[k], from_foreign.phi[k]) for k in fresh.phi)


def test_checkpoint_every_does_not_change_result(tiny_problem, tiny_data, meta_cfg, tmp_path):
    (a,) = meta_learn(tiny_problem, tiny_data, meta_cfg(outer_steps=3, checkpoint_every=1),
                      checkpoint=tmp_path / "a.pt")
    (b,) = meta_learn(tiny_problem, tiny_data, meta_cfg(outer_steps=3, checkpoint_every=3))
    assert all(torch.equal(a.phi[k], b.phi[k]) for k in a.phi)


def test_save_result_and_load_params_round_trip(tiny_problem, tiny_data, meta_cfg, tmp_path):
    states = meta_learn(tiny_problem, tiny_data, meta_cfg(outer_steps=2), replicates=[3, 1])
    params_path, history_path = tmp_path / "out" / "phi.pt", tmp_path / "out" / "history.npz"
    save_result(tiny_problem, states, params_path, history_path)
    saved = load_params(params_path)
    assert saved["base"] == "sin" and saved["n_types"] == 2 and saved["replicates"] == [3, 1]
    assert saved["scale"] == tiny_problem.activation.scale
    assert all(torch.equal(saved["phi"][k][1], states[1].phi[k]) for k in states[1].phi)
    one = load_params(params_path, replicate=1)
    assert all(torch.equal(one["phi"][k], states[1].phi[k]) for k in states[1].phi)
    with pytest.raises(ValueError, match="not 2"):
        load_params(params_path, replicate=2)
    with np.load(history_path) as h:
        expected = history(tiny_problem, states)
        assert set(h.files) == set(expected)
        assert all(np.array_equal(h[k], expected[k]) for k in expected)
    assert sorted(p.name for p in params_path.parent.iterdir()) == ["history.npz", "phi.pt"]


# --------------------------------------------------------------------------- inner gradient

RTOL_EXPLICIT = 1e-12      # explicit backpropagation vs autograd, the same float64 expression


@pytest.mark.parametrize("task_name", ["mnist1d", "van_der_pol"])
@pytest.mark.parametrize("base", ["sin", "relu", "zero"])
@pytest.mark.parametrize("spacing", [0, 0.01])
def test_explicit_inner_gradient_equals_autograd(act_cfg, task_name, base, spacing):
    from ldnn.activations import SplineActivations
    from ldnn.networks import flatten, init_mlp, unflatten
    from ldnn.tasks import get

    task = get(task_name)
    problem = metalearn.MetaProblem(task, (task.n_in, 6, 4, task.n_out), base, 2, act_cfg)
    generator = torch.Generator().manual_seed(5)
    theta = init_mlp(problem.sizes, generator, torch.float64)
    x = torch.randn((30, task.n_in), generator=generator, dtype=torch.float64)
    y = (torch.randint(0, task.n_out, (30,), generator=generator) if task_name == "mnist1d"
         else torch.randn((30, task.n_out), generator=generator, dtype=torch.float64))
    noise = [torch.rand(width, generator=generator, dtype=torch.float64) * 0.2 - 0.1
             for width in problem.sizes[1:-1]]
    activation = SplineActivations(phi64(problem), base, 0.2, spacing)
    flat = flatten(theta).requires_grad_()
    expected_loss = metalearn._loss(problem, activation, unflatten(flat, theta), x, y, noise)
    (expected,) = torch.autograd.grad(expected_loss, flat)
    loss, grad = metalearn.loss_and_gradient(problem, activation, theta, x, y, noise)
    expected_loss = float(expected_loss.detach())
    assert abs(float(loss) - expected_loss) <= RTOL_EXPLICIT * abs(expected_loss)
    torch.testing.assert_close(grad, expected, rtol=RTOL_EXPLICIT, atol=RTOL_EXPLICIT * float(
        expected.abs().max()))


def test_jobs_of_blocks_of_replicates_merge_into_the_result_of_one_job(tiny_problem, tiny_data,
                                                                      meta_cfg, tmp_path):
    """Replicates 0, 1, 2 as jobs of [0] and [1, 2], merged: the same numbers as one job of
    all three (what metalearn.replicates_per_job changes)."""
    cfg = meta_cfg(outer_steps=2, replicates=3)

    def job(name, replicates):
        paths = tmp_path / name / "params.pt", tmp_path / name / "history.npz"
        save_result(tiny_problem, meta_learn(tiny_problem, tiny_data, cfg, replicates=replicates),
                    *paths)
        return paths

    whole = job("whole", [0, 1, 2])
    blocks = [job("first", [0]), job("rest", [1, 2])]
    merged = tmp_path / "merged" / "params.pt", tmp_path / "merged" / "history.npz"
    merge_results(*zip(*blocks), *merged)
    a, b = load_params(whole[0]), load_params(merged[0])
    assert b["replicates"] == [0, 1, 2] and set(a) == set(b)
    assert all(torch.equal(a["phi"][k], b["phi"][k]) for k in a["phi"])
    with np.load(whole[1]) as x, np.load(merged[1]) as y:
        assert set(x.files) == set(y.files)
        assert all(np.array_equal(x[k], y[k]) for k in x.files)
    with pytest.raises(ValueError, match="occur twice"):
        merge_results([whole[0], blocks[0][0]], [whole[1], blocks[0][1]], *merged)
