"""Reduced, seeded run of ``benchmarks/coverage_factor.py`` (factor model first stage, OLS).

The simulation code is imported from the benchmark module (not copied). One
configuration of the benchmark grid where the first stage matters most: skewed
(centred-exponential) factors and noise, n = 2000 labeled rows, m = 400 pre-training rows
(n/m = 5); there the first stage multiplies the intercept SE by ~2.5 and the covariate
and prediction SEs by ~1.4-1.6, and only the sandwich (not the Gaussian information)
gets the first-stage variance right.

Coverage band: with R replications the Monte Carlo SE of a 95% coverage is
``sqrt(0.95 * 0.05 / R)`` (0.77 points at R = 800); the two-stage coverage of every
target must lie within 3 MC SE of 95% ([92.7%, 97.3%]). A correct implementation fails
one check with probability ~0.3% (the run is seeded, so the outcome is fixed). The naive
coverage (first stage treated as known) must be below the band for the three interval
targets.

SE/SD band: the coverage band alone barely sees an SE that is too *large* (10% too large
covers 96.9%: detected with probability ~0.25; 15% too large ~0.69). So the mean
two-stage SE divided by the Monte Carlo SD of the estimates must also be within 0.08 of
1 (3 MC SEs of a Monte Carlo SD, ``1 / sqrt(2R)`` = 2.5% at R = 800): per target this
detects an SE 15% too large or too small with probability ~0.99, 10% too large ~0.77,
10% too small ~0.81.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import ssl_inference as ssi

from .conftest import load_benchmark

REPS = 800
MC_SE = np.sqrt(0.95 * 0.05 / REPS)
BAND = (0.95 - 3 * MC_SE, 0.95 + 3 * MC_SE)

bench = load_benchmark("coverage_factor")
coverage = load_benchmark("_coverage")
SE_SD_TOL = coverage.se_sd_tolerance(REPS)  # 0.08


def test_design_is_recovered_by_a_large_sample():
    """The ML fit on a huge sample finds the design's covariance and target scores."""
    rng = np.random.default_rng(321)
    Sigma = bench.LAMBDA @ bench.LAMBDA.T + np.diag(bench.PSI)
    for law in bench.LAWS:
        rep = ssi.FactorModel(bench.K).fit(bench.draw_x(rng, 200_000, law))
        np.testing.assert_allclose(rep.get_covariance(), Sigma, atol=0.03)
        # the fitted scores are a rotation of the population ones: W_hat = Q W*
        W_hat_t = rep.transform(bench.MU + np.eye(bench.P)) - rep.transform(bench.MU[None])
        Q = np.linalg.lstsq(bench.population_scores().T, W_hat_t, rcond=None)[0].T
        np.testing.assert_allclose(Q @ Q.T, np.eye(bench.K), atol=0.03)


@pytest.mark.slow
def test_coverage_skewed_m_much_smaller_than_n():
    df = bench.simulate(2000, 400, "skewed", REPS, seed=[2026, 4])
    assert df["warning_rate"].max() == 0
    ok = df["coverage_two_stage"].between(*BAND)
    assert ok.all(), (
        f"two-stage coverage outside [{BAND[0]:.4f}, {BAND[1]:.4f}]:\n"
        + df.loc[~ok, ["target", "coverage_two_stage", "sd_est",
                       "mean_se_two_stage"]].to_string())
    off = coverage.se_sd_outside(df[df["target"] != "wald_null"], SE_SD_TOL)
    assert off.empty, (f"mean two-stage SE / MC SD more than {SE_SD_TOL} from 1:\n"
                       + off[["target", "se/sd"]].to_string())
    intervals = df[df["target"].isin(["const", "z", "pred"])]
    assert (intervals["coverage_naive"] < BAND[0]).all(), intervals[
        ["target", "coverage_naive"]].to_string()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
