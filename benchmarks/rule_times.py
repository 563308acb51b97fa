"""Per-rule and per-study time and peak memory of a finished workflow run, from its job
logs; run it in the checkout that ran the workflow.

    .venv/bin/python benchmarks/rule_times.py [results]
"""
from __future__ import annotations

import sys
from pathlib import Path

from ldnn.publish import job_times, rule_times, study_times

if __name__ == "__main__":
    jobs = job_times(Path(sys.argv[1] if len(sys.argv) > 1 else "results"), Path.cwd())
    print(rule_times(jobs).to_string(index=False), "", study_times(jobs).to_string(index=False),
          sep="\n")
