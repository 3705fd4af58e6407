"""Reduced, seeded run of ``benchmarks/coverage_spectral.py`` (spectral contrastive first
stage, OLS second stage, the paper's diagonal model).

The simulation code is imported from the benchmark module (not copied). Two
configurations where the first stage matters (naive coverage 20-75%):

* ``signal`` model, n = m = 3000, 500 replications;
* ``null-block`` model, n = 12000, m = 3000, 400 replications (covariate, intercept,
  prediction, and the size of the Wald test of the whole learned block).

Coverage band: with R replications the Monte Carlo SE of a 95% coverage is
``sqrt(0.95 * 0.05 / R)`` (0.97 points at R = 500, 1.09 at R = 400); every two-stage
coverage must lie within 3 MC SE of 95%. A correct implementation fails a single check
with probability ~0.3% (the run is seeded, so the outcome is fixed). The naive coverage
must lie *below* the band for every target.

SE/SD band: the coverage band alone barely sees an SE that is too *large* (15% too large
covers 97.6%: detected with probability ~0.3 at R = 500, ~0.2 at R = 400). So the mean
two-stage SE divided by the Monte Carlo SD of the estimates must also be within 0.10 of
1 at R = 500 and 0.11 at R = 400 (3 MC SEs of a Monte Carlo SD, ``1 / sqrt(2R)``): per
target this detects an SE 15% too large with probability ~0.92 (R = 500) / ~0.84
(R = 400), 15% too small ~0.97 / ~0.91, 10% off either way only ~0.5 / ~0.4.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi

from .conftest import load_benchmark

bench = load_benchmark("coverage_spectral")
coverage = load_benchmark("_coverage")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The problems are small: BLAS threads only add overhead (2-3x in wall time)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1)
    with limits:
        yield


def _band(reps):
    se = np.sqrt(0.95 * 0.05 / reps)
    return 0.95 - 3 * se, 0.95 + 3 * se


def _check(df, reps):
    lo, hi = _band(reps)
    ok = df["coverage_two_stage"].between(lo, hi)
    assert ok.all(), (f"two-stage coverage outside [{lo:.4f}, {hi:.4f}]:\n"
                      + df.loc[~ok, ["model", "target", "coverage_two_stage", "sd_est",
                                     "mean_se_two_stage"]].to_string())
    tol = coverage.se_sd_tolerance(reps)
    off = coverage.se_sd_outside(df[df["target"] != "block"], tol)
    assert off.empty, (f"mean two-stage SE / MC SD more than {tol} from 1:\n"
                       + off[["model", "target", "se/sd"]].to_string())
    assert (df["coverage_naive"] < lo).all(), (
        "naive coverage should be below the band where the first stage matters:\n"
        + df[["model", "target", "coverage_naive"]].to_string())
    assert df["identification_warning_rate"].max() == 0


def test_design_targets_are_the_population_fit_in_the_package_gauge():
    """A huge pair sample recovers A* (gauge included), and a huge labeled sample on the
    population features recovers the targets of both models."""
    rng = np.random.default_rng(7)
    X, X_pos = bench.draw_pairs(rng, 100_000)
    rep = ssi.SpectralContrastive(bench.K).fit(X, X_pos)
    np.testing.assert_allclose(rep.components_, bench.A_STAR, atol=0.06)  # MC SE ~0.02
    for model in bench.MODELS:
        y, z, x = bench.draw_labeled(rng, 100_000, model)
        W = np.column_stack([np.ones_like(z), z, x @ bench.A_STAR.T])
        beta = np.linalg.lstsq(W, y, rcond=None)[0]
        truth = bench.truth(model)
        np.testing.assert_allclose(beta[:2], [truth["const"], truth["z"]], atol=0.03)
        expected_rep = bench.BETA if model == "signal" else np.zeros(bench.K)
        np.testing.assert_allclose(beta[2:], expected_rep, atol=0.03)
        pred = np.array([1.0, bench.Z0, *(bench.A_STAR @ bench.X0)]) @ beta
        assert pred == pytest.approx(truth["pred"], abs=0.05)


@pytest.mark.slow
def test_coverage_signal_model():
    reps = 500
    df = bench.simulate(bench.Config("signal", 3000, 3000), reps, seed=[2026, 1])
    _check(df, reps)


@pytest.mark.slow
def test_coverage_null_block_model():
    reps = 400
    df = bench.simulate(bench.Config("null-block", 12000, 3000), reps, seed=[2026, 2])
    _check(df, reps)
    assert set(df["target"]) == {"const", "z", "pred", "block"}


def test_one_replication_reports_two_stage_block_test():
    """The benchmark's Wald statistic is the package's invariant block test."""
    cfg = bench.Config("null-block", 500, 600)
    out = bench.one_replication(cfg, np.random.default_rng(0))
    assert out["est"].shape == (4,) and np.isnan(out["se_two_stage"][3])
    rng = np.random.default_rng(0)
    X, X_pos = bench.draw_pairs(rng, 600)
    y, z, x = bench.draw_labeled(rng, 500, "null-block")
    rep = ssi.SpectralContrastive(bench.K).fit(X, X_pos)
    res = ssi.OLS(y, sm.add_constant(z), representation=rep, features=x).fit()
    stat = float(np.asarray(res.wald_test("sc0 = sc1 = 0", scalar=True, use_f=False).statistic))
    assert out["est"][3] == pytest.approx(stat, rel=1e-10)
