"""Independent oracle for PCA's rotation (subspace) mode: delicatessen, two ways.

In rotation mode (``PCA(k, symmetry="rotation")``) only the principal SUBSPACE is the
target: its influence keeps the out-of-span terms ``j >= k`` only (THEORY.md §4.1), so
the individual components have no covariance of their own. Two stacked-M-estimator
oracles check what the mode reports; each writes the first stage in an identified
parametrisation, differentiated exactly (``deriv_method="exact"``, delicatessen's
forward-mode autodiff, through every equation below).

1. **Grassmann chart (the genuine check of the whole covariance).** The subspace is
   parametrised by ``A`` ((p - k) x k) around the reported basis ``U0``:
   ``Y(A) = U0 + U0perp A``, whose orthogonal complement is spanned by
   ``Yperp(A) = U0perp - U0 A'``. ``span Y(A)`` is an invariant subspace of the
   pre-training covariance iff ``Yperp' Sigma Y = 0``, so the per-row equations are
   ``x - mu`` (p) and ``Yperp'(x - mu)(x - mu)' Y`` ((p - k) k: no eigenvalue, no
   eigenvector and no gap inside the span enters; the root is ``A = 0``). The features
   use the orthonormal basis ``U(A) = Y (I + A'A)^{-1/2}`` (closed-form 2 x 2 inverse
   square root), ``phi = U(A)'(x - mu)``. This chart is a *horizontal section* of the
   ``O(k)`` orbit: ``dU = U0perp dA`` at ``A = 0``, orthogonal to the span, which is
   exactly the gauge the package reports in rotation mode (its basis moves only out of
   the span). So the WHOLE coefficient block, the representation block included, and
   the joint Wald statistic of the representation block must agree, and the
   ``(mu, U)`` block must be ``(1/m^2) sum IF IF'`` with the package's rotation-mode
   influence. The chart needs only the gap at ``k``: it also covers the near tie
   inside the span where sign mode is unidentified (second case).

2. **Sign-mode eigenvector equations** (``tests/test_oracle_delicatessen.py``,
   imported): with distinct eigenvalues the components are identified, and that
   oracle's covariance includes the within-span mixing. Every invariant functional
   (covariate and intercept coefficients, predictions at new raw points) is constant
   along the ``O(k)`` orbit *for the sample objective itself* (rotating ``U`` rotates
   the second-stage fit, Lemma 4.1), so its gradient annihilates the within-span
   directions and its variance is the same whether or not they are kept: the sign-mode
   oracle must reproduce the rotation-mode variances of those functionals to rounding.
   This check does not share the rotation-mode code path (the dropped ``j < k``
   terms) at all. The representation block itself is gauge dependent and must differ
   (asserted, so the distinction is visible).

Second stage: OLS normal equations, the package with ``second_stage="HC0"``
(delicatessen's sandwich has no small-sample factor). Prediction variances from
delicatessen's ``delta_method`` (exact derivative) on the oracle's covariance.

Measured (p = 5, k = 2, m = 300, n = 150; max |diff| / sqrt(V_ii V_jj) unless stated):
Grassmann oracle vs rotation mode: beta block 2e-15 to 6e-15 (independent, overlap,
near-tied, and a fit moved along its O(2) orbit by ``rep.act`` before the second stage), (mu, U) block 2e-15 to 1.4e-14, prediction SEs relative 2e-16 to
3e-15, joint Wald statistic relative 6e-16 to 3e-15. Sign-mode oracle vs rotation mode:
intercept/covariate block 2e-15 to 5e-15, prediction SEs relative 7e-16, while the
representation block differs by 0.018-0.030 and its Wald statistic by 0.6-1.7%. The
first stage raises the intercept variance 1.5-1.8-fold and the feature variances by
1.5-28% here (so the agreement is not a naive-covariance coincidence).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.exceptions import IdentificationWarning

from .test_oracle_delicatessen import _delicatessen, _max_rel, _unit_arrays

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402
from delicatessen.sandwich import delta_method  # noqa: E402

P, K, M, N = 5, 2, 300, 150   # the imported sign-mode oracle is written for P = 5, K = 2
N_OVERLAP = 60
DISTINCT = np.array([3.0, 2.0, 1.3, 0.8, 0.5])
NEAR_TIE = np.array([2.0, 1.96, 1.0, 0.7, 0.5])   # top two tied within sampling error
X_NEW = np.array([[1.0, 0.5, -1.0, 2.0, 0.0], [-2.0, 1.0, 0.5, 0.0, 3.0],
                  [0.0, 0.0, 0.0, 0.0, 0.0]])
Z_NEW = np.array([0.3, -1.2, 2.0])


def _make_problem(seed: int, scales: np.ndarray, *, overlap: bool):
    """Skewed x (centred exponential, rotated and shifted); heteroskedastic y that also
    depends on the first out-of-span direction (so the subspace's sampling error matters)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(P, P)))

    def draw(size):
        return ((rng.exponential(size=(size, P)) - 1.0) * scales) @ Q.T + 1.0

    X_pre, X_lab = draw(M), draw(N)
    pretrain_index = None
    if overlap:
        pretrain_index = np.full(N, -1)
        pretrain_index[:N_OVERLAP] = rng.choice(M, size=N_OVERLAP, replace=False)
        X_lab[:N_OVERLAP] = X_pre[pretrain_index[:N_OVERLAP]]
    z = rng.normal(size=N)
    s = (X_lab - 1.0) @ Q      # principal scores; s2 lies outside the span (k = 2)
    y = (1.0 + 0.5 * z + s[:, 0] - 0.5 * s[:, 1] + 1.5 * s[:, 2] + 0.3 * X_lab[:, 2] ** 2
         + (1.0 + 0.5 * np.abs(z)) * rng.normal(size=N))
    return X_pre, X_lab, y, sm.add_constant(z), None, pretrain_index


def _fit(problem, symmetry: str, rotate: float = 0.0):
    """Package fit; ``rotate``: move the representation along its O(2) orbit first."""
    X_pre, X_lab, y, exog, _, pretrain_index = problem
    rep = ssi.PCA(K, symmetry=symmetry).fit(X_pre)
    if rotate:
        c, s = np.cos(rotate), np.sin(rotate)
        rep = rep.act(np.array([[c, -s], [s, c]]))
    res = ssi.OLS(y, exog, representation=rep, features=X_lab,
                  pretrain_index=pretrain_index).fit(cov_kwds={"second_stage": "HC0"})
    return rep, res


# ------------------------------------------------------------- the Grassmann chart
def _inv_sqrt_2x2(G):
    """``G^{-1/2}`` of a 2 x 2 SPD matrix (entries may be autodiff pairs):
    ``sqrt(G) = (G + s I) / t`` with ``s = sqrt(det G)``, ``t = sqrt(tr G + 2 s)``."""
    a, b, c, d = G[0][0], G[0][1], G[1][0], G[1][1]
    s = np.sqrt(a * d - b * c)
    t = np.sqrt(a + d + 2.0 * s)
    a_, d_ = a + s, d + s
    det = a_ * d_ - b * c
    return [[t * d_ / det, -t * b / det], [-t * c / det, t * a_ / det]]


def _complement(U0):
    """An orthonormal basis of the orthogonal complement of ``span U0`` (test-side)."""
    return np.linalg.svd(np.eye(U0.shape[0]) - U0 @ U0.T)[0][:, :U0.shape[0] - U0.shape[1]]


def _grassmann_psi(U0, Xf, is_pre, Xl, Z, Y, wt):
    """Stacked equations ``[mu, A, beta]`` (module docstring, oracle 1)."""
    U0perp = _complement(U0)
    n_a = (P - K) * K

    def basis(theta):
        A = np.asarray(theta[P:P + n_a]).reshape(P - K, K)
        Ymat = U0 + U0perp @ A
        Yperp = U0perp - U0 @ A.T
        G = np.eye(K) + A.T @ A
        return Ymat, Yperp, Ymat @ np.array(_inv_sqrt_2x2(G))

    def psi(theta):
        theta = np.asarray(theta)
        mu, beta = theta[:P], theta[P + n_a:]
        Ymat, Yperp, U = basis(theta)
        v = Xf - mu
        s_in, s_out = v @ Ymat, v @ Yperp
        rows = [v[:, c] * is_pre for c in range(P)]
        rows += [s_out[:, j] * s_in[:, l] * is_pre for j in range(P - K) for l in range(K)]
        W = np.hstack([Z, (Xl - mu) @ U])
        resid = wt * (Y - W @ beta)
        rows += [W[:, c] * resid for c in range(W.shape[1])]
        return np.vstack(rows)

    def predict(theta, exog_new, X_new):
        """Predictions ``[exog_new, U(A)'(x_new - mu)] beta`` (for the delta method)."""
        theta = np.asarray(theta)
        W = np.hstack([exog_new, (X_new - theta[:P]) @ basis(theta)[2]])
        return W @ theta[P + n_a:]

    return psi, predict


def _grassmann_oracle(problem, rep, res):
    U0 = rep.components_.T
    psi, predict = _grassmann_psi(U0, *_unit_arrays(*problem))
    init = np.concatenate([rep.mean_, np.zeros((P - K) * K), np.asarray(res.params)])
    est = MEstimator(psi, init=init)
    est.estimate(deriv_method="exact")
    return est, init, predict, _complement(U0)


def _prediction(res, exog_new):
    pred = res.get_prediction(exog_new, features=X_NEW)
    return pred.predicted_mean, pred.se_mean


# name, eigenvalue scales, overlap, angle of an O(2) move of the fit before the 2nd stage
GRASSMANN_CASES = [("distinct", DISTINCT, False, 0.0), ("distinct-overlap", DISTINCT, True, 0.0),
                   ("near-tie", NEAR_TIE, False, 0.0), ("rotated-gauge", DISTINCT, False, 0.7)]


@pytest.mark.parametrize("name, scales, overlap, angle", GRASSMANN_CASES,
                         ids=[c[0] for c in GRASSMANN_CASES])
def test_rotation_mode_matches_grassmann_oracle(name, scales, overlap, angle):
    """``rotated-gauge``: the fit moved by a rotation (``rep.act``) reports another basis
    of the same span; the chart is then based at that basis, and the package's
    covariance in the moved gauge must match it as well."""
    problem = _make_problem(11 + len(name), scales, overlap=overlap)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentificationWarning)   # rotation mode: no warning
        rep, res = _fit(problem, "rotation", rotate=angle)
    est, init, predict, U0perp = _grassmann_oracle(problem, rep, res)
    n_first = P + (P - K) * K

    # the subspace equations hold at the package's estimates (root A = 0, same beta)
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-10)

    # the whole coefficient block, representation coefficients included
    V_pkg = np.asarray(res.cov_params())
    V_beta = est.variance[n_first:, n_first:]
    assert _max_rel(V_beta, V_pkg) < 1e-10

    # (mu, U) block: the chart's dU = U0perp dA reproduces the rotation-mode influence
    J = np.zeros((P + K * P, n_first))
    J[:P, :P] = np.eye(P)
    for l in range(K):                      # u_l = U0perp A[:, l]; A stored row-major
        J[P + l * P:P + (l + 1) * P, P + l:n_first:K] = U0perp
    IF = rep.influence(problem[0])
    V_theta = J @ est.variance[:n_first, :n_first] @ J.T
    assert _max_rel(V_theta, IF.T @ IF / M ** 2) < 1e-10

    # predictions at new raw points: both the features and beta move with theta
    exog_new = sm.add_constant(Z_NEW, has_constant="add")
    mean, se = _prediction(res, exog_new)
    np.testing.assert_allclose(predict(est.theta, exog_new, X_NEW), mean, rtol=1e-12)
    V_pred = delta_method(est.theta, lambda t: predict(t, exog_new, X_NEW), est.variance,
                          deriv_method="exact")
    np.testing.assert_allclose(np.sqrt(np.diag(V_pred)), se, rtol=1e-10)

    # joint Wald statistic of the representation block (invariant under O(k))
    b_rep = np.asarray(res.params)[-K:]
    wald_oracle = b_rep @ np.linalg.solve(V_beta[-K:, -K:], b_rep)
    wald = res.wald_test("pc0 = pc1 = 0", scalar=True, use_f=False).statistic
    assert float(wald) == pytest.approx(wald_oracle, rel=1e-10)

    # not vacuous: the first stage moves the intercept's variance a lot (through mu)
    # and the representation block's visibly (through the subspace)
    ratio = np.diag(V_pkg) / np.diag(np.asarray(res.cov_params_naive()))
    assert ratio[0] > 1.1 and np.max(ratio[-K:]) > 1.005
    if overlap:
        dec = res.variance_decomposition()
        assert np.max(np.abs(dec["overlap"] / dec["total"])) > 1e-3


