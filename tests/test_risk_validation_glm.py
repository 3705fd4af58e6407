"""Monte Carlo validation of the deviance-risk limit of GLM second stages (issue 15 §3).

A reduced, seeded run of ``benchmarks/risk_validation_glm.py`` (the simulation code is
imported from the benchmark, not copied): PCA first stage, Logit and Poisson second
stages, the exact excess deviance of each refitted pipeline against the limit
``chi2_3 + alpha^{-1} sum_j E[omega] kappa_j(LS) chi2_1`` at the true parameters and
against the plug-in laws. The benchmark (2000 replications per cell, n up to 25600)
has the full table; the bands here are for 300-600 replications.

Also an independent check of the benchmark's exact risk: quadrature against brute-force
Monte Carlo over fresh test draws (labels included) for one fitted pipeline.
"""
from __future__ import annotations

import numpy as np
import pytest

import ssl_inference as ssi
from ssl_inference.risk import WeightedChiSquare, pca_gaussian_law

from .conftest import load_benchmark

bench = load_benchmark("risk_validation_glm")


@pytest.fixture(scope="module")
def rows():
    out = {}
    for name, n, reps in (("logit", 100, 600), ("logit", 1600, 300), ("poisson", 1600, 300)):
        limit = bench.DGPS[name]().limit()
        draws = bench.simulate(name, n, reps, [2026, n, len(name)])
        out[name, n] = (bench.summarise(name, n, draws, limit, plugin_laws=5), draws, limit)
    return out


@pytest.mark.parametrize("name", ["logit", "poisson"])
def test_exact_risk_matches_the_limit_at_large_n(rows, name):
    """Benchmark at n = 1600 (2000 reps): z = +0.05 / +1.90, KS 0.013 / 0.023."""
    row, draws, limit = rows[name, 1600]
    # KS of 300 draws from their own law: median 0.05, 99.9% point 0.113
    assert abs(row["mean_z"]) < 4
    assert row["ks_limit"] < 0.12
    # both parts separately: fine-tuning chi2_3, pre-training alpha^-1 sum kappa chi2_1
    assert row["ks_fine_limit"] < 0.12 and row["ks_pre_limit"] < 0.12
    assert abs(row["fine_mc_mean"] / 3.0 - 1) < 0.15
    # independent in the limit (null sd of the correlation 1/sqrt(300) = 0.058)
    assert abs(row["corr_fine_pre"]) < 0.25
    # the plug-in law of each replication is centred on the limit
    assert abs(row["plugin_mean_median"] / row["limit_mean"] - 1) < 0.05
    assert abs(row["robust_fine_mean_median"] / 3.0 - 1) < 0.03


def test_what_is_specific_to_the_glm_is_needed(rows):
    """The same draws reject the two least-squares habits: a fine-tuning part that is a
    point (the label-averaged risk) and pre-training weights without the working weight."""
    row, draws, limit = rows["logit", 1600]
    T = np.array([d.scaled_risk for d in draws])
    pre = np.array([d.scaled_pretraining for d in draws])
    averaged = WeightedChiSquare(limit.kappa / limit.alpha, shift=3.0)
    assert bench.ls_bench.ks_distance(T, averaged.cdf) > 0.3
    dgp = bench.DGPS["logit"]()
    unweighted = WeightedChiSquare(pca_gaussian_law(dgp.eigenvalues, dgp.beta).weights
                                   / bench.ALPHA)
    assert bench.ls_bench.ks_distance(pre, unweighted.cdf) > 0.3


def test_limit_is_approached(rows):
    """At n = 100 (m = 200, eigengap 2 : 1.5) the risk is above its limit and the
    plug-in is wild; both settle by n = 1600. Benchmark (2000 reps): z = +8.6 at
    n = 100, plug-in mean sd 448 at n = 100 and 0.45 at n = 1600."""
    small, large = rows["logit", 100][0], rows["logit", 1600][0]
    assert small["mean_z"] > 2            # expected about 4.7 with 600 reps
    assert small["mc_mean"] > large["mc_mean"]
    assert large["plugin_mean_sd"] < 0.2 * small["plugin_mean_sd"]


def test_quadrature_excess_risk_equals_brute_force_over_test_draws():
    """The benchmark's exact R - R* against the mean deviance difference over two
    million fresh (x, y) draws of the DGP."""
    dgp = bench.DGPS["poisson"]()
    rng = np.random.default_rng(5)
    n = 200
    rep = ssi.PCA(2).fit(dgp._x(rng, 400))
    X = dgp._x(rng, n)
    y = dgp.draw(rng, np.exp(dgp.b0 + X @ dgp.g))
    res = ssi.Poisson(y, np.ones((n, 1)), representation=rep, features=X).fit(disp=0)
    params = np.asarray(res.params)
    excess, approx = dgp.exact_parts(rep, params)
    assert 0 < approx < excess
    fam = dgp.family
    diffs = []
    for _ in range(4):
        Xt = dgp._x(rng, 500_000)
        mu_star = np.exp(dgp.b0 + Xt @ dgp.g)
        mu_hat = np.exp(params[0] + rep.transform(Xt) @ params[1:])
        yt = rng.poisson(mu_star).astype(float)
        diffs.append(fam.resid_dev(yt, mu_hat) ** 2 - fam.resid_dev(yt, mu_star) ** 2)
    diffs = np.concatenate(diffs)
    se = diffs.std() / np.sqrt(diffs.size)
    assert abs(diffs.mean() - excess) < 4 * se, (diffs.mean(), excess, se)
    assert se < 0.1 * excess   # the check has power
