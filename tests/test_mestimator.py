"""The generic first stage ``MEstimatorRepresentation`` (issue 4, part 2).

Oracles:

* the built-in PCA (its closed-form eigen-perturbation influence, THEORY.md §4.1),
  re-expressed as (a) the estimating equations ``theta = (mu, u_l, lambda_l)`` with no
  vertical directions (sign mode) and (b) an O(k)-invariant loss in ``(mu, W)`` whose
  vertical directions are derived from ``act`` (rotation mode);
* brute-force Jacobians for the feature VJP;
* the contamination derivative of a refit, horizontally projected;
* the group action: invariant results must not move under ``act``.

Measured: PCA as estimating equations vs the built-in, influence 1e-14 and two-stage
covariance 6e-14 (complex-step Hessian); PCA as an invariant loss (complex-step score,
central differences of it for the Hessian) vs rotation-mode PCA, invariant SEs 7e-12;
without complex-step safety (nested central differences) 1e-7.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.representations.linearization import equilibration, horizontal_inverse
from ssl_inference.representations.numdiff import complex_step_works, jacobian
from ssl_inference.symmetry import Orthogonal, SignFlips

pytestmark = pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning")

P, K, M, N = 5, 2, 400, 200
SCALES = np.array([3.0, 2.0, 1.3, 0.8, 0.5])


def _problem(seed: int = 0, m: int = M, n: int = N):
    """Skewed x with distinct eigenvalues; y depends on x outside the top-2 subspace."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(P, P)))

    def draw(size):
        return ((rng.exponential(size=(size, P)) - 1.0) * SCALES) @ Q.T + 1.0

    X_pre, X_lab = draw(m), draw(n)
    z = rng.normal(size=n) + 0.5 * X_lab @ Q[:, 3]
    y = 1.0 + z + X_lab @ Q[:, 0] - 0.5 * X_lab @ Q[:, 1] + rng.normal(size=n)
    X_new, Z_new = draw(4), sm.add_constant(rng.normal(size=4), has_constant="add")
    return X_pre, X_lab, y, sm.add_constant(z), X_new, Z_new


# ------------------------------------------------------------- PCA as an M-estimator
def _pca_equations(X, t):
    """psi = (x - mu, (v v') u_l - lambda_l u_l, u_l'u_l - 1), theta = (mu, u_l, lambda_l)."""
    mu = t[:P]
    v = X - mu
    cols = [v]
    for l in range(K):
        off = P + l * (P + 1)
        u, lam = t[off:off + P], t[off + P]
        s = v @ u
        cols += [v * s[:, None] - lam * u, (u @ u - 1.0) + 0.0 * s[:, None]]
    return np.hstack(cols)


def _pca_loadings(t):
    return np.stack([t[P + l * (P + 1):P + l * (P + 1) + P] for l in range(K)])


def _pca_features(X, t):
    return (X - t[:P]) @ _pca_loadings(t).T


def _pca_flip(t, g):
    out = np.array(t)
    for l in range(K):
        out[P + l * (P + 1):P + l * (P + 1) + P] *= g[l]
    return out


def _pca_as_equations(pca: ssi.PCA, **kw) -> ssi.MEstimatorRepresentation:
    theta = np.concatenate([pca.mean_] + [np.append(pca.components_[l],
                                                    pca.explained_variance_[l])
                                          for l in range(K)])
    return ssi.MEstimatorRepresentation(
        estimating_function=_pca_equations, transform=_pca_features, params=theta,
        symmetry=SignFlips(K), act=_pca_flip, feature_prefix="pc", **kw)


MU_U = list(range(P)) + [P + l * (P + 1) + j for l in range(K) for j in range(P)]


