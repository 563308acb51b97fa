"""Meta-learning of activation functions (Algorithm 1 of Choudhary et al. 2023).

Every outer step trains a freshly initialised network for a few epochs with RMSprop
(the inner loop), using the current learned activations, then moves the activations'
sub-network parameters φ along the meta-gradient:

- ``unrolled``: d/dφ of the mean inner loss over the whole inner trajectory, through
  every inner update (second order, as the authors' PyTorch code);
- ``first_order``: ∂/∂φ of the loss at the final inner parameters on a fresh batch,
  holding those parameters fixed (as the authors' JAX code).

The meta-gradient is clamped elementwise, then applied by SGD with heavy-ball momentum.
Where it applies, the inner loop and its reverse pass run in the compiled kernel
(ldnn.fused); elsewhere through autograd, which also serves as the kernel's yardstick.
Independent replicates of the whole procedure run side by side, each with its own seeds.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ldnn import extensions, fused, seeding
from ldnn.activations import SplineActivations, init_subnetworks, tabulate_learned
from ldnn.config import ActivationConfig, MetaConfig
from ldnn.io import atomic_path, write_npz
from ldnn.networks import Params, flatten, forward, init_mlp, unflatten
from ldnn.tasks import Task, TaskData

log = logging.getLogger(__name__)

META_GRADIENTS = ("unrolled", "first_order")


@dataclass(frozen=True)
class MetaProblem:
    """What is meta-learned: T activation types from `base`, in a network of layer `sizes`."""
    task: Task
    sizes: tuple[int, ...]
    base: str
    n_types: int
    activation: ActivationConfig


@dataclass
class InnerRun:
    """Random draws of one inner loop: init θ0, batch indices (K, B), hidden noise per layer
    (K, H), and the batch (B,) of the first-order meta-gradient."""
    theta0: Params
    batches: Tensor
    noise: list[Tensor]
    final_batch: Tensor


def draw_inner_run(problem: MetaProblem, n_train: int, cfg: MetaConfig,
                   generator: torch.Generator, dtype: torch.dtype = torch.float32) -> InnerRun:
    theta0 = init_mlp(problem.sizes, generator, dtype)
    per_epoch = n_train // cfg.batch_size
    orders = [torch.randperm(n_train, generator=generator)[:per_epoch * cfg.batch_size]
              for _ in range(cfg.inner_epochs)]
    batches = torch.cat(orders).reshape(-1, cfg.batch_size)
    noise = [(torch.rand((batches.shape[0], width), generator=generator, dtype=dtype) * 2 - 1)
             * cfg.noise for width in problem.sizes[1:-1]]
    final_batch = torch.randperm(n_train, generator=generator)[:cfg.batch_size]
    return InnerRun(theta0, batches, noise, final_batch)


def _loss(problem: MetaProblem, activation: SplineActivations, theta: Params, x: Tensor,
          y: Tensor, noise: list[Tensor]) -> Tensor:
    def network(z: Tensor) -> Tensor:
        return forward(theta, z, activation, problem.n_types, noise)

    return problem.task.loss(problem.task.predict(network, x), y)


def loss_and_gradient(problem: MetaProblem, activation: SplineActivations, theta: Params,
                      x: Tensor, y: Tensor, noise: list[Tensor]) -> tuple[Tensor, Tensor]:
    """The inner loss and its gradient with respect to θ, flattened (N,), by explicit
    backpropagation through the MLP (not for Hamiltonian tasks).

    Every operation is an ordinary differentiable one, so under autograd the gradient keeps
    its graph back to φ and the unrolled meta-gradient needs first derivatives only.
    """
    n_layers = len(theta) // 2
    inputs, slopes, h = [], [], x
    for layer in range(n_layers - 1):
        inputs.append(h)
        z = h @ theta[2 * layer].mT + theta[2 * layer + 1]
        typed = z.reshape(*z.shape[:-1], problem.n_types, -1)
        value, slope = activation.value_and_slope(typed)
        h = value.reshape(z.shape) + noise[layer]
        slopes.append(slope.reshape(z.shape))
    inputs.append(h)
    out = h @ theta[-2].mT + theta[-1]
    differentiable = out.requires_grad
    with torch.enable_grad():
        out = out if differentiable else out.requires_grad_()
        loss = problem.task.loss(out, y)
        (delta,) = torch.autograd.grad(loss, out, create_graph=differentiable)
    if not differentiable:
        loss = loss.detach()
    grads: list[Tensor] = [torch.empty(0)] * len(theta)
    for layer in reversed(range(n_layers)):
        grads[2 * layer] = delta.mT @ inputs[layer]
        grads[2 * layer + 1] = delta.sum(-2)
        if layer:
            delta = (delta @ theta[2 * layer]) * slopes[layer - 1]
    return loss, flatten(grads)


def inner_loop(problem: MetaProblem, phi: dict[str, Tensor], run: InnerRun, data: TaskData,
               cfg: MetaConfig, differentiable: bool) -> tuple[Params, Tensor]:
    """RMSprop from run.theta0 (square average starts at 1): final θ and the losses (K,).

    With `differentiable`, θ and the losses keep their graph back to φ. θ is updated as one
    flat vector, so each update is a handful of autograd nodes whatever the depth. The
    inner gradient is by explicit backpropagation (`loss_and_gradient`), except for
    Hamiltonian tasks, whose loss already differentiates the network: there by autograd.
    """
    activation = SplineActivations(phi, problem.base, problem.activation.scale, cfg.spline_spacing)
    flat = flatten(run.theta0).detach().requires_grad_(problem.task.hamiltonian)
    square_avg = torch.ones_like(flat)
    losses = []
    for k, index in enumerate(run.batches):
        noise = [n[k] for n in run.noise]
        x, y = data.x_train[index], data.y_train[index]
        if problem.task.hamiltonian:
            with torch.enable_grad():
                loss = _loss(problem, activation, unflatten(flat, run.theta0), x, y, noise)
                (grad,) = torch.autograd.grad(loss, flat, create_graph=differentiable,
                                              materialize_grads=True)
        else:
            with torch.set_grad_enabled(differentiable):
                loss, grad = loss_and_gradient(problem, activation, unflatten(flat, run.theta0),
                                               x, y, noise)
        square_avg = cfg.inner_decay * square_avg + (1 - cfg.inner_decay) * grad * grad
        flat = flat - cfg.inner_lr * grad / (square_avg.sqrt() + 1e-8)
        if not differentiable:
            flat = flat.detach().requires_grad_(problem.task.hamiltonian)
            loss = loss.detach()
        losses.append(loss)
    return unflatten(flat, run.theta0), torch.stack(losses)


def meta_gradient(problem: MetaProblem, phi: dict[str, Tensor], run: InnerRun, data: TaskData,
                  cfg: MetaConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Outer loss (mean inner loss) and its meta-gradient with respect to φ, through autograd
    (any task and depth; the yardstick for the compiled kernel)."""
    phi = {k: v.detach().requires_grad_() for k, v in phi.items()}
    if cfg.meta_gradient == "unrolled":
        _, losses = inner_loop(problem, phi, run, data, cfg, differentiable=True)
        outer_loss = losses.mean()
        grads = torch.autograd.grad(outer_loss, list(phi.values()), materialize_grads=True)
        return outer_loss.detach(), dict(zip(phi, grads))
    if cfg.meta_gradient == "first_order":
        theta, losses = inner_loop(problem, phi, run, data, cfg, differentiable=False)
        theta = tuple(p.detach() for p in theta)
        noise = [n[-1] for n in run.noise]
        activation = SplineActivations(phi, problem.base, problem.activation.scale,
                                       cfg.spline_spacing)
        loss = _loss(problem, activation, theta, data.x_train[run.final_batch],
                     data.y_train[run.final_batch], noise)
        grads = torch.autograd.grad(loss, list(phi.values()), materialize_grads=True)
        return losses.mean(), dict(zip(phi, grads))
    raise ValueError(f"unknown meta_gradient {cfg.meta_gradient!r}; choose from {META_GRADIENTS}")


