"""Compute time of an archived run, from its manifests: per rule (jobs, total job seconds),
per piece (the span of its jobs, the size of its archive), and the critical path (the
longest chain of dependent jobs, i.e. the wall time with unlimited nodes).

    .venv/bin/python benchmarks/run_pieces.py runs/paper
"""
from __future__ import annotations

import sys
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from ldnn.archive import manifests


def job_records(pieces: list[dict]) -> dict[str, dict]:
    """{first output: its record} of every finished job of the run (the latest piece's)."""
    records = {}
    for m in pieces:
        for e in m["files"]:
            if e["role"] == "output" and e["path"] == e["job"]:
                records[e["job"]] = m["records"][e["path"]]
    return records


def critical_path(records: dict[str, dict], outputs: dict[str, str]) -> tuple[float, list[str]]:
    """Seconds and rules of the longest chain; `outputs` maps each output to its job."""
    @lru_cache(maxsize=None)
    def longest(job: str) -> tuple[float, tuple[str, ...]]:
        record = records[job]
        before = [longest(outputs[p]) for p in record["input"] if p in outputs]
        seconds, chain = max(before, default=(0.0, ()))
        return seconds + record["endtime"] - record["starttime"], chain + (record["rule"],)

    seconds, chain = max((longest(job) for job in records), default=(0.0, ()))
    return seconds, list(chain)


def main(run: Path) -> None:
    pieces = manifests(run)
    records = job_records(pieces)
    outputs = {e["path"]: e["job"] for m in pieces for e in m["files"] if e["role"] == "output"}
    per_rule = defaultdict(lambda: [0, 0.0])
    for record in records.values():
        per_rule[record["rule"]][0] += 1
        per_rule[record["rule"]][1] += record["endtime"] - record["starttime"]
    print("| rule | jobs | job time (h) |\n|---|---|---|")
    for rule, (n, seconds) in sorted(per_rule.items(), key=lambda kv: -kv[1][1]):
        print(f"| {rule} | {n} | {seconds / 3600:.2f} |")
    total = sum(s for _, s in per_rule.values())
    print(f"| all | {len(records)} | {total / 3600:.2f} |\n")
    print("| piece | commit | jobs | first job start → last job end (h) | archive (MB) |\n"
          "|---|---|---|---|---|")
    for m in pieces:
        span = (m["jobs_ended"] - m["jobs_started"]) / 3600 if m["jobs_started"] else 0.0
        jobs = sum(e["role"] == "output" and e["path"] == e["job"] for e in m["files"])
        print(f"| {m['piece']} | {m['commit'][:7]} | {jobs} | {span:.2f} | "
              f"{m['archive_size'] / 2**20:.2f} |")
    size = sum(p.stat().st_size for p in (run / "pieces").iterdir())
    seconds, chain = critical_path(records, outputs)
    print(f"\nrun folder: {size / 2**20:.1f} MB; critical path: {seconds / 60:.1f} min "
          f"({' → '.join(chain)})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/paper"))
