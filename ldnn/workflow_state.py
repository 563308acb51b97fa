"""What Snakemake knows about a checkout: every job of its DAG (from a forced dry run), the
metadata record of each output (.snakemake/metadata) and which jobs have finished."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path

_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)+)", re.M)
_FIELD = re.compile(r"^    (\w+): (.*)$", re.M)


class WorkflowError(RuntimeError):
    """Snakemake could not plan the checkout's workflow."""


@dataclass(frozen=True)
class Job:
    """One job of the DAG; paths relative to the checkout."""
    rule: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    logs: tuple[str, ...]
    benchmark: str | None


def snakemake_command(checkout: str | Path) -> list[str]:
    """The checkout's own Snakemake (its .venv's), else this interpreter's, else PATH's."""
    own = Path(checkout) / ".venv/bin/snakemake"
    beside = Path(sys.executable).parent / "snakemake"
    found = next((str(p) for p in (own, beside) if p.exists()), shutil.which("snakemake"))
    if found is None:
        raise WorkflowError(f"no Snakemake in {own} or on PATH")
    return [found]


def run_snakemake(checkout: str | Path, args: list[str], *options: str,
                  check: bool = True) -> subprocess.CompletedProcess:
    """Snakemake in `checkout` with `options` (targets first), then the run's `args` (e.g.
    --configfile, which takes every word up to the next option)."""
    done = subprocess.run([*snakemake_command(checkout), *options, *args], cwd=checkout,
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise WorkflowError(f"snakemake {' '.join(options)} failed in {checkout}: {tail}")
    return done


def dry_run(checkout: str | Path, args: list[str], target: str, *options: str) -> str:
    """Snakemake's dry-run listing of `target`; an interrupted job's incomplete outputs are
    planned again, as the profiles' rerun-incomplete does, instead of failing the listing."""
    return run_snakemake(checkout, args, target, "--dry-run", "--rerun-incomplete",
                         *options).stdout


def jobs(checkout: str | Path, args: list[str], target: str = "all") -> list[Job]:
    """Every job that `target` needs, finished or not, in the order Snakemake lists them
    (`finished` says which are)."""
    out = dry_run(checkout, args, target, "--forceall", "--nolock", "--cores", "1")
    found = []
    for rule, body in _JOB.findall(out):
        fields = dict(_FIELD.findall(body))
        split = lambda key: tuple(p for p in fields.get(key, "").split(", ") if p)
        found.append(Job(rule, split("input"), split("output"), split("log"),
                         fields.get("benchmark")))
    for job in found:
        for path in (*job.outputs, *job.logs, *filter(None, [job.benchmark])):
            if Path(path).is_absolute() or path.startswith(".."):
                raise WorkflowError(f"{path} lies outside the checkout: archive a run whose "
                                    "results folder is inside it")
    return found


def _key_path(base: Path, path: str) -> Path:
    """Snakemake's file name for the record of `path` (base64, split at 254 characters)."""
    encoded = urlsafe_b64encode(path.encode()).decode()
    parts = [encoded[i:i + 254] for i in range(0, len(encoded), 254)]
    return base.joinpath(*["@" + p for p in parts[:-1]], parts[-1])


def read_record(checkout: str | Path, path: str) -> dict | None:
    """The metadata record Snakemake keeps for output `path`, if any."""
    file = _key_path(Path(checkout) / ".snakemake/metadata", path)
    return json.loads(file.read_text()) if file.exists() else None


def write_record(checkout: str | Path, path: str, record: dict) -> None:
    file = _key_path(Path(checkout) / ".snakemake/metadata", path)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, file)
    _key_path(Path(checkout) / ".snakemake/incomplete", path).unlink(missing_ok=True)


def finished(checkout: str | Path, job: Job) -> bool:
    """Every output exists, has a complete record and no incomplete marker."""
    checkout = Path(checkout)
    for path in job.outputs:
        record = read_record(checkout, path)
        if (not (checkout / path).exists() or record is None or record.get("incomplete")
                or _key_path(checkout / ".snakemake/incomplete", path).exists()):
            return False
    return bool(job.outputs)