@pytest.mark.parametrize("second_stage", ["nonrobust", "HC1"])
def test_pca_sign_mode_as_estimating_equations_reproduces_builtin(second_stage):
    X_pre, X_lab, y, exog, X_new, Z_new = _problem(1)
    pca = ssi.PCA(K).fit(X_pre)
    gen = _pca_as_equations(pca).fit(X_pre)
    assert gen.derivatives_ == {"estimating_function": "given", "hessian": "complex step",
                                "features": "complex step"}
    assert gen.vertical_.shape == (gen.params_.size, 0)
    IF_pca, IF_gen = pca.influence(X_pre), gen.influence(X_pre)
    # the generic (mu, u) block is the closed-form eigen-perturbation influence
    np.testing.assert_allclose(IF_gen[:, MU_U], IF_pca, rtol=0,
                               atol=1e-9 * np.abs(IF_pca).max())
    fits = [ssi.OLS(y, exog, representation=r, features=X_lab).fit(
        cov_kwds={"second_stage": second_stage}) for r in (pca, gen)]
    V_pca, V_gen = (np.asarray(f.cov_params()) for f in fits)
    np.testing.assert_allclose(V_gen, V_pca, rtol=1e-6, atol=0)
    se = [f.get_prediction(Z_new, features=X_new).se_mean for f in fits]
    np.testing.assert_allclose(se[1], se[0], rtol=1e-6)
    # not vacuous: the first stage moves the covariance
    assert np.max(np.abs(np.diag(V_pca) / np.diag(fits[0].cov_params_naive()) - 1)) > 0.05


def _rotation_loss(X, t):
    """``v'v - v'W'Wv + v'(W'W)^2 v``, v = x - mu: minimised at mu = mean, W'W = P_k / 2."""
    mu, W = t[:P], t[P:].reshape(K, P)
    v = X - mu
    Wv = v @ W.T
    return (v * v).sum(axis=1) - (Wv * Wv).sum(axis=1) + ((Wv @ W) ** 2).sum(axis=1)


def _rotation_features(X, t):
    return (X - t[:P]) @ t[P:].reshape(K, P).T


def _rotate(t, Q):
    return np.concatenate([t[:P], (Q @ t[P:].reshape(K, P)).ravel()])


def _pca_as_rotation_loss(pca, **kw) -> ssi.MEstimatorRepresentation:
    theta = np.concatenate([pca.mean_, pca.components_.ravel() / np.sqrt(2.0)])
    return ssi.MEstimatorRepresentation(
        loss=_rotation_loss, transform=_rotation_features, params=theta,
        symmetry=Orthogonal(K), act=_rotate, **kw)


def test_invariant_loss_with_vertical_from_act_reproduces_rotation_mode_pca():
    """O(k)-invariant loss, vertical directions derived from act: invariant results equal."""
    X_pre, X_lab, y, exog, X_new, Z_new = _problem(2)
    pca = ssi.PCA(K, symmetry="rotation").fit(X_pre)
    gen = _pca_as_rotation_loss(pca).fit(X_pre)
    assert gen.derivatives_["estimating_function"] == "complex step"
    assert gen.derivatives_["hessian"] == "central differences of a complex-step gradient"
    # vertical space = {(0, Omega W)}: one direction for k = 2, orthogonal to IF
    assert gen.vertical_.shape == (P + K * P, 1)
    IF = gen.influence(X_pre)
    assert np.abs(IF @ gen.vertical_).max() < 1e-10 * np.abs(IF).max()
    # the horizontal influence of W is that of the rotation-mode components / sqrt(2)
    np.testing.assert_allclose(IF[:, P:], pca.influence(X_pre)[:, P:] / np.sqrt(2.0),
                               rtol=0, atol=1e-7 * np.abs(IF).max())
    np.testing.assert_allclose(IF[:, :P], X_pre - pca.mean_, rtol=0, atol=1e-8)
    fits = [ssi.OLS(y, exog, representation=r, features=X_lab).fit() for r in (pca, gen)]
    np.testing.assert_allclose(np.asarray(fits[1].bse)[:2], np.asarray(fits[0].bse)[:2],
                               rtol=1e-6)
    se = [f.get_prediction(Z_new, features=X_new).se_mean for f in fits]
    np.testing.assert_allclose(se[1], se[0], rtol=1e-6)
    R = np.zeros((K, 4))
    R[:, 2:] = np.eye(K)
    stats = [float(np.asarray(f.wald_test(R, scalar=True).statistic)) for f in fits]
    assert stats[1] == pytest.approx(stats[0], rel=1e-6)