def uses_kernel(problem: MetaProblem, cfg: MetaConfig) -> bool:
    """Whether meta-learning runs through the compiled inner loop (ldnn.fused)."""
    return cfg.spline_spacing > 0 and fused.supported(problem.task.loss_kind, problem.sizes,
                                                      problem.task.hamiltonian, problem.base,
                                                      cfg.meta_gradient)


def meta_gradients(problem: MetaProblem, phis: Sequence[dict[str, Tensor]],
                   runs: Sequence[InnerRun], data: TaskData, cfg: MetaConfig,
                   ranges: Sequence[tuple[float, float]]
                   ) -> list[tuple[Tensor, dict[str, Tensor], tuple[float, float]]]:
    """Outer loss, meta-gradient and table range (low, high) of each replicate.

    ranges[r] is the range replicate r's spline table covers first (with a margin); it is
    widened to every pre-activation met outside, and returned for the next outer step.
    Replicates are independent: replicate r's results depend on phis[r], runs[r] and
    ranges[r] alone.
    """
    if cfg.meta_gradient not in META_GRADIENTS:
        raise ValueError(f"unknown meta_gradient {cfg.meta_gradient!r}; choose from {META_GRADIENTS}")
    if not uses_kernel(problem, cfg):
        return [(*meta_gradient(problem, phi, run, data, cfg), tuple(rng))
                for phi, run, rng in zip(phis, runs, ranges)]
    phis = [{k: v.detach().requires_grad_() for k, v in phi.items()} for phi in phis]
    activations = [SplineActivations(phi, problem.base, problem.activation.scale,
                                     cfg.spline_spacing) for phi in phis]
    requested = [tuple(rng) for rng in ranges]
    for activation, rng in zip(activations, requested):
        activation.cover(*rng)
    members = range(len(phis))
    unrolled = cfg.meta_gradient == "unrolled"
    inner = _kernel_runs(problem, activations, requested, data, cfg, unrolled, lambda rs: (
        torch.stack([runs[r].batches for r in rs]), torch.stack([runs[r].noise[0] for r in rs]),
        torch.stack([flatten(runs[r].theta0) for r in rs])))
    if unrolled:
        outputs = [inner[r][0] for r in members]
    else:  # the loss on the final batch at the final θ: a one-step run from there
        final = _kernel_runs(problem, activations, requested, data, cfg, True, lambda rs: (
            torch.stack([runs[r].final_batch[None] for r in rs]),
            torch.stack([runs[r].noise[0][-1:] for r in rs]),
            torch.stack([inner[r][1] for r in rs])))
        outputs = [final[r][0] for r in members]
    names = list(phis[0])
    flat = torch.autograd.grad(outputs, [phis[r][k] for r in members for k in names],
                               [torch.full_like(o, 1 / len(o)) for o in outputs],
                               materialize_grads=True)
    return [(inner[r][0].detach().mean(),
             dict(zip(names, flat[r * len(names):(r + 1) * len(names)])), requested[r])
            for r in members]


