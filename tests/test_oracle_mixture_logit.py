"""Independent oracle for GLM second stages on Gaussian mixture features (issue 5).

The stacked M-estimator of ``tests/test_mixture.py`` (its helper is imported, not
copied): delicatessen solves ONE system of estimating equations, one column per unit:

* first stage on the ``m`` pre-training rows: the per-row mixture score (complex step
  of a log-density written in the tests, not the package's likelihood code);
* second stage on the ``n`` labeled rows: delicatessen's ``ee_regression`` with
  ``model="logistic"`` / ``"poisson"`` on ``[1, z, Helmert contrast of the
  responsibilities]``, the responsibilities computed by the tests from ``theta``;

each unit zero in the other sample's equations. The empirical sandwich (no small-sample
factor) is the package's two-stage covariance with the second stage in HC0 form.

Measured (K = 2, d = 2, full covariances, m = 160, n = 200): relative differences of
the coefficient covariances 1.2e-10 (Logit) and 6.7e-11 (Poisson); the first stage is
10-25% of the variance of the z and feature coefficients (Logit), 5-14% (Poisson).
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

import ssl_inference as ssi

from .test_mixture import _quiet_fit, _stacked_mixture_oracle

pytest.importorskip("delicatessen")

K, COV_TYPE = 2, "full"  # as in the OLS mixture oracle
M, N = 160, 200
CENTERS = np.array([[0.0, 0.0], [2.6, 1.0]])

# kind -> (package model, delicatessen ee_regression model)
MODELS = {"logit": (ssi.Logit, "logistic"), "poisson": (ssi.Poisson, "poisson")}


def _draw(rng, size):
    """Two overlapping non-Gaussian components (the OLS oracle's design)."""
    lab = rng.integers(0, 2, size=size)
    noise = np.where(rng.random(size)[:, None] < 0.5, rng.normal(size=(size, 2)),
                     rng.exponential(size=(size, 2)) - 1.0)
    return CENTERS[lab] + noise @ np.array([[1.0, 0.2], [0.0, 0.7]])


def _setup(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    X_pre, X_lab = _draw(rng, M), _draw(rng, N)
    z = 0.5 * X_lab[:, 0] + rng.normal(size=N)
    eta = -0.2 + 0.4 * z + 1.2 * (X_lab[:, 1] > 0.8)   # not linear in the features
    if kind == "logit":
        y = (rng.random(N) < expit(eta)).astype(float)
    else:
        y = rng.poisson(np.exp(0.5 * eta)).astype(float)
    rep = _quiet_fit(ssi.GaussianMixture(K, covariance_type=COV_TYPE, random_state=0), X_pre)
    exog = sm.add_constant(z)
    res = MODELS[kind][0](y, exog, representation=rep, features=X_lab).fit(
        disp=0, cov_kwds={"second_stage": "HC0"})
    return rep, res, X_pre, X_lab, exog, y


def _max_rel(A, B):
    scale = np.sqrt(np.outer(np.diag(B), np.diag(B)))
    return float(np.max(np.abs(A - B) / scale))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_two_stage_cov_matches_stacked_oracle(kind):
    rep, res, X_pre, X_lab, exog, y = _setup(kind, seed=2025)
    est, init = _stacked_mixture_oracle(rep, X_pre, X_lab, exog, y, np.asarray(res.params),
                                        model=MODELS[kind][1])
    q = rep.params_.size
    # the root finder stays at our estimates: same first and second stage solutions
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-8)
    V_pkg = np.asarray(res.cov_params())
    assert _max_rel(est.variance[q:, q:], V_pkg) < 1e-6
    # first-stage block: (1/m^2) sum IF IF'
    IF = rep.influence(X_pre)
    assert _max_rel(est.variance[:q, :q], IF.T @ IF / M ** 2) < 1e-6
    # not vacuous: the first stage is a visible part of the covariance
    share = np.asarray(res.variance_decomposition()["pretraining_share"])
    assert np.max(np.abs(share)) > 0.01
    naive = np.asarray(res.cov_params_naive())
    assert np.max(np.abs(np.diag(V_pkg) / np.diag(naive) - 1)) > 0.01