def test_near_tie_is_what_sign_mode_cannot_identify():
    """The near-tie case of the Grassmann test is a genuine rotation-mode case: sign mode
    warns there (its components are not identified)."""
    problem = _make_problem(11 + len("near-tie"), NEAR_TIE, overlap=False)
    with pytest.warns(IdentificationWarning, match="nearly tied"):
        ssi.PCA(K, symmetry="sign").fit(problem[0])


# ------------------------------------------------- sign-mode eigenvector equations
def _sign_predict(theta, exog_new):
    """Predictions from the sign-mode oracle's layout ``[mu, (u_l, lambda_l), beta]``."""
    theta = np.asarray(theta)
    mu = theta[:P]
    U = np.column_stack([theta[P + l * (P + 1):P + l * (P + 1) + P] for l in range(K)])
    W = np.hstack([exog_new, (X_NEW - mu) @ U])
    return W @ theta[P + K * (P + 1):]


@pytest.mark.parametrize("overlap", [False, True], ids=["independent", "overlap"])
def test_invariant_functionals_match_sign_mode_oracle(overlap):
    problem = _make_problem(23, DISTINCT, overlap=overlap)
    rep_sign, res_sign = _fit(problem, "sign")
    rep_rot, res_rot = _fit(problem, "rotation")
    np.testing.assert_array_equal(np.asarray(res_rot.params), np.asarray(res_sign.params))
    est, init = _delicatessen(problem, rep_sign, res_sign, "exact")
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-10)
    d = len(np.asarray(res_rot.params))
    V_sign = est.variance[-d:, -d:]
    V_rot = np.asarray(res_rot.cov_params())

    # intercept and covariate: invariant, so the within-span terms contribute nothing
    inv = [0, 1]
    assert _max_rel(V_sign[np.ix_(inv, inv)], V_rot[np.ix_(inv, inv)]) < 1e-10
    # predictions at new raw points
    exog_new = sm.add_constant(Z_NEW, has_constant="add")
    mean, se = _prediction(res_rot, exog_new)
    np.testing.assert_allclose(_sign_predict(est.theta, exog_new), mean, rtol=1e-12)
    V_pred = delta_method(est.theta, lambda t: _sign_predict(t, exog_new), est.variance,
                          deriv_method="exact")
    np.testing.assert_allclose(np.sqrt(np.diag(V_pred)), se, rtol=1e-10)

    # the representation block is gauge dependent: sign mode adds the within-span
    # mixing, so it (and the block's Wald statistic) differs visibly
    rep_block = np.arange(d - K, d)
    assert _max_rel(V_sign[np.ix_(rep_block, rep_block)],
                    V_rot[np.ix_(rep_block, rep_block)]) > 1e-2
    b_rep = np.asarray(res_rot.params)[-K:]
    wald_sign = b_rep @ np.linalg.solve(V_sign[-K:, -K:], b_rep)
    wald_rot = float(res_rot.wald_test("pc0 = pc1 = 0", scalar=True, use_f=False).statistic)
    assert abs(wald_sign / wald_rot - 1) > 1e-3
    # the invariant SEs carry a visible first-stage part (the agreement is not trivial)
    naive = np.asarray(res_rot.bse_naive)
    assert np.max(np.asarray(res_rot.bse)[inv] / naive[inv]) > 1.01