def _kernel_runs(problem: MetaProblem, activations: list[SplineActivations],
                 requested: list[tuple[float, float]], data: TaskData, cfg: MetaConfig,
                 differentiable: bool, inputs) -> dict[int, tuple[Tensor, Tensor]]:
    """Inner loops of every replicate through the compiled kernel: losses (K,) and final
    θ (P,) by replicate. inputs(replicates) gives their batches (R, K, B), noise (R, K, H)
    and θ0 (R, P). A replicate whose pre-activations leave its table gets a wider one
    (the cells it had are unchanged) and runs again."""
    results, pending = {}, list(range(len(activations)))
    while pending:
        with torch.set_grad_enabled(differentiable):
            losses, theta, outside = fused.inner_loops(
                [activations[r].table for r in pending], data.x_train, data.y_train,
                *inputs(pending), cfg.inner_lr, cfg.inner_decay,
                extensions.kernel_loss(problem.task.loss_kind, problem.task.hamiltonian))
        redo = []
        for i, (r, (low, high)) in enumerate(zip(pending, outside.tolist())):
            if low > high:
                results[r] = (losses[i], theta[i].clone())
            else:
                requested[r] = (min(requested[r][0], low), max(requested[r][1], high))
                activations[r].cover(*requested[r])
                redo.append(r)
        pending = redo
    return results


@dataclass
class MetaState:
    """Everything needed to continue one replicate's meta-learning bit-identically from
    outer step `step`; `table_range` is the range its next spline table covers first (the
    capture grid's, widened to every pre-activation met outside a table)."""
    replicate: int
    step: int
    phi: dict[str, Tensor]
    momentum: dict[str, Tensor]
    generator_state: Tensor
    table_range: tuple[float, float]
    outer_loss: list[float]
    grad_norm: list[list[float]]
    snapshot_steps: list[int]
    snapshots: list[np.ndarray]


def snapshot(problem: MetaProblem, phi: dict[str, Tensor]) -> np.ndarray:
    """The T activations on the capture grid: (T, P) float64."""
    act = problem.activation
    return tabulate_learned(phi, problem.base, act.scale, act.low, act.high, act.points)[1].numpy()


