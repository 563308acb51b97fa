"""Shared tiny fixtures: a synthetic 40-feature, 10-class problem in float64.

The shapes match ldnn.tasks.mnist1d.TASK (n_in=40, n_out=10) so its loss and metrics
can be reused, but there are only 60 training and 30 test examples so every test runs
in well under a second on one core.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from ldnn import archive
from ldnn.config import ActivationConfig, MetaConfig, TrainConfig
from ldnn.metalearn import MetaProblem
from ldnn.tasks import TaskData
from ldnn.tasks.mnist1d import TASK
from ldnn.workflow_state import dry_run

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
                       checkpoint_every=2, seed=0, replicates=1,
                       replicates_per_job=1)

BASE_TRAIN = TrainConfig(protocol="paper", optimizer="sgd", lr=0.05, momentum=0.8,
                         schedule="constant", epochs=3, validation=0, patience=0,
                         min_improvement=0, batch_size=20, seed=0, forecast_horizon=1.0,
                         unconverged_change=0.01, compiled=True)


@pytest.fixture
def meta_cfg():
    """A factory: meta_cfg(**changes) → a tiny MetaConfig."""
    return lambda **changes: dataclasses.replace(BASE_META, **changes)


@pytest.fixture
def train_cfg():
    """A factory: train_cfg(**changes) → a tiny TrainConfig."""
    return lambda **changes: dataclasses.replace(BASE_TRAIN, **changes)


ROOT = Path(__file__).resolve().parents[1]
SMOKE_RESULTS = "results/smoke-test"    # relative: Snakemake keys its records by this path
SMOKE_ARGS = ["--configfile", "tests/smoke.yaml", "--config", f"results={SMOKE_RESULTS}",
              "--max-jobs-per-timespan", "10000/1d"]


@dataclasses.dataclass(frozen=True)
class SmokeRun:
    """The smoke run in this checkout: its results folder (relative to the checkout), the
    run folder after the first piece and after both, and the outputs the checkout still
    planned when the first piece ended."""
    results: Path
    first_piece: Path | None
    pieces: Path | None
    unfinished: list[str]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """One complete smoke run on 2 cores with the local profile, as `make smoke` runs it,
    made in two pieces: stopped at a deadline partway and archived, then finished and
    archived. Outputs over 1 MB (the clock video) are left to be rebuilt on restore. Its
    schedule re-evaluations wait a day: it exits only if the workflow cancels them at its
    end. LDNN_SMOKE_RESULTS: an earlier smoke run's folder to check again instead (the
    archive tests are then skipped)."""
    if os.environ.get("LDNN_SMOKE_RESULTS"):
        return SmokeRun(Path(os.environ["LDNN_SMOKE_RESULTS"]), None, None, [])
    shutil.rmtree(ROOT / SMOKE_RESULTS, ignore_errors=True)
    runs = tmp_path_factory.mktemp("runs")
    first, both = runs / "first", runs / "smoke"
    stored = archive.MAX_STORED
    archive.MAX_STORED = 2**20
    try:
        code = archive.run_to_deadline(ROOT, both, 40 / 3600, "2", SMOKE_ARGS, dirty_ok=True)
        shutil.copytree(both, first)
        unfinished = planned_outputs(ROOT, SMOKE_ARGS)
        assert code != 0 and unfinished, "the first piece should end at its deadline"
        code = archive.run_to_deadline(ROOT, both, 0.5, "2", SMOKE_ARGS, dirty_ok=True)
        assert code == 0, "the smoke run did not finish"
    finally:
        archive.MAX_STORED = stored
    return SmokeRun(Path(SMOKE_RESULTS), first, both, unfinished)


def planned_outputs(checkout: Path, args: list[str], *options: str) -> list[str]:
    """The outputs of every job a dry run of `all` in `checkout` plans, sorted."""
    out = dry_run(checkout, args, "all", *options)
    return sorted(p for line in re.findall(r"^    output: (.+)$", out, flags=re.M)
                  for p in line.split(", "))
