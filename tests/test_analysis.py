"""Analyses against known answers: participation ratios of known spectra, Hessian trace,
extreme eigenvalues and density against the dense Hessian of a small network, and a
cross-check against PyHessian."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ldnn.analysis.hessian import (density, fraction_below, hutchinson_trace, hvp_function,
                                   lanczos, slq)
from ldnn.analysis.participation import participation_ratio, relative_participation
from ldnn.networks import forward, init_mlp

ATOL_PR = 1e-10            # participation ratio of an exactly constructed spectrum
ATOL_HVP = 1e-12           # Hessian-vector product vs the dense Hessian, float64
ATOL_RITZ = 1e-8           # full Lanczos: Ritz values vs eigenvalues
HUTCHINSON_SIGMAS = 4.0    # trace estimate within this many standard errors of the truth
DENSITY_L1 = 0.15          # ∫|ρ_SLQ − ρ_dense| with 100 probes (Monte-Carlo error ~ 1/√100)
FRACTION_TOL = 0.06        # fraction of small eigenvalues, SLQ vs dense


def orthonormal_columns(m: int, n: int, seed: int = 0) -> torch.Tensor:
    """(m, n) with orthonormal, zero-mean columns."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, n, generator=g, dtype=torch.float64)
    a = a - a.mean(0)
    q, _ = torch.linalg.qr(a)
    return q


@pytest.mark.parametrize("spectrum, expected", [
    ([1.0] * 8, 8.0),                      # isotropic: R = N
    ([5.0] + [0.0] * 7, 1.0),              # rank one: R = 1
    ([1.0, 1.0, 0.0, 0.0], 2.0),
    ([3.0, 1.0], 16.0 / 10.0),             # (Σλ)² / Σλ²
])
def test_participation_ratio_of_known_spectra(spectrum, expected):
    m = 200
    q = orthonormal_columns(m, len(spectrum))
    activity = q * torch.tensor(spectrum, dtype=torch.float64).sqrt() * np.sqrt(m) + 3.0
    assert abs(float(participation_ratio(activity)) - expected) < ATOL_PR
    assert abs(float(relative_participation(activity)) - expected / len(spectrum)) < ATOL_PR


def test_participation_ratio_broadcasts_over_seeds():
    q = orthonormal_columns(100, 4)
    stacked = torch.stack([q, q * torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)])
    torch.testing.assert_close(participation_ratio(stacked),
                               torch.tensor([4.0, 1.0], dtype=torch.float64))


SIZES = [3, 6, 2]


@pytest.fixture(scope="module")
def small_problem():
    """A 3→6→2 tanh network with MSE on random data: flat loss, point, dense Hessian."""
    g = torch.Generator().manual_seed(0)
    params = init_mlp(SIZES, g, torch.float64)
    shapes = [p.shape for p in params]
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    y = torch.randn(30, 2, generator=g, dtype=torch.float64)

    def loss(flat):
        parts = flat.split([s.numel() for s in shapes])
        theta = tuple(p.reshape(s) for p, s in zip(parts, shapes))
        return ((forward(theta, x, torch.tanh, 1) - y) ** 2).mean()

    point = torch.cat([p.reshape(-1) for p in params])
    dense = torch.func.hessian(loss)(point)
    return loss, point, dense, (params, x, y)


