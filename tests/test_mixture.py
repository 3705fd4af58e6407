"""Gaussian mixture first stage (issue 5, part 2): EM, gauge, influence, VJP, oracle.

Independent oracles (none of them calls the package's likelihood code):

* scikit-learn's ``GaussianMixture`` (test-only) for the EM fit;
* a hand-written weighted EM (scipy's ``multivariate_normal``) for the contamination
  derivative ``d theta(F_m + eps (delta_x - F_m)) / d eps``, which must equal ``IF(x)``;
* central finite differences of the feature map for the VJP;
* delicatessen's stacked M-estimator (first stage: the per-row mixture score, by the
  complex step of a log-density written here; second stage: OLS normal equations with
  responsibilities computed here) for the two-stage covariance.
"""
from __future__ import annotations

import warnings
from itertools import permutations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.exceptions import ConvergenceWarning, IdentificationWarning

COV_TYPES = ["full", "diag", "spherical"]
FEATURES = [("responsibilities", None), ("gated", 1), ("gated", 2)]
CENTERS = np.array([[-4.0, 0.0], [0.5, 2.5], [4.5, -0.5]])
SHAPES = [np.array([[1.0, 0.3], [0.0, 0.8]]), np.diag([0.7, 1.2]), np.eye(2)]


def _three_clusters(rng, sizes, scale=1.0):
    """Three 2-D clusters (one skewed: centred exponential), centres times ``scale``."""
    a = rng.normal(size=(sizes[0], 2)) @ SHAPES[0] + scale * CENTERS[0]
    b = rng.normal(size=(sizes[1], 2)) @ SHAPES[1] + scale * CENTERS[1]
    c = (rng.exponential(size=(sizes[2], 2)) - 1.0) @ SHAPES[2] + scale * CENTERS[2]
    return np.vstack([a, b, c])


@pytest.fixture(scope="module")
def clusters():
    return _three_clusters(np.random.default_rng(0), (160, 120, 100))


@pytest.fixture(scope="module")
def overlapping():
    """Overlapping clusters (centres halved): the first stage visibly moves the SEs."""
    rng = np.random.default_rng(0)
    X_pre = _three_clusters(rng, (200, 150, 150), scale=0.5)
    truth = _quiet_fit(ssi.GaussianMixture(3, random_state=0), X_pre)
    return X_pre, truth


def _quiet_fit(rep, X):
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentificationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        return rep.fit(X)


# ------------------------------------------------------------------ test-side model
def _theta_from_moments(weights, means, covs, cov_type):
    """The documented parametrisation, written independently of the package."""
    logits = np.log(weights[1:] / weights[0])
    free = []
    for S in covs:
        U = np.linalg.inv(np.linalg.cholesky(S)).T  # upper, S^-1 = U U'
        if cov_type == "full":
            iu = np.triu_indices(len(S))
            vals = U[iu].copy()
            vals[iu[0] == iu[1]] = np.log(vals[iu[0] == iu[1]])
            free.append(vals)
        elif cov_type == "diag":
            free.append(np.log(np.diag(U)))
        else:
            free.append(np.log(U[:1, 0]))
    return np.concatenate([logits, means.ravel(), np.concatenate(free)])


def _log_joint(theta, X, K, cov_type):
    """log pi_k + log N(x; mu_k, Sigma_k) (n, K) from theta; complex-safe."""
    d = X.shape[1]
    logits = np.concatenate([np.zeros(1, dtype=theta.dtype), theta[:K - 1]])
    log_w = logits - np.log(np.exp(logits).sum())
    means = theta[K - 1:K - 1 + K * d].reshape(K, d)
    free = theta[K - 1 + K * d:].reshape(K, -1)
    cols = []
    for k in range(K):
        U = np.zeros((d, d), dtype=theta.dtype)
        if cov_type == "full":
            rows, cols_ = np.triu_indices(d)
            for t, (a, b) in enumerate(zip(rows, cols_)):
                U[a, b] = np.exp(free[k, t]) if a == b else free[k, t]
        else:
            U[np.arange(d), np.arange(d)] = np.exp(free[k] if cov_type == "diag"
                                                   else np.repeat(free[k, 0], d))
        precision = U @ U.T
        V = X - means[k]
        quad = np.einsum("na,ab,nb->n", V, precision, V)
        log_det_precision = 2.0 * sum(np.log(U[a, a]) for a in range(d))
        cols.append(log_w[k] + 0.5 * log_det_precision - 0.5 * d * np.log(2 * np.pi)
                    - 0.5 * quad)
    return np.column_stack(cols)


