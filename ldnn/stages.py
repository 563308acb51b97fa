"""The workflow's stages as plain functions: paths and config sections in, files out.

Each workflow script calls exactly one of these inside `logging_to`. Every file is
written atomically, so a failed or killed stage leaves no partial output.
"""
from __future__ import annotations

import contextlib
import logging
import resource
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from ldnn import seeding, tasks
from ldnn.activations import (arm_activation, learned_slopes, load_table, save_table,
                              tabulate_learned)
from ldnn.baselines import BASELINE
from ldnn.config import ActivationConfig, ClaimsConfig, MetaConfig, TrainConfig, parse
from ldnn.io import atomic_path, write_csv, write_npz
from ldnn.metalearn import MetaProblem, load_params, merge_results, meta_learn, save_result
from ldnn.networks import layer_sizes
from ldnn.training import evaluate, fit_seeds

log = logging.getLogger("ldnn")

# CPU threads of each computing stage, declared to Snakemake by the rules and used whatever
# the --cores: a different thread count would change the last bits of a result computed
# with library reductions. Meta-learning's kernel gives the same bits at any thread count,
# and its replicate jobs side by side at one thread each outrun one after another at two
# (BENCHMARKS §4).
THREADS = {"metalearn": 1, "train": 1, "hessian": 2}


