"""Independent oracles for GEE and QuantReg second stages: delicatessen's stacked sandwich.

As in ``test_oracle_glm.py`` (whose PCA equations and problem generator are reused),
both stages are ONE system of estimating equations, one column per unit; a unit is a
pre-training row, a labeled GEE cluster, or, with shared clusters, a cluster that has
rows in both samples (its pre-training rows' PCA equations and its labeled rows' GEE
equation are summed in one column).

GEE. The second-stage equation of cluster i is written here from the textbook
formula, not from statsmodels or the package: ``psi_i = W_i' R(alpha)^{-1} (y_i -
W_i beta)`` (Gaussian, identity link, exchangeable ``R = (1 - alpha) I + alpha 11'``
inverted with ``np.linalg.inv``) and ``psi_i = W_i' (y_i - expit(W_i beta))`` (logit,
independence), ``W_i = [covariates, U'(x - mu)]`` of the cluster's rows. The working
correlation ``alpha`` is held at the package's estimate (the nuisance treatment the
two-stage covariance documents). For these two cases the expected bread statsmodels
uses (``sum D'V^{-1}D``) is the exact derivative of the estimating function, so the
empirical sandwich of the stacked system (no small-sample factor; delicatessen's
central-difference bread) is the package's two-stage robust covariance. Clusters have
2-5 rows and are interleaved in the data (not contiguous), which checks the
one-row-per-cluster differentiation (``cluster_design_derivative``).

QuantReg. The check loss is not differentiable, so no stacked-equation package gives
a kernel bread by itself. The oracle's second-stage equation of row j is the
estimating function linearised in the linear predictor with frozen kernel weights,

    ``psi_j w_j(theta) - f_j w_j(theta) (w_j(theta)'beta - w_j(theta_hat)'beta_hat)``,

``psi_j = tau - 1{e_j <= 0}`` and ``f_j`` frozen at the fit: ``f_j = f_hat(0)`` (the
pooled kernel density of the residuals at zero, ``vcov="robust"``) or ``K(e_j/h)/h``
(Powell, ``vcov="powell"``), computed in this file from the Epanechnikov kernel and
the Hall-Sheather bandwidth written out here (checked against statsmodels'
``bandwidth`` and ``sparsity``). At the estimate its value is ``psi_j w_j`` (so the meat
is the raw ``psi_j^2 w_j w_j'``), its derivative in beta is ``-f_j w_j w_j'`` (the
kernel bread) and in theta ``psi_j dw_j/dtheta - f_j w_j beta' dw_j/dtheta`` (the
documented ``C``). What is independent: the PCA estimating equations, every
derivative (delicatessen's central differences through ``U'(x - mu)``), the first-stage
influence, the cross term and the sandwich assembly (``delicatessen.sandwich``,
evaluated at the package's estimates: the sample check-loss score is not exactly zero,
so no root finding). What is shared by design: the choice of kernel estimate.

Measured (m=300, n=150, p=5, k=2): GEE covariances agree to 5e-11 - 3e-10 (max |diff| /
sqrt(V_ii V_jj)), mean-prediction SEs to 7e-11 (relative), QuantReg covariances to 1.4e-10 -
4e-10; the GEE root finder stays at the package's
estimates to ~4e-15.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

import ssl_inference as ssi

from .test_oracle_delicatessen import (N_FIRST, _make_problem, _max_rel, pca_equations,
                                       pca_init)

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402
from delicatessen.sandwich import compute_sandwich  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning")

K = 2
N_SHARED_PRE = 120  # pre-training rows that belong to labeled clusters (shared case)


def _clusters(n: int, rng) -> np.ndarray:
    """Cluster labels of n rows: sizes 2-5, interleaved (not contiguous)."""
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(2, 6)))
    labels = np.repeat(np.arange(len(sizes)), sizes)[:n]
    return rng.permutation(labels)


def _unit_layout(m: int, groups: np.ndarray, pretrain_groups):
    """Unit (column) of each pre-training row and of each GEE cluster (sorted labels)."""
    clusters = np.unique(groups)
    if pretrain_groups is None:
        return np.arange(m), m + np.arange(clusters.size), m + clusters.size
    labels = np.unique(np.concatenate([clusters, pretrain_groups]))
    return (np.searchsorted(labels, pretrain_groups), np.searchsorted(labels, clusters),
            labels.size)


def _one_hot(index: np.ndarray, n_units: int) -> np.ndarray:
    out = np.zeros((index.size, n_units))
    out[np.arange(index.size), index] = 1.0
    return out


# ------------------------------------------------------------------------------- GEE
def _gee_setup(kind: str, shared: bool, seed: int):
    X_pre, X_lab, _, exog, _, _ = _make_problem(seed, overlap=False, weighted=False)
    rng = np.random.default_rng(seed + 1)
    n, m = X_lab.shape[0], X_pre.shape[0]
    groups = _clusters(n, rng)
    effect = 0.7 * rng.normal(size=groups.max() + 1)[groups]
    z, x0, x1 = exog[:, 1], X_lab[:, 0], X_lab[:, 1]
    if kind == "gaussian-exchangeable":
        y = 1.0 + 0.5 * z + x0 - 0.5 * x1 + 2.0 * effect + rng.normal(size=n)
        family, cov_struct = sm.families.Gaussian(), sm.cov_struct.Exchangeable()
    else:
        y = (rng.random(n) < expit(0.2 + 0.5 * z + 0.4 * x0 - 0.3 * x1 + effect)).astype(float)
        family, cov_struct = sm.families.Binomial(), sm.cov_struct.Independence()
    pretrain_groups = None
    if shared:  # some pre-training rows belong to labeled clusters, the others are alone
        pretrain_groups = groups.max() + 1 + np.arange(m)
        pretrain_groups[:N_SHARED_PRE] = rng.choice(groups.max() + 1, size=N_SHARED_PRE)
    rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    res = ssi.GEE(y, exog, groups, family=family, cov_struct=cov_struct,
                  representation=rep, features=X_lab).fit(
        ctol=1e-12, maxiter=200,
        cov_kwds=None if pretrain_groups is None else {"pretrain_groups": pretrain_groups})
    return rep, res, (X_pre, X_lab, y, exog, groups, pretrain_groups)


def _gee_oracle(kind: str, rep, res, data, new_rows=None):
    X_pre, X_lab, y, exog, groups, pretrain_groups = data
    m, d = X_pre.shape[0], exog.shape[1] + K
    pre_unit, cluster_unit, n_units = _unit_layout(m, groups, pretrain_groups)
    to_units_pre = _one_hot(pre_unit, n_units)
    clusters = np.unique(groups)
    members = [np.flatnonzero(groups == c) for c in clusters]
    to_units_lab = _one_hot(cluster_unit, n_units)
    alpha = float(res.model.cov_struct.dep_params) if kind == "gaussian-exchangeable" else 0.0

    def psi(theta):
        theta = np.asarray(theta)
        rows, feats = pca_equations(theta, X_pre, np.ones(m), X_lab)
        first = np.vstack(rows) @ to_units_pre
        beta = theta[N_FIRST:N_FIRST + d]
        W = np.column_stack([exog] + feats)
        second = np.empty((len(clusters), d))
        for i, idx in enumerate(members):
            Wi, eta = W[idx], W[idx] @ beta
            if kind == "gaussian-exchangeable":
                s = idx.size
                R = (1 - alpha) * np.eye(s) + alpha * np.ones((s, s))
                second[i] = Wi.T @ np.linalg.inv(R) @ (y[idx] - eta)
            else:
                second[i] = Wi.T @ (y[idx] - expit(eta))
        out = [first, second.T @ to_units_lab]
        if new_rows is not None:
            Z0, X0 = new_rows
            _, feats0 = pca_equations(theta, X0, np.zeros(len(X0)), X0)
            eta0 = np.column_stack([Z0] + feats0) @ beta
            mean0 = eta0 if kind == "gaussian-exchangeable" else expit(eta0)
            out.append((mean0 - theta[N_FIRST + d:])[:, None] * np.ones(n_units))
        return np.vstack(out)

    init = pca_init(rep) + list(np.asarray(res.params))
    if new_rows is not None:
        init += list(res.get_prediction(new_rows[0], features=new_rows[1],
                                        which="mean").predicted)
    est = MEstimator(psi, init=np.array(init))
    est.estimate(deriv_method="capprox", dx=1e-6, tolerance=1e-12)
    return est, np.array(init)


GEE_CASES = [("gaussian-exchangeable", False), ("gaussian-exchangeable", True),
             ("logit-independence", False), ("logit-independence", True)]


@pytest.mark.parametrize("kind, shared", GEE_CASES,
                         ids=[f"{k}-{'shared' if s else 'independent'}" for k, s in GEE_CASES])
def test_gee_two_stage_cov_matches_stacked_oracle(kind, shared):
    rep, res, data = _gee_setup(kind, shared, seed=20251 if not shared else 20247)
    est, init = _gee_oracle(kind, rep, res, data)
    d = len(np.asarray(res.params))
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-8)
    V_pkg = np.asarray(res.cov_params())
    assert _max_rel(est.variance[N_FIRST:N_FIRST + d, N_FIRST:N_FIRST + d], V_pkg) < 1e-6
    # not vacuous: the first stage moves the covariance, and so does the cross term of
    # the clusters shared by the two samples
    naive = np.asarray(res.cov_params_naive())
    assert np.max(np.abs(np.diag(V_pkg) / np.diag(naive) - 1)) > 1e-2
    if kind == "gaussian-exchangeable":
        assert res.model.cov_struct.dep_params > 0.05  # a real working correlation
    if shared:
        assert res._covariance.shared_clusters > 20
        dec = res.variance_decomposition()
        assert np.max(np.abs(dec["overlap"] / dec["total"])) > 1e-3


def test_gee_prediction_se_matches_stacked_oracle():
    """Mean-scale prediction SEs of new raw points: the full delta method."""
    rep, res, data = _gee_setup("logit-independence", False, seed=977)
    rng = np.random.default_rng(12)
    X0 = data[1][:3] + rng.normal(scale=2.0, size=(3, data[1].shape[1]))
    Z0 = np.column_stack([np.ones(3), [-1.0, 0.5, 2.0]])
    est, _ = _gee_oracle("logit-independence", rep, res, data, new_rows=(Z0, X0))
    pred = res.get_prediction(Z0, features=X0, which="mean")
    np.testing.assert_allclose(pred.se, np.sqrt(np.diag(est.variance)[-3:]), rtol=1e-6)


# ---------------------------------------------------------------------------- QuantReg
def _epanechnikov(u):
    return 0.75 * (1.0 - u ** 2) * (np.abs(u) <= 1.0)


def _hall_sheather_bandwidth(y, resid, tau, alpha=0.05):
    """statsmodels' bandwidth, written out: Hall-Sheather ``h_n`` on the quantile scale,
    mapped to the residual scale with ``min(sd(y), IQR(e)/1.34)``."""
    n = y.size
    z = stats.norm.ppf(1 - alpha / 2)
    h_n = n ** (-1 / 3) * z ** (2 / 3) * (
        (1.5 * stats.norm.pdf(stats.norm.ppf(tau)) ** 2)
        / (2 * stats.norm.ppf(tau) ** 2 + 1)) ** (1 / 3)
    iqr = np.subtract(*np.percentile(resid, [75, 25]))
    return min(np.std(y), iqr / 1.34) * (stats.norm.ppf(tau + h_n) - stats.norm.ppf(tau - h_n))


def _quantreg_setup(overlap: bool, seed: int, tau: float, vcov: str):
    X_pre, X_lab, _, exog, _, pidx = _make_problem(seed, overlap=overlap, weighted=False)
    rng = np.random.default_rng(seed + 1)
    z = exog[:, 1]
    y = (1.0 + 0.5 * z + X_lab[:, 0] - 0.5 * X_lab[:, 1]
         + (1.0 + 0.5 * np.abs(z)) * rng.standard_t(4, size=len(z)))
    rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    res = ssi.QuantReg(y, exog, representation=rep, features=X_lab,
                       pretrain_index=pidx).fit(q=tau, vcov=vcov)
    return rep, res, (X_pre, X_lab, y, exog, pidx)


def _quantreg_oracle(rep, res, data, tau: float, vcov: str):
    X_pre, X_lab, y, exog, pidx = data
    m, n, d = X_pre.shape[0], X_lab.shape[0], exog.shape[1] + K
    W_hat = np.column_stack([exog, rep.transform(X_lab)])
    beta_hat = np.asarray(res.params)
    resid = y - W_hat @ beta_hat
    h = _hall_sheather_bandwidth(y, resid, tau)
    assert h == pytest.approx(res.bandwidth, rel=1e-12)
    density = _epanechnikov(resid / h) / h
    if vcov == "robust":
        assert density.mean() == pytest.approx(1 / res.sparsity, rel=1e-12)
        density = np.full(n, density.mean())
    psi_hat = tau - (resid <= 0)
    fitted_hat = W_hat @ beta_hat
    # units: pre-training rows, then labeled rows that are not pre-training rows
    pidx = np.full(n, -1) if pidx is None else pidx
    lab_unit = np.where(pidx >= 0, pidx, m + np.cumsum(pidx < 0) - 1)
    n_units = m + int((pidx < 0).sum())
    to_units_lab = _one_hot(lab_unit, n_units)
    to_units_pre = _one_hot(np.arange(m), n_units)

    def psi(theta):
        theta = np.asarray(theta)
        rows, feats = pca_equations(theta, X_pre, np.ones(m), X_lab)
        beta = theta[N_FIRST:]
        W = np.column_stack([exog] + feats)
        score = W * (psi_hat - density * (W @ beta - fitted_hat))[:, None]
        return np.vstack([np.vstack(rows) @ to_units_pre, score.T @ to_units_lab])

    theta = np.array(pca_init(rep) + list(beta_hat))
    return compute_sandwich(psi, theta, deriv_method="capprox", dx=1e-6) / n_units


QR_CASES = [("robust", 0.5, False), ("robust", 0.25, True), ("powell", 0.5, False),
            ("powell", 0.75, True)]


@pytest.mark.parametrize("vcov, tau, overlap", QR_CASES,
                         ids=[f"{v}-q{t}-{'overlap' if o else 'independent'}"
                              for v, t, o in QR_CASES])
def test_quantreg_two_stage_cov_matches_stacked_oracle(vcov, tau, overlap):
    rep, res, data = _quantreg_setup(overlap, seed=20251 if not overlap else 20247, tau=tau,
                                     vcov=vcov)
    V_oracle = _quantreg_oracle(rep, res, data, tau, vcov)
    d = len(np.asarray(res.params))
    V_pkg = np.asarray(res.cov_params())
    assert _max_rel(V_oracle[N_FIRST:, N_FIRST:], V_pkg) < 1e-6
    assert V_oracle.shape[0] == N_FIRST + d
    naive = np.asarray(res.cov_params_naive())
    assert np.max(np.abs(np.diag(V_pkg) / np.diag(naive) - 1)) > 1e-2
    if overlap:
        dec = res.variance_decomposition()
        assert np.max(np.abs(dec["overlap"] / dec["total"])) > 1e-3
