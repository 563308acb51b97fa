"""A long run in pieces that outlive their machine: archive a checkout's finished work into
runs/<name>/, restore it into a fresh checkout, and run to a deadline.

A run folder holds append-only pieces: NNN.tar.xz (the files) and NNN.json (the manifest:
commit, ldnn version, config hash, Snakemake's record of every output's job, the code
provenance of every rule, and each file's sha256, size and mtime). A piece stores what is
finished and new since the pieces before it: the outputs some job reads (trained parameters
nobody reads are listed, not stored), logs, benchmarks, and the checkpoint of each unfinished
job. Outputs over MAX_STORED bytes are rebuilt on restore and must match their sha256.

    python -m ldnn.archive store   --run runs/paper [--checkout DIR]
    python -m ldnn.archive restore --run runs/paper [--checkout DIR]
    python -m ldnn.archive run     --run runs/paper --hours 2 [--cores 2]
    python -m ldnn.archive figures --run runs/paper
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from ldnn.provenance import rule_code
from ldnn.workflow_state import (Job, WorkflowError, dry_run, finished, jobs, read_record,
                                 run_snakemake, write_record)

MAX_STORED = 10 * 2**20      # a larger output is rebuilt on restore instead of stored
MAX_PIECE = 20 * 2**20       # no archive file over this
CHECKPOINT = "checkpoint.pt"  # beside an unfinished job's outputs: its resumable state
FIGURE_RULES = ("fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "hessian", "claims",
                "summary", "all")
PROFILE = ["--workflow-profile", "workflow/profiles/default"]
GRACE_S = 120                # after the deadline's SIGINT, before SIGKILL


class ArchiveError(RuntimeError):
    """A run folder or one of its members is not what its manifest says."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True,
                          check=True).stdout.strip()


def manifests(run: Path) -> list[dict]:
    """The run's manifests in piece order."""
    found = []
    for path in sorted((run / "pieces").glob("*.json")):
        try:
            found.append(json.loads(path.read_text()) | {"_path": str(path)})
        except json.JSONDecodeError as e:
            raise ArchiveError(f"{path}: not a manifest ({e})") from None
    return found


def _entry(checkout: Path, path: str, role: str, job: Job, stored: bool,
           rebuild: bool = False) -> dict:
    file = checkout / path
    return {"path": path, "role": role, "rule": job.rule, "job": job.outputs[0],
            "sha256": sha256(file), "size": file.stat().st_size, "mtime": file.stat().st_mtime,
            "stored": stored, "rebuild": rebuild}


def collect(checkout: Path, table: list[Job]) -> tuple[list[dict], dict[str, dict]]:
    """Entries for every file of a finished job (stored or not) and every checkpoint of an
    unfinished one, and the Snakemake record of each finished output."""
    read = {path for job in table for path in job.inputs}
    entries, records = [], {}
    for job in table:
        if not job.outputs:
            continue
        if not finished(checkout, job):
            for folder in sorted({Path(p).parent for p in job.outputs}):
                if (checkout / folder / CHECKPOINT).exists():
                    entries.append(_entry(checkout, str(folder / CHECKPOINT), "checkpoint",
                                          job, stored=True))
            continue
        for path in job.outputs:
            records[path] = read_record(checkout, path)
            big = (checkout / path).stat().st_size > MAX_STORED
            entries.append(_entry(checkout, path, "output", job, stored=path in read and not big,
                                  rebuild=path in read and big))
        for path in (*job.logs, *filter(None, [job.benchmark])):
            if (checkout / path).exists():
                entries.append(_entry(checkout, path, "log", job, stored=True))
    return entries, records


