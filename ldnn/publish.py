"""Publish a finished run into a docs folder: its results page headed by the commit and the
command that produced it, its figures and claims table, and the run's time per rule.

    python -m ldnn.publish RESULTS DOCS --command "make reproduce" [--run runs/paper]

Run it in the checkout that produced RESULTS (the commit is read from it and must match its
tracked files), or, with --run, in a checkout of the run's commit where the run's archive
was restored (ldnn.archive): its pieces then give the times. `make publish` and `make
publish-run` also write DOCS/report.html.
"""
from __future__ import annotations

import argparse
import datetime
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pandas as pd

from ldnn.io import atomic_path

JOB_DONE = re.compile(r"done in ([\d.]+) s, peak memory (\d+) MB")
JOB_STARTED = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", flags=re.M)
JOB_FINISHED = re.compile(r"^\[(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\]\nFinished job",
                          flags=re.M)


def checkout_commit(checkout: Path, docs: Path) -> str:
    """The commit of the git checkout `checkout`; an error if a tracked file outside `docs`
    (where the run is published) differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    outside_docs = []
    if docs.resolve().is_relative_to(checkout.resolve()):
        outside_docs = ["--", ".", f":(exclude){docs.resolve().relative_to(checkout.resolve())}"]
    changed = git("status", "--porcelain", "--untracked-files=no", *outside_docs)
    if changed:
        raise SystemExit(f"{checkout} has uncommitted changes, so no commit produced this run: "
                         + changed.replace("\n", "; "))
    return git("rev-parse", "HEAD")


def jobs_of_logs(checkout: Path) -> dict[Path, dict[str, str]]:
    """Each job log's rule and wildcards, from Snakemake's records of the jobs it started in
    `checkout`."""
    jobs = {}
    for path in (checkout / ".snakemake" / "log").glob("*.snakemake.log"):
        for rule, record in JOB_STARTED.findall(path.read_text()):
            fields = dict(line.strip().split(": ", 1) for line in record.splitlines()
                          if ": " in line)
            if "log" in fields:
                wildcards = dict(pair.split("=", 1) for pair in
                                 fields.get("wildcards", "").split(", ") if "=" in pair)
                jobs[(checkout / fields["log"]).resolve()] = {"rule": rule, **wildcards}
    return jobs


def job_times(results: Path, checkout: Path) -> pd.DataFrame:
    """One row per finished job: rule, study and protocol (where the job has them), seconds
    and peak memory (MB), from the job logs' closing lines (`done in …`); a job resumed after
    an interruption counts its last part."""
    jobs = jobs_of_logs(checkout)
    rows = []
    for path in sorted((results / "logs").rglob("*.log")):
        job = jobs.get(path.resolve())
        if job:
            rows.append(_job_row(job["rule"], job.get("study", ""), job.get("protocol", ""), path))
    rows = [row for row in rows if row]
    if not rows:
        raise SystemExit(f"no finished job logs under {results / 'logs'} of jobs that Snakemake "
                         f"started in {checkout}: publish from the checkout that ran them")
    return pd.DataFrame(rows)


def _job_row(rule: str, study: str, protocol: str, log: Path) -> dict | None:
    done = JOB_DONE.findall(log.read_text())
    if not done:
        return None
    seconds, memory = done[-1]
    return {"rule": rule, "study": study, "protocol": protocol, "seconds": float(seconds),
            "peak_mb": int(memory)}


def archived_job_times(checkout: Path, manifests: list[dict]) -> pd.DataFrame:
    """`job_times` of an archived run: each archived job log, its rule from the manifests,
    study and protocol from its job's output path (…/{study}/train/{protocol}/…)."""
    rows = []
    for manifest in manifests:
        results = Path(manifest["results"])
        for entry in manifest["files"]:
            if entry["role"] != "log" or not entry["path"].endswith(".log"):
                continue
            parts = Path(entry["job"]).relative_to(results).parts
            study = parts[0] if entry["rule"] in ("metalearn", "train") else ""
            protocol = parts[2] if entry["rule"] == "train" else ""
            rows.append(_job_row(entry["rule"], study, protocol, checkout / entry["path"]))
    rows = [row for row in rows if row]
    if not rows:
        raise SystemExit("the run's manifests list no finished job logs")
    return pd.DataFrame(rows)


def pieces_wall_time(run: Path, manifests: list[dict]) -> str:
    """The sentence of the results page on an archived run's wall time: the sum and each
    piece's (its recorded wall time, else from its first job's start to its last's end)."""
    hours = [(m.get("wall_s") or (m["jobs_ended"] - m["jobs_started"] if m["jobs_ended"]
                                 else 0.0)) / 3600 for m in manifests]
    each = ", ".join(f"{h:.1f}" for h in hours)
    return (f"Wall time {sum(hours):.1f} h in {len(hours)} piece{'s' if len(hours) > 1 else ''} "
            f"({each} h), each resumed from the archive of the ones before (`runs/{run.name}`, "
            f"[a run in pieces](../README.md#a-run-in-pieces-deadline-archive-resume)).")


