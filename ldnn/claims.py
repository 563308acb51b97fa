"""Every quantitative claim of the paper as data, tested on the workflow's result tables.

A `Family` is one claim of a figure about the arms of a study, e.g. "the mixed network is
more accurate than each other arm" (Fig. 3). It expands into one comparison of two groups
of seeds per arm pair and hidden width found in the tables. The studies a family reads
are named by config keys (e.g. figures.fig3.study), so the configuration decides what is
tested. All comparisons form one family for Holm–Bonferroni; each gets a verdict by the
rule of ldnn.analysis.statistics. Diverged seeds (and any non-finite value of the
metric) are left out of the statistics and counted.

Every comparison is made twice, by design: `pooled` tests all seeds of the two groups as
independent samples (the paper's design, one-sided Mann–Whitney); `replicates` takes the
meta-learning replicate as the unit (ldnn.analysis.replicates: per replicate the
difference of the arms' mean (log for losses) metric, a one-sided t-test of it across
replicates, and, descriptive, Cliff's delta with a two-level bootstrap interval, the ICC
and in how many replicates the effect points the claimed way; no verdict below
MIN_REPLICATES replicates). Holm runs over all comparisons of one design that get a
verdict, both training protocols together. No p is 0: each row says how its p was
obtained and the smallest p its design can give without a distribution model. "mixed vs others" also compares mixed with the
better learned type of each replicate ("best type": type labels mean nothing across
replicates).

Fig. 6 compares the Hamiltonian (HNN) with the conventional network (NN) on test_loss:
both are the mean squared error of the same state derivatives (ẋ, ẏ, ẍ, ÿ) on the same
held-out orbits (the HNN's prediction is its field (∂H/∂p, −∂H/∂q), p = q̇), so the two
tables are comparable.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ldnn.analysis.replicates import (LOG_METRICS, MIN_REPLICATES, icc, replicate_deltas,
                                      replicate_effects, replicate_p, two_level_bootstrap)
from ldnn.analysis.statistics import (INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, bootstrap_ci,
                                      cliffs_delta, holm, mann_whitney_method,
                                      mann_whitney_p, verdict)
from ldnn.baselines import BASELINE
from ldnn.config import ClaimsConfig

log = logging.getLogger("ldnn")

MIXED_VS_OTHERS = "mixed vs others"   # mixed against every other arm of the study
SAME_ARM = "same arm"                 # each arm of both studies: a from study, b from other
ORDERED_BY = "ordered by "            # + metric: every pair of `arms`, a the better by it
BEST_TYPE = "best type"               # per replicate, the better learned type (group b)
DESIGNS = ("pooled", "replicates")
TOO_FEW = "too few replicates"        # the replicates design's verdict below MIN_REPLICATES


@dataclass(frozen=True)
class Family:
    """One claim of the paper: group a's `metric` exceeds ("greater") or falls below
    ("less") group b's, for every pair given by `pairs` (explicit (a, b) arms or one of the
    rules above). `study`, `other` (b's study, if not a's) and `arms` are config keys;
    `words` is formatted with the arms a and b."""
    figure: str
    words: str
    study: str
    metric: str
    direction: str
    pairs: str | tuple[tuple[str, str], ...]
    table: str = "results.csv"
    other: str = ""
    arms: str = ""


HESSIAN_PAIRS = (("type1", "type2"), ("type2", "mixed"))

PAPER = (
    Family("Fig. 3", "MNIST-1D: {a} more accurate than {b}", "figures.fig3.study",
           "test_accuracy", "greater", MIXED_VS_OTHERS),
    Family("Fig. 4", "MNIST-1D: {a} more accurate than {b}", "figures.fig4.study",
           "test_accuracy", "greater", MIXED_VS_OTHERS),
    Family("Fig. 5", "van der Pol: {a} lower test MSE than {b}", "figures.fig5.study",
           "test_loss", "less", MIXED_VS_OTHERS),
    Family("Fig. 6", "Hénon–Heiles NN: {a} lower test MSE than {b}", "figures.fig6.study",
           "test_loss", "less", MIXED_VS_OTHERS),
    Family("Fig. 6", "Hénon–Heiles HNN: {a} lower test MSE than {b}",
           "figures.fig6.hnn_study", "test_loss", "less", MIXED_VS_OTHERS),
    Family("Fig. 6", "Hénon–Heiles, {a} arm: HNN lower test MSE than NN",
           "figures.fig6.hnn_study", "test_loss", "less", SAME_ARM, other="figures.fig6.study"),
    Family("Fig. 7", "pendulum clock: {a} lower test MSE than {b}", "figures.fig7.study",
           "test_loss", "less", MIXED_VS_OTHERS),
    Family("Fig. 8", "MNIST-1D: participation ratio of {a} above {b}, as is its accuracy",
           "figures.fig8.study", "participation", "greater", ORDERED_BY + "test_accuracy",
           arms="figures.fig8.arms"),
    Family("Hessian", "MNIST-1D: Hessian trace of {a} above {b}", "hessian.study", "trace",
           "greater", HESSIAN_PAIRS, table="hessian.csv"),
    Family("Hessian", "MNIST-1D: fraction f of near-zero Hessian eigenvalues of {a} below {b}",
           "hessian.study", "fraction_small", "less", HESSIAN_PAIRS, table="hessian.csv"),
)

GROUP_COLUMNS = ("n", "diverged", "median", "median_low", "median_high", "mean", "mean_low",
                 "mean_high")
COLUMNS = (["claim", "figure", "protocol", "design", "metric", "direction", "width", "study_a",
            "group_a", "study_b", "group_b"] + [f"{c}_{g}" for g in "ab" for c in GROUP_COLUMNS]
           + ["replicates", "holds", "icc", "scale", "shift", "superiority", "cliffs_delta",
              "effect_low", "effect_high", "p", "p_method", "p_floor", "p_holm", "verdict"])


def _at(config: dict, key: str) -> Any:
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def sources(config: dict, families: tuple[Family, ...] = PAPER) -> dict[str, Any]:
    """The values of the config keys the families name (studies, arms); missing keys are
    left out, and so are the families that need them."""
    keys = {k for f in families for k in (f.study, f.other, f.arms) if k}
    found = {}
    for key in sorted(keys):
        try:
            found[key] = _at(config, key)
        except (KeyError, TypeError):
            continue
    return found


def tables(sources: dict[str, Any], families: tuple[Family, ...] = PAPER) -> list[str]:
    """The tables the families read, as "study/table" paths under the results folder."""
    needed = {f"{sources[k]}/{f.table}" for f in families for k in (f.study, f.other)
              if k in sources}
    return sorted(needed)


@dataclass(frozen=True)
class Group:
    """The finite, non-diverged values (n,) of a group of networks, each one's replicate and
    seed (n,), and how many networks were left out."""
    values: np.ndarray
    replicates: np.ndarray
    seeds: np.ndarray
    left_out: int


def _rows(table: pd.DataFrame, arm: str, width: Any) -> pd.DataFrame:
    rows = table[table.arm == arm]
    return rows if width is None else rows[rows.width == width]


def _group(rows: pd.DataFrame, metric: str) -> Group:
    values = rows[metric].to_numpy(np.float64)
    kept = np.isfinite(values)
    if "diverged" in rows:
        kept &= ~rows.diverged.to_numpy(bool)
    replicates = rows.replicate.to_numpy(int) if "replicate" in rows else np.zeros(len(rows), int)
    seeds = rows.seed.to_numpy(int) if "seed" in rows else np.arange(len(rows))
    return Group(values[kept], replicates[kept], seeds[kept], int((~kept).sum()))


def _best_type(table: pd.DataFrame, width: Any, metric: str, direction: str) -> pd.DataFrame:
    """Per replicate, the rows of the learned type (type1, type2, …) with the best median
    by `metric` in `direction`."""
    types = sorted(a for a in set(table.arm) if a.startswith("type"))
    chosen, candidates = [], table[table.arm.isin(types)]
    for _, rows in candidates.groupby(
            "replicate" if "replicate" in table else np.zeros(len(candidates), int)):
        medians = {a: _rows(rows, a, width)[metric].median() for a in types}
        medians = {a: m for a, m in medians.items() if np.isfinite(m)}
        if medians:
            best = (max if direction == "greater" else min)(medians, key=medians.get)
            chosen.append(_rows(rows, best, width))
    return pd.concat(chosen) if chosen else table.iloc[:0]


def _protocols(a_table: pd.DataFrame, b_table: pd.DataFrame) -> list[str]:
    """The training protocols both tables have networks of (not the baselines)."""
    return [p for p in dict.fromkeys(a_table.protocol)
            if p != BASELINE and p in set(b_table.protocol)]


def _widths(*frames: pd.DataFrame) -> list:
    if not all("width" in f for f in frames):
        return [None]
    return sorted(int(w) for w in set.intersection(*(set(f.width.unique()) for f in frames)))


def _pairs(family: Family, sources: dict, a_table: pd.DataFrame, b_table: pd.DataFrame,
           width: Any) -> list[tuple[str, str]]:
    arms = [a for a in dict.fromkeys(a_table.arm) if a in set(b_table.arm)]
    if family.arms:
        arms = [a for a in sources[family.arms] if a in arms]
    if isinstance(family.pairs, tuple):
        return [(a, b) for a, b in family.pairs if a in arms and b in arms]
    if family.pairs == MIXED_VS_OTHERS:
        if "mixed" not in arms:
            return []
        types = [a for a in arms if a.startswith("type")]
        best = [("mixed", BEST_TYPE)] if len(types) > 1 else []
        return [("mixed", b) for b in arms if b != "mixed"] + best
    if family.pairs == SAME_ARM:
        return [(a, a) for a in arms]
    if family.pairs.startswith(ORDERED_BY):
        by = family.pairs[len(ORDERED_BY):]
        values = {a: _group(_rows(a_table, a, width), by).values for a in arms}
        median = {a: np.median(v) for a, v in values.items() if v.size}
        return [(a, b) if median[a] > median[b] else (b, a)
                for a, b in itertools.combinations(median, 2) if median[a] != median[b]]
    raise ValueError(f"claim family {family.words!r}: unknown pairs rule {family.pairs!r}")


def comparisons(tables: dict[str, pd.DataFrame], sources: dict[str, Any],
                families: tuple[Family, ...] = PAPER) -> Iterator[dict]:
    """Each comparison of each family whose tables, metric and arms are there: its
    description and both groups (`a`, `b`: Group)."""
    for family in families:
        if family.study not in sources or (family.other and family.other not in sources):
            log.info("claims: %s %r skipped, its config key is missing", family.figure,
                     family.words)
            continue
        study_a = sources[family.study]
        study_b = sources[family.other] if family.other else study_a
        a_table = tables.get(f"{study_a}/{family.table}")
        b_table = tables.get(f"{study_b}/{family.table}")
        if a_table is None or b_table is None or not (family.metric in a_table and
                                                      family.metric in b_table):
            log.info("claims: %s %r skipped, no table of %s with %s", family.figure,
                     family.words, study_a if a_table is None else study_b, family.metric)
            continue
        for protocol in _protocols(a_table, b_table):
            a_rows = a_table[a_table.protocol == protocol]
            b_rows = b_table[b_table.protocol == protocol]
            widths = _widths(a_rows, b_rows)
            for width in widths:
                for a, b in _pairs(family, sources, a_rows, b_rows, width):
                    claim = family.words.format(a=a, b=b)
                    if len(widths) > 1:
                        claim += f", width {width}"
                    b_group = (_best_type(b_rows, width, family.metric, family.direction)
                               if b == BEST_TYPE else _rows(b_rows, b, width))
                    yield {"claim": claim, "figure": family.figure, "protocol": protocol,
                           "metric": family.metric, "direction": family.direction,
                           "width": width, "study_a": study_a, "group_a": a,
                           "study_b": study_b, "group_b": b,
                           "a": _group(_rows(a_rows, a, width), family.metric),
                           "b": _group(b_group, family.metric)}


def _describe(values: np.ndarray, settings: ClaimsConfig) -> dict[str, float]:
    """n, median and mean of a group with their bootstrap 95 % intervals."""
    description = {"n": values.size}
    for name, statistic in (("median", np.median), ("mean", np.mean)):
        description[name] = float(statistic(values)) if values.size else np.nan
        low, high = bootstrap_ci(values, statistic, settings.resamples, settings.seed)
        description[f"{name}_low"], description[f"{name}_high"] = low, high
    return description


def _paired_differences(a: Group, b: Group) -> tuple[np.ndarray, np.ndarray]:
    """a − b of the networks of one seed and replicate in both groups, and the replicates."""
    left = pd.DataFrame({"replicate": a.replicates, "seed": a.seeds, "a": a.values})
    right = pd.DataFrame({"replicate": b.replicates, "seed": b.seeds, "b": b.values})
    pairs = left.merge(right, on=["replicate", "seed"])
    return (pairs.a - pairs.b).to_numpy(), pairs.replicate.to_numpy()


def _test(a: Group, b: Group, direction: str, design: str, log: bool,
          settings: ClaimsConfig) -> dict:
    """δ(a, b), its interval (replicates design), the one-sided p of one design, how it was
    obtained and the smallest p the design can give without a distribution model."""
    if a.values.size == 0 or b.values.size == 0:
        return {"cliffs_delta": np.nan, "effect_low": np.nan, "effect_high": np.nan,
                "p": np.nan, "p_method": "", "p_floor": np.nan}
    if design == "pooled":
        return {"cliffs_delta": cliffs_delta(a.values, b.values), "effect_low": np.nan,
                "effect_high": np.nan, "p": mann_whitney_p(a.values, b.values, direction),
                "p_method": mann_whitney_method(a.values, b.values),
                "p_floor": 1 / math.comb(a.values.size + b.values.size, a.values.size)}
    args = (a.values, a.replicates, b.values, b.replicates, direction)
    shared, deltas = replicate_deltas(*args)
    _, effects = replicate_effects(*args, log=log)
    low, high = two_level_bootstrap(*args, settings.resamples // 5, settings.seed)
    sign = 1 if direction == "greater" else -1
    low, high = sorted((sign * low, sign * high))
    p, method = replicate_p(effects)
    return {"cliffs_delta": sign * float(np.mean(deltas)) if deltas.size else np.nan,
            "effect_low": low, "effect_high": high, "p": p, "p_method": method,
            "p_floor": 2.0 ** -shared.size if shared.size else np.nan}


def evaluate(tables: dict[str, pd.DataFrame], sources: dict[str, Any], settings: ClaimsConfig,
             families: tuple[Family, ...] = PAPER) -> pd.DataFrame:
    """Two rows per comparison, one per design (columns COLUMNS): group statistics, the
    replicates behind them, in how many the effect points the claimed way (holds), the ICC
    of the seed-paired differences, the mean over replicates of the difference of the arms'
    mean metric (shift, a − b, on the `scale` of the test: log or linear), δ(a, b) (pooled:
    over all pairs of seeds; replicates: the mean over replicates, with its two-level
    bootstrap interval), the one-sided p with its method and floor, Holm-adjusted over the
    rows of the design that get a verdict, and the verdict (replicates design: TOO_FEW below
    MIN_REPLICATES replicates). `tables` maps "study/table" to the table."""
    rows = []
    for comparison in comparisons(tables, sources, families):
        a, b = comparison.pop("a"), comparison.pop("b")
        log = (comparison["metric"] in LOG_METRICS and np.all(a.values > 0)
               and np.all(b.values > 0))
        shared, effects = replicate_effects(a.values, a.replicates, b.values, b.replicates,
                                            comparison["direction"], log=log)
        sign = 1 if comparison["direction"] == "greater" else -1
        common = dict(comparison) | {"replicates": shared.size,
                                     "holds": int(np.sum(effects > 0)),
                                     "icc": icc(*_paired_differences(a, b)),
                                     "scale": "log" if log else "linear",
                                     "shift": sign * float(np.mean(effects)) if effects.size
                                     else np.nan}
        for side, group in (("a", a), ("b", b)):
            common |= {f"{k}_{side}": v for k, v in _describe(group.values, settings).items()}
            common[f"diverged_{side}"] = group.left_out
        for design in DESIGNS:
            row = common | {"design": design} | _test(a, b, comparison["direction"], design,
                                                      log, settings)
            row["superiority"] = (1 + row["cliffs_delta"]) / 2
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["width"] = frame.width.astype("Int64")
    too_few = (frame.design == "replicates") & (frame.replicates < MIN_REPLICATES)
    frame["p_holm"] = np.nan
    for design in DESIGNS:
        chosen = (frame.design == design) & ~too_few
        frame.loc[chosen, "p_holm"] = holm(frame.p[chosen].to_numpy(np.float64))
    frame["verdict"] = [verdict(p, d, direction, settings.alpha) for p, d, direction in
                        zip(frame.p_holm, frame.cliffs_delta, frame.direction)]
    frame.loc[too_few, "verdict"] = TOO_FEW
    return frame


def format_number(x: float) -> str:
    """Three significant digits, or – for a missing value."""
    return "–" if pd.isna(x) else f"{x:.3g}"


def _p(x: float, floor: float = 0.0) -> str:
    """p to two digits; † where it is below the design's floor (it rests on a model)."""
    return "–" if pd.isna(x) else f"{x:.2g}" + ("†" if x < floor else "")