def test_invariant_results_unchanged_under_act():
    X_pre, X_lab, y, exog, X_new, Z_new = _problem(3)
    gen = _pca_as_rotation_loss(ssi.PCA(K, symmetry="rotation").fit(X_pre)).fit(X_pre)
    base = ssi.OLS(y, exog, representation=gen, features=X_lab).fit(
        cov_kwds={"second_stage": "HC0"})
    rng = np.random.default_rng(0)
    for _ in range(3):
        Q = Orthogonal(K).sample(rng)
        moved = gen.act(Q)
        np.testing.assert_allclose(moved.transform(X_lab), gen.transform(X_lab) @ Q.T,
                                   rtol=1e-12, atol=1e-12)
        res = ssi.OLS(y, exog, representation=moved, features=X_lab).fit(
            cov_kwds={"second_stage": "HC0"})
        np.testing.assert_allclose(np.asarray(res.bse)[:2], np.asarray(base.bse)[:2],
                                   rtol=1e-8)
        np.testing.assert_allclose(res.get_prediction(Z_new, features=X_new).se_mean,
                                   base.get_prediction(Z_new, features=X_new).se_mean,
                                   rtol=1e-8)
        # the transported influence is D IF, and equals a fresh linearisation at Q.theta
        refit = _pca_as_rotation_loss(ssi.PCA(K, symmetry="rotation").fit(X_pre))
        refit.params = moved.params_
        refit.fit(X_pre)
        np.testing.assert_allclose(moved.influence(X_pre[:50]), refit.influence(X_pre[:50]),
                                   rtol=0, atol=1e-7 * np.abs(refit.influence(X_pre)).max())
        # gauge-dependent coefficients do move
        assert np.max(np.abs(np.asarray(res.params)[2:] - np.asarray(base.params)[2:])) > 1e-3
    back, Q_hat = ssi.align(gen.act(Q), gen)
    np.testing.assert_allclose(back.params_, gen.params_, atol=1e-10)


def test_influence_is_contamination_derivative_horizontally():
    """``d theta(F_m + eps (delta_x - F_m)) / d eps``: refit the weighted loss, align the
    refit to the gauge, and keep the horizontal part."""
    X_pre, *_ = _problem(4, m=300)
    pca = ssi.PCA(K, symmetry="rotation").fit(X_pre)
    gen = _pca_as_rotation_loss(pca).fit(X_pre)
    m = X_pre.shape[0]
    rng = np.random.default_rng(9)
    points = np.vstack([X_pre[[3, 100]], pca.mean_ + rng.normal(size=(2, P)) * SCALES * 2])
    eps = 1e-5
    N_h = np.linalg.svd(gen.vertical_, full_matrices=True)[0][:, 1:]
    for x0 in points:
        thetas = []
        for e in (eps, -eps):
            Xa = np.vstack([X_pre, x0])
            w = np.append(np.full(m, (1 - e) / m), e)
            mu = w @ Xa
            V = Xa - mu
            C = (V * w[:, None]).T @ V
            _, E = np.linalg.eigh(C)
            W = E[:, ::-1][:, :K].T / np.sqrt(2.0)         # minimiser: W'W = P_k / 2
            Q = Orthogonal(K).align(W, gen.params_[P:].reshape(K, P))
            thetas.append(np.concatenate([mu, (Q @ W).ravel()]))
        fd = (thetas[0] - thetas[1]) / (2 * eps)
        fd_h = N_h @ (N_h.T @ fd)
        np.testing.assert_allclose(gen.influence(x0[None])[0], fd_h, rtol=0,
                                   atol=1e-5 * np.abs(fd_h).max())


