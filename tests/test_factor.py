"""Factor model / probabilistic PCA first stage (issue 4, part 1).

Oracles used here (none calls the package's influence or covariance code):

* scikit-learn's ``FactorAnalysis`` (diagonal noise) and ``PCA.get_covariance`` (PPCA) for
  the maximum-likelihood fit;
* central finite differences of the average score (Hessian), of the feature map (VJP),
  and of a hand-written EM refit on contaminated moments, gauge-fixed and Procrustes-
  aligned (influence);
* delicatessen's stacked M-estimator with the gauge imposed by an estimating equation;
* the symmetry: invariant results must not move under ``act(Q)``;
* the aligned bootstrap.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.bootstrap import two_sample_bootstrap
from ssl_inference.exceptions import (ConvergenceWarning, IdentificationWarning,
                                      NotFittedError)
from ssl_inference.symmetry import Orthogonal

# every problem here is well posed unless a test says otherwise: a stray warning is a bug
pytestmark = [pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning"),
              pytest.mark.filterwarnings("error::ssl_inference.ConvergenceWarning")]

LAMBDA6 = np.array([[1.0, 0.8, 0.7, 0.2, 0.1, 0.5],
                    [0.0, 0.3, -0.4, 0.9, 1.0, 0.6]]).T
PSI6 = np.array([0.5, 0.4, 0.6, 0.5, 0.3, 0.7])
MU6 = np.array([3.0, -1.0, 0.5, 0.0, 2.0, 1.0])


def _centred_exponential(rng, size):
    return rng.exponential(size=size) - 1.0


def factor_data(rng, size, Lam=LAMBDA6, psi=PSI6, mu=MU6, law="skewed", return_h=False):
    """x = mu + Lambda h + e with unit-variance h and Var(e) = psi; skewed or Gaussian."""
    p, k = Lam.shape
    draw = _centred_exponential if law == "skewed" else (lambda r, s: r.standard_normal(s))
    h = draw(rng, (size, k))
    x = mu + h @ Lam.T + draw(rng, (size, p)) * np.sqrt(psi)
    return (x, h) if return_h else x


def _vertical_directions(rep):
    """Tangent of the orbit Lambda -> Lambda Q: (0, (Lambda A)', 0) for A antisymmetric."""
    p, k = rep.n_features_in_, rep.n_factors
    out = []
    for i in range(k):
        for j in range(i + 1, k):
            A = np.zeros((k, k))
            A[i, j], A[j, i] = 1.0, -1.0
            v = np.zeros(rep.params_.size)
            v[p:p + k * p] = (rep.components_.T @ A).T.ravel()
            out.append(v)
    return np.array(out).T


# ----------------------------------------------------------------- ML vs scikit-learn
def test_ml_fit_matches_sklearn_factor_analysis():
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = factor_data(np.random.default_rng(1), 1500, law="gaussian")
    fa = ssi.FactorModel(2).fit(X)
    sk = decomposition.FactorAnalysis(2, tol=1e-13, max_iter=200_000,
                                      svd_method="lapack").fit(X)
    Sigma = fa.get_covariance()
    # sklearn's fixed-point iteration converges linearly; at tol=1e-13 it is ~1e-7 away
    assert np.abs(Sigma - sk.get_covariance()).max() < 1e-5 * np.abs(Sigma).max()
    np.testing.assert_allclose(fa.noise_variance_, sk.noise_variance_, rtol=1e-5)
    # same mean log-likelihood, and ours is not lower (we are at the maximum)
    assert fa.loglike_ / 1500 == pytest.approx(sk.score(X), abs=1e-9)
    assert fa.loglike_ / 1500 >= sk.score(X) - 1e-12
    # the ML property diag(Sigma_hat) = diag(S) holds to rounding
    np.testing.assert_allclose(np.diag(Sigma), X.var(axis=0), rtol=1e-10)
    assert fa.converged_ and fa.heywood_.size == 0


def test_ppca_matches_sklearn_pca_covariance():
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = factor_data(np.random.default_rng(2), 800, psi=np.full(6, 0.5))
    ppca = ssi.FactorModel(2, noise="isotropic").fit(X)
    sk = decomposition.PCA(2).fit(X)
    m = X.shape[0]  # sklearn's PCA uses the (m - 1) covariance, the MLE the (1/m) one
    np.testing.assert_allclose(ppca.get_covariance(), sk.get_covariance() * (m - 1) / m,
                               rtol=1e-10, atol=1e-12)
    assert np.ptp(ppca.noise_variance_) == 0 and ppca.params_.size == 6 + 12 + 1
    # the closed form is a stationary point of the full likelihood
    assert np.abs(ppca.estimating_function(X).mean(axis=0)).max() < 1e-12


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
def test_mean_score_is_zero_at_the_fit(noise):
    X = factor_data(np.random.default_rng(3), 600)
    rep = ssi.FactorModel(2, noise=noise).fit(X)
    scale = np.abs(rep.estimating_function(X)).mean(axis=0)
    assert np.all(np.abs(rep.estimating_function(X).mean(axis=0)) < 1e-11 * scale)


# ------------------------------------------------------------------------- gauge
def test_gauge_is_documented_and_deterministic():
    X = factor_data(np.random.default_rng(4), 700)
    a = ssi.FactorModel(2).fit(X)
    b = ssi.FactorModel(2).fit(X)
    np.testing.assert_array_equal(a.params_, b.params_)
    # other starts and a row permutation reach the same representative
    perm = np.random.default_rng(0).permutation(len(X))
    c = ssi.FactorModel(2, n_init=5, random_state=123).fit(X[perm])
    np.testing.assert_allclose(c.params_, a.params_, rtol=0, atol=1e-9)
    L, psi = a.components_.T, a.noise_variance_
    M = L.T @ (L / psi[:, None])
    assert abs(M[0, 1]) < 1e-10 * M[0, 0] and M[0, 0] > M[1, 1] > 0
    pivot = np.argmax(np.abs(L), axis=0)
    assert np.all(L[pivot, [0, 1]] > 0)
    # and a rotated copy is brought back onto it by alignment
    Q = Orthogonal(2).sample(np.random.default_rng(5))
    back, g = ssi.align(a.act(Q), a)
    np.testing.assert_allclose(back.components_, a.components_, atol=1e-12)
    np.testing.assert_allclose(g @ Q, np.eye(2), atol=1e-12)


# ------------------------------------------------------------ derivatives / influence
@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
def test_analytic_hessian_matches_finite_difference_of_the_score(noise):
    X = factor_data(np.random.default_rng(6), 400)
    rep = ssi.FactorModel(2, noise=noise).fit(X)
    theta = rep.params_
    h = 1e-6
    fd = np.column_stack([
        (rep.with_params(theta + h * e).estimating_function(X).mean(0)
         - rep.with_params(theta - h * e).estimating_function(X).mean(0)) / (2 * h)
        for e in np.eye(theta.size)])
    H = rep.hessian_
    assert np.abs(H - fd).max() < 1e-8 * np.abs(H).max()
    # singular exactly on the rotation directions, negative definite elsewhere
    V = _vertical_directions(rep)
    assert np.abs(H @ V).max() < 1e-10 * np.abs(H).max()
    Pi = np.eye(theta.size) - V @ np.linalg.pinv(V)
    w = np.linalg.eigvalsh(Pi @ H @ Pi)
    assert np.sum(np.abs(w) < 1e-10 * np.abs(w).max()) == V.shape[1] == 1
    assert w.max() < 1e-10 * np.abs(w).max()


def _em_refit(S, L, psi, isotropic, tol=1e-15, max_iter=100_000):
    """Rubin-Thayer EM for the factor model given a covariance (independent of the package)."""
    for _ in range(max_iter):
        beta = np.linalg.solve(L @ L.T + np.diag(psi), L).T
        Ehh = np.eye(L.shape[1]) - beta @ L + beta @ S @ beta.T
        L_new = S @ beta.T @ np.linalg.inv(Ehh)
        d = np.diag(S - L_new @ beta @ S)
        psi_new = np.full_like(psi, d.mean()) if isotropic else d
        change = max(np.abs(L_new - L).max(), np.abs(psi_new - psi).max())
        L, psi = L_new, psi_new
        if change < tol:
            return L, psi
    raise AssertionError("EM oracle did not converge")


def _procrustes(L, L_ref):
    """L Q with Q orthogonal minimising ||L Q - L_ref||_F."""
    U, _, Vt = np.linalg.svd(L.T @ L_ref)
    return L @ U @ Vt


def _documented_gauge(L, psi):
    """Lambda' Psi^-1 Lambda diagonal and decreasing; largest-|loading| entry positive."""
    _, R = np.linalg.eigh(L.T @ (L / psi[:, None]))
    L = L @ R[:, ::-1]
    return L * np.sign(L[np.argmax(np.abs(L), axis=0), np.arange(L.shape[1])])


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
def test_influence_is_the_aligned_contamination_derivative(noise):
    rng = np.random.default_rng(7)
    X = factor_data(rng, 400)
    m, p = X.shape
    rep = ssi.FactorModel(2, noise=noise).fit(X)
    L0, psi0 = rep.components_.T, rep.noise_variance_
    points = np.vstack([X[[0, 11]], factor_data(rng, 1),
                        rep.mean_ + 4 * L0[:, 0] - 3 * L0[:, 1] + 2 * np.eye(p)[2]])
    IF = rep.influence(points)
    V = _vertical_directions(rep)
    Pi = np.eye(rep.params_.size) - V @ np.linalg.pinv(V)
    # central difference of the refit on F_m + eps (delta_x - F_m): truncation
    # O(eps^2) ~ 1e-10, EM precision 1e-15 / eps ~ 1e-10 (measured agreement ~1e-8)
    eps = 1e-5
    vertical_parts = []
    for x0, if_row in zip(points, IF):
        aligned, gauged = [], []
        for e in (eps, -eps):
            w = np.append(np.full(m, (1 - e) / m), e)
            Xa = np.vstack([X, x0])
            mu = w @ Xa
            S = ((Xa - mu) * w[:, None]).T @ (Xa - mu)
            L, psi = _em_refit(S, L0.copy(), psi0.copy(), noise == "isotropic")
            psi_part = psi[:1] if noise == "isotropic" else psi
            L_gauge = _documented_gauge(L, psi)
            gauged.append(np.concatenate([mu, L_gauge.T.ravel(), psi_part]))
            # Procrustes alignment removes the rotation (vertical) part to first order
            aligned.append(np.concatenate([mu, _procrustes(L, L0).T.ravel(), psi_part]))
        fd_aligned = (aligned[0] - aligned[1]) / (2 * eps)
        fd_gauged = (gauged[0] - gauged[1]) / (2 * eps)
        tol = 1e-5 * np.abs(fd_aligned).max()
        np.testing.assert_allclose(if_row, fd_aligned, rtol=0, atol=tol)
        np.testing.assert_allclose(if_row, Pi @ fd_gauged, rtol=0, atol=tol)
        vertical_parts.append(np.abs(fd_gauged - if_row).max() / np.abs(fd_aligned).max())
    # the documented gauge's own derivative has a rotation part: projecting it matters
    assert max(vertical_parts) > 1e-2


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
def test_influence_is_horizontal_centred_and_streams(noise):
    X = factor_data(np.random.default_rng(8), 900)
    rep = ssi.FactorModel(3, noise=noise).fit(X)
    IF = rep.influence(X)
    V = _vertical_directions(rep)
    assert V.shape[1] == 3
    assert np.abs(IF @ V).max() < 1e-12 * np.abs(IF).max() * np.abs(V).max()
    assert np.abs(IF.sum(axis=0)).max() < 1e-9 * np.abs(IF).max()
    # every per-row score is horizontal too (the likelihood is invariant)
    assert np.abs(rep.estimating_function(X) @ V).max() < 1e-10 * np.abs(rep.estimating_function(X)).max()
    # mean block: IF_mu(x) = x - x_bar exactly
    np.testing.assert_allclose(IF[:, :6], X - X.mean(axis=0), atol=1e-12)
    K = np.random.default_rng(0).normal(size=(4, rep.params_.size))
    parts = list(rep.influence_contract(K, chunk_rows=100))
    assert [(a, b) for a, b, _ in parts][-1] == (800, 900)
    np.testing.assert_allclose(np.vstack([B for _, _, B in parts]), IF @ K.T,
                               rtol=0, atol=1e-12 * np.abs(IF @ K.T).max())


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
@pytest.mark.parametrize("scores", ["regression", "bartlett"])
def test_feature_vjp_matches_finite_differences(noise, scores):
    rng = np.random.default_rng(9)
    X = factor_data(rng, 500)
    rep = ssi.FactorModel(2, noise=noise, scores=scores).fit(X)
    theta = rep.params_
    X_new = factor_data(rng, 6)
    h = 1e-6
    # d phi(x_j) / d theta: (n, k, q)
    Jac = np.stack([(rep.with_params(theta + h * e)._transform(X_new)
                     - rep.with_params(theta - h * e)._transform(X_new)) / (2 * h)
                    for e in np.eye(theta.size)], axis=-1)
    C = rng.normal(size=(6, 2, 3))
    expected = np.einsum("nkq,nkr->qr", Jac, C)
    got = rep.feature_vjp(X_new, C)
    assert np.abs(got - expected).max() < 1e-8 * np.abs(expected).max()
    per_row = rep.feature_vjp(X_new, C[:, :, 0], per_row=True)
    expected_rows = np.einsum("nkq,nk->nq", Jac, C[:, :, 0])
    assert np.abs(per_row - expected_rows).max() < 1e-8 * np.abs(expected_rows).max()
    # scores: regression = E[h | x] = Lambda' Sigma^-1 (x - mu); Bartlett = GLS
    L, psi = rep.components_.T, rep.noise_variance_
    if scores == "regression":
        W = np.linalg.solve(rep.get_covariance(), L).T
    else:
        W = np.linalg.lstsq(L / np.sqrt(psi)[:, None], np.diag(1 / np.sqrt(psi)),
                            rcond=None)[0]
    np.testing.assert_allclose(rep.transform(X_new), (X_new - rep.mean_) @ W.T, atol=1e-12)


# ------------------------------------------------------------ two-stage pipeline data
def _pipeline(seed, *, m, n, Lam=LAMBDA6, psi=PSI6, mu=MU6):
    """Skewed factor data; y depends on the true factors, z correlates with x."""
    rng = np.random.default_rng(seed)
    p = Lam.shape[0]
    X_pre = factor_data(rng, m, Lam, psi, mu)
    X_lab, h = factor_data(rng, n, Lam, psi, mu, return_h=True)
    z = 0.6 * (X_lab[:, 2] - mu[2]) + rng.normal(size=n)
    y = (1.0 + 0.5 * z + h @ np.array([1.0, -0.7])[:h.shape[1]] + 0.3 * h[:, 0] ** 2
         + (1.0 + 0.4 * np.abs(z)) * rng.normal(size=n))
    cols = [f"x{i}" for i in range(p)]
    df = pd.DataFrame(X_lab, columns=cols)
    df["z"], df["y"] = z, y
    new = pd.DataFrame(factor_data(rng, 4, Lam, psi, mu), columns=cols)
    new["z"] = [0.0, 1.0, -1.5, 2.0]
    return X_pre, df, cols, new


# ----------------------------------------------------------- delicatessen oracle
LAMBDA5 = np.array([[1.0, 0.8, 0.6, 0.3, 0.1],
                    [0.0, 0.4, -0.5, 0.9, 1.0]]).T
PSI5 = np.array([0.4, 0.5, 0.3, 0.4, 0.6])
MU5 = np.array([1.0, -1.0, 0.5, 0.0, 2.0])


def _stacked_factor_psi(Xf, is_pre, Xl, Z, Y, is_lab, p, k, scores, gauge_row):
    """Stacked estimating equations, one column per unit.

    First stage (pre-training units): the Gaussian log-likelihood score in
    (mu, Lambda, psi); for k = 2 the score equation of Lambda[gauge_row, 1] is redundant
    (Lambda' E Lambda is symmetric for every row) and is replaced by the gauge equation
    (Lambda' Psi^-1 Lambda)_01 = 0. Second stage (labeled units): w (y - w'beta) with
    w = [Z, phi(x; theta)].
    """
    def psi(theta):
        theta = np.asarray(theta)
        mu = theta[:p]
        L = theta[p:p + k * p].reshape(k, p).T
        psiv = theta[p + k * p:p + k * p + p]
        beta = theta[p + k * p + p:]
        Sigma = L @ L.T + np.diag(psiv)
        P = np.linalg.inv(Sigma)
        a = (Xf - mu) @ P                                 # (units, p)
        s_mu = a.T
        s_L = [((a @ L[:, l])[:, None] * a - (P @ L[:, l])[None, :]).T for l in range(k)]
        s_psi = 0.5 * (a ** 2 - np.diag(P)).T
        if k == 2:
            s_L[1] = s_L[1].copy()
            gauge = np.sum(L[:, 0] * L[:, 1] / psiv)
            s_L[1][gauge_row] = gauge
        first = np.vstack([s_mu] + s_L + [s_psi]) * is_pre
        if scores == "regression":
            Wt = np.linalg.solve(Sigma, L)                # Sigma^-1 Lambda
        else:
            B = L / psiv[:, None]
            Wt = B @ np.linalg.inv(L.T @ B)
        phi = (Xl - mu) @ Wt
        w = np.column_stack([Z, phi])
        second = (w * ((Y - w @ beta) * is_lab)[:, None]).T
        return np.vstack([first, second])

    return psi


@pytest.mark.parametrize("k, scores", [(1, "regression"), (2, "regression"),
                                       (2, "bartlett")])
def test_two_stage_covariance_matches_delicatessen(k, scores):
    MEstimator = pytest.importorskip("delicatessen").MEstimator
    m, n = 300, 150
    X_pre, df, cols, new = _pipeline(31 + k, m=m, n=n, Lam=LAMBDA5[:, :k] if k == 1
                                     else LAMBDA5, psi=PSI5, mu=MU5)
    p = X_pre.shape[1]
    rep = ssi.FactorModel(k, scores=scores).fit(X_pre)
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": "HC0"})
    units = m + n
    Xf = np.zeros((units, p))
    Xf[:m] = X_pre
    Xl = np.zeros((units, p))
    Xl[m:] = df[cols].to_numpy()
    Z = np.zeros((units, 2))
    Z[m:] = sm.add_constant(df["z"].to_numpy())
    Y = np.zeros(units)
    Y[m:] = df["y"].to_numpy()
    is_pre = np.r_[np.ones(m), np.zeros(n)]
    gauge_row = int(np.argmax(np.abs(rep.components_[0])))  # its coefficient is nonzero
    init = np.concatenate([rep.params_, np.asarray(res.params)])
    est = MEstimator(_stacked_factor_psi(Xf, is_pre, Xl, Z, Y, 1.0 - is_pre, p, k, scores,
                                         gauge_row), init=init)
    est.estimate(deriv_method="capprox", dx=1e-6, tolerance=1e-12)
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-8)  # same root and gauge

    d = init.size - rep.params_.size
    V_deli = est.variance
    V_pkg = np.asarray(res.cov_params())
    # intercept and covariate: invariant under the rotation, so gauge-free quantities.
    # Measured: SEs agree to 4e-11 - 1.2e-10 with the central-difference bread (3e-8 -
    # 9e-8 with delicatessen's default forward differences); 1e-5 is what is required.
    np.testing.assert_allclose(np.sqrt(np.diag(V_deli)[-d:][:2]), np.asarray(res.bse)[:2],
                               rtol=1e-7)
    np.testing.assert_allclose(V_deli[-d:, -d:][:2, :2], V_pkg[:2, :2], rtol=1e-7)

    # predictions at new raw rows: delta method on the oracle's stacked covariance
    def prediction(theta, row):
        mu, L = theta[:p], theta[p:p + k * p].reshape(k, p).T
        psiv = theta[p + k * p:2 * p + k * p]
        beta = theta[-d:]
        if scores == "regression":
            Wt = np.linalg.solve(L @ L.T + np.diag(psiv), L)
        else:
            B = L / psiv[:, None]
            Wt = B @ np.linalg.inv(L.T @ B)
        phi = (new[cols].to_numpy()[row] - mu) @ Wt
        return beta[0] + beta[1] * new["z"].to_numpy()[row] + phi @ beta[2:]

    pred = res.get_prediction(new)
    for row in range(len(new)):
        h = 1e-6
        grad = np.array([(prediction(init + h * e, row) - prediction(init - h * e, row))
                         / (2 * h) for e in np.eye(init.size)])
        assert pred.predicted_mean[row] == pytest.approx(prediction(init, row), rel=1e-12)
        assert pred.se_mean[row] == pytest.approx(np.sqrt(grad @ V_deli @ grad), rel=1e-7)

    # not vacuous: the first stage moves these standard errors
    assert np.max(np.abs(np.asarray(res.bse)[:2] / np.asarray(res.bse_naive)[:2] - 1)) > 0.02


