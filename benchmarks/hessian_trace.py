"""A Hessian arm's trace, the exact closed form against Hutchinson's estimator to 1 %.

    .venv/bin/python benchmarks/hessian_trace.py RESULTS [--arm mixed] [--networks 6]

RESULTS: a finished run's results folder with the Hessian study's trained networks (e.g. a
restore of runs/paper). For the first networks of one arm, as the `hessian_arm` rule
computes them (float64, all training rows, config.yaml's settings, the rule's 2 threads
unless --threads): seconds of the exact trace, of Hutchinson's estimate to its relative
standard error, and of the SLQ that both paths share, each network's three parts one after
another so that machine load hits them alike; the exact trace's distance from the estimate
in standard errors. Prints one line per network and the arm's old (Hutchinson + SLQ) and
new (exact + SLQ) totals.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml

from ldnn import seeding, stages, tasks
from ldnn.analysis.hessian import exact_trace, hutchinson_trace, loss_hvp, slq

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--arm", default="mixed")
    parser.add_argument("--networks", type=int, default=6)
    parser.add_argument("--threads", type=int, default=stages.THREADS["hessian"])
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    settings = config["hessian"]
    study = settings["study"]
    task = config["studies"][study]["task"]
    width = config["studies"][study]["widths"][0]
    torch.set_num_threads(args.threads)
    spec = tasks.get(task)
    data = tasks.TaskData.load(args.results / f"data/{spec.dataset}.npz", torch.float64)
    blocks = sorted((args.results / study / "train" / settings["protocol"]).glob(
        f"r*/{args.arm}/w{width}/seeds*.pt"), key=lambda p: int(p.parts[-4][1:]))
    old, new = [], []
    print("| seed | exact s | Hutchinson s (probes) | SLQ s | exact | estimate ± SE | distance (SE) |\n"
          "|---|---|---|---|---|---|---|")
    for block in blocks:
        saved = torch.load(block, weights_only=True)
        activation, n_types = stages._arm(
            task, args.results / study / f"activations/r{saved['replicate']}.npz", args.arm)
        for i, seed in enumerate(saved["seeds"]):
            if len(old) >= args.networks:
                break
            params = tuple(p[i].double() for p in saved["params"])
            hvp, n = loss_hvp(spec, data, params, activation, n_types)
            generator = seeding.generator(settings["seed"], seed)
            trace, t_exact = timed(lambda: exact_trace(spec, data, params, activation, n_types))
            estimate, t_hutchinson = timed(lambda: hutchinson_trace(
                hvp, n, generator, settings["relative_error"], max_probes=settings["max_probes"]))
            _, t_slq = timed(lambda: slq(hvp, n, settings["slq_probes"], settings["lanczos_steps"],
                                         generator))
            old.append(t_hutchinson + t_slq)
            new.append(t_exact + t_slq)
            distance = (trace - estimate.trace) / estimate.standard_error
            print(f"| {seed} | {t_exact:.2f} | {t_hutchinson:.1f} ({estimate.probes}) | "
                  f"{t_slq:.1f} | {trace:.2f} | {estimate.trace:.2f} ± "
                  f"{estimate.standard_error:.2f} | {distance:+.2f} |", flush=True)
    ratios = [o / n for o, n in zip(old, new)]
    print(f"\n{args.arm}, {len(old)} networks: old (Hutchinson + SLQ) {sum(old):.1f} s, "
          f"new (exact + SLQ) {sum(new):.1f} s; old / new per network median "
          f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}–{max(ratios):.2f})")


if __name__ == "__main__":
    main()
