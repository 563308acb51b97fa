"""The Snakemake workflow: lint, planned jobs, config errors, and the smoke run end to end."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def snakemake(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def planned_outputs(stdout: str, pattern: str) -> list[str]:
    """Outputs of the planned jobs in a dry run that match `pattern`."""
    lines = re.findall(r"^    output: (.+)$", stdout, flags=re.M)
    return [path for line in lines for path in line.split(", ") if re.search(pattern, path)]


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_paper_config_plans_metalearning_six_arms_eight_replicates_of_six_seeds_and_fig3(tmp_path):
    result = snakemake("-n", "--config", f"results={tmp_path}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert len(planned_outputs(out, r"mnist1d_sin/metalearn/params\.pt$")) == 1
    assert sorted(planned_outputs(out, r"figures/.*fig3\.png$")) == [
        f"{tmp_path}/figures/converged/fig3.png", f"{tmp_path}/figures/paper/fig3.png"]
    seeds: dict[tuple[str, str, int], set[int]] = {}
    for path in planned_outputs(out, r"/train/.*\.csv$"):
        if "/mnist1d_sin/" not in path:
            continue
        protocol, replicate, arm, first, last = re.search(
            r"train/(\w+)/r(\d+)/(\w+)/w100/seeds(\d+)-(\d+)\.csv", path).groups()
        seeds.setdefault((protocol, arm, int(replicate)), set()).update(
            range(int(first), int(last) + 1))
    assert seeds == {(protocol, arm, r): set(range(6 * r, 6 * r + 6))
                     for protocol in ("paper", "converged") for r in range(8)
                     for arm in ["relu", "tanh", "sin", "type1", "type2", "mixed"]}
    assert len(planned_outputs(out, r"mnist1d_sin/activations/r\d\.npz$")) == 8
    assert len(planned_outputs(out, r"/baselines\.csv$")) == 6
    assert not any(tmp_path.iterdir())


def test_fig9_needs_nothing_and_hessian_only_the_fig3_training(tmp_path):
    result = snakemake("-n", "fig9", "--config", f"results={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert planned_outputs(result.stdout, ".") == [f"{tmp_path}/figures/fig9.png",
                                                   f"{tmp_path}/figures/fig9.pdf"]
    result = snakemake("-n", "hessian", "--config", f"results={tmp_path}")
    studies = {Path(p).relative_to(tmp_path).parts[0]
               for p in planned_outputs(result.stdout, r"/train/")}
    assert studies == {"mnist1d_sin"}
    assert len(planned_outputs(result.stdout, r"/train/paper/.*\.pt$")) == 3 * 8
    assert not planned_outputs(result.stdout, r"/train/converged/")
    assert len(planned_outputs(result.stdout, r"hessian/\w+\.csv$")) == 3


@pytest.mark.parametrize("target, studies, dataset, others", [
    ("fig5", ["van_der_pol_sin"], "van_der_pol", r"mnist1d|henon_heiles|pendulum|fig[367]"),
    ("fig6", ["henon_heiles_hnn_sin", "henon_heiles_sin"], "henon_heiles",
     r"mnist1d|van_der_pol|pendulum|fig[357]"),
    ("fig7", ["pendulum_sin"], "pendulum", r"mnist1d|van_der_pol|henon_heiles|fig[356]"),
])
def test_physics_figure_targets_plan_only_what_they_need(tmp_path, target, studies, dataset,
                                                          others):
    result = snakemake("-n", target, "--config", f"results={tmp_path}")
    assert result.returncode == 0, result.stderr
    metalearn = planned_outputs(result.stdout, r"metalearn/params\.pt$")
    assert sorted(Path(p).parts[-3] for p in metalearn) == studies
    assert planned_outputs(result.stdout, r"data/") == [f"{tmp_path}/data/{dataset}.npz"]
    # 4 arms × 8 replicates × 2 protocols
    assert len(planned_outputs(result.stdout, r"/train/.*\.csv$")) == len(studies) * 4 * 8 * 2
    assert not planned_outputs(result.stdout, others)


@pytest.mark.parametrize("override, key", [
    ("metalearn={outer_steps: -1}", "metalearn.outer_steps"),
    ("metalearn={meta_gradient: third_order}", "metalearn.meta_gradient"),
    ("train={bogus: 1}", "train.bogus"),
    ("train={converged: {optimizer: lion}}", "train.converged.optimizer"),
    ("train={protocols: [paper, longest]}", "train.protocols.1"),
    ("activation={low: 5, high: -5}", "activation.low"),
])
def test_invalid_config_stops_before_any_job_naming_the_key(tmp_path, override, key):
    result = snakemake("-n", "--config", f"results={tmp_path}", override)
    assert result.returncode != 0
    output = (result.stdout + result.stderr).splitlines()
    message = [line for line in output if line.startswith("config key")]
    assert len(message) == 1 and f"'{key}'" in message[0]
    assert not any(tmp_path.iterdir())


SMOKE = ["--configfile", str(ROOT / "tests/smoke.yaml")]


@pytest.fixture(scope="module")
def smoke(smoke_run) -> Path:
    """The results folder of the session's smoke run (conftest.smoke_run), relative to the
    checkout as the run's records name it."""
    return smoke_run.results