def rule_times(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, total and longest seconds and peak memory (MB)."""
    return jobs.groupby("rule").agg(
        jobs=("seconds", "size"), total_s=("seconds", "sum"), longest_s=("seconds", "max"),
        peak_mb=("peak_mb", "max")).reset_index()


def study_times(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per study: seconds of meta-learning and of training under each protocol (NaN where
    the study has none)."""
    stages = jobs[jobs.rule.isin(["metalearn", "train"])]
    stage = stages.rule.str.cat(stages.protocol, sep=" ").str.strip()
    return stages.assign(stage=stage).pivot_table(
        index="study", columns="stage", values="seconds", aggfunc="sum").reset_index()


def wall_time(snakemake_logs: Path) -> str:
    """The sentence of the results page on the run's wall time: seconds from the start of
    each Snakemake invocation (its log's name) to its last finished job, summed over the
    invocations that finished a job."""
    total, runs = 0.0, 0
    for path in sorted(snakemake_logs.glob("*.snakemake.log")):
        finished = JOB_FINISHED.findall(path.read_text())
        if not finished:
            continue
        start = datetime.datetime.strptime(path.name.split(".")[0], "%Y-%m-%dT%H%M%S")
        end = datetime.datetime.strptime(" ".join(finished[-1].split()), "%a %b %d %H:%M:%S %Y")
        total += (end - start).total_seconds()
        runs += 1
    return (f"Wall time {total / 3600:.1f} h, summed over {runs} Snakemake invocation"
            f"{'s' if runs > 1 else ''} (an interrupted run resumes where it stopped).")


def figure_names(results: Path) -> dict[Path, str]:
    """The run's figures (PNG) and their names in the docs folder, figure by figure:
    figures/{protocol}/figN.png becomes figN_{protocol}.png, the paper protocol's first."""
    names = {}
    for path in (results / "figures").rglob("*.png"):
        parts = path.relative_to(results / "figures").parts
        names[path] = path.name if len(parts) == 1 else f"{path.stem}_{parts[0]}.png"
    return dict(sorted(names.items(), key=lambda item: (item[0].stem, "converged" in item[1])))


def page(summary: str, commit: str, version: str, command: str, wall: str,
         jobs: pd.DataFrame, figures: list[str]) -> str:
    """The published results page: a header naming the run and its `wall` time, the run's
    own results page (its title dropped), the figures, the time per rule and per study."""
    body = summary.split("\n", 1)[1].lstrip("\n")
    lines = ["# Results", "",
             f"Every number and figure on this page comes from one run of the workflow at "
             f"commit `{commit}` (ldnn {version}): `{command}`, configuration as "
             f"resolved in [config.resolved.yaml](config.resolved.yaml). {wall} "
             f"The run's report, with every figure's caption: [report.html](report.html).", "",
             body,
             "## Figures", ""]
    lines += [line for name in figures for line in (f"![{name}]({name})", "")]
    lines += ["## Time per rule", "",
              "From each job's log (a job resumed after an interruption counts its last part).",
              "", "| rule | jobs | total (s) | longest (s) | peak memory (MB) |",
              "|---|---|---|---|---|"]
    lines += [f"| {t.rule} | {t.jobs} | {t.total_s:.0f} | {t.longest_s:.0f} | {t.peak_mb} |"
              for t in rule_times(jobs).itertuples()]
    studies = study_times(jobs)
    stages = list(studies.columns[1:])
    lines += ["", "Per study, seconds of meta-learning and of training under each protocol, "
              "summed over its jobs (training jobs take one thread each and run two at a "
              "time on two cores; meta-learning takes both):", "",
              "| study | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    lines += ["| " + " | ".join([row.study] + ["–" if pd.isna(row[stage]) else f"{row[stage]:.0f}"
                                               for stage in stages]) + " |"
              for _, row in studies.iterrows()] + [""]
    return "\n".join(lines)


def publish(results: Path, docs: Path, command: str, checkout: Path,
            run: Path | None = None) -> None:
    """Write results.md, the run's figures, its claims table and its resolved configuration
    into `docs`, replacing the PNGs there; with `run`, the times are the archived run's."""
    summary = results / "summary.md"
    if not summary.exists():
        raise SystemExit(f"{summary} is missing: the run has not finished")
    commit = checkout_commit(checkout, docs)
    version = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["version"]
    if run is None:
        wall, jobs = wall_time(checkout / ".snakemake" / "log"), job_times(results, checkout)
    else:
        from ldnn.archive import manifests as read_manifests

        pieces = read_manifests(run)
        commits = {m["commit"] for m in pieces}
        if len(commits) != 1:
            raise SystemExit(f"{run}: its pieces name {len(commits)} commits, not one")
        wall = pieces_wall_time(run, pieces)
        if commits != {commit}:
            wall += (f" Figures, claims and summary were redrawn from it at commit `{commit}` "
                     f"(ldnn {version}; `make figures`), where every other rule's code is the "
                     "run's: a restored job whose code changed would have been run again.")
        commit, version = pieces[0]["commit"], pieces[0]["ldnn_version"]
        jobs = archived_job_times(checkout, pieces)
    figures = figure_names(results)
    text = page(summary.read_text(), commit, version, command, wall, jobs,
                list(figures.values()))
    docs.mkdir(parents=True, exist_ok=True)
    for stale in docs.glob("*.png"):
        stale.unlink()
    for source, name in figures.items():
        shutil.copyfile(source, docs / name)
    for name in ("claims.md", "config.resolved.yaml"):
        shutil.copyfile(results / name, docs / name)
    with atomic_path(docs / "results.md") as tmp:
        Path(tmp).write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("docs", type=Path)
    parser.add_argument("--command", default="make reproduce",
                        help="the command that produced the run, named on the page")
    parser.add_argument("--checkout", type=Path, default=Path.cwd(),
                        help="the git checkout that produced the run (default: here)")
    parser.add_argument("--run", type=Path, default=None,
                        help="the archived run restored here (e.g. runs/paper): its pieces "
                             "give the times")
    args = parser.parse_args()
    publish(args.results, args.docs, args.command, args.checkout, args.run)


if __name__ == "__main__":
    main()
