"""Independent oracle: the two-stage covariance equals delicatessen's stacked M-estimator.

Both stages are written as ONE system of estimating equations, one column per unit:

* first stage, on the pre-training rows (THEORY.md §4.1), with ``v = x - mu``:
  ``(x - mu)`` (p eqs); for each component l: ``(v v') u_l - lambda_l u_l`` (p eqs) and
  ``(u_l'u_l - 1)`` (1 eq);
* second stage, on the labeled rows: ``wt * w (y - w'beta)`` with
  ``w = [covariates, U'(x - mu)]`` (OLS: wt = 1).

A unit that belongs to one stage only has zeros in the other stage's rows; with
overlap a labeled row that is also a pre-training row is ONE unit carrying both sets
of equations. delicatessen's empirical sandwich ``B^-1 M B^-T`` (no small-sample
correction) of that system is the finite-sample Murphy-Topel covariance with the
second stage in HC0 form, so it must match ``res.cov_params()`` with
``second_stage="HC0"`` essentially to rounding when the bread is differentiated exactly.

The eigenvalues lambda_l are nuisance parameters of the oracle; their equations have
zero derivative in beta, so only the beta block is compared (plus the (mu, U) block
against ``rep.influence``).

Measured (seeds below, m=300, n=150, p=5, k=2; max |diff| / sqrt(V_ii V_jj) over the beta
block): deriv_method="exact" (forward-mode autodiff) 2.5e-15 to 5e-15 in all four cases
(OLS/WLS x independent/overlap); the default deriv_method="approx" (SciPy forward
differences, dx=1e-9) only 1e-7 to 2.5e-7; "capprox" (central, dx=1e-6) 2.6e-10 to 3.6e-10.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning")

P, K, M, N = 5, 2, 300, 150
N_OVERLAP = 60
SCALES = np.array([3.0, 2.0, 1.3, 0.8, 0.5])
SHIFT = np.array([1.0, -1.0, 0.5, 0.0, 2.0])


def _make_problem(seed: int, *, overlap: bool, weighted: bool):
    """Skewed (centred exponential) x with distinct eigenvalues; heteroskedastic y."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(P, P)))

    def draw(size):
        return ((rng.exponential(size=(size, P)) - 1.0) * SCALES) @ Q.T + SHIFT

    X_pre = draw(M)
    X_lab = draw(N)
    pretrain_index = None
    if overlap:
        pretrain_index = np.full(N, -1)
        pretrain_index[:N_OVERLAP] = rng.choice(M, size=N_OVERLAP, replace=False)
        X_lab[:N_OVERLAP] = X_pre[pretrain_index[:N_OVERLAP]]
    z = rng.normal(size=N)
    y = (1.0 + 0.5 * z + X_lab[:, 0] - 0.5 * X_lab[:, 1]
         + 0.3 * X_lab[:, 0] ** 2 + (1.0 + 0.5 * np.abs(z)) * rng.normal(size=N))
    exog = sm.add_constant(z)
    weights = rng.uniform(0.5, 2.0, size=N) if weighted else None
    return X_pre, X_lab, y, exog, weights, pretrain_index


def _fit_package(X_pre, X_lab, y, exog, weights, pretrain_index):
    rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    if weights is None:
        model = ssi.OLS(y, exog, representation=rep, features=X_lab,
                        pretrain_index=pretrain_index)
    else:
        model = ssi.WLS(y, exog, weights=weights, representation=rep, features=X_lab,
                        pretrain_index=pretrain_index)
    return rep, model.fit(cov_kwds={"second_stage": "HC0"})


def _unit_arrays(X_pre, X_lab, y, exog, weights, pretrain_index):
    """Lay both samples out as units (columns of the stacked equations)."""
    m, n = X_pre.shape[0], X_lab.shape[0]
    pidx = np.full(n, -1) if pretrain_index is None else np.asarray(pretrain_index)
    lab_only = np.flatnonzero(pidx < 0)
    n_units = m + lab_only.size
    unit_of_lab = np.empty(n, dtype=int)
    unit_of_lab[pidx >= 0] = pidx[pidx >= 0]
    unit_of_lab[lab_only] = m + np.arange(lab_only.size)

    Xf = np.zeros((n_units, P))
    Xf[:m] = X_pre
    is_pre = np.zeros(n_units)
    is_pre[:m] = 1.0
    Xl = np.zeros((n_units, P))
    Xl[unit_of_lab] = X_lab
    Z = np.zeros((n_units, exog.shape[1]))
    Z[unit_of_lab] = exog
    Y = np.zeros(n_units)
    Y[unit_of_lab] = y
    wt = np.zeros(n_units)  # zero weight = zero-padded second-stage equations
    wt[unit_of_lab] = 1.0 if weights is None else weights
    return Xf, is_pre, Xl, Z, Y, wt


N_FIRST = P + K * (P + 1)  # first-stage parameters of the oracle: mu, (u_l, lambda_l)