@pytest.mark.slow
def test_smoke_configuration_runs_end_to_end(smoke):
    results = smoke
    for name in ("fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "hessian"):
        folders = {"fig9": ["."], "hessian": ["."], "fig3": ["paper", "converged"],
                   "fig8": ["paper", "converged"]}.get(name, ["paper"])
        for folder in folders:
            for suffix in (".png", ".pdf"):
                assert (results / "figures" / folder / (name + suffix)).stat().st_size > 10_000
    baselines = {"van_der_pol_sin": ["affine", "mean", "poly3"],
                 "henon_heiles_sin": ["affine", "mean", "poly2"],
                 "henon_heiles_hnn_sin": ["affine", "mean", "poly2"],
                 "pendulum_sin": ["affine", "mean"]}
    for study, names in baselines.items():
        table = pd.read_csv(results / study / "results.csv")
        physics = table[table.protocol != "baseline"]
        assert sorted(table[table.protocol == "baseline"].arm) == names
        assert sorted(set(physics.arm)) == ["mixed", "sin", "type1", "type2"]
        protocols = ["converged", "paper"] if study == "henon_heiles_hnn_sin" else ["paper"]
        assert physics.groupby("protocol").size().to_dict() == {p: 16 for p in protocols}
        assert not physics.diverged.any()
        for column in ("test_loss", "forecast_euler", "forecast_rk4", "affine_ratio"):
            assert (table[column] > 0).all() and np.isfinite(table[column]).all()
        assert (table.affine_ratio[table.arm == "affine"] == 1).all()
        assert ("energy_drift" in table) == study.startswith("henon_heiles")
    converged = pd.read_csv(results / "henon_heiles_hnn_sin/results.csv").query(
        "protocol == 'converged'")
    assert (converged.epochs_run <= 8).all() and (converged.best_epoch <= converged.epochs_run
                                                  ).all()
    assert converged.validation_loss.notna().all()
    hessian = pd.read_csv(results / "mnist1d_sin/hessian.csv")
    assert sorted(set(hessian.arm)) == ["mixed", "type1", "type2"] and len(hessian) == 3 * 4
    assert hessian.groupby("arm").replicate.apply(sorted).map(list).eq([[0, 0, 1, 1]] * 3).all()
    assert (hessian.trace_method == "exact").all() and (hessian.trace_standard_error == 0).all()
    assert (hessian.largest > hessian.smallest).all()
    sweep = pd.read_csv(results / "mnist1d_zero/results.csv")
    sweep = sweep[sweep.protocol == "paper"]
    assert sorted(set(sweep.width)) == [10, 20] and len(sweep) == 4 * 2 * 4
    assert sweep.participation.between(0, 1).all()
    markers = pd.read_csv(results / "pendulum/markers.csv")
    assert list(markers.columns) == ["frame", "blue_x", "blue_y", "red_x", "red_y"]
    assert list(np.flatnonzero(markers.red_x.isna())) == [60, 61, 62]      # the occlusion
    assert pd.read_csv(results / "pendulum/angles.csv").interpolated.sum() == 3
    with np.load(results / "henon_heiles_hnn_sin/activations/r0.npz") as table:
        assert table["slopes"].shape == table["values"].shape == (2, 100)
    table = pd.read_csv(results / "mnist1d_sin/results.csv")
    assert len(table) == 2 * 6 * 4 + 1
    assert set(table.arm) == {"relu", "tanh", "sin", "type1", "type2", "mixed", "logistic"}
    assert list(table.columns) == ["study", "task", "protocol", "replicate", "arm", "width", "seed",
                                   "test_loss", "test_accuracy", "train_loss", "participation",
                                   "validation_loss", "train_change", "epochs_run", "best_epoch",
                                   "unconverged", "diverged"]
    networks = table[table.protocol != "baseline"]
    assert networks.groupby(["protocol", "arm"]).seed.apply(sorted).map(list).eq(
        [[0, 1, 2, 3]] * 12).all()
    assert table.test_accuracy.between(0, 1).all()
    with np.load(results / "mnist1d_sin/metalearn/history.npz") as history:
        assert history["replicates"].tolist() == [0, 1]      # metalearn.replicates: 2
        assert history["outer_loss"].shape == (2, 4)
        assert history["snapshots"].shape == (2, 3, 2, 100)
        assert not np.array_equal(history["snapshots"][0], history["snapshots"][1])
    assert not list((results / "mnist1d_sin/metalearn").glob("*/checkpoint.pt"))
    assert (results / "config.resolved.yaml").exists()


def planned_jobs(results: Path, target: str = "all", *changes: str) -> str:
    """The dry run's output for `target` of the smoke configuration with config `changes`."""
    run = snakemake("-n", target, *SMOKE, "--config", f"results={results}", *changes)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("target", ["fig3", "fig6", "all"])
def test_finished_run_has_nothing_to_do(smoke, target):
    assert "Nothing to be done" in planned_jobs(smoke, target)


@pytest.mark.slow
def test_a_plotting_setting_reruns_only_its_figure(smoke):
    out = planned_jobs(smoke, "all", "figures={fig3: {dpi: 61}}")
    assert sorted(planned_outputs(out, ".")) == [
        f"{smoke}/figures/{protocol}/fig3.{suffix}" for protocol in ("converged", "paper")
        for suffix in ("pdf", "png")]


@pytest.mark.slow
def test_training_epochs_rerun_training_and_what_follows_not_data_or_metalearning(smoke):
    out = planned_jobs(smoke, "all", "train={paper: {epochs: 4}}")
    planned = planned_outputs(out, ".")
    # 2 replicates × (mnist1d_sin 6 arms, 4 physics studies × 4 arms, mnist1d_zero 4 arms ×
    # 2 widths)
    assert len(planned_outputs(out, r"/train/paper/.*\.csv$")) == 2 * (6 + 4 * 4 + 4 * 2)
    assert not planned_outputs(out, r"/train/converged/|/baselines\.csv")
    assert f"{smoke}/figures/paper/fig3.png" in planned
    assert f"{smoke}/mnist1d_sin/hessian.csv" in planned
    assert not planned_outputs(out, r"/data/|/metalearn/|/activations/|/pendulum/")


@pytest.mark.slow
def test_a_converged_setting_reruns_only_converged_training_and_what_follows(smoke):
    out = planned_jobs(smoke, "all", "train={converged: {patience: 3}}")
    # the studies that train converged in the smoke run: mnist1d_sin and the HNN
    assert len(planned_outputs(out, r"/train/converged/.*\.csv$")) == 2 * (6 + 4)
    assert not planned_outputs(out, r"/train/paper/|/hessian|/data/|/metalearn/|/baselines")
    assert f"{smoke}/figures/converged/fig3.png" in planned_outputs(out, ".")
    assert f"{smoke}/claims.csv" in planned_outputs(out, ".")


@pytest.mark.slow
def test_a_rerun_from_scratch_on_one_core_gives_the_same_bytes(smoke, tmp_path):
    """Same config, one core instead of two, a fresh folder: the learned activations, a
    training block of each protocol and replicate 1, and a Hessian table are byte-identical."""
    files = ["mnist1d_sin/activations/r0.npz", "mnist1d_sin/train/converged/r1/mixed/w20/seeds2-3.csv",
             "mnist1d_sin/hessian/mixed.csv", "van_der_pol_sin/train/paper/r0/sin/w20/seeds0-1.csv"]
    again = tmp_path / "again"
    run = snakemake(*[f"{again}/{f}" for f in files], "--cores", "1", *SMOKE, "--config",
                    f"results={again}")
    assert run.returncode == 0, run.stderr[-3000:]
    for name in files:
        assert (again / name).read_bytes() == (smoke / name).read_bytes(), name


def test_between_workflow_cache_serves_data_and_metalearning_to_another_checkout(tmp_path):
    target = "{}/mnist1d_sin/activations/r0.npz"
    (tmp_path / "cache").mkdir()
    outputs = {}
    for name in ("first", "second"):
        results = tmp_path / name
        run = subprocess.run([*SNAKEMAKE, target.format(results), "--cores", "2", *SMOKE,
                              "--config", f"results={results}", "--cache", "data", "metalearn"],
                             cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(tmp_path / "cache")})
        assert run.returncode == 0, run.stderr[-3000:]
        outputs[name] = run.stdout + run.stderr
    stored = re.findall(r"Moving output file (\S+) to cache", outputs["first"])
    fetched = re.findall(r"Symlinking output file (\S+) from cache", outputs["second"])
    for paths in (stored, fetched):
        assert sorted(Path(p).name for p in paths) == [   # one meta-learning job per replicate
            "history.npz", "history.npz", "mnist1d.npz", "params.pt", "params.pt"]
    assert "to cache" not in outputs["second"]
    assert ((tmp_path / "first/mnist1d_sin/activations/r0.npz").read_bytes()
            == (tmp_path / "second/mnist1d_sin/activations/r0.npz").read_bytes())


