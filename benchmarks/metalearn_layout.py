"""Two meta-learning replicates on 2 cores, three ways: one job each at 2 threads one after
another, one job each at 1 thread side by side, or both batched in one job at 2 threads.

    .venv/bin/python benchmarks/metalearn_layout.py DATA_DIR [--studies mnist1d_sin] [--steps 100] [--rounds 2]

DATA_DIR holds the workflow's data sets (e.g. a run's results/data). Each job is the
workflow's `metalearn` stage in its own process with the study's settings from config.yaml
and `--steps` outer steps; the layouts alternate round by round so that machine load hits
them alike. Prints the wall time of each layout and whether the replicates' learned
parameters are bit-identical across layouts.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("2 threads, one after another", "1 thread, side by side", "batched, 2 threads")


def job(study: str, data_dir: Path, steps: int, replicates: list[int], threads: int,
        out: Path) -> subprocess.Popen:
    code = f"""
import yaml
from ldnn import stages, tasks
from ldnn.config import study_settings
config = yaml.safe_load(open({str(ROOT / 'config.yaml')!r}))
s = config["studies"][{study!r}]
meta = {{**study_settings(config, {study!r}, "metalearn"), "outer_steps": {steps}}}
with stages.logging_to({str(out / 'log')!r}, {threads}):
    stages.metalearn(data={str(data_dir)!r} + "/" + tasks.get(s["task"]).dataset + ".npz", task=s["task"],
                     base=s["base"], n_types=s["n_types"], depth=s["depth"],
                     width=s["metalearn_width"], activation=config["activation"], meta=meta,
                     replicates={replicates!r}, out_params={str(out / 'params.pt')!r},
                     out_history={str(out / 'history.npz')!r})
"""
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def run_layout(layout: str, study: str, data_dir: Path, steps: int, tmp: Path) -> float:
    start = time.perf_counter()
    if layout == LAYOUTS[0]:
        for r in (0, 1):
            job(study, data_dir, steps, [r], 2, tmp / f"r{r}").wait()
    elif layout == LAYOUTS[1]:
        for p in [job(study, data_dir, steps, [r], 1, tmp / f"r{r}") for r in (0, 1)]:
            p.wait()
    else:
        job(study, data_dir, steps, [0, 1], 2, tmp / "both").wait()
    return time.perf_counter() - start


def learned(tmp: Path, layout: str) -> list[torch.Tensor]:
    """Each replicate's learned parameters, flattened."""
    def flat(path: Path, row: int) -> torch.Tensor:
        saved = torch.load(path, weights_only=True)
        return torch.cat([v[row].flatten() for v in saved["phi"].values()])
    if layout == LAYOUTS[2]:
        return [flat(tmp / "both/params.pt", r) for r in (0, 1)]
    return [flat(tmp / f"r{r}/params.pt", 0) for r in (0, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--studies", nargs="+", default=["mnist1d_sin"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for study in args.studies:
        seconds = {layout: [] for layout in LAYOUTS}
        results = {}
        for round_ in range(args.rounds):
            order = LAYOUTS if round_ % 2 == 0 else LAYOUTS[::-1]
            for layout in order:
                with tempfile.TemporaryDirectory() as tmp:
                    seconds[layout].append(run_layout(layout, study, args.data_dir.resolve(),
                                                      args.steps, Path(tmp)))
                    results[layout] = learned(Path(tmp), layout)
        reference = results[LAYOUTS[0]]
        print(f"\n{study}, 2 replicates × {args.steps} outer steps, {args.rounds} rounds:")
        print("| layout | wall s (rounds) | × first layout | parameters equal to the first |\n"
              "|---|---|---|---|")
        base = statistics.median(seconds[LAYOUTS[0]])
        for layout in LAYOUTS:
            same = all(torch.equal(a, b) for a, b in zip(results[layout], reference))
            print(f"| {layout} | {' / '.join(f'{s:.1f}' for s in seconds[layout])} | "
                  f"{statistics.median(seconds[layout]) / base:.2f} | {'bit for bit' if same else 'no'} |",
                  flush=True)


if __name__ == "__main__":
    main()