def _responsibilities(theta, X, K, cov_type):
    lj = _log_joint(theta, X, K, cov_type)
    e = np.exp(lj - lj.real.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _row_scores(theta, X, K, cov_type, h=1e-30):
    """Per-row score (q, n) by the complex step of the per-row log-density."""
    out = np.empty((theta.size, X.shape[0]))
    for j in range(theta.size):
        shifted = theta.astype(complex)
        shifted[j] += 1j * h
        lj = _log_joint(shifted, X, K, cov_type)
        shift = lj.real.max(axis=1, keepdims=True)
        out[j] = (shift[:, 0] + np.log(np.exp(lj - shift).sum(axis=1))).imag / h
    return out


def _weighted_em(X, w, weights, means, covs, cov_type, max_iter=20000):
    """Hand-written weighted EM (scipy densities), run to a fixed point from a warm start."""
    K, d = means.shape
    for _ in range(max_iter):
        logp = np.column_stack([np.log(weights[k]) + stats.multivariate_normal.logpdf(
            X, means[k], covs[k]) for k in range(K)])
        resp = np.exp(logp - logp.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        wr = resp * w[:, None]
        Nk = wr.sum(axis=0)
        new_weights = Nk / w.sum()
        new_means = wr.T @ X / Nk[:, None]
        new_covs = []
        for k in range(K):
            D = X - new_means[k]
            S = (wr[:, k, None] * D).T @ D / Nk[k]
            if cov_type == "diag":
                S = np.diag(np.diag(S))
            elif cov_type == "spherical":
                S = np.eye(d) * np.trace(S) / d
            new_covs.append(S)
        new_covs = np.array(new_covs)
        change = max(np.abs(new_means - means).max(), np.abs(new_covs - covs).max(),
                     np.abs(new_weights - weights).max())
        weights, means, covs = new_weights, new_means, new_covs
        if change < 1e-15:
            break
    return weights, means, covs


def _full_covariances(rep):
    c = rep.covariances_
    d = rep.n_features_in_
    if rep.covariance_type == "full":
        return c
    if rep.covariance_type == "diag":
        return np.array([np.diag(v) for v in c])
    return np.array([np.eye(d) * v for v in c])


# ------------------------------------------------------------------------------ EM
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_em_agrees_with_sklearn(clusters, cov_type):
    sk_mixture = pytest.importorskip("sklearn.mixture")
    rep = _quiet_fit(ssi.GaussianMixture(3, covariance_type=cov_type, random_state=0),
                     clusters)
    sk = sk_mixture.GaussianMixture(3, covariance_type=cov_type, tol=1e-14, max_iter=10000,
                                    reg_covar=0.0, n_init=3, random_state=0).fit(clusters)
    assert sk.converged_ and rep.converged_
    match = list(min(permutations(range(3)),
                     key=lambda p: np.abs(sk.means_[list(p)] - rep.means_).max()))
    np.testing.assert_allclose(rep.llf_ / len(clusters), sk.score(clusters), rtol=1e-10)
    np.testing.assert_allclose(rep.means_, sk.means_[match], atol=1e-5)
    np.testing.assert_allclose(rep.weights_, sk.weights_[match], atol=1e-5)
    np.testing.assert_allclose(rep.covariances_, sk.covariances_[match], atol=1e-5)
    # the score is zero at the package's estimate to rounding (Newton polish)
    assert np.abs(rep.estimating_function(clusters).sum(axis=0)).max() < 1e-9
    np.testing.assert_allclose(rep.score_samples(clusters), sk.score_samples(clusters),
                               rtol=0, atol=1e-6)


def test_gauge_rule_and_determinism(clusters):
    rep = _quiet_fit(ssi.GaussianMixture(3, random_state=0), clusters)
    # the rule: keys a' mu_k increase, a = leading axis of the centred means, signed
    centred = rep.means_ - rep.means_.mean(axis=0)
    axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
    axis *= np.sign(axis[np.argmax(np.abs(axis))])
    assert np.all(np.diff(rep.means_ @ axis) > 0.5)
    # same fit from permuted rows, other seeds (other start labellings) and fewer starts
    perm = np.random.default_rng(3).permutation(len(clusters))
    for other in (ssi.GaussianMixture(3, random_state=0).fit(clusters[perm]),
                  ssi.GaussianMixture(3, random_state=123).fit(clusters),
                  ssi.GaussianMixture(3, n_init=1, random_state=7).fit(clusters)):
        np.testing.assert_allclose(other.params_, rep.params_, rtol=0, atol=1e-8)
    # a refit on equal data is bit-identical
    again = ssi.GaussianMixture(3, random_state=0).fit(clusters.copy())
    np.testing.assert_array_equal(again.params_, rep.params_)


def test_parametrisation_matches_the_documented_one(clusters):
    for cov_type in COV_TYPES:
        rep = _quiet_fit(ssi.GaussianMixture(3, covariance_type=cov_type, random_state=0),
                         clusters)
        theta = _theta_from_moments(rep.weights_, rep.means_, _full_covariances(rep), cov_type)
        np.testing.assert_allclose(rep.params_, theta, rtol=1e-10, atol=1e-12)
        assert len(rep.param_names_) == rep.params_.size == rep.hessian_.shape[0]
        lj = _log_joint(theta, clusters, 3, cov_type)
        np.testing.assert_allclose(rep.llf_, np.log(np.exp(lj).sum(axis=1)).sum(), rtol=1e-12)


# ------------------------------------------------------------------------ influence
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_influence_is_contamination_derivative(clusters, cov_type):
    rep = _quiet_fit(ssi.GaussianMixture(3, covariance_type=cov_type, random_state=0),
                     clusters)
    m = len(clusters)
    covs = _full_covariances(rep)
    outlier = np.array([[8.0, -6.0]])
    points = np.vstack([clusters[[0, 200, 350]],
                        _three_clusters(np.random.default_rng(9), (1, 1, 0)), outlier])
    IF = rep.influence(points)
    eps = 1e-6
    for x0, if_row in zip(points, IF):
        Xa = np.vstack([clusters, x0])
        thetas = []
        for e in (eps, -eps):
            w = np.append(np.full(m, (1.0 - e) / m), e)
            fit = _weighted_em(Xa, w, rep.weights_, rep.means_, covs, cov_type)
            thetas.append(_theta_from_moments(*fit, cov_type))
        fd = (thetas[0] - thetas[1]) / (2 * eps)
        np.testing.assert_allclose(if_row, fd, rtol=0, atol=1e-6 * np.abs(fd).max())
    # the outlier moves the fit much more than a typical row (not a vacuous check)
    assert np.abs(IF[-1]).max() > 3 * np.abs(IF[0]).max()


def test_influence_sums_to_zero_and_contract_streams(clusters):
    rep = _quiet_fit(ssi.GaussianMixture(3, random_state=0), clusters)
    IF = rep.influence(clusters)
    assert np.abs(IF.sum(axis=0)).max() < 1e-8 * np.abs(IF).max() * len(clusters)
    # IF = -H^-1 s with H the average Hessian: (1/m) sum IF s' = -H^-1 (1/m) sum s s'
    S = rep.estimating_function(clusters)
    np.testing.assert_allclose(IF, -S @ np.linalg.inv(rep.hessian_), rtol=1e-8, atol=1e-10)
    K = np.random.default_rng(1).normal(size=(3, rep.params_.size))
    dense = IF @ K.T
    got = np.vstack([B for _, _, B in rep.influence_contract(K, chunk_rows=37)])
    np.testing.assert_allclose(got, dense, rtol=0, atol=1e-11 * np.abs(dense).max())


def test_hessian_is_derivative_of_score(clusters):
    rep = _quiet_fit(ssi.GaussianMixture(3, covariance_type="full", random_state=0), clusters)
    theta = rep.params_
    h = 1e-6
    H_fd = np.column_stack([
        (_row_scores(theta + h * e, clusters, 3, "full").sum(axis=1)
         - _row_scores(theta - h * e, clusters, 3, "full").sum(axis=1)) / (2 * h)
        for e in np.eye(theta.size)]) / len(clusters)
    np.testing.assert_allclose(rep.hessian_, H_fd, rtol=0, atol=1e-6 * np.abs(H_fd).max())
    np.testing.assert_allclose(rep.estimating_function(clusters), _row_scores(theta, clusters, 3, "full").T,
                               rtol=0, atol=1e-10)
    assert np.linalg.eigvalsh(rep.hessian_).max() < 0


# ------------------------------------------------------------------------------ VJP
def _features_at(rep, theta, X):
    """Features at another theta (the public ``with_params``)."""
    return rep.with_params(theta).transform(X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("features, rank", FEATURES)
def test_feature_vjp_matches_finite_differences(clusters, cov_type, features, rank):
    rep = _quiet_fit(ssi.GaussianMixture(3, covariance_type=cov_type, features=features,
                                         gated_rank=rank, random_state=0), clusters)
    rng = np.random.default_rng(4)
    X = _three_clusters(rng, (3, 3, 3)) * 0.8  # moderate responsibilities
    k, q = rep.n_features_out_, rep.params_.size
    h = 1e-6
    J = np.array([(_features_at(rep, rep.params_ + h * e, X)
                   - _features_at(rep, rep.params_ - h * e, X)) / (2 * h)
                  for e in np.eye(q)])                                # (q, n, k)
    C = rng.normal(size=(X.shape[0], k, 4))
    expected = np.einsum("qnk,nkr->qr", J, C)
    got = rep.feature_vjp(X, C)
    assert got.shape == (q, 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8 * np.abs(expected).max())
    per_row = rep.feature_vjp(X, C[:, :, 0], per_row=True)
    np.testing.assert_allclose(per_row, np.einsum("qnk,nk->nq", J, C[:, :, 0]), rtol=0,
                               atol=1e-8 * np.abs(expected).max())
    np.testing.assert_allclose(per_row.sum(axis=0), got[:, 0], rtol=1e-10,
                               atol=1e-12 * np.abs(got).max())
    if features == "gated" and rank == 1:
        # the derivative of the gated basis B matters (it is not a constant)
        moved = _features_at(rep, rep.params_ + 1e-3 * np.eye(q)[3], X)
        frozen = rep.transform(X)
        assert np.abs(moved - frozen).max() > 0


@pytest.mark.parametrize("features, rank", FEATURES)
def test_features_and_names(clusters, features, rank):
    rep = _quiet_fit(ssi.GaussianMixture(3, features=features, gated_rank=rank,
                                         random_state=0), clusters)
    tau = rep.predict_proba(clusters)
    np.testing.assert_allclose(tau.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(tau, _responsibilities(rep.params_, clusters, 3, "full"),
                               rtol=1e-10, atol=1e-14)
    phi = rep.transform(pd.DataFrame(clusters, columns=["a", "b"]))
    names = list(rep.get_feature_names_out())
    assert list(phi.columns) == names and len(names) == rep.n_features_out_
    r = rank or 0
    # contrast coding: the Helmert contrasts of tau, orthogonal to the intercept
    H = np.array([[1.0, 1.0], [-1.0, 1.0], [0.0, -2.0]]) / np.sqrt([2.0, 6.0])
    np.testing.assert_allclose(phi[["gmm_h1", "gmm_h2"]].to_numpy(), tau @ H, rtol=1e-12,
                               atol=1e-15)
    sym = ssi.symmetry
    if r == 1:  # B = the leading eigenvector of M, signed by a convention
        assert rep.symmetry_ == sym.PermutationProduct(3, sym.SignFlips(1))
    else:       # responsibilities, or r = d (B = I is not estimated)
        assert rep.symmetry_ == sym.PermutationContrasts(3, r)
    full = _quiet_fit(ssi.GaussianMixture(3, features=features, gated_rank=rank,
                                          coding="full", random_state=0), clusters)
    phi_full = full.transform(pd.DataFrame(clusters, columns=["a", "b"]))
    assert full.symmetry_ == (sym.PermutationProduct(3, sym.SignFlips(1), contrasts=False)
                              if r == 1 else sym.Permutations(3, r + 1))
    assert list(phi_full.columns)[r::r + 1] == ["gmm0", "gmm1", "gmm2"]
    np.testing.assert_allclose(phi_full[["gmm0", "gmm1", "gmm2"]].to_numpy(), tau, rtol=1e-12)
    if features == "responsibilities":
        assert names == ["gmm_h1", "gmm_h2"]
    else:
        assert len(names) == 3 * r + 2
        B = rep.gated_basis_
        np.testing.assert_allclose(B.T @ B, np.eye(r), atol=1e-12)
        if r == 2:
            np.testing.assert_array_equal(B, np.eye(2))
        for frame in (phi, phi_full):
            np.testing.assert_allclose(frame[[f"gmm2_c{j}" for j in range(r)]].to_numpy(),
                                       tau[:, [2]] * ((clusters - rep.means_[2]) @ B),
                                       rtol=1e-12)


@pytest.mark.parametrize("coding", ["contrast", "full"])
@pytest.mark.parametrize("features, rank", FEATURES)
def test_relabelling_moves_features_by_rho(clusters, features, rank, coding):
    """act(g) relabels theta; features move by symmetry_.rho(g), influences by A."""
    rep = _quiet_fit(ssi.GaussianMixture(3, features=features, gated_rank=rank, coding=coding,
                                         random_state=0), clusters)
    g = np.array([2, 0, 1])  # new component i = old component g[i]
    moved = rep.act(g)
    expected_theta = _theta_from_moments(rep.weights_[g], rep.means_[g],
                                         _full_covariances(rep)[g], "full")
    np.testing.assert_allclose(moved.params_, expected_theta, rtol=1e-12, atol=1e-12)
    phi = rep.transform(clusters)
    np.testing.assert_allclose(moved.transform(clusters), phi @ rep.symmetry_.rho(g).T,
                               rtol=1e-10, atol=1e-13)
    # the relabelled fit is another point of the orbit: same likelihood, zero score
    assert abs(moved.llf_ - rep.llf_) < 1e-9 * abs(rep.llf_)
    # influences move by the linear relabelling map (checked on the means block)
    IF, IF_moved = rep.influence(clusters[:20]), moved.influence(clusters[:20])
    lay = rep._layout
    for i, old in enumerate(g):
        np.testing.assert_allclose(IF_moved[:, lay.mean_slice(i)], IF[:, lay.mean_slice(old)],
                                   rtol=1e-8, atol=1e-10)
    # the gauge rule puts it back, and alignment finds g
    _, found = ssi.align(moved, rep)
    np.testing.assert_array_equal(moved.act(found).params_, rep.params_)


# ------------------------------------------------------------ two-stage OLS pipeline
def _labeled(seed, n, truth):
    """Labeled rows; y depends on the responsibilities of a fixed (gauge) mixture."""
    rng = np.random.default_rng(seed)
    X = _three_clusters(rng, (n // 3, n // 3, n - 2 * (n // 3)), scale=0.5)
    X = X[rng.permutation(n)]
    z = 0.6 * X[:, 0] + rng.normal(size=n)
    y = 1.0 + 0.5 * z + truth.predict_proba(X) @ [0.0, 2.0, -1.0] + rng.normal(size=n)
    return X, z, y


@pytest.mark.parametrize("features, rank", FEATURES)
def test_invariant_results_do_not_depend_on_coding_or_gauge(overlapping, features, rank):
    """Contrast coding with an intercept, full coding without, and a relabelled fit agree
    on every invariant result: covariate coefficient and SE, predictions and their SEs,
    and the mean component level (the contrast-coding intercept)."""
    X_new = np.array([[0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]])
    z_new = np.array([0.5, -1.0, 2.0])
    fits = {}
    for name in ("contrast", "full", "relabelled"):
        coding = "full" if name == "full" else "contrast"
        rep = _quiet_fit(ssi.GaussianMixture(3, features=features, gated_rank=rank,
                                             coding=coding, random_state=0), overlapping[0])
        if name == "relabelled":
            rep = rep.act(np.array([1, 2, 0]))
        X, z, y = _labeled(5, 240, overlapping[1])
        with_const = coding == "contrast"
        exog = sm.add_constant(z) if with_const else z[:, None]
        exog_new = sm.add_constant(z_new, has_constant="add") if with_const else z_new[:, None]
        res = ssi.OLS(y, exog, representation=rep, features=X).fit()
        pred = res.get_prediction(exog_new, features=X_new)
        L = np.zeros(len(np.asarray(res.params)))   # mean component level
        if with_const:
            L[0] = 1.0
        else:
            L[np.asarray(res.model.rep_cols)[rank or 0::(rank or 0) + 1]] = 1.0 / 3
        fits[name] = dict(
            z=(np.asarray(res.params)[int(with_const)], np.asarray(res.bse)[int(with_const)]),
            pred=(pred.predicted_mean, pred.se_mean),
            level=(L @ np.asarray(res.params), np.sqrt(L @ np.asarray(res.cov_params()) @ L)),
            naive_z=np.asarray(res.bse_naive)[int(with_const)])
    base = fits["contrast"]
    for name in ("full", "relabelled"):
        for key in ("z", "pred", "level"):
            np.testing.assert_allclose(fits[name][key][0], base[key][0], rtol=1e-9)
            np.testing.assert_allclose(fits[name][key][1], base[key][1], rtol=1e-7)
    # the first stage matters here (otherwise the agreement would be trivial)
    assert base["z"][1] > 1.03 * base["naive_z"]


def test_formula_and_array_interfaces_agree(overlapping):
    rep = overlapping[1]
    X, z, y = _labeled(6, 200, rep)
    df = pd.DataFrame({"y": y, "z": z, "x1": X[:, 0], "x2": X[:, 1]})
    res_f = smf.ols("y ~ z", df, representation=rep, features=["x1", "x2"]).fit()
    res_a = ssi.OLS(y, sm.add_constant(z), representation=rep, features=X).fit()
    assert list(res_f.params.index) == ["Intercept", "z", "gmm_h1", "gmm_h2"]
    np.testing.assert_allclose(res_f.params.to_numpy(), np.asarray(res_a.params), rtol=1e-10)
    np.testing.assert_allclose(res_f.bse.to_numpy(), np.asarray(res_a.bse), rtol=1e-10)
    # invariant joint test "all components have the same level" runs on the two-stage cov
    wald = res_f.wald_test("gmm_h1 = gmm_h2 = 0", scalar=True)
    assert float(wald.statistic) > 10  # true levels differ (0, 2, -1)
    assert "GaussianMixture" in str(res_f.summary())


# ------------------------------------------------------------- delicatessen oracle
def _stacked_mixture_oracle(rep, X_pre, X_lab, exog, y, params, model="linear"):
    """delicatessen's stacked M-estimator, started at our estimates.

    Units: the ``m`` pre-training rows (first stage: the per-row mixture score by the
    complex step, ``_row_scores``), then the ``n`` labeled rows (second stage on
    ``[exog, Helmert contrast of the responsibilities]``, written here), each zero in
    the other sample's equations. ``model="linear"``: OLS normal equations;
    ``"logistic"`` / ``"poisson"``: delicatessen's ``ee_regression``. Only ``K = 2``.
    Returns ``(estimator, init)``; parameters ``[theta (q), beta]``.
    """
    from delicatessen import MEstimator
    from delicatessen.estimating_equations import ee_regression

    K, cov_type = rep.n_components, rep.covariance_type
    assert K == 2
    m, n, d = X_pre.shape[0], X_lab.shape[0], X_pre.shape[1]
    exog = np.asarray(exog, dtype=float)
    q = rep.params_.size
    Xf = np.vstack([X_pre, np.zeros((n, d))])
    is_pre = np.r_[np.ones(m), np.zeros(n)]
    Xl = np.vstack([np.zeros((m, d)), X_lab])
    Z = np.vstack([np.zeros((m, exog.shape[1])), exog])
    Y = np.r_[np.zeros(m), y]
    is_lab = 1.0 - is_pre

    def psi(theta):
        theta = np.asarray(theta, dtype=float)
        first = _row_scores(theta[:q], Xf, K, cov_type) * is_pre
        tau = _responsibilities(theta[:q], Xl, K, cov_type)
        W = np.column_stack([Z, (tau[:, 0] - tau[:, 1]) / np.sqrt(2.0)])  # Helmert contrast
        if model == "linear":
            resid = (Y - W @ theta[q:]) * is_lab
            second = (W * resid[:, None]).T
        else:
            second = ee_regression(theta[q:], W, Y, model, weights=is_lab)
        return np.vstack([first, second])

    init = np.concatenate([rep.params_, np.asarray(params)])
    est = MEstimator(psi, init=init)
    est.estimate(deriv_method="capprox", dx=1e-6)
    return est, init


def test_two_stage_covariance_matches_delicatessen():
    pytest.importorskip("delicatessen")

    K, cov_type = 2, "full"
    rng = np.random.default_rng(2025)
    m, n = 160, 90
    centers = np.array([[0.0, 0.0], [2.6, 1.0]])

    def draw(size):
        lab = rng.integers(0, 2, size=size)
        noise = np.where(rng.random(size)[:, None] < 0.5, rng.normal(size=(size, 2)),
                         rng.exponential(size=(size, 2)) - 1.0)  # non-Gaussian components
        return centers[lab] + noise @ np.array([[1.0, 0.2], [0.0, 0.7]])

    X_pre, X_lab = draw(m), draw(n)
    z = 0.5 * X_lab[:, 0] + rng.normal(size=n)
    y = 1.0 + 0.4 * z + 1.5 * (X_lab[:, 1] > 0.8) + (1 + 0.3 * np.abs(z)) * rng.normal(size=n)
    rep = _quiet_fit(ssi.GaussianMixture(K, covariance_type=cov_type, random_state=0), X_pre)
    res = ssi.OLS(y, sm.add_constant(z), representation=rep, features=X_lab).fit(
        cov_kwds={"second_stage": "HC0"})

    q = rep.params_.size
    est, init = _stacked_mixture_oracle(rep, X_pre, X_lab, sm.add_constant(z), y,
                                        np.asarray(res.params))
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-8)
    V_deli = est.variance[q:, q:]
    V_pkg = np.asarray(res.cov_params())
    scale = np.sqrt(np.outer(np.diag(V_pkg), np.diag(V_pkg)))
    assert np.max(np.abs(V_deli - V_pkg) / scale) < 1e-5
    # first-stage block: (1/m^2) sum IF IF'
    IF = rep.influence(X_pre)
    V1 = IF.T @ IF / m ** 2
    scale1 = np.sqrt(np.outer(np.diag(V1), np.diag(V1)))
    assert np.max(np.abs(est.variance[:q, :q] - V1) / scale1) < 1e-5
    # the first stage moves the covariance (the check is not vacuous)
    naive = np.asarray(res.cov_params_naive())
    assert np.max(np.abs(np.diag(V_pkg) / np.diag(naive) - 1)) > 0.05


# ---------------------------------------------------------------------- warnings
def test_collapsed_component_warns():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [6.0, 0.0],
                   rng.normal(size=(5, 2)) * 0.5 + [3.0, 12.0]])
    with pytest.warns(IdentificationWarning, match=r"Component 2 of the mixture has "
                                                   r"collapsed: weight 0\.00826"):
        rep = ssi.GaussianMixture(3, random_state=0).fit(X)
    assert rep.weights_[2] * len(X) < 6


@pytest.mark.parametrize("m, seed", [(40, 1), (150, 4)])
def test_indistinguishable_components_warn(m, seed):
    """One spherical cluster fitted with two components: the data cannot tell them apart."""
    X = np.random.default_rng(seed).normal(size=(m, 2))
    with pytest.warns(IdentificationWarning, match=r"Components 0 and 1 of the mixture are "
                                                   r"not distinguishable \(Wald statistic"):
        ssi.GaussianMixture(2, covariance_type="spherical", random_state=0).fit(X)


def test_fit_off_a_strict_maximum_warns():
    """Over-fitted K: EM creeps along a flat ridge and stops where H is not definite."""
    X = np.random.default_rng(1).normal(size=(2000, 2))
    with pytest.warns(IdentificationWarning, match="not negative definite"):
        rep = ssi.GaussianMixture(2, n_init=1, max_iter=300, random_state=0).fit(X)
    assert np.linalg.eigvalsh(rep.hessian_).max() > -1e-10 * np.abs(rep.hessian_).max()


def test_well_separated_fit_is_silent(clusters):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cov_type in COV_TYPES:
            ssi.GaussianMixture(3, covariance_type=cov_type, random_state=0).fit(clusters)


def test_nonconvergence_warns(clusters):
    with pytest.warns(ConvergenceWarning, match=r"EM did not converge in max_iter=2"):
        rep = ssi.GaussianMixture(3, max_iter=2, n_init=1, random_state=0).fit(clusters)
    assert not rep.converged_ and rep.n_iter_ == 2


@pytest.mark.parametrize("gated_symmetry", ["sign", "rotation"])
def test_gated_tied_basis_warns(gated_symmetry):
    """Equilateral means: the centred means' scatter has a tied top pair (r = 1 < d);
    the gap at the cut-off matters in rotation mode too."""
    rng = np.random.default_rng(0)
    angles = np.array([0.0, 2.0, 4.0]) * np.pi / 3
    centers = 5.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    X = np.vstack([rng.normal(size=(200, 2)) + c for c in centers])
    with pytest.warns(IdentificationWarning, match="at the cut-off r"):
        ssi.GaussianMixture(3, features="gated", gated_rank=1, gated_symmetry=gated_symmetry,
                            random_state=0).fit(X)


# -------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, message", [
    ({"n_components": 0}, r"n_components must be an integer with 1 <= n_components <= m = 20"),
    ({"n_components": 21}, r"n_components must be an integer with 1 <= n_components <= m = 20"),
    ({"n_components": 2.0}, "n_components must be an integer"),
    ({"n_components": True}, "n_components must be an integer"),
    ({"n_components": 2, "covariance_type": "tied"}, "covariance_type must be one of"),
    ({"n_components": 2, "features": "posterior"}, "features must be 'responsibilities'"),
    ({"n_components": 2, "coding": "treatment"}, "coding must be 'contrast'"),
    ({"n_components": 2, "n_init": 0}, "n_init must be a positive integer"),
    ({"n_components": 2, "max_iter": -1}, "max_iter must be a positive integer"),
    ({"n_components": 2, "tol": 0.0}, "tol must be a positive number"),
    ({"n_components": 2, "gated_rank": 1}, "gated_rank applies to features='gated' only"),
    ({"n_components": 3, "features": "gated", "gated_rank": 3},
     r"gated_rank must be an integer with 1 <= gated_rank <= min\(n_components - 1, d\) = 2"),
    ({"n_components": 1, "features": "gated"}, "features='gated' needs n_components >= 2"),
    ({"n_components": 1}, "has no contrasts: there are no features"),
])
def test_bad_options(kwargs, message):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=message):
        ssi.GaussianMixture(**kwargs).fit(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_x_pre_rejected_and_previous_fit_kept(clusters, bad):
    rep = _quiet_fit(ssi.GaussianMixture(3, random_state=0), clusters)
    before = rep.params_.copy()
    X = clusters.copy()
    X[11, 1] = bad
    with pytest.raises(ValueError, match=r"X_pre contains NaN or infinite values in 1 row\(s\) "
                                         r"\(first: \[11\]\)"):
        rep.fit(X)
    np.testing.assert_array_equal(rep.params_, before)


def test_degenerate_data_fails_with_advice():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]), 10, axis=0)
    with pytest.raises(ValueError, match="All 10 EM starts failed: .* needs at least d \\+ 1 "
                                         "distinct rows"):
        ssi.GaussianMixture(3, n_init=2, random_state=0).fit(X)


def test_degenerate_start_is_replaced():
    """Two duplicated far rows: a k-means++ start seeded there collapses; EM restarts."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [5.0, 0.0],
                   np.repeat([[2.5, 30.0]], 2, axis=0)])
    replaced = ssi.GaussianMixture(2, n_init=1, random_state=1).fit(X)
    assert replaced.n_failed_starts_ == 1
    clean = ssi.GaussianMixture(2, n_init=1, random_state=0).fit(X)
    assert clean.n_failed_starts_ == 0
    np.testing.assert_allclose(replaced.params_, clean.params_, atol=1e-8)


def test_unfitted_and_wrong_width(clusters):
    rep = ssi.GaussianMixture(2)
    with pytest.raises(ssi.NotFittedError, match=r"call \.fit\(X_pre\)"):
        rep.transform(clusters)
    with pytest.raises(ssi.NotFittedError):
        rep.n_features_out_
    rep.fit(clusters)
    with pytest.raises(ValueError, match="X has 3 columns but the representation was fitted "
                                         "on 2 raw features"):
        rep.transform(np.zeros((2, 3)))