def test_feature_vjp_matches_dense_jacobian():
    X_pre, X_lab, *_ = _problem(5)
    gen = _pca_as_rotation_loss(ssi.PCA(K, symmetry="rotation").fit(X_pre)).fit(X_pre)
    theta = gen.params_
    rng = np.random.default_rng(1)
    C = rng.normal(size=(len(X_lab), K, 3))
    J = np.stack([jacobian(lambda t: _rotation_features(x[None], t)[0], theta, "central")
                  for x in X_lab])                              # (n, k, q) brute force
    np.testing.assert_allclose(gen.feature_vjp(X_lab, C), np.einsum("nkq,nkr->qr", J, C),
                               rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(gen.feature_vjp(X_lab, C[:, :, 0], per_row=True),
                               np.einsum("nkq,nk->nq", J, C[:, :, 0]), rtol=1e-7, atol=1e-7)
    # an analytic Jacobian gives the same numbers
    def analytic(X, t):
        W = t[P:].reshape(K, P)
        out = np.zeros((len(X), K, t.size))
        out[:, :, :P] = -W
        for a in range(K):
            out[:, a, P + a * P:P + (a + 1) * P] = X - t[:P]
        return out
    gen2 = _pca_as_rotation_loss(ssi.PCA(K, symmetry="rotation").fit(X_pre),
                                 feature_jacobian=analytic).fit(X_pre)
    assert gen2.derivatives_["features"] == "analytic"
    np.testing.assert_allclose(gen2.feature_vjp(X_lab, C), gen.feature_vjp(X_lab, C),
                               rtol=1e-10, atol=1e-10)


def test_central_differences_fallback_when_not_complex_safe():
    X_pre, X_lab, y, exog, *_ = _problem(6)
    pca = ssi.PCA(K, symmetry="rotation").fit(X_pre)

    def real_only_loss(X, t):     # casts theta to float: the complex step would be lost
        return _rotation_loss(X, np.asarray(t, dtype=float))

    safe = _pca_as_rotation_loss(pca).fit(X_pre)
    assert not complex_step_works(lambda t: real_only_loss(X_pre[:5], t), safe.params_)
    assert complex_step_works(lambda t: _rotation_loss(X_pre[:5], t), safe.params_)
    unsafe = ssi.MEstimatorRepresentation(
        loss=real_only_loss, transform=_rotation_features, params=safe.params_,
        symmetry=Orthogonal(K), act=_rotate).fit(X_pre)
    assert unsafe.derivatives_["estimating_function"] == "central differences"
    assert unsafe.derivatives_["hessian"] == "central differences of central differences"
    bse = [np.asarray(ssi.OLS(y, exog, representation=r, features=X_lab).fit().bse)[:2]
           for r in (safe, unsafe)]
    np.testing.assert_allclose(bse[1], bse[0], rtol=1e-5)
    with pytest.raises(ValueError, match="not complex-step safe"):
        ssi.MEstimatorRepresentation(
            loss=real_only_loss, transform=_rotation_features, params=safe.params_,
            symmetry=Orthogonal(K), act=_rotate, numdiff="complex").fit(X_pre)


def _closed_form_pca_fit(X, start):
    """The user's own fitting routine: mean, top-k eigenvectors and eigenvalues."""
    mu = X.mean(axis=0)
    lam, E = np.linalg.eigh(np.cov(X.T, bias=True))
    return np.concatenate([mu] + [np.append(E[:, -1 - l], lam[-1 - l]) for l in range(K)])


def test_optimize_true_fits_from_a_start():
    X_pre, *_ = _problem(7, m=300)
    pca = ssi.PCA(K, symmetry="rotation").fit(X_pre)
    start = _pca_as_rotation_loss(pca).params
    start = start + np.random.default_rng(0).normal(scale=0.05, size=start.size)
    fitted = _pca_as_rotation_loss(pca, optimize=True)
    fitted.params = start
    fitted.fit(X_pre)
    W = fitted.params_[P:].reshape(K, P)
    np.testing.assert_allclose(W.T @ W, pca.components_.T @ pca.components_ / 2, atol=1e-6)
    np.testing.assert_allclose(fitted.params_[:P], pca.mean_, atol=1e-6)


def test_aligned_bootstrap_with_a_fitting_callable():
    """Refits land at arbitrary signs (the routine has no gauge); alignment fixes them, so
    the replicates are the built-in PCA's, up to the signs of the original fit."""
    X_pre, X_lab, y, exog, *_ = _problem(7, m=300, n=150)
    pca = ssi.PCA(K).fit(X_pre)
    # align on the loadings u_l, as the built-in PCA does (the default, the features of
    # 0 and +-e_j, weighs directions differently and can break a near-tie differently
    # in a replicate where the components swap)
    fitted = _pca_as_equations(pca, optimize=_closed_form_pca_fit,
                               alignment=lambda t: _pca_loadings(t)).fit(X_pre)
    signs = np.sign(fitted.transform(X_lab[:1])[0] / pca.transform(X_lab[:1])[0])
    model = ssi.OLS(y, exog, representation=fitted, features=X_lab)
    analytic = model.fit(cov_kwds={"second_stage": "HC0"})
    boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": 150, "seed": 1})
    builtin = ssi.OLS(y, exog, representation=pca, features=X_lab).fit(
        cov_type="bootstrap", cov_kwds={"reps": 150, "seed": 1})
    # the built-in PCA drops the replicates whose eigenvalues became nearly tied (its
    # own diagnostic); the user's routine has none, so all of its replicates are kept
    assert boot.degenerate_replicates.count == 0
    kept = np.setdiff1d(np.arange(150), builtin.degenerate_replicates.indices)
    assert builtin.degenerate_replicates.counts() == {
        "first stage: Eigenvalues # and # of the pre-training covariance are nearly tied":
            150 - kept.size}
    np.testing.assert_allclose(boot.bootstrap_params[kept],
                               builtin.bootstrap_params * np.r_[1.0, 1.0, signs],
                               rtol=1e-6, atol=1e-8)
    # 150 replicates: relative MC error of an SD ~ 6%; a 25% band on the intercept and
    # covariate (the naive SE of the intercept is more than 25% too small)
    assert np.all(np.abs(boot.bse[:2] / analytic.bse[:2] - 1) < 0.25), boot.bse / analytic.bse
    assert analytic.bse[0] > 1.25 * analytic.bse_naive[0]
    # without a fitting routine the bootstrap refit cannot refit, and says so
    frozen = _pca_as_equations(pca).fit(X_pre)
    with pytest.raises(ValueError, match="not a root of the mean estimating function"):
        ssi.OLS(y, exog, representation=frozen, features=X_lab).fit(
            cov_type="bootstrap", cov_kwds={"reps": 2, "seed": 0})


def test_estimating_function_root_finding():
    X_pre, *_ = _problem(8)
    pca = ssi.PCA(K).fit(X_pre)
    rep = _pca_as_equations(pca, optimize=True)
    rep.params = rep.params + 0.01
    rep.fit(X_pre)
    np.testing.assert_allclose(rep.params_[:P], pca.mean_, atol=1e-8)
    np.testing.assert_allclose(rep.params_[P:2 * P], pca.components_[0], atol=1e-7)


def test_horizontal_inverse_is_the_restricted_inverse():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(5, 2))
    B = rng.normal(size=(5, 5))
    Nh = np.linalg.svd(V)[0][:, 2:]
    H = Nh @ (B @ B.T)[:3, :3] @ Nh.T + 0.0                # symmetric, null space = span V
    Hinv, rcond = horizontal_inverse(H, V)
    np.testing.assert_allclose(Hinv, np.linalg.pinv(H), atol=1e-10)
    # the reciprocal condition is that of the equilibrated S H S on its horizontal space,
    # whose singular values are the non-zero eigenvalues of S H S
    S = np.diag(equilibration(H))
    assert np.abs(S @ np.abs(H) @ S).max(axis=0) == pytest.approx(np.ones(5), abs=1e-5)
    ev = np.sort(np.abs(np.linalg.eigvalsh(S @ H @ S)))[2:]
    assert rcond == pytest.approx(ev.min() / ev.max(), rel=1e-10)
    # so it does not depend on the units of the parameters (the unscaled ratio would)
    D = np.diag([1e-3, 1.0, 1e3, 1.0, 10.0])
    Hinv_D, rcond_D = horizontal_inverse(D @ H @ D, np.linalg.solve(D, V))
    assert rcond_D == pytest.approx(rcond, rel=1e-4)
    ev_D = np.sort(np.abs(np.linalg.eigvalsh(D @ H @ D)))[2:]
    assert ev_D.min() / ev_D.max() < 1e-3 * rcond
    # the inverse itself moves with the units only along the orbit (horizontality is
    # Euclidean in each parametrisation): H times the difference is zero
    assert np.abs(H @ (D @ Hinv_D @ D - Hinv) @ H).max() < 1e-8 * np.abs(H).max()
    with pytest.raises(ValueError, match="singular"):
        horizontal_inverse(H, V[:, :1])                    # one flat direction undeclared