# ------------------------------------------------------------------ invariance
@pytest.mark.parametrize("scores", ["regression", "bartlett"])
@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
def test_invariant_results_unchanged_under_rotation(noise, scores):
    X_pre, df, cols, new = _pipeline(41, m=800, n=300)
    rep = ssi.FactorModel(2, noise=noise, scores=scores).fit(X_pre)
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": "HC1"})
    rng = np.random.default_rng(0)
    for _ in range(3):
        Q = rep.symmetry_.sample(rng)
        moved = rep.act(Q)
        res_g = smf.ols("y ~ z", df, representation=moved, features=cols).fit(
            cov_kwds={"second_stage": "HC1"})
        fixed = ["Intercept", "z"]
        np.testing.assert_allclose(res_g.params[fixed], res.params[fixed], rtol=1e-8)
        np.testing.assert_allclose(res_g.bse[fixed], res.bse[fixed], rtol=1e-8)
        np.testing.assert_allclose(res_g.params[["f0", "f1"]], Q @ res.params[["f0", "f1"]],
                                   rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(moved.transform(X_pre[:5]), rep.transform(X_pre[:5]) @ Q.T,
                                   atol=1e-12)
        stat = res.invariant_tests()["statistic"].to_numpy()
        stat_g = res_g.invariant_tests()["statistic"].to_numpy()
        np.testing.assert_allclose(stat_g, stat, rtol=1e-8)
        pred, pred_g = res.get_prediction(new), res_g.get_prediction(new)
        np.testing.assert_allclose(pred_g.predicted_mean, pred.predicted_mean, rtol=1e-10)
        np.testing.assert_allclose(pred_g.se_mean, pred.se_mean, rtol=1e-8)
        # the individual factor coefficients' SEs are gauge-dependent (not vacuous)
    assert np.max(np.abs(res_g.bse[["f0", "f1"]] / res.bse[["f0", "f1"]] - 1)) > 1e-3
    assert list(res.invariant_tests().index) == ["f0 = f1 = 0"]
    with pytest.raises(ssi.exceptions.NonInvariantHypothesisError, match="O\\(2\\)"):
        res.t_test("f0 = 0")


def test_scores_choice_leaves_invariant_results_nearly_unchanged():
    """Regression and Bartlett scores are invertible linear maps of each other
    (phi_B = (I + M^-1) phi_R), so the fitted second stage is identical."""
    X_pre, df, cols, new = _pipeline(43, m=800, n=300)
    fits = [smf.ols("y ~ z", df, features=cols,
                    representation=ssi.FactorModel(2, scores=s).fit(X_pre)).fit()
            for s in ("regression", "bartlett")]
    np.testing.assert_allclose(fits[0].params[["Intercept", "z"]],
                               fits[1].params[["Intercept", "z"]], rtol=1e-10)
    np.testing.assert_allclose(fits[0].bse[["Intercept", "z"]],
                               fits[1].bse[["Intercept", "z"]], rtol=1e-8)
    np.testing.assert_allclose(fits[0].get_prediction(new).se_mean,
                               fits[1].get_prediction(new).se_mean, rtol=1e-8)


# --------------------------------------------------------------------- bootstrap
REPS = 300
# Bootstrap SD: Monte Carlo relative error ~ sqrt((kappa - 1) / (4 B)) ~ 4-5% at B = 300,
# plus O(1/n) differences from the delta method (~2-4% here); 15% is about 3 such errors
# (the same band as the PCA bootstrap test).
TOL = 0.15


@pytest.mark.slow
def test_aligned_bootstrap_agrees_with_analytic_two_stage():
    X_pre, df, cols, new = _pipeline(51, m=1500, n=500)
    rep = ssi.FactorModel(2, n_init=1).fit(X_pre)
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    analytic = model.fit(cov_kwds={"second_stage": "HC0"})
    boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": REPS, "seed": 0})
    ratio = (boot.bse / analytic.bse).to_numpy()
    assert np.all(np.abs(ratio - 1) < TOL), ratio
    se_ratio = boot.get_prediction(new).se_mean / analytic.get_prediction(new).se_mean
    assert np.all(np.abs(se_ratio - 1) < TOL), se_ratio
    # the first stage matters here (else agreement would be trivial): it inflates the
    # intercept SE by ~11% and the prediction SEs by up to ~55%
    assert analytic.bse["Intercept"] > 1.08 * analytic.bse_naive["Intercept"]
    naive_pred = model.fit(cov_type="naive").get_prediction(new).se_mean
    assert np.max(analytic.get_prediction(new).se_mean / naive_pred) > 1.4
    # without alignment each refit stays in the documented gauge (Lambda' Psi^-1 Lambda
    # diagonal), whose rotation part is not the horizontal one: the factor coefficients'
    # spread is then a different, gauge-dependent quantity (f0: ~1.7x here)
    raw = two_sample_bootstrap(model, reps=100, seed=1, align=False, progress=False)
    raw_ratio = raw.params.std(axis=0, ddof=1) / analytic.bse.to_numpy()
    assert np.max(np.abs(raw_ratio[2:] - 1)) > 0.3, raw_ratio
    aligned = two_sample_bootstrap(model, reps=100, seed=1, progress=False)
    np.testing.assert_allclose(raw.params[:, :2], aligned.params[:, :2], rtol=1e-10)


# ------------------------------------------------------------------- warnings
def _heywood_data(rng, m=2000):
    """One factor, correlations r12 = r13 = 0.8, r23 = 0.4: lambda_1^2 = r12 r13 / r23 = 1.6
    exceeds the unit variance, so the ML unique variance of x_1 is at zero."""
    C = np.array([[1.0, 0.8, 0.8], [0.8, 1.0, 0.4], [0.8, 0.4, 1.0]])
    return rng.normal(size=(m, 3)) @ np.linalg.cholesky(C).T


def test_heywood_case_warns():
    X = _heywood_data(np.random.default_rng(61))
    with pytest.warns(IdentificationWarning, match=r"Heywood case: .*raw feature\(s\) \[0\]"):
        rep = ssi.FactorModel(1).fit(X)
    assert rep.heywood_.tolist() == [0]
    assert rep.noise_variance_[0] < 1e-3 * X[:, 0].var()
    # a near-duplicate variable in a larger model: the same diagnosis
    rng = np.random.default_rng(62)
    X6 = factor_data(rng, 1000)
    X6[:, 5] = X6[:, 0] + 1e-4 * rng.normal(size=1000)
    with pytest.warns(IdentificationWarning, match="Heywood"):
        ssi.FactorModel(2).fit(X6)


def test_non_convergence_warns():
    X = factor_data(np.random.default_rng(63), 500)
    with pytest.warns(ConvergenceWarning, match="did not converge \\(max_iter=2"):
        rep = ssi.FactorModel(2, max_iter=2).fit(X)
    assert not rep.converged_
    ok = ssi.FactorModel(2).fit(X)  # the module's filters make any warning an error
    assert ok.converged_ and 0 < ok.n_iter_ < 1000


def test_zero_factor_warns():
    """PPCA on data whose covariance is exactly diag(4, 1, 1, 1, 1): the second factor's
    eigenvalue equals the noise level, so its loadings are zero and it is not identified."""
    rng = np.random.default_rng(64)
    A = rng.normal(size=(500, 5))
    Z, _ = np.linalg.qr(A - A.mean(axis=0))  # orthonormal columns in the centred span
    X = np.sqrt(500) * Z * np.sqrt([4.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.warns(IdentificationWarning, match=r"Factor\(s\) \[1\] have \(numerically\) "
                                                   "zero loadings"):
        rep = ssi.FactorModel(2, noise="isotropic").fit(X)
    assert np.abs(rep.components_[1]).max() < 1e-6


def test_well_posed_fits_do_not_warn():
    for seed in range(5):
        X = factor_data(np.random.default_rng(seed), 400, law="gaussian")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for noise in ("diagonal", "isotropic"):
                assert ssi.FactorModel(2, noise=noise).fit(X).converged_


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize("k", [0, 6, 7, -1, 2.0, True])
def test_bad_n_factors(k):
    X = factor_data(np.random.default_rng(0), 100)
    with pytest.raises(ValueError, match="n_factors must be an integer with 1 <= n_factors "
                                         "< p = 6"):
        ssi.FactorModel(k).fit(X)


def test_too_many_factors_for_diagonal_noise():
    X = factor_data(np.random.default_rng(0), 200)
    # p = 6: (6 - 3)^2 = 9 >= 9 is allowed, k = 4 is not
    with warnings.catch_warnings():  # 3 factors for 2-factor data: may warn, must not raise
        warnings.simplefilter("ignore")
        assert ssi.FactorModel(3, n_init=1).fit(X).components_.shape == (3, 6)
    with pytest.raises(ValueError, match=r"Ledermann bound \(p - k\)\^2 >= p \+ k allows "
                                         r"k <= 3"):
        ssi.FactorModel(4).fit(X)
    assert ssi.FactorModel(5, noise="isotropic").fit(X).components_.shape == (5, 6)


@pytest.mark.parametrize("kwargs, message", [
    ({"noise": "diag"}, "noise must be 'diagonal'"),
    ({"scores": "thomson"}, "scores must be 'regression' or 'bartlett'"),
    ({"n_init": 0}, "n_init must be an integer >= 1"),
    ({"max_iter": 1.5}, "max_iter must be an integer >= 1"),
    ({"tol": -1.0}, "tol must be a positive number"),
])
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ssi.FactorModel(2, **kwargs).fit(factor_data(np.random.default_rng(0), 100))


def test_bad_data_fails_fast_and_keeps_previous_fit():
    X = factor_data(np.random.default_rng(0), 300)
    rep = ssi.FactorModel(2).fit(X)
    before = rep.params_.copy()
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"X_pre contains NaN or infinite values in 1 row"):
        rep.fit(bad)
    const = X.copy()
    const[:, 3] = 2.0
    with pytest.raises(ValueError, match=r"column\(s\) \[3\] are constant"):
        rep.fit(const)
    with pytest.raises(ValueError, match="at least 2 rows"):
        rep.fit(X[:1])
    with pytest.raises(ValueError, match="must be 2-dimensional"):
        rep.fit(X[0])
    np.testing.assert_array_equal(rep.params_, before)
    with pytest.raises(ValueError, match="X has 5 columns but the representation was fitted "
                                         "on 6"):
        rep.transform(X[:, :5])
    with pytest.raises(NotFittedError, match=r"call \.fit\(X_pre\)"):
        ssi.FactorModel(2).transform(X)
    with pytest.raises(ValueError, match="non-degenerate directions"):
        ssi.FactorModel(2, noise="isotropic").fit(X[:, :1] @ np.ones((1, 6)) + [0, 1, 2, 3,
                                                                                 4, 5])


def test_sklearn_conventions_dataframes_and_clone():
    X = factor_data(np.random.default_rng(0), 300)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    rep = ssi.FactorModel(2, feature_prefix="fac").fit(frame)
    out = rep.transform(frame.iloc[:3])
    assert list(out.columns) == ["fac0", "fac1"] and list(out.index) == [0, 1, 2]
    with pytest.raises(ValueError, match="differ from the columns seen in fit"):
        rep.transform(frame[frame.columns[::-1]])
    twin = rep.clone()
    assert twin.get_params() == rep.get_params() and not hasattr(twin, "params_")
    np.testing.assert_array_equal(twin.fit(frame).params_, rep.params_)
    assert rep.params_.size == 6 + 12 + 6 and rep.nobs_ == 300
    assert "Lambda' Psi^-1 Lambda diagonal" in rep.gauge_convention


def test_summary_flags_heywood_and_non_convergence():
    X = _heywood_data(np.random.default_rng(61))
    with pytest.warns(IdentificationWarning, match="Heywood"):
        rep = ssi.FactorModel(1).fit(X)
    y = X[:400, 1] + np.random.default_rng(64).normal(size=400)
    text = str(ssi.OLS(y, np.ones((400, 1)), representation=rep,
                       features=X[:400]).fit().summary())
    assert "WARNING (first stage): Heywood case: the unique variance of raw feature(s)" \
        in text and rep.fit_warnings_[0].startswith("Heywood case")
    X = factor_data(np.random.default_rng(63), 500)
    with pytest.warns(ConvergenceWarning):
        rep = ssi.FactorModel(2, max_iter=2).fit(X)
    text = str(ssi.OLS(X[:, 0], np.ones((500, 1)), representation=rep,
                       features=X).fit().summary())
    assert "WARNING (first stage): FactorModel did not converge" in text
    assert "WARNING" not in str(ssi.OLS(X[:, 0], np.ones((500, 1)),
                                        representation=ssi.FactorModel(2).fit(X),
                                        features=X).fit().summary())