def _with_interval(value: float, low: float, high: float) -> str:
    return f"{format_number(value)} [{format_number(low)}, {format_number(high)}]"


def _verdict_text(verdict_: str) -> str:
    return f"**{verdict_}**" if verdict_ == REPRODUCED else verdict_


def side_by_side(frame: pd.DataFrame) -> list[str]:
    """Markdown lines: one row per claim, its verdict under each (protocol, design), and
    whether they differ."""
    columns = list(dict.fromkeys(zip(frame.protocol, frame.design)))
    table = frame.pivot_table(index=["figure", "claim"], columns=["protocol", "design"],
                              values="verdict", aggfunc="first", sort=False)
    lines = ["| figure | claim | " + " | ".join(f"{p}, {d}" for p, d in columns)
             + " | verdicts differ |", "|---|---|" + "---|" * len(columns) + "---|"]
    for (figure, claim), row in table.iterrows():
        verdicts = [row.get(c) for c in columns]
        present = {v for v in verdicts if isinstance(v, str)}
        lines.append(f"| {figure} | {claim} | "
                     + " | ".join(_verdict_text(v) if isinstance(v, str) else "–"
                                  for v in verdicts)
                     + f" | {'**yes**' if len(present) > 1 else ''} |")
    return lines


def markdown(frame: pd.DataFrame, alpha: float) -> str:
    """The claims as Markdown: the verdicts of each claim under every protocol and design
    side by side (flagging claims whose verdicts differ), then both designs' details."""
    lines = ["# Claims of the paper, tested", ""]
    for (protocol, design), rows in frame.groupby(["protocol", "design"], sort=False):
        counts = rows.verdict.value_counts()
        too_few = f", {counts[TOO_FEW]} with too few replicates" if TOO_FEW in counts else ""
        lines.append(f"- {protocol} training, {design}: {len(rows)} claims, "
                     f"**{counts.get(REPRODUCED, 0)} reproduced**, "
                     f"{counts.get(NOT_REPRODUCED, 0)} not reproduced, "
                     f"{counts.get(INCONCLUSIVE, 0)} inconclusive{too_few}.")
    lines += [
        "",
        "Each claim compares two groups of networks a and b in the claimed direction, by two "
        "designs. *pooled* (the paper's): every seed an independent sample, one-sided "
        "Mann–Whitney U test (exact below 8 seeds a group without ties, else its normal "
        "approximation), δ = P(a > b) − P(a < b) over all pairs of seeds (Cliff's delta). "
        "*replicates*: the meta-learning replicate is the unit; per replicate the difference "
        "d_r of the arms' mean metric (of its logarithm for a test MSE), a one-sided t-test "
        "of mean d_r > 0 across the K replicates (normal model; where the d_r do not vary, "
        "the exact sign-flip test); *shift*: the mean d_r as a − b; δ the mean over "
        f"replicates of Cliff's δ_r with a two-level bootstrap 95 % interval (replicates, "
        f"then seeds); *holds*: replicates whose d_r points the claimed way; ICC: the "
        f"between-replicate share of the variance of the seed-paired differences a − b. "
        f"Below {MIN_REPLICATES} replicates the replicates design gives no verdict. No "
        "distribution-free test of K replicates can give a p below 2^−K (all K effects one "
        "way, the sign-flip test): a p marked † is below that floor and rests on the "
        "t-test's normal model. p-values are Holm–Bonferroni adjusted over all claims of a "
        "design that get a verdict, both protocols together. "
        f"*Reproduced*: adjusted p < {alpha:g}. *Not reproduced*: not significant, and the "
        "effect is negligible (|δ| < 0.147) or points the other way. *Inconclusive*: not "
        "significant, but a non-negligible effect in the claimed direction. *best type*: the "
        "better learned type of each replicate. Diverged seeds are left out and counted.",
        "",
        "## Verdicts side by side",
        "",
    ]
    lines += side_by_side(frame)
    lines += ["", "## Replicates design", "",
              "| figure | claim | protocol | K | holds | ICC | median a | median b | shift "
              "| δ [95 % CI] | p | p Holm | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in frame[frame.design == "replicates"].itertuples():
        lines.append(
            f"| {row.figure} | {row.claim} | {row.protocol} | {row.replicates} | {row.holds} "
            f"| {format_number(row.icc)} | {format_number(row.median_a)} "
            f"| {format_number(row.median_b)} "
            f"| {format_number(row.shift)}{' (log)' if row.scale == 'log' else ''} "
            f"| {_with_interval(row.cliffs_delta, row.effect_low, row.effect_high)} "
            f"| {_p(row.p, row.p_floor)} | {_p(row.p_holm, row.p_floor)} "
            f"| {_verdict_text(row.verdict)} |")
    lines += ["", "## Pooled design", "",
              "| figure | claim | protocol | n a, b (diverged) | median a [95 % CI] "
              "| median b [95 % CI] | mean a | mean b | δ | p | p Holm | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in frame[frame.design == "pooled"].itertuples():
        lines.append(
            f"| {row.figure} | {row.claim} | {row.protocol} | {row.n_a}, {row.n_b} "
            f"({row.diverged_a}, {row.diverged_b}) "
            f"| {_with_interval(row.median_a, row.median_low_a, row.median_high_a)} "
            f"| {_with_interval(row.median_b, row.median_low_b, row.median_high_b)} "
            f"| {format_number(row.mean_a)} | {format_number(row.mean_b)} "
            f"| {format_number(row.cliffs_delta)} "
            f"| {_p(row.p, row.p_floor)} | {_p(row.p_holm, row.p_floor)} "
            f"| {_verdict_text(row.verdict)} |")
    return "\n".join(lines) + "\n"
