"""Reduced, seeded run of ``benchmarks/coverage_gee_quantreg.py`` (PCA first stage, GEE /
QuantReg second stage).

The simulation code is imported from the benchmark module (not copied). Two
configurations at n/m = 4, where the first stage dominates the variance of the
intercept and of pc0, so naive intervals must undercover there:

* GEE, Gaussian outcome with a cluster effect, exchangeable working correlation:
  n = 800 labeled rows in 200 clusters of 4, m = 200 pre-training rows, 150 reps;
* QuantReg, t_4 errors, the median: n = 2000, m = 500, 300 reps.

Coverage band: with R replications the Monte Carlo SE of a 95% coverage is
``sqrt(0.95 * 0.05 / R)`` (1.78 points at R = 150, 1.26 at R = 300); every two-stage
coverage must lie within 3 MC SE of 95%. A correct implementation fails one check with
probability ~0.3% (the run is seeded, so the outcome is fixed). Naive coverage must be
below the band for the intercept and pc0. The mean two-stage SE / Monte Carlo SD must
be within ``se_sd_tolerance(R)`` of 1 (3 MC SEs: 0.18 at R = 150, 0.13 at R = 300).
The full benchmark (500 reps, 7 configurations) is on the validation page.
"""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import load_benchmark

bench = load_benchmark("coverage_gee_quantreg")
coverage = load_benchmark("_coverage")


def _check(df, reps: int, naive_below=("const", "pc0")):
    mc_se = np.sqrt(0.95 * 0.05 / reps)
    band = (0.95 - 3 * mc_se, 0.95 + 3 * mc_se)
    assert df["identification_warning_rate"].max() == 0
    ok = df["coverage_two_stage"].between(*band)
    assert ok.all(), (
        f"two-stage coverage outside [{band[0]:.4f}, {band[1]:.4f}]:\n"
        + df.loc[~ok, ["target", "coverage_two_stage", "sd_est", "mean_se_two_stage"]
                 ].to_string())
    tol = coverage.se_sd_tolerance(reps)
    off = coverage.se_sd_outside(df, tol)
    assert off.empty, (f"mean two-stage SE / MC SD more than {tol} from 1:\n"
                       + off[["target", "se/sd"]].to_string())
    low = df[df["target"].isin(naive_below)]
    assert (low["coverage_naive"] < band[0]).all(), (
        "naive coverage should be below the band where the first stage matters:\n"
        + low[["target", "coverage_naive"]].to_string())


def test_truth_is_the_population_fit():
    """With a huge sample and the true first stage the estimates hit the targets (the
    marginal logistic mean of the copula outcome and the t_4 quantile shift too)."""
    import statsmodels.api as sm
    design = bench.ols_bench.Design()
    rng = np.random.default_rng(5)
    n = 200_000
    _, z, x = design.draw_labeled(rng, n, "gaussian")
    scores = (x - bench.ols_bench.MU) @ design.U
    groups = np.arange(n) // bench.CLUSTER_SIZE
    W = np.column_stack([np.ones(n), z, scores])
    for model, tau in [("gee-gaussian", 0.5), ("gee-logit", 0.5), ("qr-t4", 0.25)]:
        y = bench.draw_outcome(model, rng, z, scores, groups)
        if model == "gee-logit":
            params = sm.GLM(y, W, family=sm.families.Binomial()).fit().params
        elif model == "gee-gaussian":
            params = np.linalg.lstsq(W, y, rcond=None)[0]
        else:
            params = sm.QuantReg(y, W).fit(q=tau).params
        np.testing.assert_allclose(params, bench.truth(model, tau, design)[:4], atol=0.03)


@pytest.mark.slow
def test_coverage_gee_first_stage_dominates():
    df = bench.simulate("gee-gaussian", 800, 200, 150, seed=[2026, 1])
    _check(df, 150)


@pytest.mark.slow
def test_coverage_quantreg_first_stage_dominates():
    df = bench.simulate("qr-t4", 2000, 500, 300, seed=[2026, 2])
    _check(df, 300)
