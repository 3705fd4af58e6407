"""Reduced, seeded run of ``benchmarks/coverage_likelihood.py`` (PCA first stage, the
generic likelihood second stages).

The simulation code is imported from the benchmark module (not copied). Three
configurations with n = 2000 labeled rows and m = 200 pre-training rows (n/m = 10,
where the first stage dominates the variance of the intercepts and of the features'
coefficients, so naive intervals must undercover there): the negative binomial (a
dispersion parameter besides the design's), MNLogit (two equations) and the ordered
logit (thresholds, a numerical statsmodels score: the log-likelihood fallback of the
design derivative).

Coverage band: with R replications the Monte Carlo SE of a 95% coverage is
``sqrt(0.95 * 0.05 / R)`` (0.89 points at R = 600); every two-stage coverage must lie
within 3 MC SE of 95% ([92.3%, 97.7%]). A correct implementation fails one check with
probability ~0.3% (the run is seeded, so the outcome is fixed). SE/SD band: the mean
two-stage SE divided by the Monte Carlo SD of the estimates must be within 0.09 of 1
(3 MC SEs of a Monte Carlo SD at R = 600), which also catches SEs that are too large.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.miscmodels.ordinal_model import OrderedModel

from .conftest import load_benchmark

bench = load_benchmark("coverage_likelihood")
coverage = load_benchmark("_coverage")

REPS = 600
MC_SE = np.sqrt(0.95 * 0.05 / REPS)
BAND = (0.95 - 3 * MC_SE, 0.95 + 3 * MC_SE)
SE_SD_TOL = coverage.se_sd_tolerance(REPS)  # 0.09


def _check(df, naive_below=()):
    assert df["identification_warning_rate"].max() == 0
    assert df["convergence_warning_rate"].max() == 0
    ok = df["coverage_two_stage"].between(*BAND)
    assert ok.all(), (
        f"two-stage coverage outside [{BAND[0]:.4f}, {BAND[1]:.4f}]:\n"
        + df.loc[~ok, ["target", "coverage_two_stage", "sd_est", "mean_se_two_stage"]
                 ].to_string())
    off = coverage.se_sd_outside(df, SE_SD_TOL)
    assert off.empty, (f"mean two-stage SE / MC SD more than {SE_SD_TOL} from 1:\n"
                       + off[["target", "se/sd"]].to_string())
    low = df[df["target"].isin(naive_below)]
    assert len(low) == len(naive_below)
    assert (low["coverage_naive"] < BAND[0]).all(), (
        "naive coverage should be below the band where the first stage matters:\n"
        + low[["target", "coverage_naive"]].to_string())


def test_truth_is_the_population_fit():
    """With a large sample and the true first stage, statsmodels' estimates hit the
    benchmark's targets (the GP-1 sampler, the ordered thresholds' parametrisation and
    the inflation equation included)."""
    design = bench.ols_bench.Design()
    rng = np.random.default_rng(5)
    _, z, x = design.draw_labeled(rng, 50_000, "gaussian")
    s = (x - bench.ols_bench.MU) @ design.U
    W = np.column_stack([np.ones_like(z), z, s])
    for name in bench.SECOND_STAGES:
        stage = bench.SecondStage(name)
        y = stage.draw(rng, z, s)
        if name == "negativebinomial":
            params = sm.NegativeBinomial(y, W).fit(disp=0, method="newton").params
        elif name == "generalizedpoisson":
            params = sm.GeneralizedPoisson(y, W).fit(disp=0, method="newton").params
        elif name == "zeroinflatedpoisson":
            params = sm.ZeroInflatedPoisson(y, W, exog_infl=W[:, [0, 2, 3]]).fit(
                disp=0, maxiter=500).params
        elif name == "mnlogit":
            params = sm.MNLogit(y, W).fit(disp=0).params.ravel(order="F")
        else:
            params = OrderedModel(y, W[:, 1:], distr="logit").fit(method="bfgs",
                                                                   disp=0).params
        np.testing.assert_allclose(params, stage.truth(design)[:-1], atol=0.03,
                                   err_msg=name)


@pytest.mark.slow
def test_coverage_negative_binomial_first_stage_dominates():
    df = bench.simulate("negativebinomial", 2000, 200, REPS, seed=[2026, 1])
    _check(df, naive_below=("const", "pc0"))


@pytest.mark.slow
def test_coverage_mnlogit_first_stage_dominates():
    df = bench.simulate("mnlogit", 2000, 200, REPS, seed=[2026, 2])
    _check(df, naive_below=("y1_const", "y2_pc0"))


@pytest.mark.slow
def test_coverage_ordered_logit_first_stage_dominates():
    df = bench.simulate("orderedmodel", 2000, 200, REPS, seed=[2026, 3])
    _check(df, naive_below=("0/1", "pc0"))
