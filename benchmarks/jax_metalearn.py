"""A JAX peer of ldnn's meta-learning outer step (Algorithm 1 of Choudhary et al. 2023),
the yardstick of the benchmarks.

    .venv/bin/python benchmarks/jax_metalearn.py --task mnist1d --meta-gradient unrolled \
        --steps 9 --warmup 2 --threads 2

prints one JSON line: seconds per outer step (median, min, max), the first call's time
(compilation included) and the process's peak resident memory.

It is written as a strong JAX user would write it, so that beating it means something:
the whole outer step is one jit-compiled function; the inner loop is a `lax.scan` whose
body takes the inner gradient with `jax.value_and_grad` and applies RMSprop to the
parameter pytree; the unrolled meta-gradient is `jax.grad` through the scan (second
order), with the scan body under `jax.checkpoint` (rematerialised in the backward pass:
on CPU twice as fast as storing every step's intermediates, with 10–40× less memory); the
first-order one is `jax.grad` of the loss at the final, stop-gradiented θ. It uses
ldnn's own trick too: once per outer step every activation σ_t (base included) is
tabulated with its exact slope on a uniform grid of spacing h = 0.01 and turned into
cubic Hermite coefficients, evaluated in the inner loop by a gather and Horner's rule;
autodiff gives the slopes and curvatures inside the loop and, through the gather's
scatter-add transpose, the gradient with respect to φ. `spacing=0` evaluates the
sub-networks directly instead (the exact variant, for correctness).

Shapes must be static under jit, so unlike ldnn's table, which grows to cover whatever
it meets, this one spans a fixed range, [-16, 16] (HALF_RANGE): over twice the largest
|pre-activation| measured over 11 inner loops at the paper settings and the initial φ
(MNIST-1D 7.7, van der Pol 5.7, Hénon–Heiles HNN 1.8). A wider range costs only table
nodes (3 201 per type here, about a millisecond to build). Every outer step also returns the span of
the pre-activations it met, and `measure` checks that it fell inside the table.

The random draws are ldnn's (`draw_inner_run`, `init_subnetworks`, torch generators),
converted to arrays, so ldnn and the peer compute the same meta-gradient.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import torch
from jax import lax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import SPACING, WORKLOADS, _paper_meta, peak_mb, task_data  # noqa: E402  (shared settings)

from ldnn.activations import init_subnetworks  # noqa: E402
from ldnn.metalearn import InnerRun, MetaProblem, draw_inner_run  # noqa: E402
from ldnn.tasks import get  # noqa: E402

HALF_RANGE = 16.0
BASES: dict[str, Callable] = {"sin": jnp.sin, "tanh": jnp.tanh, "relu": jax.nn.relu,
                              "zero": jnp.zeros_like}

Phi = dict[str, jax.Array]


class Run(NamedTuple):
    """ldnn's InnerRun as arrays: θ0 (W1, b1, …), batches (K, B), noise per hidden layer
    (K, H), final_batch (B,)."""
    theta0: tuple[jax.Array, ...]
    batches: jax.Array
    noise: tuple[jax.Array, ...]
    final_batch: jax.Array


def array(t: torch.Tensor) -> jax.Array:
    """A torch tensor as a JAX array; integers as int32 (indices, labels)."""
    return jnp.asarray(t.detach().numpy() if t.is_floating_point() else t.numpy().astype(np.int32))


def to_jax(run: InnerRun) -> Run:
    return Run(tuple(map(array, run.theta0)), array(run.batches), tuple(map(array, run.noise)),
               array(run.final_batch))


def phi_to_jax(phi: dict[str, torch.Tensor]) -> Phi:
    return {k: array(v) for k, v in phi.items()}


# Activations: σ_t(x) = base(x) + scale·g_t(x), x (..., T, n) with type t on [..., t, :].

def subnetwork(phi: Phi, x: jax.Array) -> jax.Array:
    """g_t(x) = Σ_j w2[t,j] tanh(w1[t,j] x + b1[t,j]) + b2[t]: x (..., T, n) → (..., T, n)."""
    hidden = jnp.tanh(x[..., None] * phi["w1"][:, None] + phi["b1"][:, None])
    return jnp.einsum("...tnw,tw->...tn", hidden, phi["w2"]) + phi["b2"][:, None]


def hermite_table(f: Callable, n_types: int, low: float, spacing: float, intervals: int,
                  dtype) -> jax.Array:
    """Cubic Hermite coefficients (T·I, 4) of the elementwise f on I intervals from `low`:
    row t·I + i holds c0..c3 of f_t(low + h(i + s)) = c0 + c1 s + c2 s² + c3 s³, s ∈ [0, 1]."""
    grid = jnp.broadcast_to(low + spacing * jnp.arange(intervals + 1, dtype=dtype),
                            (n_types, intervals + 1))
    y, d = jax.jvp(f, (grid,), (jnp.ones_like(grid),))
    d = d * spacing
    y0, y1, d0, d1 = y[:, :-1], y[:, 1:], d[:, :-1], d[:, 1:]
    return jnp.stack([y0, d0, 3 * (y1 - y0) - 2 * d0 - d1, 2 * (y0 - y1) + d0 + d1],
                     -1).reshape(-1, 4)


def hermite(coefficients: jax.Array, x: jax.Array, low: float, spacing: float,
            intervals: int) -> jax.Array:
    """The tabulated functions at x (..., T, n) → (..., T, n): one gather and a cubic."""
    position = (x - low) / spacing
    left = jnp.clip(jnp.floor(lax.stop_gradient(position)), 0, intervals - 1)
    s = position - left
    rows = left.astype(jnp.int32) + intervals * jnp.arange(x.shape[-2], dtype=jnp.int32)[:, None]
    c = coefficients.at[rows].get(mode="promise_in_bounds")
    return c[..., 0] + s * (c[..., 1] + s * (c[..., 2] + s * c[..., 3]))


class Peer(NamedTuple):
    """What the outer step is compiled for (all static)."""
    sizes: tuple[int, ...]
    n_types: int
    base: str
    scale: float
    classification: bool
    hamiltonian: bool
    meta_gradient: str
    inner_lr: float
    inner_decay: float
    spacing: float      # 0: exact sub-networks
    low: float = -HALF_RANGE
    high: float = HALF_RANGE

    @property
    def intervals(self) -> int:
        return int(np.ceil((self.high - self.low) / self.spacing - 1e-9))

    def tabulate(self, phi: Phi):
        """Per-outer-step form of the activations: φ itself (exact) or the spline table
        (T·I, 4), covering the base too unless it is ReLU (not smooth: added exactly)."""
        if not self.spacing:
            return phi
        base = BASES["zero" if self.base == "relu" else self.base]
        return hermite_table(lambda x: base(x) + self.scale * subnetwork(phi, x),
                             self.n_types, self.low, self.spacing, self.intervals,
                             phi["w1"].dtype)

    def activation(self, table, x: jax.Array) -> jax.Array:
        """σ_t(x): x (..., T, n) → (..., T, n)."""
        if not self.spacing:
            return BASES[self.base](x) + self.scale * subnetwork(table, x)
        value = hermite(table, x, self.low, self.spacing, self.intervals)
        return value + jax.nn.relu(x) if self.base == "relu" else value


def peer_of(problem: MetaProblem, meta_gradient: str, inner_lr: float, inner_decay: float,
            spacing: float = SPACING, half_range: float = HALF_RANGE) -> Peer:
    return Peer(tuple(problem.sizes), problem.n_types, problem.base, problem.activation.scale,
                problem.task.loss_kind == "cross_entropy", problem.task.hamiltonian, meta_gradient,
                inner_lr, inner_decay, spacing, -half_range, half_range)


def network(peer: Peer, table, theta, x: jax.Array, noise) -> tuple[jax.Array, jax.Array]:
    """x (B, n_in) → output (B, n_out) and the span [min, max] of the pre-activations;
    hidden layer l's neurons in T equal blocks, noise[l] (H_l,) added after σ."""
    h, lows, highs = x, [], []
    n_layers = len(theta) // 2
    for layer in range(n_layers):
        h = h @ theta[2 * layer].T + theta[2 * layer + 1]
        if layer < n_layers - 1:
            lows.append(h.min())
            highs.append(h.max())
            typed = h.reshape(h.shape[0], peer.n_types, -1)
            h = peer.activation(table, typed).reshape(h.shape) + noise[layer]
    return h, lax.stop_gradient(jnp.stack([jnp.min(jnp.stack(lows)), jnp.max(jnp.stack(highs))]))


