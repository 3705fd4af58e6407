"""Gated mixture features: the basis B of the coordinates is a convention (its column
signs; within a tied eigenspace, the basis itself), so the group is S_K x {+-1}^r
(``gated_symmetry="sign"``) or S_K x O(r) (``"rotation"``, only the span identified).

Oracles written here, independent of the package's feature code: the gated features
from the test-side responsibilities (``tests.test_mixture``) and an eigendecomposition,
with the basis at a perturbed ``theta`` sign-matched (sign mode) or Procrustes-aligned
(rotation mode: the horizontal derivative) to the fitted one, differentiated by central
differences.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.datasets import GaussianMixtureData
from ssl_inference.exceptions import IdentificationWarning, NonInvariantHypothesisError
from ssl_inference.symmetry import (Orthogonal, PermutationContrasts, PermutationProduct,
                                    ProductElement, SignFlips)

from .test_mixture import _quiet_fit, _responsibilities

# three components in R^3 whose centred means have distinct scatter eigenvalues:
# r = 2 < d, so B has a within-span rotation (the gauge direction of rotation mode)
CENTERS3 = np.array([[-3.0, 0.0, 0.5], [0.5, 2.0, -0.5], [3.5, -0.5, 0.0]])


def _clusters3(rng, sizes, scale=1.0):
    """Three 3-D clusters (one skewed: centred exponential)."""
    a = rng.normal(size=(sizes[0], 3)) @ np.diag([1.0, 0.8, 0.9]) + scale * CENTERS3[0]
    b = rng.normal(size=(sizes[1], 3)) * 0.9 + scale * CENTERS3[1]
    c = (rng.exponential(size=(sizes[2], 3)) - 1.0) + scale * CENTERS3[2]
    return np.vstack([a, b, c])


@pytest.fixture(scope="module")
def pretrain3():
    return _clusters3(np.random.default_rng(0), (200, 160, 140))


def _fit3(X, mode, coding="contrast", cov_type="full"):
    return _quiet_fit(ssi.GaussianMixture(3, covariance_type=cov_type, features="gated",
                                          gated_symmetry=mode, coding=coding,
                                          random_state=0), X)


# --------------------------------------------------------------------------- the group
@pytest.mark.parametrize("coordinates", [SignFlips(3), Orthogonal(3), Orthogonal(1)])
@pytest.mark.parametrize("contrasts", [True, False])
def test_product_group_is_an_orthogonal_representation(coordinates, contrasts):
    G = PermutationProduct(4, coordinates, contrasts=contrasts)
    r = coordinates.k
    assert G.k == (4 * r + 3 if contrasts else 4 * (r + 1))
    assert G.vertical_dim == coordinates.vertical_dim
    rng = np.random.default_rng(1)
    for _ in range(5):
        g, h = G.sample(rng), G.sample(rng)
        Rg, Rh = G.rho(g), G.rho(h)
        np.testing.assert_allclose(Rg @ Rg.T, np.eye(G.k), atol=1e-12)
        # homomorphism: applying g, then h is the element (g.labels[h.labels], Q_h Q_g)
        labels = g.labels[h.labels]
        coords = (coordinates.rho(h.coordinates) @ coordinates.rho(g.coordinates)
                  if isinstance(coordinates, Orthogonal) else g.coordinates * h.coordinates)
        np.testing.assert_allclose(G.rho((labels, coords)), Rh @ Rg, atol=1e-12)
    np.testing.assert_allclose(G.rho(G.identity()), np.eye(G.k), atol=1e-15)
    # a bare permutation relabels and leaves the coordinates alone
    np.testing.assert_allclose(G.rho(np.array([1, 0, 3, 2])),
                               G.rho(ProductElement(np.array([1, 0, 3, 2]),
                                                    coordinates.identity())))
    # the Lie algebra: antisymmetric, one direction per coordinate plane, on every block
    algebra = G.lie_algebra()
    assert len(algebra) == coordinates.vertical_dim
    for A in algebra:
        np.testing.assert_allclose(A, -A.T)
        assert np.count_nonzero(A) == 2 * 4
    names = [f"f{i}" for i in range(G.k)]
    for label, R in G.invariant_hypotheses(names):
        assert G.is_invariant(R, rep_cols=list(range(G.k))), label


def test_product_group_names_and_hand_worked_invariance():
    sign = PermutationProduct(4, SignFlips(3))
    rot = PermutationProduct(4, Orthogonal(3))
    assert sign.symbol == "S_4 x {+-1}^3" and rot.symbol == "S_4 x O(3)"
    assert str(sign) == "label permutations x coordinate sign flips S_4 x {+-1}^3"
    assert str(rot) == "label permutations x coordinate rotations S_4 x O(3)"
    assert sign != rot and sign == PermutationProduct(4, SignFlips(3))

    def row(*pairs, d=16):
        R = np.zeros(d)
        for (block, j), c in pairs:
            R[1 + block * 3 + j] = c
        return R[None, :]

    cols = list(range(1, 16))           # [const, gmm0_c0..gmm3_c2, gmm_h1..gmm_h3]
    c0_sum = row(*[((b, 0), 1.0) for b in range(4)])
    cases = [
        (c0_sum, None, True, False),                    # the user's repro
        (c0_sum, [1.0], False, False),                  # a sign flip negates it
        (c0_sum - row(*[((b, 1), 1.0) for b in range(4)]), None, False, False),
        (row(((0, 0), 1.0)), None, False, False),       # one block's coordinate
        (row(((0, 0), 1.0), ((0, 1), -1.0)), None, False, False),
        (np.vstack([row(((b, 0), 1.0)) for b in range(4)]), None, True, False),
        (np.eye(16)[1:13], None, True, True),           # all coordinates = 0
        (np.eye(16)[13:], None, True, True),            # equal levels
        (np.eye(16)[[0]], [2.0], True, True),           # the intercept
    ]
    for R, r, sign_ok, rot_ok in cases:
        assert sign.is_invariant(R, r, rep_cols=cols) is sign_ok
        assert rot.is_invariant(R, r, rep_cols=cols) is rot_ok


@pytest.mark.parametrize("coordinates", [SignFlips(2), Orthogonal(2)])
def test_product_group_alignment_recovers_the_element(coordinates):
    G = PermutationProduct(3, coordinates)
    rng = np.random.default_rng(2)
    means, basis = rng.normal(size=(3, 5)), np.linalg.qr(rng.normal(size=(5, 2)))[0]
    A = np.vstack([means, basis.T])
    for _ in range(5):
        g = G.sample(rng)
        moved = np.vstack([means[g.labels], coordinates.rho(g.coordinates) @ basis.T])
        back = G.align(moved, A)
        np.testing.assert_array_equal(g.labels[back.labels], np.arange(3))
        np.testing.assert_allclose(
            coordinates.rho(back.coordinates) @ coordinates.rho(g.coordinates), np.eye(2),
            atol=1e-10)
    with pytest.raises(ValueError, match=r"labels a permutation of range\(3\)"):
        G.rho((np.array([0, 0, 1]), coordinates.identity()))
    with pytest.raises(TypeError, match="SignFlips or an Orthogonal"):
        PermutationProduct(3, PermutationContrasts(3))


# ----------------------------------------------------------------- the representation
@pytest.mark.parametrize("mode", ["sign", "rotation"])
@pytest.mark.parametrize("coding", ["contrast", "full"])
def test_act_moves_features_by_rho_and_align_undoes_it(pretrain3, mode, coding):
    rep = _fit3(pretrain3, mode, coding)
    coordinates = SignFlips(2) if mode == "sign" else Orthogonal(2)
    assert rep.symmetry_ == PermutationProduct(3, coordinates,
                                               contrasts=coding == "contrast")
    X = pretrain3[::7]
    phi = rep.transform(X)
    rng = np.random.default_rng(3)
    for _ in range(3):
        g = rep.symmetry_.sample(rng)
        moved = rep.act(g)
        np.testing.assert_allclose(moved.transform(X), phi @ rep.symmetry_.rho(g).T,
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(moved.means_, rep.means_[g.labels], rtol=1e-12)
        Q = coordinates.rho(g.coordinates)
        np.testing.assert_allclose(moved.gated_basis_, rep.gated_basis_ @ Q.T, atol=1e-12)
        # a second action composes (R <- Q R), and alignment undoes both
        twice = moved.act(g)
        np.testing.assert_allclose(twice.transform(X),
                                   phi @ (rep.symmetry_.rho(g) @ rep.symmetry_.rho(g)).T,
                                   rtol=1e-10, atol=1e-12)
        back, found = ssi.align(twice, rep)
        np.testing.assert_allclose(back.transform(X), phi, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(back.params_, rep.params_, rtol=1e-12, atol=1e-12)
        # the VJP moves with the features: (d phi_moved / d theta_moved)' c equals
        # A (d phi / d theta)' rho(g)' c, with A the relabelling of theta
        C = rng.normal(size=(X.shape[0], rep.n_features_out_, 2))
        got = moved.feature_vjp(X, C)
        base = rep.feature_vjp(X, np.einsum("ji,njr->nir", rep.symmetry_.rho(g), C))
        lay = rep._layout
        for i, old in enumerate(g.labels):
            np.testing.assert_allclose(got[lay.mean_slice(i)], base[lay.mean_slice(old)],
                                       rtol=1e-8, atol=1e-10 * np.abs(base).max())


def _oracle_features(theta, X, K, r, cov_type, B_ref, mode):
    """Contrast-coded gated features at ``theta``, basis matched to ``B_ref``."""
    d = X.shape[1]
    tau = _responsibilities(theta, X, K, cov_type)
    means = theta[K - 1:K - 1 + K * d].reshape(K, d)
    centred = means - means.mean(axis=0)
    E = np.linalg.eigh(centred.T @ centred / K)[1][:, ::-1][:, :r]
    if mode == "sign":                                 # sign matching
        E = E * np.where((E * B_ref).sum(axis=0) < 0, -1.0, 1.0)
    else:                                              # Procrustes: min ||E Q - B_ref||
        U, _, Vt = np.linalg.svd(E.T @ B_ref)
        E = E @ U @ Vt
    coords = tau[:, :, None] * ((X[:, None, :] - means[None]) @ E)
    return np.hstack([coords.reshape(len(X), -1),
                      tau @ PermutationContrasts.contrast_matrix(K)])


@pytest.mark.parametrize("cov_type", ["full", "spherical"])
def test_vjp_is_the_derivative_of_the_aligned_features(pretrain3, cov_type):
    """Sign mode: the derivative of the sign-matched features (all eigen-pairs).
    Rotation mode: the derivative after Procrustes alignment of the basis, which removes
    the within-span (vertical) part to first order: the horizontal derivative."""
    X = _clusters3(np.random.default_rng(4), (3, 3, 3), scale=0.8)
    rng = np.random.default_rng(5)
    vjps = {}
    for mode in ("sign", "rotation"):
        rep = _fit3(pretrain3, mode, cov_type=cov_type)
        theta, B = rep.params_, rep.gated_basis_
        np.testing.assert_allclose(_oracle_features(theta, X, 3, 2, cov_type, B, mode),
                                   rep.transform(X), rtol=1e-10, atol=1e-13)
        h = 1e-6
        J = np.array([(_oracle_features(theta + h * e, X, 3, 2, cov_type, B, mode)
                       - _oracle_features(theta - h * e, X, 3, 2, cov_type, B, mode)) / (2 * h)
                      for e in np.eye(theta.size)])                          # (q, n, k)
        C = rng.normal(size=(X.shape[0], rep.n_features_out_, 3))
        expected = np.einsum("qnk,nkr->qr", J, C)
        got = rep.feature_vjp(X, C)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7 * np.abs(expected).max())
        per_row = rep.feature_vjp(X, C[:, :, 0], per_row=True)
        np.testing.assert_allclose(per_row, np.einsum("qnk,nk->nq", J, C[:, :, 0]), rtol=0,
                                   atol=1e-7 * np.abs(expected).max())
        vjps[mode] = got
    # the within-span terms are not negligible here (else the check would be vacuous)
    assert np.abs(vjps["sign"] - vjps["rotation"]).max() > 1e-2 * np.abs(vjps["sign"]).max()


def _labeled3(seed, n):
    rng = np.random.default_rng(seed)
    X = _clusters3(rng, (n // 3, n // 3, n - 2 * (n // 3)), scale=0.6)
    z = 0.5 * X[:, 0] - 0.3 * X[:, 2] + rng.normal(size=n)
    y = 1.0 + 0.5 * z + 0.8 * np.tanh(X[:, 1]) + 0.4 * X[:, 0] + rng.normal(size=n)
    return X, z, y


@pytest.mark.parametrize("model, cov", [("ols", "nonrobust"), ("ols", "HC0"),
                                        ("logit", "HC0")])
def test_sign_and_rotation_agree_on_invariant_results(pretrain3, model, cov):
    """Well-separated eigenvalues: both modes are valid, and results invariant under
    S_K x O(r) agree to rounding (the within-span terms move the second-stage fit along
    the orbit, so they cancel exactly for invariant functionals)."""
    X, z, y = _labeled3(6, 300)
    exog = sm.add_constant(z)
    X_new = _clusters3(np.random.default_rng(8), (2, 2, 1), scale=0.6)
    exog_new = sm.add_constant(np.linspace(-1, 1, 5), has_constant="add")
    fits = {}
    for mode in ("sign", "rotation"):
        rep = _fit3(pretrain3, mode)
        if model == "ols":
            res = ssi.OLS(y, exog, representation=rep, features=X).fit(
                cov_kwds={"second_stage": cov})
            pred = res.get_prediction(exog_new, features=X_new)
            pred = (pred.predicted_mean, pred.se_mean)
        else:
            res = ssi.Logit((y > np.median(y)).astype(float), exog, representation=rep,
                            features=X).fit(disp=0, cov_kwds={"second_stage": cov})
            pred = res.get_prediction(exog_new, features=X_new, which="linear")
            pred = (pred.predicted, pred.se)
        fits[mode] = res, pred
    (s, pred_s), (r, pred_r) = fits["sign"], fits["rotation"]
    np.testing.assert_array_equal(np.asarray(s.params), np.asarray(r.params))
    bse_s, bse_r = np.asarray(s.bse), np.asarray(r.bse)
    # intercept, covariate and the level contrasts gmm_h1, gmm_h2 (invariant under O(r))
    np.testing.assert_allclose(bse_r[[0, 1, -2, -1]], bse_s[[0, 1, -2, -1]], rtol=1e-10)
    np.testing.assert_allclose(pred_r[0], pred_s[0], rtol=1e-12)
    np.testing.assert_allclose(pred_r[1], pred_s[1], rtol=1e-10)
    assert r.wald_test("gmm_h1 = gmm_h2 = 0", scalar=True).statistic == pytest.approx(
        s.wald_test("gmm_h1 = gmm_h2 = 0", scalar=True).statistic, rel=1e-10)
    # the first stage matters for these (otherwise agreement would be trivial)
    invariant = [0, 1, -2, -1]
    assert np.max(bse_s[invariant] / np.asarray(s.bse_naive)[invariant]) > 1.02
    # the individual coordinates are gauge-dependent: their SEs differ between the modes
    coords = np.asarray(s.model.rep_cols)[:6]
    assert np.max(np.abs(bse_r[coords] / bse_s[coords] - 1)) > 1e-3
    # so does the joint test of the coordinate blocks in finite samples (sign mode adds
    # the variance of the within-span mixing, proportional to the coefficients)
    block = " = ".join(s.model.feature_names[:6]) + " = 0"
    ws = s.wald_test(block, scalar=True).statistic
    wr = r.wald_test(block, scalar=True).statistic
    assert np.isfinite(ws) and np.isfinite(wr) and ws != pytest.approx(wr, rel=1e-10)


def test_invariant_results_do_not_depend_on_the_gauge(pretrain3):
    """Moving the fit along its S_3 x O(2) orbit changes no invariant result."""
    X, z, y = _labeled3(7, 240)
    exog = sm.add_constant(z)
    rep = _fit3(pretrain3, "rotation")
    res = ssi.OLS(y, exog, representation=rep, features=X).fit()
    g = rep.symmetry_.sample(np.random.default_rng(9))
    res_g = ssi.OLS(y, exog, representation=rep.act(g), features=X).fit()
    np.testing.assert_allclose(np.asarray(res_g.bse)[:2], np.asarray(res.bse)[:2],
                               rtol=1e-8)
    feats = np.asarray(res.model.rep_cols)
    np.testing.assert_allclose(np.asarray(res_g.params)[feats],
                               rep.symmetry_.rho(g) @ np.asarray(res.params)[feats],
                               rtol=1e-8, atol=1e-12)
    a, b = res.invariant_tests(), res_g.invariant_tests()
    assert list(a.index) == list(b.index) and len(a) == 4
    np.testing.assert_allclose(b["statistic"], a["statistic"], rtol=1e-8)


# ------------------------------------------------------------ the paper's design (tied)
@pytest.fixture(scope="module")
def paper_design():
    model = GaussianMixtureData()
    rng = np.random.default_rng(0)
    X_pre = model.pretrain(1000, rng)
    sample = model.labeled(500, rng)
    return X_pre, sample


def _paper_fit(X_pre, sample, mode):
    rep = ssi.GaussianMixture(4, covariance_type="spherical", features="gated",
                              gated_symmetry=mode, random_state=0).fit(X_pre)
    return ssi.OLS(sample.y, np.ones((len(sample.y), 1)), representation=rep,
                   features=sample.X).fit()


def test_paper_design_rotation_mode_refuses_basis_dependent_hypotheses(paper_design):
    X_pre, sample = paper_design
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentificationWarning)   # no near-tie warning
        rot = _paper_fit(X_pre, sample, "rotation")
    assert rot.model.representation.symmetry_.symbol == "S_4 x O(3)"
    repro = "gmm0_c0 + gmm1_c0 + gmm2_c0 + gmm3_c0 = 0"
    with pytest.raises(NonInvariantHypothesisError,
                       match=r"label permutations x coordinate rotations S_4 x O\(3\)"):
        rot.t_test(repro)
    for hypothesis in ("gmm0_c0 = 0", "gmm0_c0 = gmm0_c1",
                       "gmm0_c0 = gmm1_c0 = gmm2_c0 = gmm3_c0 = 0"):
        with pytest.raises(NonInvariantHypothesisError):
            rot.wald_test(hypothesis)
    assert rot.t_test(repro, allow_gauge=True).gauge_dependent
    # invariant hypotheses are accepted
    table = rot.invariant_tests()
    assert list(table.index)[2:] == ["gmm_h1 = gmm_h2 = gmm_h3 = 0",
                                     "equal coordinate effects of the 4 components"]
    assert np.isfinite(table["statistic"]).all()
    levels = rot.wald_test("gmm_h1 = gmm_h2 = gmm_h3 = 0", scalar=True)
    assert levels.statistic == pytest.approx(table["statistic"].iloc[2], rel=1e-12)
    rot.t_test("const = 0")


def test_paper_design_sign_mode_warns_and_refuses_sign_dependent_hypotheses(paper_design):
    X_pre, sample = paper_design
    with pytest.warns(IdentificationWarning,
                      match=r"inside the top-r eigenspace.*gated_symmetry='rotation'"):
        sign = _paper_fit(X_pre, sample, "sign")
    assert sign.model.representation.symmetry_.symbol == "S_4 x {+-1}^3"
    # invariant under relabelling and sign flips: accepted
    sign.t_test("gmm0_c0 + gmm1_c0 + gmm2_c0 + gmm3_c0 = 0")
    sign.wald_test("gmm0_c1 = gmm1_c1 = gmm2_c1 = gmm3_c1 = 0")
    # invariant under relabelling, not under a sign flip of B's first column: refused
    for hypothesis in ("gmm0_c0 + gmm1_c0 + gmm2_c0 + gmm3_c0 = 1",
                       "gmm0_c0 + gmm1_c0 + gmm2_c0 + gmm3_c0 = "
                       "gmm0_c1 + gmm1_c1 + gmm2_c1 + gmm3_c1",
                       "gmm0_c0 = 0"):
        with pytest.raises(NonInvariantHypothesisError, match=r"S_4 x \{\+-1\}\^3"):
            sign.t_test(hypothesis)
    # invariant results agree with rotation mode even at the near tie
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentificationWarning)
        rot = _paper_fit(X_pre, sample, "rotation")
    np.testing.assert_allclose(np.asarray(rot.bse)[0], np.asarray(sign.bse)[0], rtol=1e-9)
    p_s = sign.get_prediction(np.ones((4, 1)), features=sample.X[:4])
    p_r = rot.get_prediction(np.ones((4, 1)), features=sample.X[:4])
    np.testing.assert_allclose(p_r.se_mean, p_s.se_mean, rtol=1e-9)


def test_full_rank_projection():
    """r = d: B = I is not estimated, so sign mode keeps S_K; rotation mode asks for
    O(d) on the coordinates, and there is no basis derivative either way."""
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(150, 2)) + c for c in ([0, 0], [5, 0], [0, 5])])
    sign = _quiet_fit(ssi.GaussianMixture(3, features="gated", random_state=0), X)
    rot = _quiet_fit(ssi.GaussianMixture(3, features="gated", gated_symmetry="rotation",
                                         random_state=0), X)
    assert sign.symmetry_ == PermutationContrasts(3, 2)
    assert rot.symmetry_ == PermutationProduct(3, Orthogonal(2))
    np.testing.assert_array_equal(rot.transform(X), sign.transform(X))
    C = rng.normal(size=(10, sign.n_features_out_, 2))
    np.testing.assert_array_equal(rot.feature_vjp(X[:10], C), sign.feature_vjp(X[:10], C))


@pytest.mark.parametrize("kwargs, message", [
    ({"gated_symmetry": "rotation"}, "gated_symmetry applies to features='gated' only"),
    ({"gated_symmetry": "subspace", "features": "gated"},
     "gated_symmetry must be 'sign'.*or 'rotation'"),
    ({"gated_symmetry": None}, "gated_symmetry must be 'sign'"),
])
def test_bad_gated_symmetry(kwargs, message):
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match=message):
        ssi.GaussianMixture(3, **kwargs).fit(X)


def test_get_params_and_clone_keep_the_mode():
    rep = ssi.GaussianMixture(3, features="gated", gated_symmetry="rotation")
    assert rep.get_params()["gated_symmetry"] == "rotation"
    assert rep.clone().gated_symmetry == "rotation"


def test_exact_tie_inside_the_span_only_blocks_sign_mode(pretrain3):
    """An exact tie of the top two eigenvalues leaves B without a derivative in sign mode
    (the error points to rotation mode); rotation mode does not need that gap."""
    X = pretrain3[:5]
    for mode in ("sign", "rotation"):
        rep = _fit3(pretrain3, mode)
        E, lam = rep._frame
        rep._frame = (E, np.r_[lam[0], lam[0], lam[2:]])      # force the tie
        C = np.ones((5, rep.n_features_out_, 1))
        if mode == "sign":
            with pytest.raises(ValueError, match="exactly tied.*gated_symmetry='rotation'"):
                rep.feature_vjp(X, C)
        else:
            assert np.isfinite(rep.feature_vjp(X, C)).all()