@pytest.mark.slow
def test_killed_metalearning_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL the whole workflow once a checkpoint of one of the study's meta-learning jobs
    (one per replicate) exists; unlock, rerun: the learned activations and history equal
    those of an uninterrupted run, bit for bit."""
    import torch

    target = "{results}/mnist1d_sin/metalearn/params.pt"
    settings = ["--configfile", str(ROOT / "tests/smoke.yaml"), "--cores", "1"]
    meta = "metalearn={outer_steps: 60, checkpoint_every: 5, inner_epochs: 2, batch_size: 100}"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run = snakemake(target.format(results=straight), *settings, "--config",
                    f"results={straight}", meta)
    assert run.returncode == 0, run.stderr[-2000:]

    command = [*SNAKEMAKE, target.format(results=killed), *settings, "--config",
               f"results={killed}", meta]
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    jobs = killed / "mnist1d_sin/metalearn"
    deadline = time.time() + 300
    while not list(jobs.glob("*/checkpoint.pt")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    (checkpoint,) = jobs.glob("*/checkpoint.pt")
    assert not (jobs / "params.pt").exists() and not (checkpoint.parent / "params.pt").exists()

    assert snakemake(*settings, "--config", f"results={killed}", "--unlock").returncode == 0
    rerun = snakemake(target.format(results=killed), *settings, "--config",
                      f"results={killed}", meta, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    log = (killed / f"logs/metalearn/mnist1d_sin_{checkpoint.parent.name}.log").read_text()
    assert "resuming from checkpoint" in log
    a = torch.load(straight / "mnist1d_sin/metalearn/params.pt", weights_only=True)["phi"]
    b = torch.load(killed / "mnist1d_sin/metalearn/params.pt", weights_only=True)["phi"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with np.load(straight / "mnist1d_sin/metalearn/history.npz") as x, \
            np.load(killed / "mnist1d_sin/metalearn/history.npz") as y:
        assert all(np.array_equal(x[k], y[k]) for k in x.files)


@pytest.mark.slow
def test_killed_training_block_leaves_nothing_and_reruns_to_the_same_bytes(tmp_path):
    target = "{}/mnist1d_sin/train/paper/r0/mixed/w20/seeds0-1.csv"
    settings = [*SMOKE, "--cores", "1"]
    train = "train={paper: {epochs: 200}}"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run = snakemake(target.format(straight), *settings, "--config", f"results={straight}", train)
    assert run.returncode == 0, run.stderr[-2000:]

    job = subprocess.Popen([*SNAKEMAKE, target.format(killed), *settings, "--config",
                            f"results={killed}", train], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    log = killed / "logs/train/mnist1d_sin/paper/r0_mixed_w20_seeds0-1.log"
    deadline = time.time() + 300
    while "epoch" not in (log.read_text() if log.exists() else "") and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    block = killed / "mnist1d_sin/train/paper/r0/mixed/w20"
    assert "epoch" in log.read_text() and not any(block.iterdir())

    assert snakemake(*settings, "--config", f"results={killed}", "--unlock").returncode == 0
    rerun = snakemake(target.format(killed), *settings, "--config", f"results={killed}", train,
                      "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for name in ("seeds0-1.csv", "seeds0-1.pt"):
        assert (block / name).read_bytes() == (straight / block.relative_to(killed) / name
                                               ).read_bytes()


@pytest.mark.slow
def test_smoke_run_has_the_claims_and_a_report_with_every_figure(smoke, tmp_path):
    import base64

    table = pd.read_csv(smoke / "claims.csv")
    assert set(table.figure) == {"Fig. 3", "Fig. 4", "Fig. 5", "Fig. 6", "Fig. 7", "Fig. 8",
                                 "Hessian"}
    # (3 arms and the best type) against mixed × 2 widths × 2 designs
    assert len(table[table.figure == "Fig. 4"]) == 4 * 2 * 2
    assert set(table.design) == {"pooled", "replicates"}
    assert (table[table.design == "replicates"].replicates == 2).all()
    assert set(table.protocol) == {"paper", "converged"}
    assert set(table[table.figure.isin(["Fig. 4", "Hessian"])].protocol) == {"paper"}
    seeds = 4                                                     # 2 replicates × 2 seeds
    assert (table.n_a + table.diverged_a == seeds).all()
    assert (table.n_b + table.diverged_b == seeds).all()
    pooled, replicates = (table[table.design == d] for d in ("pooled", "replicates"))
    assert set(pooled.verdict) <= {"reproduced", "not reproduced", "inconclusive"}
    assert set(replicates.verdict) == {"too few replicates"}           # K = 2 < 5
    assert replicates.p_holm.isna().all()
    assert (table.p.dropna() > 0).all() and table.p_method.dropna().str.len().gt(0).all()
    assert (replicates.p_floor == 0.25).all()                        # 2^-K
    text = (smoke / "claims.md").read_text()
    shown = [line for line in text.splitlines()
             if line.startswith(("| Fig", "| Hessian"))]
    assert len(shown) == len(table) + len(table.drop_duplicates(["figure", "claim"]))

    report = tmp_path / "report.html"
    run = snakemake(*SMOKE, "--config", f"results={smoke}", "--report", str(report))
    assert run.returncode == 0, run.stderr[-3000:]
    embedded = [base64.b64decode(data) for data in re.findall(
        r"data:[\w/+.-]+;charset=utf8;filename=[^;]+;base64,([A-Za-z0-9+/=]+)",
        report.read_text())]                                      # self-contained: data URLs
    files = [smoke / "figures" / f"{name}.png" for name in ("fig9", "hessian")]
    files += [smoke / "figures" / protocol / f"{name}.png" for protocol in ("paper", "converged")
              for name in ("fig3", "fig8")]
    files += [smoke / "figures/paper" / f"{name}.png" for name in ("fig4", "fig5", "fig6",
                                                                   "fig7")]
    files += [smoke / "claims.csv"]
    for path in files:
        assert path.read_bytes() in embedded, path


@pytest.mark.slow
def test_summary_page_is_the_summary_of_the_run_tables(smoke):
    from ldnn.summary import summary, tracking_error

    names = ["mnist1d_sin", "van_der_pol_sin", "henon_heiles_sin", "henon_heiles_hnn_sin",
             "mnist1d_zero", "pendulum_sin"]
    expected = summary({n: pd.read_csv(smoke / n / "results.csv") for n in names},
                       pd.read_csv(smoke / "mnist1d_sin/hessian.csv"),
                       pd.read_csv(smoke / "claims.csv"),
                       tracking_error(pd.read_csv(smoke / "pendulum/markers.csv"),
                                      pd.read_csv(smoke / "pendulum/synthetic/truth.csv")))
    text = (smoke / "summary.md").read_text()
    assert text == expected
    for name in names:
        assert f"## {name} (" in text
    assert "| baseline | – | affine |" in text and "| converged | 20 | mixed |" in text
    assert "Tracking the synthetic pendulum clock" in text