def store(checkout: Path, run: Path, args: list[str], dirty_ok: bool = False,
          wall_s: float | None = None) -> Path | None:
    """Archive what the checkout finished since the run's last piece; the new manifest, or
    None if nothing is new. `dirty_ok`: allow uncommitted changes (tests; the manifest says
    so); `wall_s`: the piece's wall time, where a deadline run measured it."""
    dirty = bool(_git(checkout, "status", "--porcelain", "--untracked-files=no"))
    if dirty and not dirty_ok:
        raise ArchiveError(f"{checkout} has uncommitted changes: archive a committed state")
    commit = _git(checkout, "rev-parse", "HEAD")
    earlier = manifests(run)
    if earlier and earlier[0]["commit"] != commit:
        raise ArchiveError(f"{run} holds commit {earlier[0]['commit'][:12]}, {checkout} is at "
                           f"{commit[:12]}: one run, one commit (start a new run folder)")
    table = jobs(checkout, args)
    entries, records = collect(checkout, table)
    known = {e["path"]: e["sha256"] for m in earlier for e in m["files"]}
    new = [e for e in entries if known.get(e["path"]) != e["sha256"]]
    if not new:
        print(f"archive: nothing new to store in {run}")
        return None
    results = os.path.commonpath([p for job in table for p in job.outputs])
    resolved = checkout / results / "config.resolved.yaml"
    code = rule_code(checkout)
    number = len(earlier) + 1
    folder = run / "pieces"
    folder.mkdir(parents=True, exist_ok=True)
    tar_path = folder / f"{number:03d}.tar.xz"
    ran = [records[e["path"]] for e in new if e["role"] == "output" and e["path"] == e["job"]]
    manifest = {
        "run": run.name, "piece": number, "commit": commit, "dirty": dirty, "ldnn_version": version("ldnn"),
        "snakemake_args": args, "results": results,
        "config_sha256": sha256(resolved) if resolved.exists() else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jobs_started": min((r["starttime"] for r in ran), default=None),
        "jobs_ended": max((r["endtime"] for r in ran), default=None),
        "wall_s": wall_s,
        "archive": tar_path.name,
        "rule_code": {rule: code[rule].files for rule in sorted({e["rule"] for e in new})
                      if rule in code},
        "records": {e["path"]: records[e["path"]] for e in new if e["role"] == "output"},
        "files": new,
    }
    tmp = tar_path.with_name(tar_path.name + ".tmp")
    try:
        with tarfile.open(tmp, "w:xz", preset=9) as tar:
            for e in new:
                if e["stored"]:
                    tar.add(checkout / e["path"], arcname=e["path"], recursive=False)
        if tmp.stat().st_size > MAX_PIECE:
            raise ArchiveError(f"{tar_path}: {tmp.stat().st_size / 2**20:.1f} MB is over the "
                               f"{MAX_PIECE / 2**20:.0f} MB limit per file")
        manifest["archive_sha256"] = sha256(tmp)
        manifest["archive_size"] = tmp.stat().st_size
        os.replace(tmp, tar_path)
    finally:
        tmp.unlink(missing_ok=True)
    path = folder / f"{number:03d}.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    stored = [e for e in new if e["stored"]]
    print(f"archive: piece {number} of {run}: {len(stored)} files stored, "
          f"{len(new) - len(stored)} listed, {manifest['archive_size'] / 2**20:.2f} MB")
    return path