def loss(peer: Peer, table, theta, x: jax.Array, y: jax.Array, noise):
    """The task's loss on one batch and the pre-activations' span. Cross-entropy for
    MNIST-1D, else MSE; a Hamiltonian network's prediction is (∂H/∂p, −∂H/∂q)."""
    if peer.hamiltonian:
        def energy(state):
            out, span = network(peer, table, theta, state, noise)
            return out.sum(), span
        grad, span = jax.grad(energy, has_aux=True)(x)
        d = x.shape[-1] // 2
        prediction = jnp.concatenate([grad[:, d:], -grad[:, :d]], -1)
    else:
        prediction, span = network(peer, table, theta, x, noise)
    if peer.classification:
        picked = jnp.take_along_axis(prediction, y[:, None], -1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(prediction, -1) - picked), span
    return jnp.mean((prediction - y) ** 2), span


def inner_loop(peer: Peer, table, run: Run, x: jax.Array, y: jax.Array):
    """RMSprop from run.theta0 (square average starts at 1) over the K batches: final θ,
    losses (K,) at θ_k before each update, spans (K, 2)."""
    value_and_grad = jax.value_and_grad(partial(loss, peer, table), has_aux=True)
    decay, lr = peer.inner_decay, peer.inner_lr

    def step(carry, batch):
        theta, square = carry
        index, noise = batch
        (value, span), grad = value_and_grad(theta, x[index], y[index], noise)
        square = jax.tree.map(lambda v, g: decay * v + (1 - decay) * g * g, square, grad)
        theta = jax.tree.map(lambda p, g, v: p - lr * g / (jnp.sqrt(v) + 1e-8),
                             theta, grad, square)
        return (theta, square), (value, span)

    # Under the unrolled meta-gradient: recompute each step in the backward pass.
    step = jax.checkpoint(step, prevent_cse=False)
    start = (run.theta0, jax.tree.map(jnp.ones_like, run.theta0))
    (theta, _), (losses, spans) = lax.scan(step, start, (run.batches, run.noise))
    return theta, losses, spans