# --------------------------------------------------------------------------- bad input
def _loc(**kw):
    defaults = dict(loss=lambda X, t: ((X - t) ** 2).sum(axis=1),
                    transform=lambda X, t: X - t)
    defaults.update(kw)
    return ssi.MEstimatorRepresentation(**defaults)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(loss=None), ValueError, "Give loss=.*, estimating_function=.*, or both"),
    (dict(transform=None), TypeError, "transform= must be a callable"),
    (dict(params=None), ValueError, "params= .* is required"),
    (dict(params=[[0.0, 0.0]]), ValueError, "finite 1-D array"),
    (dict(params=[0.0, np.nan]), ValueError, "finite 1-D array"),
    (dict(numdiff="forward"), ValueError, "numdiff must be"),
    (dict(optimize="yes"), TypeError, "optimize must be"),
    (dict(act=3), TypeError, "act= must be a callable"),
    (dict(estimating_function=3), TypeError, "estimating_function= must be a callable"),
    (dict(symmetry=SignFlips(3)), ValueError, "acting on the k = 2 features"),
    (dict(symmetry=Orthogonal(2)), ValueError, "give vertical="),
    (dict(transform=lambda X, t: (X - t)[:, 0]), ValueError, r"return an array \(n, k\)"),
    (dict(loss=lambda X, t: ((X - t) ** 2).sum()), ValueError, r"must return an array"),
])
def test_bad_construction_messages(kwargs, error, match):
    X = np.random.default_rng(0).normal(size=(50, 2))
    kwargs.setdefault("params", X.mean(axis=0))
    with pytest.raises(error, match=match):
        _loc(**kwargs).fit(X)