def _extract(manifest: dict, run: Path, into: Path) -> None:
    """Unpack one piece into `into`, checking the archive and every member against the
    manifest; trained parameters must load as plain tensors."""
    import torch

    tar_path = run / "pieces" / manifest["archive"]
    if not tar_path.exists() or sha256(tar_path) != manifest.get("archive_sha256"):
        raise ArchiveError(f"{tar_path}: missing or its sha256 differs from the manifest "
                           "(corrupted or truncated)")
    expected = {e["path"]: e for e in manifest["files"] if e["stored"]}
    try:
        with tarfile.open(tar_path, "r:xz") as tar:
            for member in tar:
                if member.name not in expected or not member.isfile():
                    raise ArchiveError(f"{tar_path}: member {member.name} is not in its manifest")
                tar.extract(member, into, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ArchiveError(f"{tar_path}: unreadable ({e})") from None
    for path, e in expected.items():
        file = into / path
        if not file.exists() or file.stat().st_size != e["size"] or sha256(file) != e["sha256"]:
            raise ArchiveError(f"{tar_path}: member {path} is missing or its sha256 differs "
                               "from the manifest")
        if file.suffix == ".pt":
            try:
                torch.load(file, weights_only=True)
            except Exception as error:
                raise ArchiveError(f"{tar_path}: member {path} is not plain tensor data "
                                   f"({type(error).__name__})") from None


def restore(checkout: Path, run: Path, args: list[str] | None = None,
            cores: str = "2") -> list[str]:
    """Place the run's finished work into `checkout` so that Snakemake plans only what is
    unfinished or stale; one line per rule that is not (wholly) restored, and why."""
    pieces = manifests(run)
    if not pieces:
        raise ArchiveError(f"{run}: no pieces")
    args = pieces[-1]["snakemake_args"] if args is None else args
    latest, records, code = {}, {}, {}
    for m in pieces:
        latest |= {e["path"]: e | {"piece": m["piece"]} for e in m["files"]}
        records |= m["records"]
        code |= m["rule_code"]
    tmp = Path(tempfile.mkdtemp(prefix=".restore-", dir=checkout))
    try:
        for m in pieces:
            _extract(m, run, tmp / f"{m['piece']:03d}")
        keep, skipped = _restorable(checkout, args, latest, code)
        placed = [e for es in keep.values() for e in es if e["stored"]]
        new = [e for e in placed if not _holds(checkout, e)]
        for e in new:
            target = checkout / e["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / f"{e['piece']:03d}" / e["path"], target)
        for e in (e for es in keep.values() for e in es if e["role"] == "output"):
            write_record(checkout, e["path"], records[e["path"]])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if any(e["role"] != "log" for e in new):    # logs are read by no job
        _order_mtimes(checkout, placed)
    rebuild = [e for es in keep.values() for e in es if e["rebuild"]]
    lines = [f"restore: {len(keep)} jobs of {run} restored ({len(new)} files placed, "
             f"{len(placed) - len(new)} already there)"]
    rebuild = [e for e in rebuild if not _holds(checkout, e)]
    if rebuild:
        run_snakemake(checkout, args, *[e["path"] for e in rebuild], "--cores", str(cores))
        for e in rebuild:
            if sha256(checkout / e["path"]) == e["sha256"]:
                placed.append(e)
            else:
                lines.append(f"restore: {e['path']} rebuilt with another sha256: what reads it "
                             "is replanned")
        _order_mtimes(checkout, placed)
    lines += [f"restore: rule {rule}: {n} jobs not restored, {why}"
              for rule, reasons in sorted(skipped.items()) for why, n in reasons.items()]
    return lines


def _restorable(checkout: Path, args: list[str], latest: dict[str, dict],
                code: dict[str, dict]) -> tuple[dict[str, list[dict]], dict[str, Counter]]:
    """The archived entries to place, by job, and {rule: Counter of reasons} for the jobs
    that are not: no longer in the workflow, or their code changed."""
    table = jobs(checkout, args)
    current = rule_code(checkout)
    owner = {out: job for job in table for out in job.outputs}
    skipped, keep = defaultdict(Counter), {}
    by_job = defaultdict(list)
    for e in latest.values():
        by_job[e["job"]].append(e)
    done = {job_id for job_id, es in by_job.items() if any(e["role"] == "output" for e in es)}
    for job_id, es in by_job.items():
        rule = es[0]["rule"]
        job = owner.get(job_id)
        outputs = {e["path"] for e in es if e["role"] == "output"}
        if job is None or job.rule != rule or (outputs and outputs != set(job.outputs)):
            skipped[rule]["not in this workflow"] += 1
        elif rule in current and (changed := current[rule].changed_since(code.get(rule, {}))):
            skipped[rule][f"code changed ({', '.join(changed[:3])}"
                          f"{', …' if len(changed) > 3 else ''})"] += 1
        else:
            keep[job_id] = [e for e in es if e["role"] != "checkpoint" or job_id not in done]
    return keep, skipped


def _holds(checkout: Path, entry: dict) -> bool:
    """Whether the checkout already has the entry's file, unchanged."""
    file = checkout / entry["path"]
    return file.exists() and file.stat().st_size == entry["size"] and sha256(file) == entry["sha256"]


def _order_mtimes(checkout: Path, entries: list[dict]) -> None:
    """Give restored files fresh mtimes in their original order: newer than the checkout's
    scripts, each input older than what was made from it."""
    now = time.time_ns()
    for i, e in enumerate(sorted(entries, key=lambda e: e["mtime"])):
        os.utime(checkout / e["path"], ns=(now + 1000 * i, now + 1000 * i))


def plan(checkout: Path, args: list[str], *options: str) -> dict[str, Counter]:
    """{rule: Counter of reasons} of the jobs a dry run of `all` would run."""
    out = dry_run(checkout, args, "all", *options)
    planned = defaultdict(Counter)
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", out, flags=re.M):
        reason = re.search(r"^    reason: (.*)$", body, flags=re.M)
        kinds = [part.split(":")[0] for part in (reason.group(1) if reason else "").split("; ")]
        planned[rule][", ".join(k for k in kinds if k) or "unknown"] += 1
    return planned


def describe(planned: dict[str, Counter]) -> list[str]:
    if not planned:
        return ["plan: nothing to be done"]
    total = sum(sum(c.values()) for c in planned.values())
    return [f"plan: {total} jobs"] + [f"plan: {rule} ×{n}: {why}" for rule, c in
                                      sorted(planned.items()) for why, n in c.items()]


def run_to_deadline(checkout: Path, run: Path, hours: float, cores: str,
                    args: list[str], dirty_ok: bool = False) -> int:
    """Run the workflow until it ends or `hours` pass, then archive what it finished. At
    the deadline (or on SIGTERM/SIGINT) running jobs are interrupted; a meta-learning job
    keeps its last checkpoint, a training job its nothing."""
    from ldnn.workflow_state import snakemake_command

    command = [*snakemake_command(checkout), "all", *PROFILE, "--cores", str(cores), *args]
    started = time.monotonic()
    print("run:", shlex.join(command), flush=True)
    proc = subprocess.Popen(command, cwd=checkout, start_new_session=True)
    stop = lambda *_: os.killpg(proc.pid, signal.SIGINT)
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        proc.wait(timeout=hours * 3600)
    except subprocess.TimeoutExpired:
        print(f"run: deadline of {hours} h reached: interrupting the running jobs", flush=True)
        stop()
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    run_snakemake(checkout, args, "--unlock", check=False)
    wall_s = time.monotonic() - started
    print(f"run: snakemake exited with {proc.returncode} after {wall_s / 3600:.2f} h", flush=True)
    store(checkout, run, args, dirty_ok, wall_s)
    return proc.returncode


def figures(checkout: Path, run: Path, cores: str, args: list[str] | None = None) -> list[str]:
    """Restore `run` and redraw its figures, claims, summary and report, training nothing."""
    lines = restore(checkout, run, args, cores)
    args = manifests(run)[-1]["snakemake_args"] if args is None else args
    other = {rule: c for rule, c in plan(checkout, args).items() if rule not in FIGURE_RULES}
    if other:
        raise ArchiveError(f"{run} is not complete at this commit: redrawing would also run "
                           + ", ".join(f"{r} ×{sum(c.values())}" for r, c in sorted(other.items()))
                           + " (python -m ldnn.archive restore says why)")
    run_snakemake(checkout, args, "all", *PROFILE, "--cores", str(cores), "--forcerun",
                  *FIGURE_RULES[:-1])
    results = manifests(run)[-1]["results"]
    run_snakemake(checkout, args, "--report", f"{results}/report.html")
    return lines + [f"figures: redrawn from {run} into {results}, report {results}/report.html"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ldnn.archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["store", "restore", "run", "figures", "plan"])
    parser.add_argument("--run", type=Path, required=True, help="run folder, e.g. runs/paper")
    parser.add_argument("--checkout", type=Path, default=Path("."),
                        help="the checkout whose workflow ran (default: this one)")
    parser.add_argument("--args", default=None,
                        help="Snakemake arguments of the run, e.g. '--configfile tests/smoke.yaml' "
                             "(default: the run's manifest's, else none)")
    parser.add_argument("--hours", type=float, help="run: the time budget")
    parser.add_argument("--cores", default="2", help="as Snakemake's (a number or all)")
    opts = parser.parse_args(argv)
    checkout, run = opts.checkout.resolve(), opts.run.resolve()
    args = shlex.split(opts.args) if opts.args is not None else None
    if args is None and opts.action in ("store", "run", "plan"):
        args = manifests(run)[-1]["snakemake_args"] if manifests(run) else []
    try:
        if opts.action == "store":
            store(checkout, run, args)
        elif opts.action == "restore":
            print("\n".join(restore(checkout, run, args, opts.cores) + describe(
                plan(checkout, args if args is not None else manifests(run)[-1]["snakemake_args"]))))
        elif opts.action == "plan":
            print("\n".join(describe(plan(checkout, args))))
        elif opts.action == "figures":
            print("\n".join(figures(checkout, run, opts.cores, args)))
        elif opts.action == "run":
            if opts.hours is None or opts.hours <= 0:
                parser.error("run needs --hours > 0")
            return run_to_deadline(checkout, run, opts.hours, opts.cores, args)
    except (ArchiveError, WorkflowError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
