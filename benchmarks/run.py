"""Benchmarks at the paper's MNIST-1D settings, all measured in one run.

    .venv/bin/python benchmarks/run.py            # everything, prints a Markdown table
    .venv/bin/python benchmarks/run.py --quick    # fewer steps and seeds

1. Meta-learning outer step (hidden 100, 2 types, batch 200, 5 inner epochs = 100 inner
   steps, unrolled): the textbook reference (benchmarks/reference_metalearn.py) against
   ldnn exact (spline_spacing 0) and ldnn default (Hermite splines, spacing 0.01), and as a
   floor ldnn's inner loop alone, without any meta-gradient. Each runs in its own
   process; memory is the peak resident set minus the resident set before the first step.
2. Frozen training, 6 arms × 50 seeds × 50 epochs: ldnn's vectorised seeds against a
   loop over ldnn's single-seed path and a loop of plain torch.nn/torch.optim training.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _mnist1d():
    from ldnn.tasks import TaskData, mnist1d
    path = ROOT / "results" / "perf" / "mnist1d.npz"
    if not path.exists():
        mnist1d.write(path, 5000, 0.8, 42)
    return TaskData.load(path)


def _paper_meta(spacing: float):
    from ldnn.config import ActivationConfig, MetaConfig
    from ldnn.metalearn import MetaProblem
    from ldnn.tasks import get

    cfg = MetaConfig(meta_gradient="unrolled", spline_spacing=spacing, outer_steps=1, outer_lr=0.4,
                     outer_momentum=0.8, grad_clip=0.1, inner_lr=0.01, inner_decay=0.8,
                     inner_epochs=5, batch_size=200, noise=0.1, snapshot_every=1,
                     checkpoint_every=1, seed=0, replicates=1)
    problem = MetaProblem(get("mnist1d"), (40, 100, 10), "sin", 2,
                          ActivationConfig(50, 0.2, -10.0, 10.0, 100))
    return problem, cfg


def measure_outer_step(impl: str, steps: int) -> dict:
    """Seconds per meta-gradient (median over `steps` after one warm-up) and peak memory."""
    import reference_metalearn
    from ldnn.activations import init_subnetworks
    from ldnn.metalearn import draw_inner_run, inner_loop, meta_gradient

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    data = _mnist1d()
    problem, cfg = _paper_meta(spacing=0 if impl == "ldnn_exact" else 0.01)
    generator = torch.Generator().manual_seed(0)
    phi = init_subnetworks(2, 50, generator)

    def one_step() -> None:
        run = draw_inner_run(problem, data.x_train.shape[0], cfg, generator)
        if impl == "reference":
            reference_metalearn.meta_gradient(phi, run, data.x_train, data.y_train,
                                              list(problem.sizes), torch.sin, 0.2,
                                              cfg.inner_lr, cfg.inner_decay)
        elif impl == "ldnn_inner_loop_only":
            with torch.no_grad():
                inner_loop(problem, phi, run, data, cfg, differentiable=False)
        else:
            meta_gradient(problem, phi, run, data, cfg)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"impl": impl, "seconds_per_step": statistics.median(times[1:]),
            "peak_mb": (peak - rss_before) / 1024, "steps": steps}


def _plain_loop_seed(data, seed: int, activation, n_types: int, epochs: int) -> float:
    """One seed trained the usual way: nn.Sequential, torch.optim.SGD, shuffled batches."""
    torch.manual_seed(seed)

    class Act(torch.nn.Module):
        def forward(self, x):
            return activation(x.reshape(*x.shape[:-1], n_types, -1)).reshape(x.shape)

    model = torch.nn.Sequential(torch.nn.Linear(40, 100), Act(), torch.nn.Linear(100, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.8)
    for _ in range(epochs):
        order = torch.randperm(data.x_train.shape[0])
        for start in range(0, order.shape[0], 200):
            index = order[start:start + 200]
            loss = torch.nn.functional.cross_entropy(model(data.x_train[index]),
                                                     data.y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float((model(data.x_test).argmax(-1) == data.y_test).float().mean())


def measure_training(seeds: int, epochs: int) -> list[dict]:
    from ldnn.activations import arm_activation
    from ldnn.config import TrainConfig
    from ldnn.tasks import get
    from ldnn.training import train_seed, train_seeds

    torch.set_num_threads(2)
    data, task = _mnist1d(), get("mnist1d")
    cfg = TrainConfig(lr=0.01, momentum=0.8, batch_size=200, epochs=epochs, seed=0,
                      forecast_horizon=5.0)
    grid = torch.linspace(-10, 10, 100)
    values = torch.stack([torch.sin(grid), torch.sin(grid) + 0.2 * torch.tanh(grid)])
    arms = [arm_activation(arm, grid, values)
            for arm in ["relu", "tanh", "sin", "type1", "type2", "mixed"]]
    sizes = [40, 100, 10]
    timings = {}
    started = time.perf_counter()
    for activation, n_types in arms:
        train_seeds(task, data, sizes, activation, n_types, cfg, range(seeds))
    timings["ldnn vectorised seeds"] = time.perf_counter() - started
    started = time.perf_counter()
    for activation, n_types in arms:
        for seed in range(seeds):
            train_seed(task, data, sizes, activation, n_types, cfg, seed)
    timings["loop over ldnn.training.train_seed"] = time.perf_counter() - started
    started = time.perf_counter()
    for activation, n_types in arms:
        for seed in range(seeds):
            _plain_loop_seed(data, seed, activation, n_types, epochs)
    timings["loop of nn.Module + torch.optim"] = time.perf_counter() - started
    return [{"impl": k, "seconds": v, "seeds": seeds, "epochs": epochs} for k, v in timings.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, seeds and epochs")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = 2 if args.quick else 5
    if args.measure:
        print(json.dumps(measure_outer_step(args.measure, steps)))
        return
    meta = [json.loads(subprocess.run([sys.executable, __file__, "--measure", impl]
                                      + (["--quick"] if args.quick else []),
                                      capture_output=True, text=True, check=True).stdout)
            for impl in ("reference", "ldnn_exact", "ldnn_spline", "ldnn_inner_loop_only")]
    training = measure_training(seeds=10 if args.quick else 50, epochs=5 if args.quick else 50)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                         f"torch {torch.__version__}",
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       capture_output=True, text=True).stdout.strip(),
              "meta": meta, "training": training}
    (ROOT / "results" / "perf" / "latest.json").write_text(json.dumps(result, indent=2))
    reference = meta[0]
    print(f"machine: {result['machine']}; commit {result['commit']}\n")
    print("| meta-learning outer step | s/step | × faster | peak MB | × leaner |\n|---|---|---|---|---|")
    for row in meta:
        print(f"| {row['impl']} | {row['seconds_per_step']:.3f} | "
              f"{reference['seconds_per_step'] / row['seconds_per_step']:.1f} | "
              f"{row['peak_mb']:.0f} | {reference['peak_mb'] / max(row['peak_mb'], 1):.1f} |")
    vectorised = training[0]["seconds"]
    print(f"\n| frozen training, 6 arms × {training[0]['seeds']} seeds × {training[0]['epochs']} "
          "epochs | s | × slower than vectorised |\n|---|---|---|")
    for row in training:
        print(f"| {row['impl']} | {row['seconds']:.1f} | {row['seconds'] / vectorised:.1f} |")


if __name__ == "__main__":
    main()