def initial_state(problem: MetaProblem, cfg: MetaConfig, replicate: int,
                  dtype: torch.dtype = torch.float32) -> MetaState:
    """Replicate `replicate` before its first outer step; its random streams derive from
    (cfg.seed, replicate) alone."""
    phi = init_subnetworks(problem.n_types, problem.activation.width,
                           seeding.generator(cfg.seed, seeding.ACTIVATIONS, replicate), dtype)
    return MetaState(replicate, 0, phi, {k: torch.zeros_like(v) for k, v in phi.items()},
                     seeding.generator(cfg.seed, seeding.INIT, replicate).get_state(),
                     (problem.activation.low, problem.activation.high), [], [], [0],
                     [snapshot(problem, phi)])


def _fingerprint(problem: MetaProblem, cfg: MetaConfig, data: TaskData,
                 replicates: list[int]) -> dict:
    """What a checkpoint must match to be resumed (checkpoint_every and replicates_per_job
    excluded: neither changes a replicate's numbers)."""
    return {"replicates": replicates,
            "problem": [problem.task.name, list(problem.sizes), problem.base, problem.n_types,
                        dataclasses.asdict(problem.activation)],
            "meta": {k: v for k, v in dataclasses.asdict(cfg).items()
                     if k not in ("checkpoint_every", "replicates_per_job")},
            "data": [float(data.x_train.double().sum()), float(data.y_train.double().sum()),
                     list(data.x_train.shape)]}


def _outer_update(state: MetaState, grads: dict[str, Tensor], cfg: MetaConfig) -> None:
    """Clamp the meta-gradient elementwise, then one SGD step with heavy-ball momentum."""
    for name, grad in grads.items():
        clipped = grad.clamp(-cfg.grad_clip, cfg.grad_clip)
        state.momentum[name] = cfg.outer_momentum * state.momentum[name] + clipped
        state.phi[name] = state.phi[name].detach() - cfg.outer_lr * state.momentum[name]


