"""The generated results page: its tables on a small known study table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ldnn.summary import hessian_table, study_table, tracking_error


def test_study_table_has_quartiles_counts_and_baselines_in_well_formed_rows():
    rows = [{"task": "t", "protocol": "paper", "replicate": s // 2, "arm": "mixed", "width": 10,
             "seed": s, "test_loss": float(s + 1), "affine_ratio": float(s + 1) / 4,
             "unconverged": s == 0, "diverged": s == 4, "epochs_run": 50} for s in range(5)]
    rows.append({"task": "t", "protocol": "baseline", "arm": "affine", "test_loss": 4.0,
                 "affine_ratio": 1.0, "diverged": False})
    lines = study_table(pd.DataFrame(rows))
    assert len({line.count("|") for line in lines}) == 1
    # the diverged seed (value 5) is left out of the quartiles and counted
    assert lines[2] == "| paper | 10 | mixed | 2.5 [1.75, 3.25] | 0.625 | 5 | 1 | 1 | 50 |"
    assert lines[3] == "| baseline | – | affine | 4 | 1 | – | – | – | – |"


def test_tracking_error_of_a_known_rod():
    truth = pd.DataFrame({"time": [0.0, 1.0, 2.0], "theta": [0.0, 0.1, -0.2]})
    angle = truth.theta.to_numpy() + np.array([0.01, -0.01, np.nan])
    # red end below the blue one, rotated by the angle (θ measured from the vertical)
    markers = pd.DataFrame({"frame": [0, 1, 2], "blue_x": 0.0, "blue_y": 0.0,
                            "red_x": -np.sin(angle), "red_y": np.cos(angle)})
    rms, largest, lost = tracking_error(markers, truth)
    assert np.isclose(rms, 0.01) and np.isclose(largest, 0.01) and lost == 1


def test_hessian_table_per_arm():
    hessian = pd.DataFrame({"protocol": "paper", "arm": ["type1"] * 3 + ["mixed"],
                            "trace": [1.0, 2.0, 3.0, 9.0], "fraction_small": 0.5,
                            "largest": [4.0, 5.0, 7.0, 1.0]})
    lines = hessian_table(hessian)
    assert lines[2] == "| paper | type1 | 3 | 2 [1.5, 2.5] | 0.5 [0.5, 0.5] | 5 |"
    assert lines[3] == "| paper | mixed | 1 | 9 [9, 9] | 0.5 [0.5, 0.5] | 1 |"