def _span(spans: jax.Array) -> jax.Array:
    return jnp.stack([spans[..., 0].min(), spans[..., 1].max()])


def outer_step(peer: Peer) -> Callable:
    """The jitted meta-gradient: (φ, run, x_train, y_train) → outer loss (mean inner loss),
    gradients like φ, and the pre-activations' span (2,)."""
    def unrolled(phi: Phi, run: Run, x, y):
        def outer(phi):
            _, losses, spans = inner_loop(peer, peer.tabulate(phi), run, x, y)
            return losses.mean(), _span(spans)
        (value, span), grads = jax.value_and_grad(outer, has_aux=True)(phi)
        return value, grads, span

    def first_order(phi: Phi, run: Run, x, y):
        def final(phi):
            table = peer.tabulate(phi)
            theta, losses, spans = inner_loop(peer, lax.stop_gradient(table), run, x, y)
            index, noise = run.final_batch, tuple(n[-1] for n in run.noise)
            value, span = loss(peer, table, lax.stop_gradient(theta), x[index], y[index], noise)
            return value, (losses.mean(), _span(jnp.stack([_span(spans), span])))
        (_, (value, span)), grads = jax.value_and_grad(final, has_aux=True)(phi)
        return value, grads, span

    methods = {"unrolled": unrolled, "first_order": first_order}
    if peer.meta_gradient not in methods:
        raise ValueError(f"unknown meta_gradient {peer.meta_gradient!r}")
    return jax.jit(methods[peer.meta_gradient])


# Benchmark workloads at the paper settings of benchmarks/run.py.

class Workload(NamedTuple):
    """One benchmark workload, ready to run `step(phi, draw(), x, y)`."""
    step: Callable              # the jitted outer step of `outer_step`
    peer: Peer
    phi: Phi                    # ldnn's initial sub-networks
    x: jax.Array                # training inputs (N, n_in)
    y: jax.Array                # training targets (N, …)
    draw: Callable[[], Run]     # the next inner run from ldnn's generator (seed 0)


