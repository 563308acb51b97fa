"""The claims report: the paper's claims expanded over synthetic tables with known effects,
diverged seeds left out and counted, Holm over the whole family, missing tables and
config keys skipped, and what the `claims` target plans. (The smoke run's claims.csv and
its `snakemake --report` are tested in test_workflow.py, on its smoke run.)"""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ldnn import claims
from ldnn.analysis.replicates import T_TEST
from ldnn.analysis.statistics import (INCONCLUSIVE, MW_NORMAL, NOT_REPRODUCED, REPRODUCED,
                                      holm)
from ldnn.config import ClaimsConfig, ConfigError, validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
SETTINGS = ClaimsConfig(alpha=0.05, resamples=500, seed=0)
SEEDS = 30
REPLICATES = 5             # seeds 0–5 belong to replicate 0, 6–11 to replicate 1, …
SHIFT = 3.0                # effect of a "better" arm, in standard deviations of the seeds
ARMS = ("relu", "tanh", "sin", "type1", "type2", "mixed")


def study_table(study: str, means: dict[str, float], metric: str, widths=(100,), seed=0,
                diverged: dict[str, int] | None = None) -> pd.DataFrame:
    """A results table: per arm and width SEEDS normal values around means[arm] (sd 1);
    the first diverged[arm] seeds of an arm flagged diverged with NaN metrics."""
    rng = np.random.default_rng(seed)
    frames = []
    for arm, mean in means.items():
        for width in widths:
            values = rng.normal(mean, 1.0, SEEDS)
            flagged = np.arange(SEEDS) < (diverged or {}).get(arm, 0)
            values[flagged] = np.nan
            frames.append(pd.DataFrame({"study": study, "protocol": "paper",
                                        "replicate": np.arange(SEEDS) // (SEEDS // REPLICATES),
                                        "arm": arm, "width": width,
                                        "seed": np.arange(SEEDS), metric: values,
                                        "diverged": flagged}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def config() -> dict:
    return validate({}, SCHEMA)


@pytest.fixture
def tables(config) -> dict[str, pd.DataFrame]:
    """Tables for every figure of the default config: mixed better than every other arm
    except in Fig. 5 (all arms equal) and Fig. 7 (mixed worse); HNN better than NN."""
    figures = config["figures"]
    better = {a: 0.0 for a in ARMS} | {"mixed": SHIFT}
    lower = {a: 0.0 for a in ("sin", "type1", "type2")} | {"mixed": -SHIFT}
    mnist = study_table(figures["fig3"]["study"], better, "test_accuracy", seed=1)
    mnist["participation"] = mnist.test_accuracy + 0.1 * np.random.default_rng(2).normal(
        size=len(mnist))
    hessian = pd.concat([study_table("", {"type1": 2 * SHIFT, "type2": SHIFT, "mixed": 0.0},
                                     "trace", seed=3),
                         study_table("", {"type1": 0.0, "type2": SHIFT, "mixed": 2 * SHIFT},
                                     "fraction_small", seed=4)[["fraction_small"]]], axis=1)
    hessian = hessian.drop(columns=["study", "width", "diverged"])
    return {
        f"{figures['fig3']['study']}/results.csv": mnist,
        f"{figures['fig4']['study']}/results.csv":
            study_table(figures["fig4"]["study"], better, "test_accuracy", (10, 20), seed=5,
                        diverged={"mixed": 3}),
        f"{figures['fig5']['study']}/results.csv":
            study_table(figures["fig5"]["study"], {a: 0.0 for a in lower}, "test_loss", seed=6),
        f"{figures['fig6']['study']}/results.csv":
            study_table(figures["fig6"]["study"], {a: 5.0 + v for a, v in lower.items()},
                        "test_loss", seed=7),
        f"{figures['fig6']['hnn_study']}/results.csv":
            study_table(figures["fig6"]["hnn_study"], lower, "test_loss", seed=8),
        f"{figures['fig7']['study']}/results.csv":
            study_table(figures["fig7"]["study"], {a: -v for a, v in lower.items()},
                        "test_loss", seed=9),
        f"{config['hessian']['study']}/hessian.csv": hessian,
    }


def test_sources_and_tables_follow_the_config(config):
    sources = claims.sources(config)
    assert sources["figures.fig3.study"] == config["figures"]["fig3"]["study"]
    assert sources["figures.fig8.arms"] == config["figures"]["fig8"]["arms"]
    assert sources["hessian.study"] == config["hessian"]["study"]
    expected = {f"{config['figures'][f][k]}/results.csv" for f, k in
                [("fig3", "study"), ("fig4", "study"), ("fig5", "study"), ("fig6", "study"),
                 ("fig6", "hnn_study"), ("fig7", "study"), ("fig8", "study")]}
    assert set(claims.tables(sources)) == expected | {"mnist1d_sin/hessian.csv"}
    config["figures"]["fig5"]["study"] = "elsewhere"
    assert "elsewhere/results.csv" in claims.tables(claims.sources(config))


def test_every_claim_is_expanded_with_its_known_verdict(config, tables):
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    assert list(frame.columns) == claims.COLUMNS
    counts = frame[frame.design == "pooled"].groupby("figure").size().to_dict()
    # mixed against each other arm and the best learned type; two designs each
    assert counts == {"Fig. 3": 6, "Fig. 4": 12, "Fig. 5": 4, "Fig. 6": 4 + 4 + 4, "Fig. 7": 4,
                      "Fig. 8": 6, "Hessian": 4}
    assert (frame.design.value_counts() == len(frame) // 2).all()
    replicated = frame[frame.design == "replicates"]
    assert (replicated.replicates == REPLICATES).all()
    by_figure = frame.groupby("figure").verdict.agg(set).to_dict()
    assert by_figure["Fig. 3"] == by_figure["Fig. 4"] == {REPRODUCED}
    assert by_figure["Fig. 7"] == {NOT_REPRODUCED}                 # mixed is worse there
    assert by_figure["Hessian"] == {REPRODUCED}
    fig6 = frame[frame.figure == "Fig. 6"]
    assert set(fig6.verdict) == {REPRODUCED}
    same_arm = fig6[(fig6.study_a != fig6.study_b) & (fig6.design == "pooled")]
    assert sorted(same_arm.group_a) == ["mixed", "sin", "type1", "type2"]
    assert (same_arm.group_a == same_arm.group_b).all()
    fig5 = frame[frame.figure == "Fig. 5"]                         # equal arms: p ~ U(0, 1)
    assert not (fig5.verdict == REPRODUCED).any()
    assert set(fig5.verdict) <= {NOT_REPRODUCED, INCONCLUSIVE}
    for design in claims.DESIGNS:
        rows = frame[frame.design == design]
        np.testing.assert_array_equal(rows.p_holm, holm(rows.p.to_numpy()))
    assert ((frame.superiority - (1 + frame.cliffs_delta) / 2).abs() < 1e-12).all()
    inside = frame[["median_low_a", "median_a", "median_high_a"]].to_numpy()
    assert (inside[:, 0] <= inside[:, 1]).all() and (inside[:, 1] <= inside[:, 2]).all()


def test_every_p_states_its_method_and_floor_and_none_is_zero(config, tables):
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    assert (frame.p > 0).all() and (frame.p_holm > 0).all()
    replicated, pooled = frame[frame.design == "replicates"], frame[frame.design == "pooled"]
    assert set(replicated.p_method) == {T_TEST}
    assert (replicated.p_floor == 2.0 ** -REPLICATES).all()
    assert set(pooled.p_method) == {MW_NORMAL}                       # 30 seeds a group
    assert set(frame[frame.metric == "test_loss"].scale) == {"linear"}  # values ≤ 0 occur
    text = claims.markdown(frame, SETTINGS.alpha)
    below = replicated[replicated.p < replicated.p_floor].iloc[0]
    assert f"| {below.p:.2g}† |" in text                             # rests on the model


def test_too_few_replicates_give_no_verdict_and_stay_out_of_holm(config, tables):
    few = {name: table.assign(replicate=table.replicate % 2) for name, table in tables.items()}
    frame = claims.evaluate(few, claims.sources(config), SETTINGS)
    replicated, pooled = frame[frame.design == "replicates"], frame[frame.design == "pooled"]
    assert (replicated.replicates == 2).all() and (replicated.p_floor == 0.25).all()
    assert (replicated.verdict == claims.TOO_FEW).all() and replicated.p_holm.isna().all()
    np.testing.assert_array_equal(pooled.p_holm, holm(pooled.p.to_numpy()))
    assert set(pooled[pooled.figure == "Fig. 3"].verdict) == {REPRODUCED}
    assert (f"paper training, replicates: {len(replicated)} claims, **0 reproduced**, "
            f"0 not reproduced, 0 inconclusive, {len(replicated)} with too few replicates."
            in claims.markdown(frame, SETTINGS.alpha))


def test_diverged_seeds_are_left_out_and_counted(config, tables):
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    fig4 = frame[frame.figure == "Fig. 4"]
    assert sorted(set(fig4.width)) == [10, 20]
    assert (fig4.n_a == SEEDS - 3).all() and (fig4.diverged_a == 3).all()
    assert (fig4.n_b == SEEDS).all() and (fig4.diverged_b == 0).all()
    assert fig4.claim.str.endswith(("width 10", "width 20")).all()
    assert np.isfinite(fig4[["median_a", "mean_a", "p"]].to_numpy()).all()


def test_participation_pairs_are_ordered_by_accuracy(config, tables):
    table = tables["mnist1d_sin/results.csv"]
    table.loc[table.arm == "relu", ["test_accuracy", "participation"]] += 0.5 * SHIFT
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    fig8 = frame[frame.figure == "Fig. 8"]
    assert set(fig8.group_a) | set(fig8.group_b) == set(config["figures"]["fig8"]["arms"])
    medians = table.groupby("arm").test_accuracy.median()
    assert (medians[fig8.group_a].to_numpy() > medians[fig8.group_b].to_numpy()).all()
    assert set(fig8[fig8.group_a == "mixed"].group_b) == {"tanh", "relu", "sin"}


def test_missing_tables_metrics_and_config_keys_are_skipped(config, tables):
    sources = claims.sources(config)
    del tables["mnist1d_sin/hessian.csv"]
    tables["pendulum_sin/results.csv"] = tables["pendulum_sin/results.csv"].drop(
        columns="test_loss")
    frame = claims.evaluate(tables, sources, SETTINGS)
    assert not set(frame.figure) & {"Hessian", "Fig. 7"}
    del config["figures"]["fig6"]["hnn_study"]
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    assert (frame[frame.figure == "Fig. 6"].study_a == "henon_heiles_sin").all()
    empty = claims.evaluate({}, sources, SETTINGS)
    assert empty.empty and list(empty.columns) == claims.COLUMNS


def test_a_group_without_values_is_inconclusive(config, tables):
    table = tables["van_der_pol_sin/results.csv"]
    table.loc[table.arm == "sin", "diverged"] = True
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    row = frame[(frame.figure == "Fig. 5") & (frame.group_b == "sin")].iloc[0]
    assert row.n_b == 0 and row.diverged_b == SEEDS and np.isnan(row.p)
    assert row.verdict == INCONCLUSIVE


def test_markdown_has_the_counts_and_one_row_per_claim(config, tables):
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    text = claims.markdown(frame, SETTINGS.alpha)
    rows = [line for line in text.splitlines() if line.startswith(("| Fig", "| Hessian"))]
    claims_shown = len(frame.drop_duplicates(["figure", "claim"]))
    assert len(rows) == len(frame) + claims_shown       # both designs' details, side by side
    pooled = frame[frame.design == "pooled"]
    counts = pooled.verdict.value_counts()
    assert (f"paper training, pooled: {len(pooled)} claims, **{counts[REPRODUCED]} "
            "reproduced**") in text


@pytest.mark.parametrize("change, key", [({"alpha": 1.5}, "claims.alpha"),
                                         ({"resamples": 10}, "claims.resamples"),
                                         ({"level": 0.9}, "claims.level")])
def test_bad_claims_settings_name_the_key(change, key):
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    config = copy.deepcopy(shipped)
    config["claims"] |= change
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        validate(config, SCHEMA)


def snakemake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True)


def test_claims_target_plans_the_tables_the_config_names_and_no_figure(tmp_path):
    result = snakemake("-n", "claims", "--config", f"results={tmp_path}")
    assert result.returncode == 0, result.stderr
    outputs = re.findall(r"^    output: (.+)$", result.stdout, flags=re.M)
    gathered = sorted(Path(p).parent.name for line in outputs for p in line.split(", ")
                      if p.endswith("/results.csv"))
    assert gathered == sorted(["mnist1d_sin", "mnist1d_zero", "van_der_pol_sin",
                               "henon_heiles_sin", "henon_heiles_hnn_sin", "pendulum_sin"])
    assert f"{tmp_path}/mnist1d_sin/hessian.csv" in ", ".join(outputs).split(", ")
    assert not [line for line in outputs if re.search(r"fig\d\.png", line)]
    assert not any(tmp_path.iterdir())


def test_each_protocol_is_tested_apart_and_baselines_never(config, tables):
    key = f"{config['figures']['fig3']['study']}/results.csv"
    paper = tables[key]
    converged = paper.assign(protocol="converged", test_accuracy=paper.test_accuracy[::-1].values)
    baseline = pd.DataFrame({"study": paper.study.iloc[0], "protocol": ["baseline"],
                             "arm": ["logistic"], "width": [np.nan], "seed": [0],
                             "test_accuracy": [-100.0], "diverged": [False]})
    tables[key] = pd.concat([paper, converged, baseline], ignore_index=True)
    frame = claims.evaluate(tables, claims.sources(config), SETTINGS)
    fig3 = frame[frame.figure == "Fig. 3"]
    assert set(fig3.protocol) == {"paper", "converged"}
    assert "logistic" not in set(fig3.group_b)
    # The converged rows are the paper's values reversed: other verdicts, one Holm family.
    by_protocol = fig3.groupby("protocol").verdict.apply(tuple)
    assert by_protocol["paper"] != by_protocol["converged"]
    pooled = frame[frame.design == "pooled"]
    assert np.allclose(pooled.p_holm, claims.holm(pooled.p.to_numpy()), equal_nan=True)
    flagged = [line for line in claims.side_by_side(frame) if line.endswith("| **yes** |")]
    differing = fig3.groupby("claim").verdict.nunique()
    assert len([line for line in flagged if "| Fig. 3 |" in line]) == (differing > 1).sum() > 0


def test_best_type_is_chosen_within_each_replicate():
    rows = []
    for replicate in range(4):
        better = "type1" if replicate < 2 else "type2"
        for arm in ("type1", "type2", "mixed"):
            for seed in range(3):
                rows.append({"replicate": replicate, "arm": arm, "width": 10,
                             "seed": 3 * replicate + seed, "diverged": False,
                             "test_loss": 1.0 if arm == better else 2.0})
    table = pd.DataFrame(rows)
    best = claims._best_type(table, 10, "test_loss", "less")
    assert best.groupby("replicate").arm.agg(set).to_dict() == {0: {"type1"}, 1: {"type1"},
                                                                 2: {"type2"}, 3: {"type2"}}
    assert (best.test_loss == 1.0).all()
    worst = claims._best_type(table, 10, "test_loss", "greater")
    assert (worst.test_loss == 2.0).all() and len(worst) == 12