def test_hvp_equals_the_dense_hessian(small_problem):
    loss, point, dense, _ = small_problem
    v = torch.randn((3, point.numel()), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    torch.testing.assert_close(hvp_function(loss, point)(v), v @ dense, rtol=0, atol=ATOL_HVP)


def test_hutchinson_trace_within_its_standard_error(small_problem):
    loss, point, dense, _ = small_problem
    estimate = hutchinson_trace(hvp_function(loss, point), point.numel(),
                                torch.Generator().manual_seed(2), relative_error=0.01)
    truth = float(dense.trace())
    assert estimate.standard_error <= 0.01 * abs(estimate.trace) or estimate.probes == 5000
    assert abs(estimate.trace - truth) <= HUTCHINSON_SIGMAS * estimate.standard_error


def test_full_lanczos_recovers_the_spectrum_and_extremes(small_problem):
    loss, point, dense, _ = small_problem
    n = point.numel()
    eigenvalues = torch.linalg.eigvalsh(dense)
    start = torch.randn((2, n), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    alpha, beta = lanczos(hvp_function(loss, point), start, n)
    for a, b in zip(alpha, beta):
        ritz = torch.linalg.eigvalsh(torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1))
        assert abs(float(ritz[0] - eigenvalues[0])) < ATOL_RITZ
        assert abs(float(ritz[-1] - eigenvalues[-1])) < ATOL_RITZ
    short, _ = lanczos(hvp_function(loss, point), start, 15)
    assert short.shape == (2, 15)


def test_slq_density_and_small_fraction_match_the_dense_spectrum(small_problem):
    loss, point, dense, _ = small_problem
    n = point.numel()
    eigenvalues = torch.linalg.eigvalsh(dense)
    nodes, weights = slq(hvp_function(loss, point), n, probes=100, steps=n,
                         generator=torch.Generator().manual_seed(4))
    grid = torch.linspace(float(eigenvalues[0]) - 1, float(eigenvalues[-1]) + 1, 4001,
                          dtype=torch.float64)
    width = 0.05 * float(eigenvalues[-1] - eigenvalues[0])
    ours = density(nodes, weights, grid, width)
    exact = density(eigenvalues[None], torch.full((1, n), 1.0 / n, dtype=torch.float64), grid,
                    width)
    step = float(grid[1] - grid[0])
    assert abs(float(exact.sum()) * step - 1) < 1e-6
    assert float((ours - exact).abs().sum()) * step < DENSITY_L1
    threshold = 0.01 * float(eigenvalues.abs().max())
    truth = float((eigenvalues.abs() < threshold).double().mean())
    assert abs(fraction_below(nodes, weights, threshold) - truth) < FRACTION_TOL


def test_agrees_with_pyhessian(small_problem, monkeypatch):
    """PyHessian (the paper's tool) on the same network as an nn.Module. Its density()
    calls torch.eig, removed from PyTorch; a shim provides it through eigh."""
    pyhessian = pytest.importorskip("pyhessian")
    loss, point, dense, (params, x, y) = small_problem

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterList([torch.nn.Parameter(p.clone()) for p in params])

        def forward(self, inputs):
            return forward(tuple(self.params), inputs, torch.tanh, 1)

    def eig(matrix, eigenvectors=False):
        values, vectors = torch.linalg.eigh(matrix)
        return torch.stack([values, torch.zeros_like(values)], -1), vectors

    monkeypatch.setattr(torch, "eig", eig, raising=False)
    torch.manual_seed(0)
    theirs = pyhessian.hessian(Net().double(), torch.nn.MSELoss(), data=(x, y), cuda=False)
    top, _ = theirs.eigenvalues(maxIter=500, tol=1e-8)
    eigenvalues = torch.linalg.eigvalsh(dense)
    assert abs(top[0] - float(eigenvalues[-1])) < 1e-4 * float(eigenvalues[-1])
    their_trace = float(np.mean(theirs.trace(maxIter=500, tol=1e-3)))
    ours = hutchinson_trace(hvp_function(loss, point), point.numel(),
                            torch.Generator().manual_seed(5), relative_error=0.01)
    assert abs(their_trace - ours.trace) <= 0.05 * abs(float(dense.trace()))
    their_nodes, _ = theirs.density(iter=point.numel(), n_v=2)
    # Full-length Lanczos in both: the extreme quadrature nodes are the extreme eigenvalues.
    for nodes in their_nodes:
        assert abs(max(nodes) - float(eigenvalues[-1])) < 1e-3 * float(eigenvalues[-1])
        assert abs(min(nodes) - float(eigenvalues[0])) < 1e-3 * float(eigenvalues[-1])


# --------------------------------------------------------------------------- Langevin

BOLTZMANN_VARIANCE_TOL = 0.05   # relative, 2000 walkers × 2000 correlated steps
BASIN_FRACTION_TOL = 0.1        # walkers in the flat basin vs Boltzmann (200 walkers: σ ≈ 0.03)


def test_langevin_on_a_harmonic_well_samples_the_boltzmann_distribution():
    """L = k x²/2: the Euler–Maruyama chain's stationary variance is T/k / (1 − ηk/2)
    (exactly, for this discretisation), → T/k, the Boltzmann value, as η → 0."""
    from ldnn.analysis.langevin import langevin

    k, temperature, step = 2.0, 0.3, 0.01
    paths = langevin(lambda x: k * x, np.zeros(1), step, temperature, 2000, 2000,
                     np.random.default_rng(0))
    stationary = paths[:, 1000:, 0]
    expected = temperature / k / (1 - step * k / 2)
    assert abs(stationary.var() / expected - 1) < BOLTZMANN_VARIANCE_TOL
    assert abs(stationary.mean()) < 0.02


def test_two_wells_gradient_matches_finite_differences_and_noise_escapes_the_sharp_well():
    """Started in the sharp minimum, the walkers end up spread between the minima as the
    Boltzmann distribution exp(−L/T) says: mostly in the flat one."""
    from ldnn.analysis.langevin import langevin, two_wells

    loss, gradient = two_wells()
    x = np.random.default_rng(1).normal(size=(5, 2))
    h = 1e-6
    numeric = np.stack([(loss(x + h * e) - loss(x - h * e)) / (2 * h) for e in np.eye(2)], -1)
    np.testing.assert_allclose(gradient(x), numeric, rtol=1e-6, atol=1e-8)
    temperature, flat, radius = 0.2, np.array([1.2, 0.0]), 1.0
    grid = np.stack(np.meshgrid(*[np.linspace(-6, 6, 601)] * 2), -1)
    boltzmann = np.exp(-(loss(grid) - loss(grid).min()) / temperature)
    expected = boltzmann[np.linalg.norm(grid - flat, axis=-1) < radius].sum() / boltzmann.sum()
    paths = langevin(gradient, np.array([-1.0, 0.0]), 0.002, temperature, 20000, 200,
                     np.random.default_rng(2))
    observed = (np.linalg.norm(paths[:, -1] - flat, axis=-1) < radius).mean()
    assert expected > 0.6 and abs(observed - expected) < BASIN_FRACTION_TOL
    quiet = langevin(gradient, np.array([-1.0, 0.0]), 0.002, 1e-6, 2000, 5,
                     np.random.default_rng(3))
    assert np.abs(quiet[:, -1] - [-1.0, 0.0]).max() < 0.01


RTOL_EXACT_TRACE = 1e-12   # closed-form diagonal vs the dense Hessian's, float64


@pytest.mark.parametrize("task_name", ["mnist1d", "van_der_pol"])
@pytest.mark.parametrize("arm", ["tanh", "sin", "relu", "mixed", "mixed_hermite"])
def test_exact_trace_equals_the_dense_hessian_trace(task_name, arm):
    """One hidden layer, cross-entropy or MSE, standard and tabulated (linear, cubic)
    activations: the closed-form trace equals the dense Hessian's."""
    import dataclasses

    from ldnn.activations import arm_activation
    from ldnn.analysis.hessian import exact_trace, exact_trace_supported
    from ldnn.networks import unflatten
    from ldnn.tasks import TaskData, get

    task = get(task_name)
    g = torch.Generator().manual_seed(3)
    sizes = [3, 6, task.n_out]
    params = init_mlp(sizes, g, torch.float64)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = (torch.randint(0, task.n_out, (40,), generator=g) if task.loss_kind == "cross_entropy"
         else torch.randn(40, task.n_out, generator=g, dtype=torch.float64))
    data = TaskData(x, y, x, y)
    grid = torch.linspace(-2, 2, 9, dtype=torch.float64)
    values = torch.stack([torch.sin(grid), torch.tanh(grid)])
    slopes = torch.stack([torch.cos(grid), 1 - torch.tanh(grid) ** 2])
    activation, n_types = arm_activation("mixed" if arm.startswith("mixed") else arm, grid,
                                         values, slopes if arm == "mixed_hermite" else None)
    task = dataclasses.replace(task, n_in=3)
    assert exact_trace_supported(task, params)

    def loss(flat):
        theta = unflatten(flat, params)
        return task.loss(forward(theta, x, activation, n_types), y)

    dense = torch.func.hessian(loss)(torch.cat([p.reshape(-1) for p in params]))
    exact = exact_trace(task, data, params, activation, n_types)
    assert exact == pytest.approx(float(dense.trace()), rel=RTOL_EXACT_TRACE)