def build(task: str, meta_gradient: str, exact: bool = False,
          dtype: torch.dtype = torch.float32) -> Workload:
    """A workload at the settings of benchmarks/run.py's `_paper_meta`: 2 types of
    sin + 0.2·g_t (width 50), hidden 100, batch 200, 5 inner epochs (MNIST-1D: 100 inner
    steps, the physics tasks: 250). float64 needs jax_enable_x64."""
    data = task_data(task, dtype)
    problem, cfg = _paper_meta(0.0 if exact else SPACING)
    problem = dataclasses.replace(problem, task=get(task), sizes=WORKLOADS[task])
    cfg = dataclasses.replace(cfg, meta_gradient=meta_gradient)
    peer = peer_of(problem, meta_gradient, cfg.inner_lr, cfg.inner_decay, cfg.spline_spacing)
    generator = torch.Generator().manual_seed(cfg.seed)
    phi = init_subnetworks(problem.n_types, problem.activation.width, generator, dtype)

    def draw() -> Run:
        return to_jax(draw_inner_run(problem, data.x_train.shape[0], cfg, generator, dtype))

    return Workload(outer_step(peer), peer, phi_to_jax(phi), array(data.x_train),
                    array(data.y_train), draw)


def set_threads(threads: int) -> None:
    """Cap XLA's CPU threads, by its flags and, when fewer threads than allowed cores are
    asked for, by pinning the process to the first `threads` of them. Effective only
    before the process's first JAX computation."""
    multi = "true" if threads > 1 else "false"
    os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={multi} "
                               f"intra_op_parallelism_threads={threads}")
    allowed = sorted(os.sched_getaffinity(0))
    if threads < len(allowed):
        os.sched_setaffinity(0, allowed[:threads])


def measure(task: str, meta_gradient: str, steps: int = 9, warmup: int = 2, threads: int = 2,
            exact: bool = False, dtype: torch.dtype = torch.float32) -> dict:
    """Time `steps` outer steps after `warmup` untimed ones (at least 1: the first call
    compiles). Each step draws a new inner run with ldnn's generator, as benchmarks/run.py
    does for ldnn; the draw is timed too (about a millisecond). Run in a fresh process:
    the thread count must be set before JAX first computes."""
    set_threads(threads)
    task_data(task, dtype)  # generated, if missing, before memory is measured
    work = build(task, meta_gradient, exact, dtype)
    low, high = np.inf, -np.inf
    times = []
    for _ in range(max(1, warmup) + steps):
        started = time.perf_counter()
        value, _, span = jax.block_until_ready(work.step(work.phi, work.draw(), work.x, work.y))
        times.append(time.perf_counter() - started)
        low, high = min(low, float(span[0])), max(high, float(span[1]))
    peer = work.peer
    if peer.spacing and not (peer.low <= low and high <= peer.high):
        raise RuntimeError(f"pre-activations in [{low:.2f}, {high:.2f}] left the table's range "
                           f"[{peer.low}, {peer.high}]")
    timed = times[max(1, warmup):]
    return {"impl": f"jax {jax.__version__} " + ("exact" if exact else f"hermite h={SPACING}"),
            "task": task, "meta_gradient": meta_gradient,
            "seconds_per_step": statistics.median(timed), "min": min(timed), "max": max(timed),
            "compile_seconds": times[0],
            "peak_mb": peak_mb(),
            "steps": steps, "threads": threads, "dtype": str(dtype).removeprefix("torch."),
            "table_range": [peer.low, peer.high] if peer.spacing else None,
            "preactivation_span": [round(low, 3), round(high, 3)], "outer_loss": float(value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(WORKLOADS), default="mnist1d")
    parser.add_argument("--meta-gradient", choices=("unrolled", "first_order"),
                        default="unrolled")
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--exact", action="store_true", help="no spline table")
    parser.add_argument("--float64", action="store_true")
    args = parser.parse_args()
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    print(json.dumps(measure(args.task, args.meta_gradient, args.steps, args.warmup, args.threads,
                             args.exact, torch.float64 if args.float64 else torch.float32)))


if __name__ == "__main__":
    main()
