"""Meta-learning of activation functions (Algorithm 1 of Choudhary et al. 2023).

Every outer step trains a freshly initialised network for a few epochs with RMSprop
(the inner loop), using the current learned activations, then moves the activations'
sub-network parameters φ along the meta-gradient:

- ``unrolled``: d/dφ of the mean inner loss over the whole inner trajectory, through
  every inner update (second order, as the authors' PyTorch code);
- ``first_order``: ∂/∂φ of the loss at the final inner parameters on a fresh batch,
  holding those parameters fixed (as the authors' JAX code).

The meta-gradient is clamped elementwise, then applied by SGD with heavy-ball momentum.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ldnn import seeding
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
    """Outer loss (mean inner loss) and its meta-gradient with respect to φ."""
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


@dataclass
class MetaState:
    """Everything needed to continue meta-learning bit-identically from outer step `step`."""
    step: int
    phi: dict[str, Tensor]
    momentum: dict[str, Tensor]
    generator_state: Tensor
    outer_loss: list[float]
    grad_norm: list[list[float]]
    snapshot_steps: list[int]
    snapshots: list[np.ndarray]


def snapshot(problem: MetaProblem, phi: dict[str, Tensor]) -> np.ndarray:
    """The T activations on the capture grid: (T, P) float64."""
    act = problem.activation
    return tabulate_learned(phi, problem.base, act.scale, act.low, act.high, act.points)[1].numpy()


def _fingerprint(problem: MetaProblem, cfg: MetaConfig, data: TaskData) -> dict:
    """What a checkpoint must match to be resumed (checkpoint_every excluded)."""
    return {"problem": [problem.task.name, list(problem.sizes), problem.base, problem.n_types,
                        dataclasses.asdict(problem.activation)],
            "meta": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "checkpoint_every"},
            "data": [float(data.x_train.double().sum()), float(data.y_train.double().sum()),
                     list(data.x_train.shape)]}


@seeding.deterministic()
def meta_learn(problem: MetaProblem, data: TaskData, cfg: MetaConfig,
               checkpoint: str | Path | None = None) -> MetaState:
    """Run Algorithm 1 for cfg.outer_steps outer steps, resuming from `checkpoint` if it matches."""
    if cfg.meta_gradient not in META_GRADIENTS:
        raise ValueError(f"unknown meta_gradient {cfg.meta_gradient!r}; choose from {META_GRADIENTS}")
    fingerprint = _fingerprint(problem, cfg, data)
    state = _resume(checkpoint, fingerprint)
    if state is None:
        phi = init_subnetworks(problem.n_types, problem.activation.width,
                               seeding.generator(cfg.seed, seeding.ACTIVATIONS), data.x_train.dtype)
        state = MetaState(0, phi, {k: torch.zeros_like(v) for k, v in phi.items()},
                          seeding.generator(cfg.seed, seeding.INIT).get_state(), [], [],
                          [0], [snapshot(problem, phi)])
    generator = torch.Generator()
    generator.set_state(state.generator_state)
    n_train = data.x_train.shape[0]
    started, first = time.perf_counter(), state.step
    log.info("meta-learning %d types (%s), %s meta-gradient, steps %d..%d",
             problem.n_types, problem.base, cfg.meta_gradient, state.step, cfg.outer_steps)
    while state.step < cfg.outer_steps:
        run = draw_inner_run(problem, n_train, cfg, generator, data.x_train.dtype)
        outer_loss, grads = meta_gradient(problem, state.phi, run, data, cfg)
        for name, grad in grads.items():
            clipped = grad.clamp(-cfg.grad_clip, cfg.grad_clip)
            state.momentum[name] = cfg.outer_momentum * state.momentum[name] + clipped
            state.phi[name] = state.phi[name].detach() - cfg.outer_lr * state.momentum[name]
        state.step += 1
        state.outer_loss.append(float(outer_loss))
        state.grad_norm.append([float(torch.cat([g[t].reshape(-1) for g in grads.values()]).norm())
                                for t in range(problem.n_types)])
        if state.step % cfg.snapshot_every == 0 or state.step == cfg.outer_steps:
            state.snapshot_steps.append(state.step)
            state.snapshots.append(snapshot(problem, state.phi))
        state.generator_state = generator.get_state()
        if checkpoint is not None and (state.step % cfg.checkpoint_every == 0):
            _save_checkpoint(checkpoint, state, fingerprint)
        if state.step == cfg.outer_steps or state.step % max(1, cfg.outer_steps // 50) == 0:
            per_step = (time.perf_counter() - started) / (state.step - first)
            log.info("outer step %d/%d  loss %.4f  %.3f s/step  ~%.0f s left", state.step,
                     cfg.outer_steps, outer_loss, per_step, per_step * (cfg.outer_steps - state.step))
    return state


def history(problem: MetaProblem, state: MetaState) -> dict[str, np.ndarray]:
    """Arrays for plots: outer_loss (S,), grad_norm (S, T), snapshot_steps (K,),
    snapshots (K, T, P) of the activations on grid (P,)."""
    act = problem.activation
    return {"outer_loss": np.asarray(state.outer_loss),
            "grid": np.linspace(act.low, act.high, act.points),
            "grad_norm": np.asarray(state.grad_norm).reshape(len(state.outer_loss), -1),
            "snapshot_steps": np.asarray(state.snapshot_steps),
            "snapshots": np.stack(state.snapshots)}


def save_result(problem: MetaProblem, state: MetaState, params_path: str | Path,
                history_path: str | Path) -> None:
    """Write the learned sub-network parameters (.pt) and the history (.npz)."""
    with atomic_path(params_path) as tmp:
        torch.save({"phi": {k: v.detach() for k, v in state.phi.items()}, "base": problem.base,
                    "scale": problem.activation.scale, "n_types": problem.n_types}, tmp)
    write_npz(history_path, **history(problem, state))


def load_params(path: str | Path) -> dict:
    """The dictionary written by `save_result`: phi, base, scale, n_types."""
    return torch.load(path, weights_only=True)


def _save_checkpoint(path: str | Path, state: MetaState, fingerprint: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, "state": dataclasses.asdict(state)}, tmp)


def _resume(path: str | Path | None, fingerprint: dict) -> MetaState | None:
    if path is None or not Path(path).exists():
        return None
    saved = torch.load(path, weights_only=False)
    if saved["fingerprint"] != fingerprint:
        log.info("ignoring checkpoint %s: it was written for other settings", path)
        return None
    state = MetaState(**saved["state"])
    log.info("resuming from checkpoint %s at outer step %d", path, state.step)
    return state
