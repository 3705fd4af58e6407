"""Reduced, seeded run of ``benchmarks/coverage_pca_ols.py`` (PCA first stage, OLS second).

The simulation code is imported from the benchmark module (not copied). Two
configurations of the benchmark grid where the first stage matters:

* Gaussian x, n = 4000, m = 400 (n/m = 10), nonrobust second stage;
* multivariate t(5) x, n = m = 4000 (n/m = 1), nonrobust and HC1.

(Not t(5) at m = 400: there the two-stage pc intervals cover ~93.2% in the full
benchmark, a known finite-sample effect of the heavy tails documented in the
benchmark module; a test there would pass or fail by the luck of the seed.)

Coverage band: with R replications, the Monte Carlo SE of a coverage of 95% is
``sqrt(0.95 * 0.05 / R)`` (0.69 points at R = 1000); the two-stage coverage of every
target must lie within 3 MC SE of 95% ([92.93%, 97.07%]). A correct implementation
fails a single check with probability ~0.3% (the run is seeded, so the outcome is
fixed). The naive (first stage treated as known) coverage must be *below* the band for
the targets whose variance is dominated by the first stage.

SE/SD band: the coverage band alone barely sees an SE that is too *large* (an SE 10%
too large covers 96.9%, inside the band; it fails with probability ~0.37, 15% too large
~0.85). So the mean two-stage SE over the replications divided by the Monte Carlo SD of
the estimates must also be within 0.07 of 1 (3 MC SEs of a Monte Carlo SD,
``1 / sqrt(2R)`` = 2.2% at R = 1000): per target this detects an SE 15% too large or too
small with probability ~1.0, 10% too large ~0.89, 10% too small ~0.93. Exception: the
pc0 and pc1 coefficients under t(5) x, whose eigenvector errors are heavy-tailed
(kurtosis of the estimates ~9 in this seeded run): there mean SE / SD is 0.89 at
n = m = 4000 (0.95 at m = 10000 in the full benchmark) while their intervals are in the
coverage band, so only the upper side (SE too large) is asserted.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import ssl_inference as ssi

from .conftest import load_benchmark

REPS = 1000
MC_SE = np.sqrt(0.95 * 0.05 / REPS)
BAND = (0.95 - 3 * MC_SE, 0.95 + 3 * MC_SE)

bench = load_benchmark("coverage_pca_ols")
coverage = load_benchmark("_coverage")
SE_SD_TOL = coverage.se_sd_tolerance(REPS)  # 0.07


def _check(df, naive_below, upper_only=()):
    ok = df["coverage_two_stage"].between(*BAND)
    assert ok.all(), (
        f"two-stage coverage outside [{BAND[0]:.4f}, {BAND[1]:.4f}]:\n"
        + df.loc[~ok, ["second_stage", "target", "coverage_two_stage", "sd_est",
                       "mean_se_two_stage"]].to_string())
    off = coverage.se_sd_outside(df, SE_SD_TOL)
    off = off[~off["target"].isin(upper_only) | (off["se/sd"] > 1)]
    assert off.empty, (f"mean two-stage SE / MC SD more than {SE_SD_TOL} from 1:\n"
                       + off[["second_stage", "target", "se/sd"]].to_string())
    low = df[df["target"].isin(naive_below)]
    assert (low["coverage_naive"] < BAND[0]).all(), (
        "naive coverage should be below the band where the first stage matters:\n"
        + low[["second_stage", "target", "coverage_naive"]].to_string())


def test_design_targets_are_in_the_package_gauge():
    """The population eigenvectors are signed like PCA's gauge and a huge sample finds them."""
    design = bench.Design()
    E = design.E
    np.testing.assert_allclose(E.T @ E, np.eye(bench.P), atol=1e-12)
    assert np.array_equal(bench.gauge_sign(E), E)
    rng = np.random.default_rng(123)
    for law in bench.LAWS:
        rep = ssi.PCA(bench.K).fit(design.draw_x(rng, 200_000, law))
        np.testing.assert_allclose(rep.components_, design.U.T, atol=0.03)
        np.testing.assert_allclose(rep.explained_variance_, bench.EIGENVALUES[:bench.K],
                                   rtol=0.05)


@pytest.mark.slow
def test_coverage_gaussian_m_much_smaller_than_n():
    df = bench.simulate(4000, 400, "gaussian", REPS, seed=[2026, 1])
    assert df["identification_warning_rate"].max() == 0
    _check(df, naive_below=bench.TARGETS)


@pytest.mark.slow
def test_coverage_t5_n_equals_m():
    df = bench.simulate(4000, 4000, "t5", REPS, seed=[2026, 2],
                        second_stages=("nonrobust", "HC1"))
    # the prediction's naive coverage (~92%) is too close to the band to assert on;
    # heavy-tailed pc estimates: SE/SD checked from above only (module docstring)
    _check(df, naive_below=("const", "z", "pc0", "pc1"), upper_only=("pc0", "pc1"))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
