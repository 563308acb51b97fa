"""Benchmarks at the paper's settings, all measured in one run (`make bench`).

    .venv/bin/python benchmarks/run.py            # everything, prints Markdown tables
    .venv/bin/python benchmarks/run.py --quick    # fewer rounds, steps and seeds

1. Meta-learning outer step, ldnn against its JAX peer (benchmarks/jax_metalearn.py, the
   same algorithm and grid trick, jit-compiled), unrolled and first-order, for MNIST-1D
   (40 → 100 → 10, batch 200, 100 inner steps), van der Pol (2 → 100 → 2, 250 inner steps)
   and the Hénon–Heiles Hamiltonian network (4 → 100 → 1, 250 inner steps). Every
   measurement runs in its own process; the implementations are interleaved round by
   round, so machine load hits them alike; 2 threads each.
2. The textbook unroll (benchmarks/reference_metalearn.py) and ldnn's exact path
   (spline_spacing 0) at MNIST-1D paper settings.
3. Float32 accuracy: the default meta-gradient (float32, spline tables built in float64)
   against the float64 exact one, for several spline spacings.
4. Replicates: K independent meta-learnings batched in one process, K = 1, 2, 5, 10.
5. Frozen training, 6 arms × 50 seeds × 50 epochs: ldnn's vectorised seeds against a
   loop over ldnn's single-seed path and a loop of plain torch.nn/torch.optim training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

SPACING = 0.01
# Layer sizes of each benchmarked task at paper settings.
WORKLOADS = {"mnist1d": (40, 100, 10), "van_der_pol": (2, 100, 2),
             "henon_heiles_hnn": (4, 100, 1)}


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss, not inherited from the
    parent that started it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _mnist1d():
    from ldnn.tasks import TaskData, mnist1d
    path = ROOT / "results" / "perf" / "mnist1d.npz"
    if not path.exists():
        mnist1d.write(path, 5000, 0.8, 42)
    return TaskData.load(path)


def task_data(task: str, dtype: torch.dtype = torch.float32):
    """MNIST-1D (generator defaults) or a physics data set with config.yaml's settings,
    generated once into results/perf/."""
    from ldnn.tasks import TaskData, get, module
    dataset = get(task).dataset
    if dataset == "mnist1d":
        return TaskData(*(t.to(dtype) if t.is_floating_point() else t
                          for t in dataclasses.astuple(_mnist1d())[:4]))
    path = ROOT / "results" / "perf" / f"{dataset}.npz"
    if not path.exists():
        settings = yaml.safe_load((ROOT / "config.yaml").read_text())["data"][dataset]
        module(dataset).write(path, **settings)
    return TaskData.load(path, dtype)


def _paper_meta(spacing: float, task: str = "mnist1d", meta_gradient: str = "unrolled"):
    from ldnn.config import ActivationConfig, MetaConfig
    from ldnn.metalearn import MetaProblem
    from ldnn.tasks import get

    cfg = MetaConfig(meta_gradient=meta_gradient, spline_spacing=spacing, outer_steps=1,
                     outer_lr=0.4, outer_momentum=0.8, grad_clip=0.1, inner_lr=0.01,
                     inner_decay=0.8, inner_epochs=5, batch_size=200, noise=0.1,
                     snapshot_every=1, checkpoint_every=1, seed=0, replicates=1,
                     replicates_per_job=1)
    problem = MetaProblem(get(task), WORKLOADS[task], "sin", 2,
                          ActivationConfig(50, 0.2, -10.0, 10.0, 100))
    return problem, cfg


def measure_ldnn(impl: str, task: str, meta_gradient: str, steps: int, warmup: int,
                 replicates: int = 1) -> dict:
    """Seconds per outer step (median, min, max over `steps` after `warmup`) and the
    process's peak resident memory for ldnn's meta-gradient for `replicates` replicates at once; impl
    "ldnn" (the default path), "ldnn_exact" (spline_spacing 0), "reference" (the textbook
    unroll) or "ldnn_inner_loop_only" (the inner loop alone, no meta-gradient)."""
    import reference_metalearn
    from ldnn import fused, seeding
    from ldnn.activations import init_subnetworks
    from ldnn.metalearn import draw_inner_run, inner_loop, meta_gradients

    torch.set_num_threads(2)
    data = task_data(task)
    problem, cfg = _paper_meta(0 if impl in ("ldnn_exact", "reference") else SPACING, task,
                               meta_gradient)
    started = time.perf_counter()
    fused.kernel()
    load_seconds = time.perf_counter() - started
    generator = torch.Generator().manual_seed(0)
    phis = [init_subnetworks(2, 50, generator) for _ in range(replicates)]
    ranges = [(-10.0, 10.0)] * replicates
    def one_step() -> None:
        nonlocal ranges
        runs = [draw_inner_run(problem, data.x_train.shape[0], cfg, generator)
                for _ in range(replicates)]
        if impl == "reference":
            reference_metalearn.meta_gradient(phis[0], runs[0], data.x_train, data.y_train,
                                              list(problem.sizes), torch.sin, 0.2,
                                              cfg.inner_lr, cfg.inner_decay)
        elif impl == "ldnn_inner_loop_only":
            with torch.no_grad():
                inner_loop(problem, phis[0], runs[0], data, cfg, differentiable=False)
        else:
            results = meta_gradients(problem, phis, runs, data, cfg, ranges)
            ranges = [met for _, _, met in results]

    times = []
    with seeding.deterministic():
        for _ in range(warmup + steps):
            started = time.perf_counter()
            one_step()
            times.append(time.perf_counter() - started)
    timed = times[warmup:]
    return {"impl": impl, "task": task, "meta_gradient": meta_gradient,
            "replicates": replicates, "seconds_per_step": statistics.median(timed),
            "min": min(timed), "max": max(timed), "first_step_seconds": times[0],
            "kernel_load_seconds": load_seconds,
            "peak_mb": peak_mb(), "steps": steps}


def float32_error(spacings: list[float], seeds: int) -> list[dict]:
    """Max-entry relative error of the float32 meta-gradient (tables built in float64)
    against the float64 exact one at MNIST-1D paper settings, for each spacing."""
    from ldnn import seeding
    from ldnn.activations import init_subnetworks
    from ldnn.metalearn import draw_inner_run, meta_gradient, meta_gradients
    from ldnn.tasks import TaskData

    torch.set_num_threads(2)
    data = task_data("mnist1d")
    data64 = TaskData(*(t.double() if t.is_floating_point() else t
                        for t in dataclasses.astuple(data)[:4]))
    rows = []
    with seeding.deterministic():
        for meta in ("unrolled", "first_order"):
            problem, cfg = _paper_meta(0, "mnist1d", meta)
            draws = []
            for seed in range(seeds):
                phi = init_subnetworks(2, 50, seeding.generator(seed, seeding.ACTIVATIONS))
                run = draw_inner_run(problem, 4000, cfg, seeding.generator(seed, seeding.INIT))
                run64 = dataclasses.replace(run, theta0=tuple(p.double() for p in run.theta0),
                                            noise=[n.double() for n in run.noise])
                _, exact = meta_gradient(problem, {k: v.double() for k, v in phi.items()}, run64,
                                         data64, cfg)
                draws.append((phi, run, torch.cat([g.reshape(-1) for g in exact.values()])))
            for spacing in spacings:
                errors = []
                for phi, run, exact in draws:
                    (_, grads, _), = meta_gradients(
                        problem, [phi], [run], data, dataclasses.replace(cfg, spline_spacing=spacing),
                        [(-10.0, 10.0)])
                    approx = torch.cat([g.double().reshape(-1) for g in grads.values()])
                    errors.append(float((approx - exact).abs().max() / exact.abs().max()))
                rows.append({"meta_gradient": meta, "spacing": spacing, "errors": errors})
    return rows


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
    cfg = TrainConfig(protocol="paper", optimizer="sgd", lr=0.01, momentum=0.8,
                      schedule="constant", epochs=epochs, validation=0, patience=0,
                      min_improvement=0, batch_size=200, seed=0, forecast_horizon=5.0,
                      unconverged_change=0.01, compiled=True)
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


def _subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ldnn(impl: str, task: str, meta: str, steps: int, warmup: int, replicates: int = 1) -> dict:
    return _subprocess([__file__, "--measure", impl, "--task", task, "--meta-gradient", meta,
                        "--steps", str(steps), "--warmup", str(warmup),
                        "--replicates", str(replicates)])


def _jax(task: str, meta: str, steps: int, warmup: int, threads: int) -> dict:
    return _subprocess([str(ROOT / "benchmarks" / "jax_metalearn.py"), "--task", task,
                        "--meta-gradient", meta, "--steps", str(steps), "--warmup",
                        str(warmup), "--threads", str(threads)])


def _pooled(rows: list[dict]) -> dict:
    """Rounds of one implementation as one row: median of the round medians, the
    extremes over every timed step, the largest memory."""
    return rows[0] | {"seconds_per_step": statistics.median(r["seconds_per_step"] for r in rows),
                      "min": min(r["min"] for r in rows), "max": max(r["max"] for r in rows),
                      "peak_mb": max(r["peak_mb"] for r in rows), "rounds": len(rows)}


def outer_steps_against_jax(rounds: int, quick: bool) -> list[dict]:
    """ldnn (2 threads) and the JAX peer (1 and 2 threads: XLA is often faster on one for
    operations this small), interleaved: every round runs each (task, meta-gradient,
    implementation) once, in its own process."""
    cases = [(task, meta) for task in WORKLOADS for meta in ("unrolled", "first_order")]
    measured: dict[tuple, list[dict]] = {}
    for _ in range(rounds):
        for task, meta in cases:
            slow = task == "henon_heiles_hnn" and meta == "unrolled"
            steps, warmup = (2, 1) if slow or quick else (5, 2)
            measured.setdefault(("ldnn", task, meta), []).append(
                _ldnn("ldnn", task, meta, steps, warmup))
            for threads in (1, 2):
                measured.setdefault((f"jax{threads}", task, meta), []).append(
                    _jax(task, meta, steps, warmup, threads))
    return [_pooled(rows) | {"impl": impl} for (impl, _, _), rows in measured.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, steps and seeds")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--task", default="mnist1d", help=argparse.SUPPRESS)
    parser.add_argument("--meta-gradient", default="unrolled", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--replicates", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_ldnn(args.measure, args.task, args.meta_gradient, args.steps,
                                      args.warmup, args.replicates)))
        return
    quick = args.quick
    peers = outer_steps_against_jax(rounds=1 if quick else 3, quick=quick)
    textbook = [_ldnn(impl, "mnist1d", "unrolled", 2 if quick else 3, 1)
                for impl in ("reference", "ldnn_exact", "ldnn_inner_loop_only")]
    accuracy = float32_error([0.002, 0.005, 0.01, 0.02, 0.05], seeds=1 if quick else 2)
    replicates = [_ldnn("ldnn", "mnist1d", meta, 3 if quick else 5, 1, k)
                  for meta in ("unrolled", "first_order") for k in (1, 2, 5, 10)]
    training = measure_training(seeds=10 if quick else 50, epochs=5 if quick else 50)
    result = {"machine": f"{platform.machine()}, 2 threads, torch {torch.__version__}",
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       capture_output=True, text=True).stdout.strip(),
              "peers": peers, "textbook": textbook, "float32": accuracy,
              "replicates": replicates, "training": training}
    (ROOT / "results" / "perf").mkdir(parents=True, exist_ok=True)
    (ROOT / "results" / "perf" / "latest.json").write_text(json.dumps(result, indent=2))
    print_tables(result)


def print_tables(result: dict) -> None:
    print(f"machine: {result['machine']}; commit {result['commit']}\n")
    print("| task | meta-gradient | ldnn s/step, median (min–max) | JAX, 1 thread | JAX, 2 threads "
          "| ldnn / fastest JAX | JAX first call (compile) s | peak MB ldnn / JAX |\n"
          "|---|---|---|---|---|---|---|---|")
    rows = {(r["impl"], r["task"], r["meta_gradient"]): r for r in result["peers"]}

    def cell(row: dict) -> str:
        return f"{row['seconds_per_step']:.3f} ({row['min']:.3f}–{row['max']:.3f})"

    for (impl, task, meta), ldnn in rows.items():
        if impl != "ldnn":
            continue
        jax = [rows[(f"jax{threads}", task, meta)] for threads in (1, 2)]
        fastest = min(jax, key=lambda r: r["seconds_per_step"])
        print(f"| {task} | {meta} | {cell(ldnn)} | {cell(jax[0])} | {cell(jax[1])} | "
              f"**{ldnn['seconds_per_step'] / fastest['seconds_per_step']:.2f}** | "
              f"{fastest['compile_seconds']:.1f} | {ldnn['peak_mb']:.0f} / {fastest['peak_mb']:.0f} |")
    print("\n| MNIST-1D, unrolled | s/step | peak MB |\n|---|---|---|")
    for row in result["textbook"]:
        print(f"| {row['impl']} | {row['seconds_per_step']:.3f} | {row['peak_mb']:.0f} |")
    print("\n| spline spacing | unrolled: max-entry relative error vs float64 exact "
          "| first-order |\n|---|---|---|")
    by = {(r["meta_gradient"], r["spacing"]): r["errors"] for r in result["float32"]}
    for spacing in sorted({r["spacing"] for r in result["float32"]}):
        cells = [", ".join(f"{e:.1e}" for e in by[(m, spacing)])
                 for m in ("unrolled", "first_order")]
        print(f"| {spacing} | {cells[0]} | {cells[1]} |")
    print("\n| replicates K | meta-gradient | s/outer step | × K = 1 | s per replicate | peak MB "
          "|\n|---|---|---|---|---|---|")
    single = {r["meta_gradient"]: r["seconds_per_step"] for r in result["replicates"]
              if r["replicates"] == 1}
    for row in result["replicates"]:
        k, meta = row["replicates"], row["meta_gradient"]
        print(f"| {k} | {meta} | {row['seconds_per_step']:.3f} | "
              f"{row['seconds_per_step'] / single[meta]:.2f} | {row['seconds_per_step'] / k:.3f} | "
              f"{row['peak_mb']:.0f} |")
    vectorised = result["training"][0]["seconds"]
    print(f"\n| frozen training, 6 arms × {result['training'][0]['seeds']} seeds × "
          f"{result['training'][0]['epochs']} epochs | s | × slower than vectorised |\n|---|---|---|")
    for row in result["training"]:
        print(f"| {row['impl']} | {row['seconds']:.1f} | {row['seconds'] / vectorised:.1f} |")


if __name__ == "__main__":
    main()
