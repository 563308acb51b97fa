"""Per-rule wall time and peak memory of a finished workflow run, from its job logs.

    .venv/bin/python benchmarks/rule_times.py [results]
"""
from __future__ import annotations

import sys
from pathlib import Path

from ldnn.publish import rule_times

if __name__ == "__main__":
    print(rule_times(Path(sys.argv[1] if len(sys.argv) > 1 else "results")).to_string(index=False))
