"""Per-rule wall time and peak memory of a finished workflow run, from its benchmark files.

    .venv/bin/python benchmarks/rule_times.py [results]
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def summarise(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        row = pd.read_csv(path, sep="\t").iloc[0]
        rows.append({"rule": path.relative_to(results / "benchmarks").parts[0],
                     "seconds": row["s"], "max_rss_mb": row["max_rss"]})
    frame = pd.DataFrame(rows)
    return frame.groupby("rule").agg(jobs=("seconds", "size"), total_s=("seconds", "sum"),
                                     longest_s=("seconds", "max"),
                                     peak_rss_mb=("max_rss_mb", "max")).reset_index()


if __name__ == "__main__":
    table = summarise(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
    print(table.to_markdown(index=False, floatfmt=".1f"))
