"""Per-rule wall time and peak memory of a finished workflow run, from its job logs; run
it in the checkout that ran the workflow.

    .venv/bin/python benchmarks/rule_times.py [results]
"""
from __future__ import annotations

import sys
from pathlib import Path

from ldnn.publish import rule_times

if __name__ == "__main__":
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    print(rule_times(results, Path.cwd()).to_string(index=False))
