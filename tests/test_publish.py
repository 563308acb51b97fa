"""Publishing a finished run: commit check, wall time, time per rule and the docs folder."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ldnn.publish import publish

SNAKEMAKE_LOG = """Building DAG of jobs...
[Wed Dec  2 06:33:21 2026]
localrule metalearn:
    output: results/study/metalearn/params.pt
    log: results/logs/metalearn/study.log
    jobid: 1
    wildcards: study=study
[Wed Dec  2 06:33:22 2026]
localrule train:
    log: results/logs/train/study/a.log
    wildcards: study=study, protocol=paper, arm=a
[Wed Dec  2 06:33:23 2026]
rule train:
    input: results/data.npz
    log: results/logs/train/study/b.log
    reason: Missing output files: results/b.csv
    wildcards: study=study, protocol=converged, arm=b
[Wed Dec  2 06:33:23 2026]
localrule train:
    log: results/logs/train/other/c.log
    wildcards: study=other, protocol=paper, arm=c
[Wed Dec  2 06:33:24 2026]
localrule train:
    log: results/logs/train/study/killed.log
[Wed Dec  2 06:33:26 2026]
Finished jobid: 3 (Rule: data)
[Wed Dec  2 08:03:14 2026]
Finished jobid: 1 (Rule: metalearn)
[Wed Dec  2 08:03:15 2026]
localrule gather:
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A committed checkout with a finished run's results, logs and Snakemake logs."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
                        *args], check=True, capture_output=True)

    git("init", "-q")
    write(tmp_path / "Snakefile", "rule all:\n")
    write(tmp_path / "pyproject.toml", '[project]\nversion = "9.9"\n')
    write(tmp_path / "docs/fig3.png", "published before")
    git("add", "Snakefile", "pyproject.toml", "docs")
    git("commit", "-q", "-m", "run")
    results = tmp_path / "results"
    write(results / "summary.md", "# Results\n\nGenerated.\n\n## study\n\n| a |\n")
    write(results / "config.resolved.yaml", "seed: 0\n")
    write(results / "claims.md", "| claim |\n")
    write(results / "logs/metalearn/study.log", "step 1\n06:00:00 ldnn done in 5400.0 s, "
          "peak memory 700 MB\n")
    write(results / "logs/train/study/a.log", "ldnn done in 10.0 s, peak memory 400 MB\n")
    write(results / "logs/train/study/b.log", "ldnn done in 30.5 s, peak memory 500 MB\n")
    write(results / "logs/train/other/c.log", "ldnn done in 20.0 s, peak memory 300 MB\n")
    write(results / "logs/train/study/killed.log", "ldnn epoch 3\n")
    for figure in ("figures/fig9.png", "figures/paper/fig3.png", "figures/converged/fig3.png"):
        write(results / figure, figure)
    write(tmp_path / ".snakemake/log/2026-12-02T063314.775458.snakemake.log", SNAKEMAKE_LOG)
    write(tmp_path / ".snakemake/log/2026-12-02T090000.000000.snakemake.log",
          "Building DAG of jobs...\nNothing to be done.\n")                 # a dry run
    return tmp_path