def test_fit_checks_catch_wrong_theta_and_wrong_symmetry():
    X = np.random.default_rng(0).normal(size=(200, 2)) + 1.0
    with pytest.raises(ValueError, match=r"not a root .* standard errors from 0"):
        _loc(params=X.mean(axis=0) + 0.5).fit(X)
    # a flat direction that the declared (trivial) symmetry does not explain
    with pytest.raises(ValueError, match="restricted to the horizontal space is singular"):
        ssi.MEstimatorRepresentation(
            loss=lambda X, t: (X[:, 0] - t[0] - t[1]) ** 2,
            transform=lambda X, t: X[:, :1] - t[0] - t[1], params=[X[:, 0].mean(), 0.0]
        ).fit(X)
    # a declared vertical direction along which the loss is not flat
    with pytest.raises(ValueError, match="not flat directions"):
        _loc(params=X.mean(axis=0), vertical=lambda t: np.array([[1.0], [0.0]])).fit(X)
    rep = _loc(params=X.mean(axis=0)).fit(X)
    assert rep.act(None) is not rep
    X_pre = _problem(0)[0]
    no_act = _pca_as_equations(ssi.PCA(K).fit(X_pre))
    no_act.act_on_params = None
    no_act.fit(X_pre)
    with pytest.raises(NotImplementedError, match="no act="):
        no_act.act(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="columns"):
        rep.transform(np.zeros((3, 5)))


def test_analytic_gradient_and_hessian_are_used():
    X = np.random.default_rng(0).normal(size=(100, 2))
    rep = _loc(estimating_function=lambda X, t: -2.0 * (X - t),
               hessian=lambda X, t: 2.0 * np.eye(2), params=X.mean(axis=0)).fit(X)
    assert rep.derivatives_ == {"estimating_function": "analytic gradient of the loss",
                                "hessian": "analytic", "features": "complex step"}
    np.testing.assert_allclose(rep.influence(X), X - X.mean(axis=0), atol=1e-12)


def test_clone_and_get_params_round_trip():
    X_pre = _problem(0)[0]
    rep = _pca_as_equations(ssi.PCA(K).fit(X_pre)).fit(X_pre)
    params = rep.get_params()
    assert params["transform"] is _pca_features and params["act"] is _pca_flip
    twin = rep.clone().fit(X_pre)
    np.testing.assert_array_equal(twin.influence(X_pre[:5]), rep.influence(X_pre[:5]))
    assert not hasattr(rep.clone(), "params_")
