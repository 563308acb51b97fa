"""A run in pieces (ldnn.archive) on the session's smoke run: restoring into a fresh copy of
the checkout plans exactly the unfinished jobs, a complete run plans nothing and redraws its
figures without training, a changed rule is replanned, a damaged archive restores nothing."""
from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, planned_outputs
from ldnn import archive
from ldnn.provenance import RuleCode, rule_code

pytestmark = pytest.mark.slow


def fresh_copy(where: Path) -> Path:
    """The checkout's files as a fresh clone has them (no results, no .snakemake; no runs/
    either, to keep it small)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if (ROOT / name).is_file() and not name.startswith("runs/"):
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, where / name)
    return where


@pytest.fixture
def run(smoke_run):
    if smoke_run.pieces is None:
        pytest.skip("LDNN_SMOKE_RESULTS: no archived run")
    return smoke_run


def test_first_piece_restored_plans_exactly_the_unfinished_jobs(run, tmp_path):
    copy = fresh_copy(tmp_path)
    lines = archive.restore(copy, run.first_piece)
    assert lines[0].startswith("restore: ") and not any("not restored" in l for l in lines)
    args = archive.manifests(run.first_piece)[-1]["snakemake_args"]
    assert planned_outputs(copy, args) == run.unfinished


def test_complete_run_restored_has_nothing_to_do_and_redraws_only_figures(run, tmp_path):
    copy = fresh_copy(tmp_path)
    pieces = archive.manifests(run.pieces)
    assert [m["piece"] for m in pieces] == [1, 2]
    assert any(e["rebuild"] for m in pieces for e in m["files"])           # the clock video
    assert any(e["path"].endswith(".pt") and not e["stored"] for m in pieces for e in m["files"])
    archive.restore(copy, run.pieces)
    args = pieces[-1]["snakemake_args"]
    assert archive.plan(copy, args) == {}
    video = copy / run.results / "pendulum/synthetic/video.mp4"
    assert archive.sha256(video) == next(e["sha256"] for m in pieces for e in m["files"]
                                         if e["path"].endswith("video.mp4"))

    redraw = archive.plan(copy, args, "--forcerun", *archive.FIGURE_RULES[:-1])
    assert set(redraw) <= set(archive.FIGURE_RULES) and "fig3" in redraw
    table = copy / run.results / "mnist1d_sin/results.csv"
    before = table.stat().st_mtime_ns
    lines = archive.figures(copy, run.pieces, "2")
    assert lines[-1].startswith("figures: ")
    assert table.stat().st_mtime_ns == before
    assert (copy / run.results / "figures/paper/fig3.png").stat().st_mtime_ns > before
    assert (copy / run.results / "report.html").stat().st_size > 100_000


def test_the_compiled_kernels_sources_count_in_the_code_of_the_rules_that_run_them():
    """Each kernel's source and their shared header count for the rules that run it, and
    only for those (stages' module-level imports count where the stage functions use them)."""
    code = rule_code(ROOT)
    kernels = {rule: {p for p in code[rule].files if p.startswith("ldnn/csrc/")}
               for rule in ("metalearn", "train", "claims")}
    assert kernels["metalearn"] == {"ldnn/csrc/inner_loop.cpp", "ldnn/csrc/dense.h"}
    assert kernels["train"] == {"ldnn/csrc/frozen_training.cpp", "ldnn/csrc/dense.h"}
    assert not kernels["claims"] and "ldnn/training.py" not in code["metalearn"].files


def test_code_counts_as_changed_only_where_a_file_that_counts_now_differs():
    """A file only the recorded code counted (an archive made by a coarser analysis) does
    not matter; a file the recorded code lacks, or with another hash, does."""
    recorded = {"a.py": "1", "b.py": "2"}
    assert RuleCode({"a.py": "1"}).changed_since(recorded) == []
    assert RuleCode({"a.py": "1", "c.cpp": "3"}).changed_since(recorded) == ["c.cpp"]
    assert RuleCode({"a.py": "9", "b.py": "2"}).changed_since(recorded) == ["a.py"]


def test_changed_code_is_replanned_with_one_line_per_rule(run, tmp_path):
    copy = fresh_copy(tmp_path)
    with open(copy / "workflow/scripts/fig9.py", "a") as f:
        f.write("\nassert True\n")
    with open(copy / "ldnn/analysis/replicates.py", "a") as f:
        f.write("\n\ndef unused() -> None:\n    pass\n")
    assert rule_code(copy)["claims"].changed_since(rule_code(ROOT)["claims"].files) == [
        "ldnn/analysis/replicates.py"]
    lines = archive.restore(copy, run.pieces)
    assert "restore: rule fig9: 1 jobs not restored, code changed (workflow/scripts/fig9.py)" in lines
    assert any(l.startswith("restore: rule claims: 1 jobs not restored, code changed") for l in lines)
    planned = archive.plan(copy, archive.manifests(run.pieces)[-1]["snakemake_args"])
    assert {"fig9", "claims"} <= set(planned) <= {"fig9", "claims", "summary", "all"}


def corrupt_member(run: Path, into: Path) -> str:
    """A copy of `run` whose last piece has one member changed (its manifest updated for the
    archive but not for the member); the member's path."""
    shutil.copytree(run, into)
    manifest_path = sorted((into / "pieces").glob("*.json"))[-1]
    manifest = json.loads(manifest_path.read_text())
    tar_path = into / "pieces" / manifest["archive"]
    victim = next(e["path"] for e in manifest["files"] if e["stored"] and e["path"].endswith(".csv"))
    work = into / "unpacked"
    with tarfile.open(tar_path) as tar:
        tar.extractall(work, filter="data")
    with open(work / victim, "a") as f:
        f.write("0\n")
    with tarfile.open(tar_path, "w:xz") as tar:
        for e in manifest["files"]:
            if e["stored"]:
                tar.add(work / e["path"], arcname=e["path"])
    shutil.rmtree(work)
    manifest["archive_sha256"] = archive.sha256(tar_path)
    manifest_path.write_text(json.dumps(manifest))
    return victim


def test_a_damaged_archive_is_a_one_line_error_and_restores_nothing(run, tmp_path):
    copy = fresh_copy(tmp_path / "copy")
    victim = corrupt_member(run.pieces, tmp_path / "member")
    with pytest.raises(archive.ArchiveError, match=f"member {victim} is missing or its sha256"):
        archive.restore(copy, tmp_path / "member")
    truncated = tmp_path / "truncated"
    shutil.copytree(run.pieces, truncated)
    tar_path = truncated / "pieces/001.tar.xz"
    tar_path.write_bytes(tar_path.read_bytes()[:-1000])
    with pytest.raises(archive.ArchiveError, match="001.tar.xz: missing or its sha256 differs"):
        archive.restore(copy, truncated)
    assert archive.main(["restore", "--run", str(truncated), "--checkout", str(copy)]) == 1
    assert not (copy / run.results).exists() and not list(copy.glob(".restore-*"))
    assert not (copy / ".snakemake/metadata").exists()
