"""Hénon–Heiles orbits for a Hamiltonian network: (q, p) → H, whose field (∂H/∂p, −∂H/∂q)
is fitted to (q̇, ṗ) by MSE (Eq. 6). Same data as `henon_heiles` (p = q̇)."""
from ldnn.physics import henon_heiles
from ldnn.tasks import Task, mse, mse_metrics

TASK = Task(name="henon_heiles_hnn", n_in=4, n_out=1, loss=mse, metrics=mse_metrics,
            metric_names=("test_loss",), hamiltonian=True, dataset="henon_heiles",
            exact_degree=2, energy=henon_heiles.energy)