def pca_equations(theta, Xf, is_pre, Xl):
    """First-stage rows on the pre-training units and the features ``U'(x - mu)`` of the
    labeled units, for the first ``N_FIRST`` entries of ``theta``."""
    mu = theta[:P]
    v = Xf - mu
    vl = Xl - mu
    rows = [v[:, c] * is_pre for c in range(P)]
    feats = []
    for l in range(K):
        off = P + l * (P + 1)
        u, lam = theta[off:off + P], theta[off + P]
        s = (v * u).sum(axis=1)
        rows += [(v[:, c] * s - lam * u[c]) * is_pre for c in range(P)]
        rows.append(((u * u).sum() - 1.0) * is_pre)
        feats.append((vl * u).sum(axis=1))
    return rows, feats


def pca_init(rep) -> list:
    """Oracle start at OUR first-stage estimates (same sign gauge)."""
    init = list(rep.mean_)
    for l in range(K):
        init += list(rep.components_[l]) + [rep.explained_variance_[l]]
    return init


def _stacked_psi(Xf, is_pre, Xl, Z, Y, wt):
    n_cov = Z.shape[1]

    def psi(theta):
        theta = np.asarray(theta)
        rows, feats = pca_equations(theta, Xf, is_pre, Xl)
        beta = theta[N_FIRST:]
        w_cols = [Z[:, c] for c in range(n_cov)] + feats
        fitted = 0.0
        for c, col in enumerate(w_cols):
            fitted = fitted + col * beta[c]
        wr = wt * (Y - fitted)
        rows += [col * wr for col in w_cols]
        return np.vstack(rows)

    return psi


def _delicatessen(problem, rep, res, deriv_method, **estimate_kwargs):
    psi = _stacked_psi(*_unit_arrays(*problem))
    init = pca_init(rep) + list(np.asarray(res.params))
    est = MEstimator(psi, init=np.array(init))
    est.estimate(deriv_method=deriv_method, **estimate_kwargs)
    return est, np.array(init)


def _max_rel(A, B):
    """Max |A - B| entrywise, relative to sqrt(B_ii B_jj) (correlation scale)."""
    A, B = np.asarray(A), np.asarray(B)
    scale = np.sqrt(np.outer(np.diag(B), np.diag(B)))
    return float(np.max(np.abs(A - B) / scale))


CASES = [("independent", False, False), ("overlap", True, False),
         ("independent-wls", False, True), ("overlap-wls", True, True)]


@pytest.mark.parametrize("name, overlap, weighted", CASES, ids=[c[0] for c in CASES])
def test_two_stage_cov_matches_delicatessen_exact(name, overlap, weighted):
    problem = _make_problem(20240 + len(name), overlap=overlap, weighted=weighted)
    rep, res = _fit_package(*problem)
    est, init = _delicatessen(problem, rep, res, "exact")
    d = len(np.asarray(res.params))

    # the root finder stays at our estimates (same root, same gauge)
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-10)

    V_pkg = np.asarray(res.cov_params())
    V_deli = est.variance[-d:, -d:]
    assert _max_rel(V_deli, V_pkg) < 1e-10

    # the comparison is not vacuous: the first stage moves the pc coefficients' variance
    naive = np.asarray(res.cov_params_naive())
    assert np.max(np.abs(np.diag(V_pkg)[-K:] / np.diag(naive)[-K:] - 1)) > 1e-2
    if overlap:
        # ... and so does the overlap cross term (dropping it would be caught)
        dec = res.variance_decomposition()
        assert np.max(np.abs(dec["overlap"] / dec["total"])) > 1e-3


@pytest.mark.parametrize("overlap", [False, True], ids=["independent", "overlap"])
def test_two_stage_cov_matches_delicatessen_approx_bread(overlap):
    """delicatessen's default forward-difference bread: agreement ~1e-7 (measured)."""
    problem = _make_problem(777, overlap=overlap, weighted=False)
    rep, res = _fit_package(*problem)
    est, _ = _delicatessen(problem, rep, res, "approx")
    d = len(np.asarray(res.params))
    assert _max_rel(est.variance[-d:, -d:], np.asarray(res.cov_params())) < 1e-6


def test_first_stage_block_matches_influence():
    """The (mu, U) block of the stacked sandwich is (1/m^2) sum_i IF(x_i) IF(x_i)'."""
    problem = _make_problem(31, overlap=False, weighted=False)
    rep, res = _fit_package(*problem)
    est, _ = _delicatessen(problem, rep, res, "exact")
    theta_pos = list(range(P))
    for l in range(K):
        off = P + l * (P + 1)
        theta_pos += list(range(off, off + P))  # drop the lambda_l nuisance
    V_theta = est.variance[np.ix_(theta_pos, theta_pos)]
    IF = rep.influence(problem[0])
    V_pkg = IF.T @ IF / rep.nobs_ ** 2
    assert _max_rel(V_theta, V_pkg) < 1e-10
