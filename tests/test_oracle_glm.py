"""Independent oracle for GLM second stages: delicatessen's stacked M-estimator.

As in ``test_oracle_delicatessen.py`` (whose unit layout and PCA equations are reused),
both stages are ONE system of estimating equations, one column per unit:

* first stage on the pre-training rows, with ``v = x - mu``: ``(x - mu)``; per component
  l: ``(v v') u_l - lambda_l u_l`` and ``u_l'u_l - 1``;
* second stage on the labeled rows: the GLM score
  ``wt (y - mu) / (V(mu) l'(mu)) w`` with ``w = [covariates, U'(x - mu)]`` and
  ``mu = l^{-1}(w'beta + offset)``: delicatessen's ``ee_regression`` (logistic, Poisson)
  or ``ee_glm`` (probit link; Gamma variance ``mu^2`` with log link as Tweedie(2),
  which has no extra shape equation, so zero-padded units stay finite);
* optionally predictions at new raw points, ``f_r(theta) - pred_r`` on every unit:
  their sandwich variance is the delta method ``grad f Cov grad f'``, with the new
  features moving with ``(mu, U)``.

Units of only one sample have zeros in the other sample's rows (zero weights); with
overlap a labeled row that is a pre-training row is one unit with both sets. The
empirical sandwich (no small-sample factor) is the two-stage covariance with the
second stage in HC0 form, and delicatessen differentiates the bread exactly
(``deriv_method="exact"``): observed second derivatives, so non-canonical links are
checked for real.

Measured (m=300, n=150, p=5, k=2): coefficient covariances agree to ~1e-13 and
prediction SEs to ~1e-14 (relative); the root finder stays at our estimates to ~1e-12.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

import ssl_inference as ssi

from .test_oracle_delicatessen import (N_FIRST, _make_problem, _max_rel, _unit_arrays,
                                       pca_equations, pca_init)

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402
from delicatessen.estimating_equations import ee_glm, ee_regression  # noqa: E402
from delicatessen.utilities import inverse_logit, standard_normal_cdf  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning")

K = 2
NEW_Z = np.array([-1.0, 0.5, 2.0])


def _outcome(kind: str, X_lab, exog, rng):
    z, x0, x1 = exog[:, 1], X_lab[:, 0], X_lab[:, 1]
    if kind in ("logit", "probit", "glm-probit"):
        eta = 0.2 + 0.5 * z + 0.4 * x0 - 0.3 * x1 + 0.05 * x0 ** 2
        return (rng.random(len(z)) < expit(eta)).astype(float)
    mean = np.exp(0.3 + 0.3 * z + 0.2 * x0 - 0.15 * x1)
    if kind == "glm-gamma-log":
        return rng.gamma(2.0, mean / 2.0)
    return rng.poisson(mean * (1.0 + 0.5 * np.abs(z))).astype(float)  # over-dispersed


# kind -> (package model factory, oracle second-stage equations, inverse link)
MODELS = {
    "logit": (
        lambda y, X, **kw: ssi.Logit(y, X, **kw),
        lambda beta, W, Y, wt, off: ee_regression(beta, W, Y, "logistic", weights=wt),
        inverse_logit),
    "poisson": (
        lambda y, X, **kw: ssi.Poisson(y, X, **kw),
        lambda beta, W, Y, wt, off: ee_regression(beta, W, Y, "poisson", weights=wt),
        np.exp),
    "probit": (
        lambda y, X, **kw: ssi.Probit(y, X, **kw),
        lambda beta, W, Y, wt, off: ee_glm(beta, W, Y, "binomial", "probit", weights=wt),
        lambda eta: standard_normal_cdf(eta)),
    "glm-probit": (
        lambda y, X, **kw: ssi.GLM(y, X, family=sm.families.Binomial(
            link=sm.families.links.Probit()), **kw),
        lambda beta, W, Y, wt, off: ee_glm(beta, W, Y, "binomial", "probit", weights=wt),
        lambda eta: standard_normal_cdf(eta)),
    "glm-gamma-log": (
        lambda y, X, **kw: ssi.GLM(y, X, family=sm.families.Gamma(
            link=sm.families.links.Log()), **kw),
        lambda beta, W, Y, wt, off: ee_glm(beta, W, Y, "tweedie", "log", hyperparameter=2,
                                           weights=wt),
        np.exp),
    # offset and var_weights: both enter the score (and so J) row by row
    "glm-poisson-offset-weights": (
        lambda y, X, **kw: ssi.GLM(y, X, family=sm.families.Poisson(), **kw),
        lambda beta, W, Y, wt, off: ee_regression(beta, W, Y, "poisson", weights=wt,
                                                  offset=off),
        np.exp),
}
FIT_KWARGS = {"logit": {"disp": 0}, "poisson": {"disp": 0}, "probit": {"disp": 0}}


def _setup(kind: str, overlap: bool, seed: int):
    X_pre, X_lab, _, exog, _, pidx = _make_problem(seed, overlap=overlap, weighted=False)
    rng = np.random.default_rng(seed + 1)
    y = _outcome(kind, X_lab, exog, rng)
    weighted = kind == "glm-poisson-offset-weights"
    offset = rng.normal(scale=0.3, size=len(y)) if weighted else None
    var_weights = rng.uniform(0.5, 2.0, size=len(y)) if weighted else None
    rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    extra = {"offset": offset, "var_weights": var_weights} if weighted else {}
    model = MODELS[kind][0](y, exog, representation=rep, features=X_lab, pretrain_index=pidx,
                            **extra)
    fit_kwargs = dict(FIT_KWARGS.get(kind, {"tol": 1e-13}))
    res = model.fit(cov_kwds={"second_stage": "HC0"}, **fit_kwargs)
    units = _unit_arrays(X_pre, X_lab, y, exog, var_weights, pidx)
    off_units = np.zeros(len(units[0]))
    if offset is not None:
        off_units[_labeled_units(X_pre.shape[0], len(y), pidx)] = offset
    return rep, res, units, off_units


def _labeled_units(m: int, n: int, pretrain_index):
    """Unit (column) of each labeled row, as ``_unit_arrays`` lays them out."""
    pidx = np.full(n, -1) if pretrain_index is None else np.asarray(pretrain_index)
    out = np.empty(n, dtype=int)
    linked = pidx >= 0
    out[linked] = pidx[linked]
    out[~linked] = m + np.arange((~linked).sum())
    return out


def _oracle(kind, rep, res, units, off_units, new_rows=None):
    """Stacked estimation started at our estimates; returns (estimator, init)."""
    Xf, is_pre, Xl, Z, Y, wt = units
    d = Z.shape[1] + K
    second, inverse_link = MODELS[kind][1], MODELS[kind][2]

    def psi(theta):
        theta = np.asarray(theta)
        rows, feats = pca_equations(theta, Xf, is_pre, Xl)
        beta = theta[N_FIRST:N_FIRST + d]
        rows += list(second(beta, np.column_stack([Z] + feats), Y, wt, off_units))
        if new_rows is not None:
            Z0, X0 = new_rows
            _, feats0 = pca_equations(theta, X0, np.zeros(len(X0)), X0)
            eta0 = np.column_stack([Z0] + feats0) @ beta
            pred = np.concatenate([eta0, inverse_link(eta0)])
            ones = np.ones(Xf.shape[0])
            rows += [(pred[r] - theta[N_FIRST + d + r]) * ones for r in range(len(pred))]
        return np.vstack(rows)

    init = pca_init(rep) + list(np.asarray(res.params))
    if new_rows is not None:
        lin = res.get_prediction(new_rows[0], features=new_rows[1], which="linear")
        mean = res.get_prediction(new_rows[0], features=new_rows[1], which="mean")
        init += list(lin.predicted) + list(mean.predicted)
    est = MEstimator(psi, init=np.array(init))
    est.estimate(deriv_method="exact")
    return est, np.array(init)


CASES = [(kind, overlap) for kind in MODELS for overlap in (False, True)]


@pytest.mark.parametrize("kind, overlap", CASES,
                         ids=[f"{k}-{'overlap' if o else 'independent'}" for k, o in CASES])
def test_two_stage_cov_matches_stacked_oracle(kind, overlap):
    # the OLS oracle's seeds: well-separated eigenvalues (its X draws come first)
    rep, res, units, off_units = _setup(kind, overlap, seed=20247 if overlap else 20251)
    est, init = _oracle(kind, rep, res, units, off_units)
    d = len(np.asarray(res.params))
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-8)
    V_pkg = np.asarray(res.cov_params())
    assert _max_rel(est.variance[N_FIRST:N_FIRST + d, N_FIRST:N_FIRST + d], V_pkg) < 1e-6
    # not vacuous: the first stage (and the overlap cross term) move the covariance
    naive = np.asarray(res.cov_params_naive())
    assert np.max(np.abs(np.diag(V_pkg) / np.diag(naive) - 1)) > 1e-2
    if overlap:
        dec = res.variance_decomposition()
        assert np.max(np.abs(dec["overlap"] / dec["total"])) > 1e-3


@pytest.mark.parametrize("kind", ["logit", "poisson", "glm-probit"])
def test_prediction_se_matches_stacked_oracle(kind):
    """Linear-predictor and mean-scale SEs of new raw points: full delta method."""
    rep, res, units, off_units = _setup(kind, overlap=True, seed=977)
    rng = np.random.default_rng(12)
    X0 = units[0][:3] + rng.normal(scale=2.0, size=(3, units[0].shape[1]))
    Z0 = np.column_stack([np.ones(3), NEW_Z])
    est, _ = _oracle(kind, rep, res, units, off_units, new_rows=(Z0, X0))
    var_oracle = np.diag(est.variance)[-6:]
    lin = res.get_prediction(Z0, features=X0, which="linear")
    mean = res.get_prediction(Z0, features=X0, which="mean")
    se_pkg = np.concatenate([lin.se, mean.se])
    np.testing.assert_allclose(se_pkg, np.sqrt(var_oracle), rtol=1e-6)
    # the plug-in x0' Cov x0 with the features held fixed is wrong (too small here)
    W0 = np.column_stack([Z0, rep.transform(X0)])
    plug_in = np.sqrt(np.einsum("ij,jk,ik->i", W0, np.asarray(res.cov_params()), W0))
    assert np.max(np.abs(plug_in / lin.se - 1)) > 1e-2
