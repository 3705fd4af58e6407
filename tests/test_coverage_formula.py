"""Reduced, seeded run of ``benchmarks/coverage_formula.py`` (PCA features inside formula
terms: ``y ~ z * pc0`` and ``y ~ z + pc0 + I(pc0**2)``, OLS second stage).

The simulation code is imported from the benchmark module (not copied). One
configuration where the first stage dominates: n = 2000 labeled rows, m = 200
pre-training rows (n/m = 10), 400 replications (~40 s). There the naive SE of ``z`` in
``y ~ z * pc0`` is ~0.23 of the sampling SD, that of ``pc0`` in the quadratic model
~0.08: the error of the learned mean moves them through the interaction and the square.
The coefficients ``z:pc0`` and ``I(pc0 ** 2)`` themselves are barely moved by the first
stage (naive SE/SD ~1), so the naive checks below leave them out.

SE/SD band: mean two-stage SE / Monte Carlo SD of the estimates within [0.9, 1.1] for
every target. The MC SE of that ratio is ``1 / sqrt(2R)`` = 3.5% at R = 400, so the band
is 2.8 MC SEs wide on each side: a correct SE leaves it with probability ~0.5% per
target (the run is seeded, so the outcome is fixed). Per target it detects an SE 15% too
large with probability ~0.89, 15% too small ~0.95, 10% off either way ~0.5. The naive
SE/SD must be below 0.9 for ``z``, ``pc0`` and the prediction.

Coverage band: the two-stage coverage of every target within 3 MC SE of 95%
([91.7%, 98.3%] at R = 400); naive coverage below it for ``z``, ``pc0`` and the
prediction. On its own this band sees an SE 15% too small with probability ~0.8 and one
15% too large with ~0.2 only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ssl_inference as ssi
import ssl_inference.formula.api as smf

from .conftest import load_benchmark

REPS = 400
MC_SE = np.sqrt(0.95 * 0.05 / REPS)
BAND = (0.95 - 3 * MC_SE, 0.95 + 3 * MC_SE)
SE_SD_BAND = (0.9, 1.1)
FIRST_STAGE_DOMINATED = ["z", "pc0", "pred"]

bench = load_benchmark("coverage_formula")


def test_targets_are_the_large_sample_fit_in_the_package_gauge():
    """With 100,000 rows in each sample the pipeline's estimates hit the targets, and the
    fitted components are the design's eigenvectors in the package's sign gauge."""
    design = bench.ols_bench.Design()
    rng = np.random.default_rng(17)
    rep = ssi.PCA(bench.K, symmetry="sign").fit(design.draw_x(rng, 100_000, "gaussian"))
    np.testing.assert_allclose(rep.components_, design.U.T, atol=0.02)
    _, z, x = design.draw_labeled(rng, 100_000, "gaussian")
    scores = (x - bench.ols_bench.MU) @ design.U
    data = pd.DataFrame(x, columns=bench.COLS).assign(z=z)
    for name, outcome in bench.OUTCOMES.items():
        data["y"] = outcome.mean(z, scores) + rng.standard_normal(len(z))
        res = smf.ols(outcome.formula, data, representation=rep,
                      features=bench.COLS).fit(cov_type="naive")
        est = [*res.params[list(outcome.targets[:3])],
               res.predict(bench.new_point(design)).iloc[0]]
        # two-stage SEs at this size: at most 0.005 (measured); 0.02 is four of them
        np.testing.assert_allclose(est, bench.truth(outcome, design), atol=0.02,
                                   err_msg=name)


@pytest.mark.slow
def test_two_stage_se_matches_sampling_sd_naive_does_not():
    df = bench.simulate(2000, 200, REPS, seed=[2026, 1])
    assert df["identification_warning_rate"].max() == 0
    assert df["gauge_flip_rate"].max() == 0
    cols = ["outcome", "target", "coverage_naive", "coverage_two_stage", "se_sd_naive",
            "se_sd_two_stage"]
    ok = df["se_sd_two_stage"].between(*SE_SD_BAND)
    assert ok.all(), f"two-stage SE/SD outside {SE_SD_BAND}:\n" + df.loc[~ok, cols].to_string()
    ok = df["coverage_two_stage"].between(*BAND)
    assert ok.all(), (f"two-stage coverage outside [{BAND[0]:.4f}, {BAND[1]:.4f}]:\n"
                      + df.loc[~ok, cols].to_string())
    dominated = df[df["target"].isin(FIRST_STAGE_DOMINATED)]
    assert len(dominated) == 6
    assert (dominated["se_sd_naive"] < SE_SD_BAND[0]).all(), dominated[cols].to_string()
    assert (dominated["coverage_naive"] < BAND[0]).all(), dominated[cols].to_string()
