"""Reduced, seeded run of ``benchmarks/coverage_glm.py`` (PCA first stage, Logit/Poisson).

The simulation code is imported from the benchmark module (not copied). Two
configurations with Gaussian x and n = 4000 labeled rows:

* Logit, m = 400 pre-training rows (n/m = 10): the first stage dominates the variance
  of the intercept and of pc0, so naive intervals must undercover there;
* Poisson, m = 4000 (n/m = 1).

Coverage band: with R replications the Monte Carlo SE of a 95% coverage is
``sqrt(0.95 * 0.05 / R)`` (0.89 points at R = 600); every two-stage coverage must lie
within 3 MC SE of 95% ([92.3%, 97.7%]). A correct implementation fails one check with
probability ~0.3% (the run is seeded, so the outcome is fixed). Naive coverage must be
below the band for the targets whose variance the first stage dominates.

SE/SD band: the coverage band alone barely sees an SE that is too *large* (10% too large
covers 96.9%: detected with probability ~0.14; 15% too large ~0.44). So the mean
two-stage SE divided by the Monte Carlo SD of the estimates must also be within 0.09 of
1 (3 MC SEs of a Monte Carlo SD, ``1 / sqrt(2R)`` = 2.9% at R = 600): per target this
detects an SE 15% too large with probability ~0.96, 15% too small ~0.99, 10% off either
way ~0.6.
"""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import load_benchmark

bench = load_benchmark("coverage_glm")

REPS = 600
MC_SE = np.sqrt(0.95 * 0.05 / REPS)
BAND = (0.95 - 3 * MC_SE, 0.95 + 3 * MC_SE)
coverage = load_benchmark("_coverage")
SE_SD_TOL = coverage.se_sd_tolerance(REPS)  # 0.09


def _check(df, naive_below=()):
    assert df["identification_warning_rate"].max() == 0
    ok = df["coverage_two_stage"].between(*BAND)
    assert ok.all(), (
        f"two-stage coverage outside [{BAND[0]:.4f}, {BAND[1]:.4f}]:\n"
        + df.loc[~ok, ["target", "coverage_two_stage", "sd_est", "mean_se_two_stage"]
                 ].to_string())
    off = coverage.se_sd_outside(df, SE_SD_TOL)
    assert off.empty, (f"mean two-stage SE / MC SD more than {SE_SD_TOL} from 1:\n"
                       + off[["target", "se/sd"]].to_string())
    low = df[df["target"].isin(naive_below)]
    assert (low["coverage_naive"] < BAND[0]).all(), (
        "naive coverage should be below the band where the first stage matters:\n"
        + low[["target", "coverage_naive"]].to_string())


def test_truth_is_the_population_fit():
    """With a huge sample and the true first stage the estimates hit the targets."""
    design = bench.ols_bench.Design()
    rng = np.random.default_rng(5)
    for name, outcome in bench.OUTCOMES.items():
        _, z, x = design.draw_labeled(rng, 200_000, "gaussian")
        scores = (x - bench.ols_bench.MU) @ design.U
        y = outcome.draw(rng, outcome.linear_predictor(z, scores))
        params = outcome.model(y, np.column_stack([np.ones_like(z), z, scores])).fit(
            disp=0).params
        np.testing.assert_allclose(params, bench.truth(outcome, design)[:4], atol=0.02)


@pytest.mark.slow
def test_coverage_logit_first_stage_dominates():
    df = bench.simulate("logit", 4000, 400, "gaussian", REPS, seed=[2026, 1])
    _check(df, naive_below=("const", "pc0"))


@pytest.mark.slow
def test_coverage_poisson_n_equals_m():
    df = bench.simulate("poisson", 4000, 4000, "gaussian", REPS, seed=[2026, 2])
    _check(df)