def test_publish_names_the_commit_and_copies_figures_claims_times_and_config(run):
    docs = run / "docs"
    (docs / "fig3.png").write_text("changed since")             # the published folder may differ
    publish(run / "results", docs, "snakemake --cores 2 all", run)
    commit = subprocess.run(["git", "-C", str(run), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    text = (docs / "results.md").read_text()
    assert f"commit `{commit}`" in text and "`snakemake --cores 2 all`" in text
    # 06:33:14 to the last finished job at 08:03:14; the dry run does not count
    assert "Wall time 1.5 h, summed over 1 Snakemake invocation " in text
    assert text.count("# Results") == 1 and "## study\n\n| a |\n" in text
    assert "| metalearn | 1 | 5400 | 5400 | 700 |" in text
    assert "| train | 3 | 60 | 30 | 500 |" in text                      # the killed job left out
    assert ("| study | metalearn | train converged | train paper |\n|---|---|---|---|\n"
            "| other | – | – | 20 |\n| study | 5400 | 30 | 10 |\n") in text
    assert sorted(p.name for p in docs.glob("*.png")) == [           # stale fig3.png removed
        "fig3_converged.png", "fig3_paper.png", "fig9.png"]
    assert (docs / "fig3_paper.png").read_text() == "figures/paper/fig3.png"
    assert "![fig3_paper.png](fig3_paper.png)" in text
    assert (docs / "config.resolved.yaml").read_text() == "seed: 0\n"
    assert (docs / "claims.md").read_text() == "| claim |\n"


def test_publish_refuses_a_modified_checkout_or_an_unfinished_run(run):
    (run / "Snakefile").write_text("changed\n")
    with pytest.raises(SystemExit, match="uncommitted changes.*Snakefile"):
        publish(run / "results", run / "docs", "make reproduce", run)
    (run / "results/summary.md").unlink()
    with pytest.raises(SystemExit, match="summary.md is missing"):
        publish(run / "results", run / "docs", "make reproduce", run)
    assert [p.name for p in (run / "docs").iterdir()] == ["fig3.png"]


def manifest(piece: int, commit: str, logs: dict[str, tuple[str, str]], **times) -> dict:
    """A piece's manifest listing job logs {log: (rule, its job's first output)}."""
    return {"piece": piece, "commit": commit, "ldnn_version": "9.8", "results": "results",
            "jobs_started": 0.0,
            "jobs_ended": 0.0, "wall_s": None, **times,
            "files": [{"path": log, "role": "log", "rule": rule, "job": job}
                      for log, (rule, job) in logs.items()]}


def test_publish_of_an_archived_run_takes_its_times_from_the_pieces(run):
    import json

    commit = subprocess.run(["git", "-C", str(run), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    pieces = run / "runs/paper/pieces"
    pieces.mkdir(parents=True)
    first = manifest(1, commit, {
        "results/logs/metalearn/study.log": ("metalearn", "results/study/metalearn/params.pt"),
        "results/logs/train/study/a.log": ("train", "results/study/train/paper/r0/a/s.csv")},
        wall_s=7200.0)
    second = manifest(2, commit, {
        "results/logs/train/other/c.log": ("train", "results/other/train/converged/r0/c/s.csv"),
        "results/logs/train/study/killed.log": ("train", "results/study/train/paper/r1/a/s.csv")},
        jobs_started=1000.0, jobs_ended=4600.0)                    # no wall time recorded
    for m in (first, second):
        (pieces / f"{m['piece']:03d}.json").write_text(json.dumps(m))
    docs = run / "docs"
    publish(run / "results", docs, "make reproduce HOURS=2", run, run / "runs/paper")
    text = (docs / "results.md").read_text()
    assert "Wall time 3.0 h in 2 pieces (2.0, 1.0 h)" in text and "`runs/paper`" in text
    assert "| train | 2 | 30 | 20 | 400 |" in text                 # a.log and c.log only
    assert "| other | – | 20 | – |\n| study | 5400 | – | 10 |\n" in text

    assert f"commit `{commit}` (ldnn 9.8)" in text and "redrawn" not in text

    # Redrawn at a later commit (claims code changed): the page names both.
    for m in (first, second):
        (pieces / f"{m['piece']:03d}.json").write_text(json.dumps(m | {"commit": "0" * 40}))
    publish(run / "results", docs, "make reproduce HOURS=2", run, run / "runs/paper")
    text = (docs / "results.md").read_text()
    assert f"commit `{'0' * 40}` (ldnn 9.8)" in text
    assert f"redrawn from it at commit `{commit}` (ldnn 9.9" in text
    (pieces / "002.json").write_text(json.dumps(second))
    with pytest.raises(SystemExit, match="runs/paper: its pieces name 2 commits, not one"):
        publish(run / "results", docs, "make reproduce", run, run / "runs/paper")
