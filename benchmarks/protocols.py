"""Frozen training under each protocol at paper scale, one workflow job at a time.

    .venv/bin/python benchmarks/protocols.py

For each task, one seed block as the workflow trains it (its seeds stacked, 1 thread,
the sine arm, width 100; MNIST-1D also at width 400, Fig. 4's widest) under the `paper`
and `converged` protocols of config.yaml: wall time, epochs run, and the test metric
beside the task's baselines. A study's training is (arms × seed blocks) such jobs, two at
a time on this machine. The pendulum is left out (its data come from the video pipeline;
it is the smallest data set).
"""
from __future__ import annotations

import argparse
import json
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


def measure(task_name: str, width: int, protocol: str, seeds: int) -> dict:
    from run import task_data

    from ldnn.config import TrainConfig, parse, protocol_settings, validate
    from ldnn.networks import layer_sizes
    from ldnn.tasks import get
    from ldnn.training import evaluate, fit_seeds

    torch.set_num_threads(1)
    config = validate(yaml.safe_load((ROOT / "config.yaml").read_text()),
                      ROOT / "workflow/schemas/config.schema.yaml")
    study = next(name for name, s in config["studies"].items() if s["task"] == task_name)
    cfg = parse(TrainConfig, protocol_settings(config, study, protocol), "train")
    task, data = get(task_name), task_data(task_name)
    sizes = layer_sizes(task.n_in, width, 1, task.n_out)
    started = time.perf_counter()
    fit = fit_seeds(task, data, sizes, torch.sin, 1, cfg, range(seeds))
    seconds = time.perf_counter() - started
    result = evaluate(task, data, fit, torch.sin, 1, cfg)
    metric = task.metric_names[-1]
    return {"task": task_name, "width": width, "protocol": protocol, "seeds": seeds,
            "seconds": seconds, "epochs_run_median": float(fit.epochs_run.double().median()),
            "epochs_run_max": int(fit.epochs_run.max()), "metric": metric,
            "median": float(result[metric].nanmedian()),
            "unconverged": int(result["unconverged"].sum())}


def baselines(task_name: str) -> dict[str, float]:
    from run import task_data

    from ldnn import baselines as reference
    from ldnn.tasks import TaskData, get

    task, data = get(task_name), task_data(task_name, torch.float64)
    data = TaskData(data.x_train, data.y_train, data.x_test, data.y_test)
    return {row["arm"]: row[task.metric_names[-1]] for row in reference.rows(task, data, 5.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        task, width, seeds, protocol = args.one
        print(json.dumps(measure(task, int(width), protocol, int(seeds))))
        return
    import subprocess
    rows = []
    for task, width, seeds in JOBS:
        for protocol in ("paper", "converged"):
            out = subprocess.run([sys.executable, __file__, "--one", task, str(width), str(seeds),
                                  protocol], capture_output=True, text=True, cwd=ROOT,
                                 check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| task | width | protocol | s per job | epochs run, median (max) | median test "
          "metric | unconverged | baselines |\n|---|---|---|---|---|---|---|---|")
    references = {task: ", ".join(f"{k} {v:.3g}" for k, v in baselines(task).items())
                  for task in dict.fromkeys(row["task"] for row in rows)}
    for row in rows:
        reference = references[row["task"]]
        print(f"| {row['task']} | {row['width']} | {row['protocol']} | {row['seconds']:.0f} "
              f"| {row['epochs_run_median']:.0f} ({row['epochs_run_max']}) "
              f"| {row['metric']} {row['median']:.3g} | {row['unconverged']}/{row['seeds']} "
              f"| {reference} |")


if __name__ == "__main__":
    main()
