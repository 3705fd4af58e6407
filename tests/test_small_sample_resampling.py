"""Reduced, seeded run of ``benchmarks/small_sample_resampling.py`` (issue 12, part 3).

The simulation code is imported from the benchmark module (not copied). One cell where
the recommendation of the documentation matters and the study is cheap: PCA -> OLS with
10 clusters of 10 rows in each sample and Student-t5 data. There the documentation
recommends the jackknife with t(G - 1) quantiles (``use_t=True``).

Band: with R data sets the Monte Carlo SE of a 95% coverage is ``sqrt(0.95 * 0.05 /
R)`` (1.54 points at R = 200); the jackknife-t coverage of every target must lie within
3 MC SE of 95%. A jackknife variance off by a factor 1.5 moves coverage by about 5
points and would fail.
"""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import load_benchmark

pytestmark = pytest.mark.slow

REPS = 200
MC_SE = np.sqrt(0.95 * 0.05 / REPS)
BAND = (0.95 - 3 * MC_SE, 0.95 + 3 * MC_SE)

bench = load_benchmark("small_sample_resampling")


def test_ten_clusters_per_sample_jackknife_t_covers(monkeypatch):
    # the checks are on the jackknife; 49 bootstrap replicates per data set (not the
    # study's 199) still estimate the share of degenerate ones over 200 data sets
    monkeypatch.setattr(bench, "BOOT_REPS", 49)
    cfg = bench.Config("pca-ols", 100, 100, 10)
    df = bench.simulate(cfg, REPS, seed=[2026, 12]).set_index("target")
    assert list(df.index) == list(bench.pca.TARGETS)
    coverage = df["coverage_jk-t"]
    assert coverage.between(*BAND).all(), coverage
    # the t quantile widens the normal interval: never less coverage
    assert (coverage >= df["coverage_jk"]).all()
    # the jackknife SEs are right on average for the invariant targets
    ratio = df.loc[["const", "z", "pred"], "sd_over_se_jk"]
    assert ratio.between(0.8, 1.25).all(), ratio
    # replicates are regular here: few degenerate bootstrap replicates
    assert df["boot_degenerate"].iloc[0] < 0.06
