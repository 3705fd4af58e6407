"""The built-in factor-model influence agrees with the generic M-estimator path (issue 4)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.symmetry import Orthogonal

P, K = 6, 2


def _unpack(theta):
    mu = theta[:P]
    L = theta[P:P + P * K].reshape(K, P).T            # Lambda (p, k); params hold Lambda'
    psi = theta[P + P * K:]
    return mu, L, psi


def _score(X, theta):
    """Per-row Gaussian log-likelihood score in the params_ layout (written independently)."""
    mu, L, psi = _unpack(theta)
    Sigma = L @ L.T + np.diag(psi)
    Pm = np.linalg.inv(Sigma)
    A = (X - mu) @ Pm
    s_L = (A @ L)[:, :, None] * A[:, None, :] - (Pm @ L).T[None, :, :]
    s_psi = 0.5 * (A ** 2 - np.diag(Pm))
    return np.hstack([A, s_L.reshape(len(X), -1), s_psi])


def _features(X, theta):
    mu, L, psi = _unpack(theta)
    return (X - mu) @ np.linalg.solve(L @ L.T + np.diag(psi), L)   # regression scores


def _vertical(theta):
    """Lambda -> Lambda A (A antisymmetric): components' = -A Lambda'."""
    comps = theta[P:P + P * K].reshape(K, P)
    out = []
    for A in Orthogonal(K).lie_algebra():
        direction = np.zeros_like(theta)
        direction[P:P + P * K] = (-A @ comps).ravel()
        out.append(direction)
    return np.column_stack(out)


def test_factor_influence_matches_generic_mestimator_path():
    rng = np.random.default_rng(8)
    Lam = rng.normal(size=(P, K)) * [1.5, 1.0]
    X_pre = rng.normal(size=(1500, K)) @ Lam.T + rng.normal(size=(1500, P)) * 0.7
    fa = ssi.FactorModel(K).fit(X_pre)
    generic = ssi.MEstimatorRepresentation(
        estimating_function=_score, transform=_features, params=fa.params_,
        symmetry=Orthogonal(K), vertical=_vertical, n_features_in=P).fit(X_pre)
    np.testing.assert_allclose(generic.transform(X_pre[:5]), fa.transform(X_pre[:5]),
                               rtol=1e-10, atol=1e-12)
    # influences differ only by vertical components: compare their horizontal parts
    N = np.linalg.svd(_vertical(fa.params_), full_matrices=True)[0][:, K * (K - 1) // 2:]
    IF_fa, IF_gen = fa.influence(X_pre[:50]), generic.influence(X_pre[:50])
    np.testing.assert_allclose(IF_gen @ N, IF_fa @ N, rtol=1e-6,
                               atol=1e-6 * np.abs(IF_fa).max())
    X = rng.normal(size=(400, K)) @ Lam.T + rng.normal(size=(400, P)) * 0.7
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(P)])
    df["z"] = 0.5 * X[:, 0] + rng.normal(size=400)
    df["y"] = 1 + 0.4 * df["z"] + X[:, 1] - 0.5 * X[:, 2] + rng.normal(size=400)
    cols = [f"x{i}" for i in range(P)]
    res_fa = smf.ols("y ~ z", df, representation=fa, features=cols).fit()
    res_gen = smf.ols("y ~ z", df, representation=generic, features=cols).fit()
    np.testing.assert_allclose(res_gen.bse[["Intercept", "z"]], res_fa.bse[["Intercept", "z"]],
                               rtol=1e-6)
    np.testing.assert_allclose(res_gen.get_prediction(df.iloc[:5]).se_mean,
                               res_fa.get_prediction(df.iloc[:5]).se_mean, rtol=1e-6)
    joint = "f0 = f1 = 0"
    assert res_gen.wald_test(joint, scalar=True).statistic == pytest.approx(
        res_fa.wald_test(joint, scalar=True).statistic, rel=1e-6)
    assert res_fa.variance_decomposition()["pretraining"]["z"] > 0
