"""Frozen training, the compiled kernel against autograd: one workflow job each.

    .venv/bin/python benchmarks/training_engines.py [--rounds 2] [--protocols converged]

For each task, one seed block as the workflow trains it (its seeds stacked, 1 thread,
width 100; MNIST-1D also at width 400 with 12 seeds, Fig. 4's widest job) under the
protocols of config.yaml, the mixed arm: two tabulated types (sin and tanh on the capture
grid, 100 points of [−10, 10]; cubic Hermite for the Hamiltonian network, as the workflow
freezes learned types). Each measurement runs in its own process; the two engines are
interleaved job by job and round by round, so machine load hits them alike. Prints
seconds per job, epochs run and the speed-up with its spread over the rounds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# (task, width, seeds of one job): the workflow's seed blocks (Fig. 4's study: 12).
JOBS = [("mnist1d", 100, 6), ("mnist1d", 400, 12), ("van_der_pol", 100, 6),
        ("henon_heiles", 100, 6), ("henon_heiles_hnn", 100, 6)]
ENGINES = ("autograd", "compiled")


def mixed_arm(hamiltonian: bool):
    from ldnn.activations import arm_activation

    grid = torch.linspace(-10, 10, 100, dtype=torch.float64)
    values = torch.stack([torch.sin(grid), torch.tanh(grid)])
    slopes = torch.stack([torch.cos(grid), 1 - torch.tanh(grid) ** 2]) if hamiltonian else None
    return arm_activation("mixed", grid.float(), values.float(),
                          None if slopes is None else slopes.float())


def measure(task_name: str, width: int, seeds: int, protocol: str, engine: str) -> dict:
    from run import task_data

    from ldnn.config import TrainConfig, parse, protocol_settings, validate
    from ldnn.networks import layer_sizes
    from ldnn.tasks import get
    from ldnn.training import fit_seeds

    torch.set_num_threads(1)
    config = validate(yaml.safe_load((ROOT / "config.yaml").read_text()),
                      ROOT / "workflow/schemas/config.schema.yaml")
    study = next(name for name, s in config["studies"].items() if s["task"] == task_name)
    cfg = parse(TrainConfig, protocol_settings(config, study, protocol), "train")
    cfg = dataclasses.replace(cfg, compiled=engine == "compiled")
    task, data = get(task_name), task_data(task_name)
    activation, n_types = mixed_arm(task.hamiltonian)
    sizes = layer_sizes(task.n_in, width, 1, task.n_out)
    if engine == "compiled":  # build (or load) the kernel outside the timing
        fit_seeds(task, data, sizes, activation, n_types, dataclasses.replace(cfg, epochs=1),
                  range(1))
    started = time.perf_counter()
    fit = fit_seeds(task, data, sizes, activation, n_types, cfg, range(seeds))
    return {"task": task_name, "width": width, "seeds": seeds, "protocol": protocol,
            "engine": engine, "seconds": time.perf_counter() - started,
            "epochs_run": sorted(fit.epochs_run.tolist())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--protocols", nargs="+", default=["paper", "converged"])
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        task, width, seeds, protocol, engine = args.one
        print(json.dumps(measure(task, int(width), int(seeds), protocol, engine)))
        return
    rows = []
    for round_ in range(args.rounds):
        for task, width, seeds in JOBS:
            for protocol in args.protocols:
                for engine in ENGINES if round_ % 2 == 0 else ENGINES[::-1]:
                    out = subprocess.run([sys.executable, __file__, "--one", task, str(width),
                                          str(seeds), protocol, engine], capture_output=True,
                                         text=True, cwd=ROOT, check=True)
                    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(json.dumps(rows[-1]), flush=True)
    print("\n| task | width | seeds | protocol | autograd s | compiled s | speed-up (range) "
          "| epochs run, autograd / compiled |\n|---|---|---|---|---|---|---|---|")
    for task, width, seeds in JOBS:
        for protocol in args.protocols:
            runs = {e: [r for r in rows if (r["task"], r["width"], r["protocol"], r["engine"])
                        == (task, width, protocol, e)] for e in ENGINES}
            ratios = [a["seconds"] / c["seconds"] for a, c in zip(*runs.values())]
            seconds = {e: statistics.median(r["seconds"] for r in runs[e]) for e in ENGINES}
            epochs = {e: runs[e][0]["epochs_run"] for e in ENGINES}
            print(f"| {task} | {width} | {seeds} | {protocol} | {seconds['autograd']:.1f} "
                  f"| {seconds['compiled']:.2f} | {statistics.median(ratios):.1f}× "
                  f"({min(ratios):.1f}–{max(ratios):.1f}) "
                  f"| {epochs['autograd']} / {epochs['compiled']} |")


if __name__ == "__main__":
    main()
