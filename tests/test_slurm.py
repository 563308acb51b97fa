"""The workflow on a real SLURM cluster (`ci/slurm-cluster.sh start` makes one on this
machine): one study of the smoke configuration through `--profile workflow/profiles/slurm`,
every job through the scheduler, its result table equal to that of a local run.
Skipped when no cluster answers `sinfo`."""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
SMOKE = ["--configfile", str(ROOT / "tests/smoke.yaml")]
TARGET = "van_der_pol_sin/train/paper/r1/mixed/w20/seeds2-3.csv"   # data, metalearn ×2, merge, capture, train


def no_cluster() -> str | None:
    """Why no SLURM cluster can be used from here, or None if one answers."""
    if shutil.which("sinfo") is None:
        return "no SLURM cluster: sinfo not found (start one: ci/slurm-cluster.sh start)"
    try:
        sinfo = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True,
                               timeout=30)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster: sinfo timed out"
    if sinfo.returncode != 0 or "up" not in sinfo.stdout.split():
        return f"no SLURM cluster: sinfo: {(sinfo.stderr or sinfo.stdout).strip()}"
    return None


NO_CLUSTER = no_cluster()
pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(NO_CLUSTER is not None, reason=NO_CLUSTER or "")]


def snakemake(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*SNAKEMAKE, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_smoke_study_runs_through_slurm_and_equals_the_local_run(tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    # Both at once (the cluster run mostly waits for the scheduler). The cluster run uses
    # the profile as shipped; only its status polling is made fast (default: 40 s and up).
    local_run = snakemake(f"{local}/{TARGET}", "--cores", "2", *SMOKE, "--config",
                          f"results={local}")
    cluster_run = snakemake(f"{cluster}/{TARGET}", "--profile", "workflow/profiles/slurm",
                            *SMOKE, "--config", f"results={cluster}",
                            "--slurm-init-seconds-before-status-checks", "1",
                            "--seconds-between-status-checks", "1")
    try:
        log = cluster_run.communicate(timeout=600)[0]
        local_log = local_run.communicate(timeout=600)[0]
    finally:
        for run in (cluster_run, local_run):   # on a timeout: cancel the jobs, stop
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
                try:
                    run.wait(60)
                except subprocess.TimeoutExpired:
                    run.kill()
    assert cluster_run.returncode == 0, log[-3000:]
    assert local_run.returncode == 0, local_log[-3000:]

    # Every SLURM job the run submitted, as the scheduler reports it. Jobs are named by the
    # plugin's run id; finished ones stay in squeue for MinJobAge (1 h on the test cluster).
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    squeue = subprocess.run(["squeue", "--states=all", "--noheader", "--name", run_id,
                             "--format=%i|%T|%k|%C"], capture_output=True, text=True,
                            check=True).stdout
    jobs = {job: (state, comment, int(cpus)) for job, state, comment, cpus in
            (line.split("|") for line in squeue.splitlines())}
    assert set(jobs) == submitted
    assert {state for state, _, _ in jobs.values()} == {"COMPLETED"}
    # 6 Snakemake jobs in 5 SLURM jobs: each replicate's meta-learning on its own, the merge
    # and the capture one group, the training block another (of the group that also holds a
    # study's baselines and gather); CPUs as the rules' threads (1 each), as
    # locally.
    assert sorted((comment, cpus) for _, comment, cpus in jobs.values()) == [
        ("rule_capture_capture_metalearn_merge", 1),
        ("rule_data_wildcards_van_der_pol", 1),
        ("rule_metalearn_wildcards_van_der_pol_sin_0_0", 1),
        ("rule_metalearn_wildcards_van_der_pol_sin_1_1", 1),
        ("rule_train_train", 1),
    ]

    assert (cluster / TARGET).read_bytes() == (local / TARGET).read_bytes()