@seeding.deterministic()
def meta_learn(problem: MetaProblem, data: TaskData, cfg: MetaConfig,
               checkpoint: str | Path | None = None,
               replicates: Sequence[int] | None = None) -> list[MetaState]:
    """Run Algorithm 1 for cfg.outer_steps outer steps, for every replicate (default
    range(cfg.replicates)) at once, resuming from `checkpoint` if it matches.

    Replicate r gives the same numbers alone (`replicates=[r]`) as with any others.
    """
    replicates = list(range(cfg.replicates)) if replicates is None else list(replicates)
    fingerprint = _fingerprint(problem, cfg, data, replicates)
    states = _resume(checkpoint, fingerprint) or [
        initial_state(problem, cfg, r, data.x_train.dtype) for r in replicates]
    generators = [torch.Generator() for _ in states]
    for generator, state in zip(generators, states):
        generator.set_state(state.generator_state)
    n_train = data.x_train.shape[0]
    started, first = time.perf_counter(), states[0].step
    log.info("meta-learning %d types (%s), %s meta-gradient (%s), replicates %s, steps %d..%d",
             problem.n_types, problem.base, cfg.meta_gradient,
             "compiled inner loop" if uses_kernel(problem, cfg) else "autograd", replicates,
             first, cfg.outer_steps)
    while states[0].step < cfg.outer_steps:
        runs = [draw_inner_run(problem, n_train, cfg, g, data.x_train.dtype) for g in generators]
        results = meta_gradients(problem, [s.phi for s in states], runs, data, cfg,
                                 [s.table_range for s in states])
        for state, generator, (outer_loss, grads, table_range) in zip(states, generators,
                                                                       results):
            _outer_update(state, grads, cfg)
            state.step += 1
            state.table_range = table_range
            state.outer_loss.append(float(outer_loss))
            state.grad_norm.append([float(torch.cat([g[t].reshape(-1) for g in grads.values()]).norm())
                                    for t in range(problem.n_types)])
            if state.step % cfg.snapshot_every == 0 or state.step == cfg.outer_steps:
                state.snapshot_steps.append(state.step)
                state.snapshots.append(snapshot(problem, state.phi))
            state.generator_state = generator.get_state()
        step = states[0].step
        if checkpoint is not None and step % cfg.checkpoint_every == 0:
            _save_checkpoint(checkpoint, states, fingerprint)
        if step == cfg.outer_steps or step % max(1, cfg.outer_steps // 50) == 0:
            per_step = (time.perf_counter() - started) / (step - first)
            log.info("outer step %d/%d  loss %s  %.3f s/step  ~%.0f s left", step, cfg.outer_steps,
                     " ".join(f"{s.outer_loss[-1]:.4f}" for s in states), per_step,
                     per_step * (cfg.outer_steps - step))
    return states


def history(problem: MetaProblem, states: Sequence[MetaState]) -> dict[str, np.ndarray]:
    """Arrays for plots, replicates on the leading axis R: outer_loss (R, S), grad_norm
    (R, S, T), snapshot_steps (K,), snapshots (R, K, T, P) of the activations on grid (P,),
    replicates (R,) their indices."""
    act = problem.activation
    return {"outer_loss": np.array([s.outer_loss for s in states]),
            "grid": np.linspace(act.low, act.high, act.points),
            "grad_norm": np.array([s.grad_norm for s in states]).reshape(
                len(states), len(states[0].outer_loss), -1),
            "snapshot_steps": np.asarray(states[0].snapshot_steps),
            "snapshots": np.stack([np.stack(s.snapshots) for s in states]),
            "replicates": np.array([s.replicate for s in states])}


def save_result(problem: MetaProblem, states: Sequence[MetaState], params_path: str | Path,
                history_path: str | Path) -> None:
    """Write the learned sub-network parameters, stacked over replicates (.pt), and the
    history (.npz)."""
    with atomic_path(params_path) as tmp:
        torch.save({"phi": {k: torch.stack([s.phi[k].detach() for s in states])
                            for k in states[0].phi},
                    "replicates": [s.replicate for s in states], "base": problem.base,
                    "scale": problem.activation.scale, "n_types": problem.n_types}, tmp)
    write_npz(history_path, **history(problem, states))


STACKED_HISTORY = ("outer_loss", "grad_norm", "snapshots", "replicates")  # leading axis R


def merge_results(params_paths: Sequence[str | Path], history_paths: Sequence[str | Path],
                  params_out: str | Path, history_out: str | Path) -> None:
    """Write what one job of every replicate would: the results of jobs of blocks of
    replicates (each by `save_result`), stacked in the order given."""
    saved = [load_params(path) for path in params_paths]
    for path, other in zip(params_paths, saved):
        if any(other[k] != saved[0][k] for k in ("base", "scale", "n_types")):
            raise ValueError(f"{path}: its base, scale or types differ from {params_paths[0]}'s")
    replicates = [r for other in saved for r in other["replicates"]]
    if len(set(replicates)) < len(replicates):
        raise ValueError(f"replicates {replicates} occur twice in {list(map(str, params_paths))}")
    histories = []
    for path in history_paths:
        with np.load(path) as arrays:
            histories.append(dict(arrays))
    merged = {k: (np.concatenate([h[k] for h in histories]) if k in STACKED_HISTORY
                  else histories[0][k]) for k in histories[0]}
    with atomic_path(params_out) as tmp:
        torch.save(saved[0] | {"phi": {k: torch.cat([s["phi"][k] for s in saved])
                                       for k in saved[0]["phi"]},
                               "replicates": replicates}, tmp)
    write_npz(history_out, **merged)


def load_params(path: str | Path, replicate: int | None = None) -> dict:
    """The dictionary written by `save_result`: phi (each (R, T, …)), replicates, base,
    scale, n_types; with `replicate`, phi of that replicate alone (each (T, …))."""
    saved = torch.load(path, weights_only=True)
    if replicate is not None:
        if replicate not in saved["replicates"]:
            raise ValueError(f"{path} holds replicates {saved['replicates']}, not {replicate}")
        row = saved["replicates"].index(replicate)
        saved["phi"] = {k: v[row] for k, v in saved["phi"].items()}
    return saved


def _save_checkpoint(path: str | Path, states: Sequence[MetaState], fingerprint: dict) -> None:
    """Tensors, numbers, strings and containers only, so that `_resume` can load it with
    weights_only=True (snapshots go in as tensors)."""
    rows = [dataclasses.asdict(s) | {"snapshots": [torch.from_numpy(a) for a in s.snapshots]}
            for s in states]
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, "states": rows}, tmp)


def _resume(path: str | Path | None, fingerprint: dict) -> list[MetaState] | None:
    if path is None or not Path(path).exists():
        return None
    saved = torch.load(path, weights_only=True)
    theirs = saved.get("fingerprint", {})
    if theirs != fingerprint:
        why = (f"replicates {theirs.get('replicates')}, not {fingerprint['replicates']}"
               if theirs.get("replicates") != fingerprint["replicates"] else "other settings")
        log.info("ignoring checkpoint %s: it was written for %s", path, why)
        return None
    states = [MetaState(**s | {"snapshots": [a.numpy() for a in s["snapshots"]]})
              for s in saved["states"]]
    log.info("resuming from checkpoint %s at outer step %d", path, states[0].step)
    return states