@contextlib.contextmanager
def logging_to(path: str | Path, threads: int = 1) -> Iterator[None]:
    """Send ldnn's progress messages and any traceback to `path`; use `threads` CPU threads."""
    torch.set_num_threads(threads)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    started = time.perf_counter()
    try:
        yield
    except Exception:
        log.exception("stage failed")
        raise
    else:
        log.info("done in %.1f s, peak memory %.0f MB", time.perf_counter() - started,
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        log.removeHandler(handler)
        handler.close()


def make_data(dataset: str, settings: dict, out: str | Path) -> None:
    """Generate a data set (named like the task module that generates it) into `out` (.npz)."""
    log.info("generating %s data: %s", dataset, settings)
    tasks.module(dataset).write(out, **settings)


def metalearn(data: str | Path, task: str, base: str, n_types: int, depth: int, width: int,
              activation: dict, meta: dict, replicates: Sequence[int], out_params: str | Path,
              out_history: str | Path) -> None:
    """Meta-learn `n_types` activations from `base` in a network of `depth` hidden layers of
    `width`, for the given replicates at once; resumable from checkpoint.pt beside
    `out_params`, which is removed on success."""
    checkpoint = Path(out_params).with_name("checkpoint.pt")
    spec = tasks.get(task)
    problem = MetaProblem(spec, tuple(layer_sizes(spec.n_in, width, depth, spec.n_out)), base,
                          n_types, parse(ActivationConfig, activation, "activation"))
    states = meta_learn(problem, tasks.TaskData.load(data), parse(MetaConfig, meta, "metalearn"),
                        checkpoint, replicates)
    save_result(problem, states, out_params, out_history)
    checkpoint.unlink(missing_ok=True)


def metalearn_merge(params: Sequence[str | Path], histories: Sequence[str | Path],
                    out_params: str | Path, out_history: str | Path) -> None:
    """One study's meta-learning results from those of its jobs (blocks of replicates)."""
    log.info("merging the meta-learning results of %d jobs: %s", len(params), list(params))
    merge_results(params, histories, out_params, out_history)


def capture(params: str | Path, activation: dict, replicate: int, out: str | Path) -> None:
    """Tabulate one replicate's learned activations and their slopes on the capture grid:
    grid (P,), values (T, P), slopes (T, P)."""
    act = parse(ActivationConfig, activation, "activation")
    saved = load_params(params, replicate)
    grid, values = tabulate_learned(saved["phi"], saved["base"], saved["scale"], act.low,
                                    act.high, act.points)
    save_table(out, grid, values, learned_slopes(saved["phi"], saved["base"], saved["scale"], grid))


def _arm(task: str, activations: str | Path, arm: str):
    """The frozen activation of `arm` and its number of types. Learned types are linear
    interpolants of the capture table (as the paper), except for Hamiltonian networks,
    which differentiate them: cubic Hermite through values and slopes."""
    grid, values, slopes = load_table(activations)
    slopes = slopes.float() if tasks.get(task).hamiltonian else None
    return arm_activation(arm, grid.float(), values.float(), slopes)


def train_block(data: str | Path, activations: str | Path, task: str, depth: int, train: dict,
                replicate: int, arm: str, width: int, seeds: Sequence[int], out: str | Path,
                out_params: str | Path) -> None:
    """Frozen training of one (arm, width) for a block of seeds under one protocol (`train`:
    a TrainConfig's values), with the activations of meta-learning replicate `replicate`: a
    tidy table, one row per seed, and the trained parameters stacked over the seeds (.pt)."""
    spec = tasks.get(task)
    activation, n_types = _arm(task, activations, arm)
    cfg, task_data = parse(TrainConfig, train, "train"), tasks.TaskData.load(data)
    log.info("training %s arm %s (replicate %d) width %d under protocol %s (%s, %d epochs at "
             "most), seeds %s", task, arm, replicate, width, cfg.protocol, cfg.optimizer,
             cfg.epochs, list(seeds))
    sizes = layer_sizes(spec.n_in, width, depth, spec.n_out)
    fit = fit_seeds(spec, task_data, sizes, activation, n_types, cfg, seeds)
    result = evaluate(spec, task_data, fit, activation, n_types, cfg)
    table = pd.DataFrame({"task": task, "protocol": cfg.protocol, "replicate": replicate,
                          "arm": arm, "width": width, "seed": list(seeds)}
                         | {k: v.numpy() for k, v in result.items()})
    log.info("diverged: %d, unconverged: %d of %d; epochs run: median %d", int(table.diverged.sum()),
             int(table.unconverged.sum()), len(table), int(table.epochs_run.median()))
    with atomic_path(out_params) as tmp:
        torch.save({"params": fit.params, "seeds": list(seeds), "sizes": sizes,
                    "replicate": replicate}, tmp)
    write_csv(table, out)


def baselines(data: str | Path, task: str, forecast_horizon: float, out: str | Path) -> None:
    """The reference baselines of a study's task (ldnn.baselines), one row each, in the
    columns of the trained networks' table (protocol "baseline")."""
    from ldnn import baselines as reference

    spec = tasks.get(task)
    rows = reference.rows(spec, tasks.TaskData.load(data, torch.float64), forecast_horizon)
    table = pd.DataFrame([{"task": task, "protocol": BASELINE, **row, "diverged": False}
                          for row in rows])
    log.info("baselines of %s:\n%s", task, table.to_string(index=False))
    write_csv(table, out)


def hessian(data: str | Path, activations: Sequence[str | Path], task: str, arm: str,
            blocks: Sequence[str | Path], settings: dict, out_table: str | Path,
            out_spectra: str | Path) -> None:
    """Hessian of the training loss of the first settings["seeds"] trained networks of one
    arm (in the order of `blocks`; activations[r]: replicate r's): per seed trace (exact
    where `exact_trace` applies, else Hutchinson's estimate), extreme Ritz values and the
    fraction of |λ| below the threshold (SLQ); the SLQ nodes and weights (S, P, k) for
    densities."""
    from ldnn.analysis.hessian import (TraceEstimate, exact_trace, exact_trace_supported,
                                       fraction_below, hutchinson_trace, loss_hvp, slq)

    spec, task_data = tasks.get(task), tasks.TaskData.load(data, torch.float64)
    rows, all_nodes, all_weights = [], [], []
    for block in blocks:
        saved = torch.load(block, weights_only=True)
        activation, n_types = _arm(task, activations[saved["replicate"]], arm)
        for i, seed in enumerate(saved["seeds"]):
            if len(rows) >= settings["seeds"]:
                break
            params = tuple(p[i].double() for p in saved["params"])
            hvp, n = loss_hvp(spec, task_data, params, activation, n_types)
            generator = seeding.generator(settings["seed"], seed)
            exact = exact_trace_supported(spec, params)
            trace = (TraceEstimate(exact_trace(spec, task_data, params, activation, n_types), 0.0,
                                   0) if exact else
                     hutchinson_trace(hvp, n, generator, settings["relative_error"],
                                      max_probes=settings["max_probes"]))
            nodes, weights = slq(hvp, n, settings["slq_probes"], settings["lanczos_steps"],
                                 generator)
            rows.append({"task": task, "protocol": settings["protocol"],
                         "replicate": saved["replicate"], "arm": arm, "seed": seed,
                         "trace": trace.trace, "trace_method": "exact" if exact else "hutchinson",
                         "trace_standard_error": trace.standard_error, "probes": trace.probes,
                         "smallest": float(nodes.min()), "largest": float(nodes.max()),
                         "fraction_small": fraction_below(nodes, weights,
                                                          settings["threshold"])})
            all_nodes.append(nodes.numpy())
            all_weights.append(weights.numpy())
            log.info("%s seed %d: trace %.4g ± %.2g (%d probes), f %.3f", arm, seed,
                     trace.trace, trace.standard_error, trace.probes, rows[-1]["fraction_small"])
    write_npz(out_spectra, nodes=np.stack(all_nodes), weights=np.stack(all_weights))
    write_csv(pd.DataFrame(rows), out_table)


def gather(tables: Sequence[str | Path], baselines: str | Path, study: str,
           out: str | Path) -> None:
    """The study's tidy table: the seed-block tables of every protocol and the baselines'
    rows, sorted by protocol, arm, width, seed; for regression, every row's test MSE
    relative to the affine least-squares fit's (affine_ratio)."""
    frame = pd.concat([pd.read_csv(t) for t in tables] + [pd.read_csv(baselines)],
                      ignore_index=True)
    frame.insert(0, "study", study)
    if "test_loss" in frame and "test_accuracy" not in frame:
        affine = frame.test_loss[(frame.protocol == BASELINE) & (frame.arm == "affine")]
        frame["affine_ratio"] = frame.test_loss / float(affine.iloc[0])
    write_csv(frame.sort_values(["protocol", "arm", "width", "replicate", "seed"], kind="stable"),
              out)


def seed_blocks(seeds: int, block: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) seed ranges of at most `block` seeds covering 0..seeds-1."""
    return [(first, min(first + block, seeds) - 1) for first in range(0, seeds, block)]


def clock_video(synthetic: dict, out_video: str | Path, out_truth: str | Path) -> None:
    """Render the synthetic pendulum clock video and its ground truth (time, theta)."""
    from ldnn.pendulum.clock import Clock
    from ldnn.pendulum.render import Scene, render_frames, synthetic_clock
    from ldnn.pendulum.video import write_video

    s = synthetic
    clock = Clock(s["period"], s["amplitude"], s["damping"])
    scene = Scene(width=s["width"], height=s["height"], noise=s["noise"], flicker=s["flicker"],
                  exposure=s["exposure"], distractor=s["distractor"],
                  occlusions=tuple(tuple(o) for o in s["occlusions"]), seed=s["seed"])
    exposure, truth = synthetic_clock(clock, scene, s["duration"], s["fps"])
    log.info("rendering %d frames of %dx%d", len(exposure), scene.width, scene.height)

    def frames():
        for i, frame in enumerate(render_frames(scene, exposure)):
            if (i + 1) % 500 == 0:
                log.info("frame %d/%d", i + 1, len(exposure))
            yield frame

    write_video(out_video, frames(), s["fps"])
    write_csv(pd.DataFrame(truth, columns=["time", "theta"]), out_truth)


def track_markers(video: str | Path, tracking: dict, min_frames: int, out: str | Path) -> None:
    """Track the two markers through `video` into a markers table."""
    from ldnn.pendulum.track import Tracking, track

    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in tracking.items()}
    table, _ = track(video, Tracking(**settings), min_frames)
    write_csv(table, out)


def pendulum_angles(markers: str | Path, settings: dict, out: str | Path,
                    video: str | Path | None = None) -> None:
    """Angles from a markers table; the frame interval comes from `video` if given, else
    from settings["frame_interval"]."""
    from ldnn.pendulum.angles import MarkersError, angles
    from ldnn.pendulum.video import read_video

    try:
        table = pd.read_csv(markers)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise MarkersError(f"markers table {markers} cannot be read: "
                           f"{str(error).splitlines()[0]}") from None
    dt = 1 / read_video(video)[0].fps if video else settings["frame_interval"]
    result = angles(table, dt, settings["savgol"]["window"], settings["savgol"]["order"],
                    settings["max_gap"], settings["detrend_degree"])
    log.info("%d angles, %d interpolated, from %s", len(result), int(result.interpolated.sum()),
             markers)
    write_csv(result, out)


def protocol_paths(protocols: Sequence[str], png: Sequence[str],
                   pdf: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A figure's files (PNG, PDF) by training protocol."""
    return dict(zip(protocols, zip(png, pdf), strict=True))


def _by_protocol(results: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """One protocol's rows of a study's table, and its baselines' rows."""
    return results[results.protocol.isin([protocol, BASELINE])]


def _per_protocol(draw, results: Sequence[pd.DataFrame], out: dict, dpi: int) -> None:
    """draw(*tables) with each table restricted to one protocol, saved to its files."""
    from ldnn.plotting.style import save

    for protocol, paths in out.items():
        log.info("%s protocol: %s", protocol, ", ".join(map(str, paths)))
        save(draw(*(_by_protocol(r, protocol) for r in results)), paths, dpi)


def fig3(history: str | Path, results: str | Path, figure: dict, out: dict) -> None:
    """Fig. 3 from the meta-learning history and the study's result table, one per
    protocol (`out`: protocol → paths)."""
    from ldnn.plotting import fig3 as plot
    from ldnn.tasks import mnist1d

    construction, trajectory = mnist1d.construction(figure["digit"], seed=0), _history(history)
    _per_protocol(lambda r: plot.draw(construction, trajectory, r, figure["arms"],
                                      figure["curves"]),
                  [pd.read_csv(results)], out, figure["dpi"])


def fig5(history: str | Path, results: str | Path, figure: dict, mu: float, out: dict) -> None:
    """Fig. 5 from the meta-learning history and the study's result table, one per protocol."""
    from ldnn.physics import van_der_pol
    from ldnn.physics.integrators import accurate
    from ldnn.plotting import fig5 as plot

    period = van_der_pol.limit_cycle_period(mu)
    times = np.linspace(0.0, figure["periods"] * period, 2000)
    orbit = accurate(lambda s: van_der_pol.field(s, mu), np.array([0.5, 0.0]), times)
    trajectory = _history(history)
    _per_protocol(lambda r: plot.draw(times, orbit, trajectory, r, figure["arms"],
                                      figure["curves"]),
                  [pd.read_csv(results)], out, figure["dpi"])


def fig6(nn_history: str | Path, hnn_history: str | Path, nn_results: str | Path,
         hnn_results: str | Path, figure: dict, out: dict) -> None:
    """Fig. 6 from the NN and HNN meta-learning histories and result tables, one per
    protocol."""
    from ldnn.physics import henon_heiles
    from ldnn.physics.integrators import accurate
    from ldnn.plotting import fig6 as plot

    times = np.linspace(0.0, figure["duration"], 20 * int(np.ceil(figure["duration"])) + 1)
    rng = np.random.default_rng(0)
    orbits = [accurate(henon_heiles.field, henon_heiles.sample_energy_shell(e, 1, rng)[0], times)
              for e in figure["energies"]]
    histories = {"NN": _history(nn_history), "HNN": _history(hnn_history)}
    _per_protocol(lambda nn, hnn: plot.draw(times, orbits, figure["energies"], histories,
                                            {"NN": nn, "HNN": hnn}, figure["arms"],
                                            figure["curves"]),
                  [pd.read_csv(nn_results), pd.read_csv(hnn_results)], out, figure["dpi"])


def fig7(markers: str | Path, angles: str | Path, results: str | Path, figure: dict,
         out: dict, video: str | Path | None = None) -> None:
    """Fig. 7 from the markers, the angles, the study's result table and (if any) the video,
    one per protocol."""
    from ldnn.pendulum.video import read_video
    from ldnn.plotting import fig7 as plot

    frame = None
    if video:
        _, frames = read_video(video)
        for index, frame in enumerate(frames):
            if index == figure["frame"]:
                break
    markers_table, angles_table = pd.read_csv(markers), pd.read_csv(angles)
    _per_protocol(lambda r: plot.draw(frame, figure["frame"], markers_table, angles_table, r,
                                      figure["arms"]),
                  [pd.read_csv(results)], out, figure["dpi"])


def fig4(results: str | Path, figure: dict, out: dict) -> None:
    from ldnn.plotting import fig4 as plot

    _per_protocol(lambda r: plot.draw(r, figure["arms"]), [pd.read_csv(results)], out,
                  figure["dpi"])


def fig8(results: str | Path, figure: dict, out: dict) -> None:
    from ldnn.plotting import fig8 as plot

    _per_protocol(lambda r: plot.draw(r, figure["arms"]), [pd.read_csv(results)], out,
                  figure["dpi"])


def fig9(figure: dict, out: Sequence[str | Path]) -> None:
    """Langevin walkers (Eq. 8) from the sharp minimum of `two_wells`."""
    from ldnn.analysis.langevin import langevin, two_wells
    from ldnn.plotting import fig9 as plot
    from ldnn.plotting.style import save

    loss, gradient = two_wells()
    paths = langevin(gradient, np.array([-1.0, 0.0]), figure["step"], figure["temperature"],
                     figure["steps"], figure["walkers"], np.random.default_rng(figure["seed"]))
    save(plot.draw(loss, paths, figure["step"]), out, figure["dpi"])


def hessian_figure(arms: Sequence[str], tables: Sequence[str | Path],
                   spectra: Sequence[str | Path], out_table: str | Path,
                   out: Sequence[str | Path]) -> None:
    """The per-arm Hessian tables joined, and the figure of densities and traces."""
    from ldnn.plotting import hessian as plot
    from ldnn.plotting.style import save

    frames = [pd.read_csv(t) for t in tables]
    write_csv(pd.concat(frames, ignore_index=True), out_table)
    save(plot.draw(arms, [_npz(s) for s in spectra], frames), out, 200)


def _history(path: str | Path, replicate: int = 0) -> dict[str, np.ndarray]:
    """One replicate's meta-learning history (the arrays of `metalearn.history`), and the
    final snapshots of the others, other_finals (R − 1, T, P)."""
    history = _npz(path)
    row = list(history["replicates"]).index(replicate)
    others = [r for r in range(len(history["replicates"])) if r != row]
    return history | {k: history[k][row] for k in ("outer_loss", "grad_norm", "snapshots")} | {
        "other_finals": history["snapshots"][others, -1]}


def _npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (a history or Hessian spectra)."""
    with np.load(path) as h:
        return {k: h[k] for k in h.files}


def claims(tables: Sequence[str | Path], names: Sequence[str], sources: dict, settings: dict,
           out_table: str | Path, out_markdown: str | Path) -> None:
    """Every claim of the paper tested on the result tables; `names` names each of `tables`
    ("study/table", as ldnn.claims.tables). A table (.csv) and its Markdown (.md)."""
    from ldnn import claims as paper

    cfg = parse(ClaimsConfig, settings, "claims")
    frame = paper.evaluate({k: pd.read_csv(t) for k, t in zip(names, tables, strict=True)},
                           sources, cfg)
    log.info("%d claims: %s", len(frame), frame.verdict.value_counts().to_dict())
    write_csv(frame, out_table)
    with atomic_path(out_markdown) as tmp:
        tmp.write_text(paper.markdown(frame, cfg.alpha))


def summary(studies: Sequence[str | Path], names: Sequence[str], hessian: str | Path,
            claims: str | Path, markers: str | Path | None, truth: str | Path | None,
            out: str | Path) -> None:
    """The results page (ldnn.summary) from the studies' tables (named by `names`), the
    Hessian and claims tables and, for the synthetic clock, its markers and ground truth."""
    from ldnn.summary import summary as page, tracking_error

    tracking = tracking_error(pd.read_csv(markers), pd.read_csv(truth)) if truth else None
    text = page({n: pd.read_csv(t) for n, t in zip(names, studies, strict=True)},
                pd.read_csv(hessian), pd.read_csv(claims), tracking)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
