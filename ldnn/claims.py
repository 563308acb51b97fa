"""Every quantitative claim of the paper as data, tested on the workflow's result tables.

A `Family` is one claim of a figure about the arms of a study, e.g. "the mixed network is
more accurate than each other arm" (Fig. 3). It expands into one comparison of two groups
of seeds per arm pair and hidden width found in the tables. The studies a family reads
are named by config keys (e.g. figures.fig3.study), so the configuration decides what is
tested. All comparisons form one family for Holm–Bonferroni; each gets a verdict by the
rule of ldnn.analysis.statistics. Diverged seeds (and any non-finite value of the
metric) are left out of the statistics and counted.

Fig. 6 compares the Hamiltonian (HNN) with the conventional network (NN) on test_loss:
both are the mean squared error of the same state derivatives (ẋ, ẏ, ẍ, ÿ) on the same
held-out orbits (the HNN's prediction is its field (∂H/∂p, −∂H/∂q), p = q̇), so the two
tables are comparable.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ldnn.analysis.statistics import (INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, bootstrap_ci,
                                      cliffs_delta, holm, mann_whitney_p, superiority, verdict)
from ldnn.baselines import BASELINE
from ldnn.config import ClaimsConfig

log = logging.getLogger("ldnn")

MIXED_VS_OTHERS = "mixed vs others"   # mixed against every other arm of the study
SAME_ARM = "same arm"                 # each arm of both studies: a from study, b from other
ORDERED_BY = "ordered by "            # + metric: every pair of `arms`, a the better by it


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
COLUMNS = (["claim", "figure", "protocol", "metric", "direction", "width", "study_a", "group_a",
            "study_b", "group_b"] + [f"{c}_{g}" for g in "ab" for c in GROUP_COLUMNS]
           + ["superiority", "cliffs_delta", "p", "p_holm", "verdict"])


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


def _group(table: pd.DataFrame, arm: str, width: Any, metric: str) -> tuple[np.ndarray, int]:
    """The finite, non-diverged values (n,) of one arm (and width) and how many were left out."""
    rows = table[table.arm == arm]
    if width is not None:
        rows = rows[rows.width == width]
    values = rows[metric].to_numpy(np.float64)
    kept = np.isfinite(values)
    if "diverged" in rows:
        kept &= ~rows.diverged.to_numpy(bool)
    return values[kept], int((~kept).sum())


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
        return [("mixed", b) for b in arms if b != "mixed"] if "mixed" in arms else []
    if family.pairs == SAME_ARM:
        return [(a, a) for a in arms]
    if family.pairs.startswith(ORDERED_BY):
        by = family.pairs[len(ORDERED_BY):]
        values = {a: _group(a_table, a, width, by)[0] for a in arms}
        median = {a: np.median(v) for a, v in values.items() if v.size}
        return [(a, b) if median[a] > median[b] else (b, a)
                for a, b in itertools.combinations(median, 2) if median[a] != median[b]]
    raise ValueError(f"claim family {family.words!r}: unknown pairs rule {family.pairs!r}")


def comparisons(tables: dict[str, pd.DataFrame], sources: dict[str, Any],
                families: tuple[Family, ...] = PAPER) -> Iterator[dict]:
    """Each comparison of each family whose tables, metric and arms are there: its
    description and the values of both groups (`values_a`, `values_b`, diverged counts)."""
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
                    values_a, diverged_a = _group(a_rows, a, width, family.metric)
                    values_b, diverged_b = _group(b_rows, b, width, family.metric)
                    yield {"claim": claim, "figure": family.figure, "protocol": protocol,
                           "metric": family.metric, "direction": family.direction,
                           "width": width, "study_a": study_a, "group_a": a,
                           "study_b": study_b, "group_b": b, "values_a": values_a,
                           "values_b": values_b, "diverged_a": diverged_a,
                           "diverged_b": diverged_b}


def _describe(values: np.ndarray, settings: ClaimsConfig) -> dict[str, float]:
    """n, median and mean of a group with their bootstrap 95 % intervals."""
    description = {"n": values.size}
    for name, statistic in (("median", np.median), ("mean", np.mean)):
        description[name] = float(statistic(values)) if values.size else np.nan
        low, high = bootstrap_ci(values, statistic, settings.resamples, settings.seed)
        description[f"{name}_low"], description[f"{name}_high"] = low, high
    return description


def evaluate(tables: dict[str, pd.DataFrame], sources: dict[str, Any], settings: ClaimsConfig,
             families: tuple[Family, ...] = PAPER) -> pd.DataFrame:
    """One row per comparison (columns COLUMNS): group statistics, one-sided Mann–Whitney p,
    Holm-adjusted over all rows, effect sizes and the verdict. `tables` maps
    "study/table" to the table."""
    rows = []
    for comparison in comparisons(tables, sources, families):
        a, b = comparison.pop("values_a"), comparison.pop("values_b")
        row = dict(comparison)
        for side, values in (("a", a), ("b", b)):
            row |= {f"{k}_{side}": v for k, v in _describe(values, settings).items()}
        testable = a.size > 0 and b.size > 0
        row["superiority"] = superiority(a, b) if testable else np.nan
        row["cliffs_delta"] = cliffs_delta(a, b) if testable else np.nan
        row["p"] = mann_whitney_p(a, b, comparison["direction"]) if testable else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["width"] = frame.width.astype("Int64")
    frame["p_holm"] = holm(frame.p.to_numpy(np.float64))
    frame["verdict"] = [verdict(p, d, direction, settings.alpha) for p, d, direction in
                        zip(frame.p_holm, frame.cliffs_delta, frame.direction)]
    return frame


def _number(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:.3g}"


def _p(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:.2g}"


def _with_interval(value: float, low: float, high: float) -> str:
    return f"{_number(value)} [{_number(low)}, {_number(high)}]"


def markdown(frame: pd.DataFrame, alpha: float) -> str:
    """The claims table as Markdown, with the counts of each verdict and how they are decided."""
    counts = frame.verdict.value_counts()
    lines = [
        "# Claims of the paper, tested",
        "",
        f"{len(frame)} claims: **{counts.get(REPRODUCED, 0)} reproduced**, "
        f"{counts.get(NOT_REPRODUCED, 0)} not reproduced, {counts.get(INCONCLUSIVE, 0)} "
        "inconclusive.",
        "",
        "Each claim compares the seeds of two groups a and b: one-sided Mann–Whitney U test "
        "in the claimed direction, p-values Holm–Bonferroni adjusted over all claims. "
        f"*Reproduced*: adjusted p < {alpha:g}. *Not reproduced*: not significant, and the "
        "effect is negligible (|δ| < 0.147) or points the other way. *Inconclusive*: not "
        "significant, but a non-negligible effect in the claimed direction. "
        "δ = P(a > b) − P(a < b) over all pairs of seeds (Cliff's delta). Medians with "
        "percentile-bootstrap 95 % intervals; diverged seeds are left out and counted.",
        "",
        "| figure | claim | protocol | n a, b (diverged) | median a [95 % CI] "
        "| median b [95 % CI] | mean a | mean b | δ | p | p Holm | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in frame.itertuples():
        verdict_text = f"**{row.verdict}**" if row.verdict == REPRODUCED else row.verdict
        lines.append(
            f"| {row.figure} | {row.claim} | {row.protocol} | {row.n_a}, {row.n_b} "
            f"({row.diverged_a}, {row.diverged_b}) "
            f"| {_with_interval(row.median_a, row.median_low_a, row.median_high_a)} "
            f"| {_with_interval(row.median_b, row.median_low_b, row.median_high_b)} "
            f"| {_number(row.mean_a)} | {_number(row.mean_b)} | {_number(row.cliffs_delta)} "
            f"| {_p(row.p)} | {_p(row.p_holm)} | {verdict_text} |")
    return "\n".join(lines) + "\n"
