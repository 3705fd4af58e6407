"""Reduced, seeded run of ``benchmarks/coverage_mixture.py`` (Gaussian mixture + OLS).

The simulation code is imported from the benchmark module (not copied). One
configuration where the first stage matters: K = 2 overlapping Gaussian components in
R^2, m = 2000 pre-training rows, n = 4000 labeled rows (n/m = 2), nonrobust second stage.

Coverage band: with R replications, the Monte Carlo SE of a coverage of 95% is
``sqrt(0.95 * 0.05 / R)`` (1.38 points at R = 250); the two-stage coverage of every
banded target must lie within 3 MC SE of 95% ([90.9%, 99.1%]). A correct implementation
fails a single check with probability ~0.3% (the run is seeded, so the outcome is
fixed); dropping the first-stage term (the naive SE) fails it by a wide margin. The
naive coverage must be *below* the band for the targets dominated by the first stage.
The same checks run for the Logit configuration of the benchmark (K = 2, n = 8000).

SE/SD band: the mean two-stage SE divided by the Monte Carlo SD of the estimates must be
within 0.14 of 1 for every target with an SE (``pred_edge`` included): 3 MC SEs of a
Monte Carlo SD, ``1 / sqrt(2R)`` = 4.5% at R = 250. This test is WEAK against SEs that
are somewhat off, and says so: per target it detects an SE 15% too large or too small
with probability only ~0.6 (10%: ~0.2), and the coverage band adds little (15% too
small ~0.6, 15% too large ~0.05). 250 replications of the mixture pipeline already cost
~35 s per configuration, and cheaper (smaller m) configurations leave the asymptotic
regime (benchmark docstring); the full benchmark (2000 replications: SE/SD within
0.035 of 1 in every cell) carries the precise check.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import ssl_inference as ssi

from .conftest import load_benchmark

REPS = 250
MC_SE = np.sqrt(0.95 * 0.05 / REPS)
BAND = (0.95 - 3 * MC_SE, 0.95 + 3 * MC_SE)

bench = load_benchmark("coverage_mixture")
coverage = load_benchmark("_coverage")
SE_SD_TOL = coverage.se_sd_tolerance(REPS)  # 0.14
SE_TARGETS = ["const", "z", "pred", "pred_edge"]   # the Wald tests have no single SE


def _check(df):
    assert df["warning_rate"].max() == 0
    banded = df[df["banded"]]
    ok = banded["coverage_two_stage"].between(*BAND)
    assert ok.all(), (
        f"two-stage coverage outside [{BAND[0]:.4f}, {BAND[1]:.4f}]:\n"
        + banded.loc[~ok, ["target", "coverage_two_stage", "sd_est",
                           "mean_se_two_stage"]].to_string())
    off = coverage.se_sd_outside(df[df["target"].isin(SE_TARGETS)], SE_SD_TOL)
    assert off.empty, (f"mean two-stage SE / MC SD more than {SE_SD_TOL} from 1:\n"
                       + off[["target", "se/sd"]].to_string())
    low = df[df["target"].isin(["const", "pred_edge", "joint_inv"])]
    assert (low["coverage_naive"] < BAND[0]).all(), (
        "naive coverage should be below the band where the first stage matters:\n"
        + low[["target", "coverage_naive"]].to_string())


@pytest.mark.parametrize("design", sorted(bench.DESIGNS))
def test_designs_are_in_the_package_gauge(design):
    """The population components follow the gauge rule and a large sample finds them."""
    spec = bench.DESIGNS[design]
    np.testing.assert_array_equal(bench.gauge_order(spec["means"]),
                                  np.arange(len(spec["weights"])))
    pop = bench.population(design, "gaussian")
    np.testing.assert_array_equal(pop["means"], spec["means"])
    np.testing.assert_allclose(pop["H"], ssi.symmetry.PermutationContrasts.contrast_matrix(
        len(spec["weights"])), rtol=1e-15)
    X = bench.draw_x(np.random.default_rng(7), design, "gaussian", 20_000)
    for features in ("responsibilities", "gated"):
        fitted = ssi.GaussianMixture(len(spec["weights"]), features=features,
                                     gated_rank=1 if features == "gated" else None,
                                     n_init=1, random_state=0).fit(X)
        # SE of a mean coordinate here is below 0.02, of a weight below 0.005
        np.testing.assert_allclose(fitted.means_, spec["means"], atol=0.06)
        np.testing.assert_allclose(fitted.weights_, spec["weights"], atol=0.02)
        # the benchmark's population features are the package's features at theta
        x = bench.draw_x(np.random.default_rng(8), design, "gaussian", 50)
        _, phi = bench.population_features(
            dict(pop, weights=fitted.weights_, means=fitted.means_,
                 covs=fitted.covariances_,
                 basis=fitted.gated_basis_ if features == "gated" else pop["basis"]),
            x, features)
        np.testing.assert_allclose(phi, fitted.transform(x), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_coverage_k2_first_stage_matters():
    cfg = bench.Config("K2", "gaussian", "responsibilities", 2000, 4000)
    _check(bench.simulate(cfg, REPS, seed=[2026, 1]))


@pytest.mark.slow
def test_coverage_k2_logit_first_stage_matters():
    """The same K = 2 design with a logistic second stage (n = 8000, n/m = 4); the
    prediction is on the linear-predictor scale, naive tests use normal / chi2."""
    cfg = bench.Config("K2", "gaussian", "responsibilities", 2000, 8000, model="logit")
    _check(bench.simulate(cfg, REPS, seed=[2026, 2]))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
