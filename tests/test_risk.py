"""Unit and exactness tests of ssl_inference.risk (issue 6: downstream test-risk asymptotics).

Oracles: simulation of the weighted chi-square law (1e6 draws), exact chi-square laws,
closed forms evaluated independently of the plug-in code, brute-force Monte Carlo of
the conditional risk over label noise, and "population designs": equal-weight point
sets whose empirical moments equal the Gaussian ones exactly (every monomial in which
each coordinate has degree <= 5), so the plug-in computed on them IS the population
quantity and must equal the closed forms to rounding.
"""
from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import ssl_inference as ssi
from ssl_inference.risk import (PopulationMoments, RiskAsymptotics, WeightedChiSquare,
                                affine_feature_map,
                                conditional_risk, factor_law, pca_gaussian_law,
                                plugin_risk_weights, spectral_diagonal_law)


# --------------------------------------------------------------------------- helpers
def gaussian_design(p: int) -> np.ndarray:
    """6^p equal-weight points with the N(0, I_p) moments of every coordinate degree <= 5.

    Per coordinate the values {-sqrt3, 0, 0, 0, 0, sqrt3} have moments 0, 1, 0, 3, 0 of
    orders 1-5 (those of N(0, 1)); the product set makes coordinates independent.
    """
    nodes = np.array([-np.sqrt(3.0), 0.0, 0.0, 0.0, 0.0, np.sqrt(3.0)])
    return np.array(list(itertools.product(nodes, repeat=p)))


def gauge(E: np.ndarray) -> np.ndarray:
    pivot = np.argmax(np.abs(E), axis=0)
    return E * np.sign(E[pivot, np.arange(E.shape[1])])


def labeled_design(p: int) -> np.ndarray:
    """2p points with mean 0 and identity covariance exactly."""
    return np.vstack([np.eye(p), -np.eye(p)]) * np.sqrt(p)


def dof_factor(ra: RiskAsymptotics) -> float:
    """G_hat uses 1/(n - d_eff); the population design needs 1/n."""
    return (ra.nobs - ra.d_eff) / ra.nobs


# ------------------------------------------------------------ WeightedChiSquare
WEIGHT_SETS = [
    ([1.0, 0.01], 0.0),
    ([5.0, 1.0, 0.3, 0.3, 0.05], 2.0),
    ([0.5, 0.5, 0.5, 0.5], 0.0),
    ([3.0, -1.0, 0.5], 1.0),
]


@pytest.mark.parametrize("weights, shift", WEIGHT_SETS)
def test_cdf_matches_one_million_draws(weights, shift):
    law = WeightedChiSquare(weights, shift)
    draws = np.sort(law.rvs(1_000_000, random_state=2026))
    x = np.quantile(draws, np.linspace(0.0005, 0.9995, 250))
    empirical = np.searchsorted(draws, x, side="right") / draws.size
    sup = np.abs(law.cdf(x) - empirical).max()
    # DKW: P(sup > 2e-3) <= 2 exp(-2 * 1e6 * 4e-6) = 7e-4 for a correct cdf
    assert sup < 2e-3, sup
    assert abs(draws.mean() - law.mean) < 5 * law.std / 1000
    assert abs(draws.var() / law.var - 1) < 0.02


@pytest.mark.parametrize("r", [2, 3, 7, 30])
def test_equal_weights_are_chi_square(r):
    law = WeightedChiSquare(np.full(r, 2.0), shift=1.0)
    x = 1.0 + 2.0 * np.linspace(0.01, 4 * r, 60)
    exact = stats.chi2(r, loc=1.0, scale=2.0)
    np.testing.assert_allclose(law.cdf(x), exact.cdf(x), atol=1e-9)
    np.testing.assert_allclose(law.sf(x), exact.sf(x), atol=1e-9)
    np.testing.assert_allclose(law.pdf(x), exact.pdf(x), atol=1e-9)


@pytest.mark.parametrize("weights, shift", WEIGHT_SETS + [([2.0], 0.5), ([-1.5], 0.0)])
def test_ppf_cdf_round_trip(weights, shift):
    law = WeightedChiSquare(weights, shift)
    q = np.array([0.001, 0.05, 0.3, 0.5, 0.77, 0.95, 0.999])
    x = law.ppf(q)
    assert np.all(np.diff(x) > 0)
    np.testing.assert_allclose(law.cdf(x), q, atol=1e-8)


def test_pdf_integrates_to_cdf_increments():
    law = WeightedChiSquare([2.0, 1.0, 0.25], shift=0.5)
    from scipy import integrate
    a, b = 1.0, 6.0
    mass = integrate.quad(lambda v: float(law.pdf(v)), a, b)[0]
    assert abs(mass - (law.cdf(b) - law.cdf(a))) < 1e-7


def test_point_mass_when_all_weights_are_zero():
    law = WeightedChiSquare([0.0, 0.0], shift=4.0)
    assert law.is_degenerate and law.mean == 4.0 and law.var == 0.0
    np.testing.assert_array_equal(law.cdf([3.999, 4.0, 5.0]), [0.0, 1.0, 1.0])
    assert law.ppf(0.3) == 4.0 and law.pdf(4.5) == 0.0
    np.testing.assert_array_equal(law.rvs(5, random_state=0), np.full(5, 4.0))


def test_scalar_and_array_shapes():
    law = WeightedChiSquare([1.0, 2.0])
    assert isinstance(law.cdf(1.0), float)
    assert law.cdf(np.ones((2, 3))).shape == (2, 3)
    assert law.rvs((4, 2), random_state=1).shape == (4, 2)
    assert np.isnan(law.cdf(np.nan))


def test_bad_weights_raise():
    with pytest.raises(ValueError, match="finite"):
        WeightedChiSquare([1.0, np.inf])


# ------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("k, d, expected, digits",
                         [(2, 4, 39.1, 0.06), (2, 10, 82.3, 0.05), (5, 20, 975.0, 0.5)])
def test_spectral_paper_examples(k, d, expected, digits):
    """THEORY.md §6: E||L(Z)||^2 = 39.1, 82.3, 975 (the exact value at (2, 4) is
    39.0451, which THEORY rounds to 39.1)."""
    law = spectral_diagonal_law(np.ones(d), 1.0 / np.arange(1, d + 1), np.ones(k))
    assert abs(law.mean - expected) < digits
    assert law.weights.size == d - k


def test_spectral_example_exact_weights():
    law = spectral_diagonal_law(np.ones(4), 1.0 / np.arange(1, 5), np.ones(2))
    # s_1 = (3.25 / (2/3)^2 + 1.25 / (1/6)^2) / 2, s_2 = (3.25 / (3/4)^2 + 1.25 / (1/4)^2) / 2
    np.testing.assert_allclose(law.weights, [(7.3125 + 45.0) / 2, (52.0 / 9 + 20.0) / 2],
                               rtol=1e-14)


def test_factor_law_is_the_pca_law_of_its_eigenstructure():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(7, 3)) * [2.5, 1.5, 0.8]
    beta = np.array([1.0, -0.5, 0.3])
    U1, sv, V1t = np.linalg.svd(A, full_matrices=False)
    D = sv ** 2
    gamma = np.sqrt(D) / (1 + D) * (V1t @ beta)
    lam = np.concatenate([1 + D, np.full(4, 1.0 - 1e-12 * np.arange(1, 5))])
    pca = pca_gaussian_law(lam, gamma)
    fac = factor_law(A, beta)
    np.testing.assert_allclose(pca.weights, fac.weights, rtol=1e-9)
    assert np.ptp(fac.weights) == 0 and fac.weights.size == 4


def test_closed_forms_validate_inputs():
    with pytest.raises(ValueError, match="eigengap"):
        pca_gaussian_law([1.0, 2.0, 0.5], [1.0])
    with pytest.raises(ValueError, match="c_i <= a_i"):
        spectral_diagonal_law([1.0, 1.0, 1.0], [2.0, 0.5, 0.1], [1.0])
    with pytest.raises(ValueError, match="eigengap"):
        spectral_diagonal_law(np.ones(3), [0.5, 0.9, 0.1], [1.0])
    with pytest.raises(ValueError, match="full column rank"):
        factor_law(np.zeros((4, 2)), [1.0, 1.0])


# ----------------------------------------------- plug-in = closed form, exactly
EIGENVALUES = np.array([6.0, 3.0, 1.5, 0.8, 0.4])
DOWN_VARIANCES = np.array([1.0, 2.0, 0.7, 1.3, 0.5])


def _population_pca_fit(symmetry):
    p, k = EIGENVALUES.size, 2
    Q = gauge(np.linalg.qr(np.random.default_rng(3).normal(size=(p, p)))[0])
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    X_pre = (gaussian_design(p) * np.sqrt(EIGENVALUES)) @ Q.T + shift
    rep = ssi.PCA(k, symmetry=symmetry).fit(X_pre)
    X = (labeled_design(p) * np.sqrt(DOWN_VARIANCES)) @ Q.T + shift
    beta = np.array([1.0, -0.5])
    y = 0.3 + (X - shift) @ Q[:, :k] @ beta  # f* exactly: beta_hat = beta*
    return ssi.OLS(y, np.ones((len(y), 1)), representation=rep, features=X).fit(), beta


@pytest.mark.parametrize("symmetry", ["sign", "rotation"])
def test_plugin_equals_pca_closed_form_at_the_population(symmetry):
    res, beta = _population_pca_fit(symmetry)
    np.testing.assert_allclose(res.params[1:], beta if symmetry == "sign" else res.params[1:],
                               atol=1e-12)
    ra = res.risk_asymptotics()
    closed = pca_gaussian_law(EIGENVALUES, beta, downstream_variances=DOWN_VARIANCES)
    np.testing.assert_allclose(ra.kappa * dof_factor(ra), closed.weights, rtol=1e-10)
    # the closed form with the pre-training variances instead would not match
    wrong = pca_gaussian_law(EIGENVALUES, beta)
    assert np.abs(ra.kappa * dof_factor(ra) - wrong.weights).max() > 0.1


def test_plugin_equals_factor_closed_form_with_ppca_first_stage():
    d, k = 5, 2
    rng = np.random.default_rng(5)
    A = rng.normal(size=(d, k)) * [2.0, 1.2]
    Sigma = A @ A.T + np.eye(d)
    ev, E = np.linalg.eigh(Sigma)
    X_pre = (gaussian_design(d) * np.sqrt(ev)) @ E.T
    rep = ssi.FactorModel(k, noise="isotropic").fit(X_pre)
    X = (labeled_design(d) * np.sqrt(ev)) @ E.T
    beta = np.array([1.0, -0.7])
    y = X @ np.linalg.solve(Sigma, A @ beta)  # f*(x) = beta'A'(I + AA')^-1 x
    res = ssi.OLS(y, np.ones((len(y), 1)), representation=rep, features=X).fit()
    ra = res.risk_asymptotics()
    np.testing.assert_allclose(ra.kappa * dof_factor(ra), factor_law(A, beta).weights,
                               rtol=1e-6)
    # the paper's printed Corollary 6.4 weight (no 1/D_i factor) is different here
    sv, V1t = np.linalg.svd(A, full_matrices=False)[1:]
    printed = np.sum((V1t @ beta) ** 2 / (1 + sv ** 2))
    assert abs(printed - factor_law(A, beta).weights[0]) > 0.1


# ------------------------------------------------------- plug-in properties
@pytest.fixture(scope="module")
def pca_fit():
    rng = np.random.default_rng(11)
    scales = np.array([3.0, 2.0, 1.2, 0.7, 0.4])
    X_pre = rng.standard_t(8, size=(1500, 5)) * scales
    X = rng.standard_t(8, size=(400, 5)) * scales
    z = rng.normal(size=400)
    y = 1 + X[:, 0] - X[:, 1] + 0.5 * z + rng.normal(size=400)
    exog = sm.add_constant(z)
    return X_pre, X, y, exog


def test_plugin_is_the_same_in_both_pca_modes_and_any_gauge(pca_fit):
    X_pre, X, y, exog = pca_fit
    kappas = []
    c, s = np.cos(0.7), np.sin(0.7)
    elements = {"sign": [np.array([1.0, 1.0]), np.array([-1.0, 1.0])],
                "rotation": [np.eye(2), np.array([[c, -s], [s, c]])]}
    for symmetry in ("sign", "rotation"):
        rep = ssi.PCA(2, symmetry=symmetry).fit(X_pre)
        for g in elements[symmetry]:
            moved = rep.act(g)
            res = ssi.OLS(y, exog, representation=moved, features=X).fit()
            kappas.append(res.risk_asymptotics().kappa)
    for kappa in kappas[1:]:
        np.testing.assert_allclose(kappa, kappas[0], rtol=1e-8, atol=1e-12)


def test_plugin_matches_a_direct_q_by_q_computation(pca_fit):
    """kappa = eig(V^1/2 G V^1/2) with V and G formed explicitly (small q)."""
    X_pre, X, y, exog = pca_fit
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X).fit()
    ra = res.risk_asymptotics()
    W = np.asarray(res.model.exog)
    beta_rep = np.asarray(res.params)[res.model.rep_cols]
    D = rep.feature_vjp(X, np.tile(beta_rep, (len(X), 1)), per_row=True)
    D_res = D - W @ np.linalg.lstsq(W, D, rcond=None)[0]
    G = D_res.T @ D_res / (len(X) - W.shape[1])
    IF = rep.influence(X_pre)
    V = IF.T @ IF / len(X_pre)
    evals, evecs = np.linalg.eigh(V)
    root = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    direct = np.sort(np.linalg.eigvalsh(root @ G @ root))[::-1][:ra.kappa.size]
    np.testing.assert_allclose(ra.kappa, direct, rtol=1e-7, atol=1e-10 * direct.max())
    assert ra.kappa.size == 3  # rank of D_res: p - k raw directions outside the span


def test_wls_weights_define_the_weighted_risk(pca_fit):
    X_pre, X, y, exog = pca_fit
    rep = ssi.PCA(2).fit(X_pre)
    ols = ssi.OLS(y, exog, representation=rep, features=X).fit().risk_asymptotics()
    wls = ssi.WLS(y, exog, weights=np.full(len(y), 2.0), representation=rep,
                  features=X).fit().risk_asymptotics()
    np.testing.assert_allclose(wls.kappa, 2 * ols.kappa, rtol=1e-9)
    assert wls.sigma2 == pytest.approx(2 * ols.sigma2)
    unequal = ssi.WLS(y, exog, weights=np.linspace(0.5, 2, len(y)), representation=rep,
                      features=X).fit().risk_asymptotics()
    assert np.abs(unequal.kappa - ols.kappa).max() > 1e-3


def test_singleton_pretrain_clusters_change_nothing(pca_fit):
    X_pre, X, y, exog = pca_fit
    rep = ssi.PCA(2).fit(X_pre)
    model = ssi.OLS(y, exog, representation=rep, features=X)
    plain = model.fit().risk_asymptotics()
    clustered = model.fit(cov_kwds={"pretrain_groups": np.arange(len(X_pre))}
                          ).risk_asymptotics()
    np.testing.assert_allclose(clustered.kappa, plain.kappa, rtol=1e-10)
    paired = model.fit(cov_kwds={"pretrain_groups": np.arange(len(X_pre)) // 2}
                       ).risk_asymptotics()
    assert np.abs(paired.kappa - plain.kappa).max() > 1e-6


def test_plugin_function_on_arrays_equals_results_method(pca_fit):
    X_pre, X, y, exog = pca_fit
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X).fit()
    kappa = plugin_risk_weights(rep, X, np.asarray(res.model.exog), np.asarray(res.params),
                                res.model.rep_cols)
    np.testing.assert_allclose(kappa, res.risk_asymptotics().kappa, rtol=1e-12)


# ------------------------------------------------------------- RiskAsymptotics
def test_results_attributes_and_law(pca_fit):
    X_pre, X, y, exog = pca_fit
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X).fit()
    ra = res.risk_asymptotics()
    assert ra.d_eff == 4 and ra.nobs == 400 and ra.nobs_pretrain == 1500
    assert ra.alpha == pytest.approx(1500 / 400)
    assert ra.sigma2 == pytest.approx(res.scale)
    assert ra.d_base == 2 + 5  # intercept, z and the 5 raw inputs
    law = ra.law
    assert law.shift == pytest.approx(ra.sigma2 * 4)
    np.testing.assert_allclose(law.weights, ra.kappa / ra.alpha)
    assert ra.mean == pytest.approx(ra.sigma2 * 4 + ra.kappa.sum() / ra.alpha)
    assert ra.var == pytest.approx(2 * np.sum((ra.kappa / ra.alpha) ** 2))
    assert ra.quantile(0.9, excess=True) == pytest.approx(ra.quantile(0.9) / 400, rel=1e-9)
    x = ra.quantile(0.7)
    assert ra.cdf(x / 400, excess=True) == pytest.approx(0.7, abs=1e-8)
    parts = ra.decomposition()
    assert parts.loc["total", "excess_risk"] == pytest.approx(ra.mean / 400)
    assert parts.loc["fine_tuning", "scaled"] == pytest.approx(ra.sigma2 * 4)
    assert parts["share"].iloc[:2].sum() == pytest.approx(1.0)
    assert set(ra.summary_frame().index) >= {"median", "q90", "pretraining_share"}


def _known(kappa=(2.0, 1.0), sigma2=1.0, d_eff=3, n=100, m=200, d_base=None):
    return RiskAsymptotics(WeightedChiSquare(kappa), sigma2=sigma2, d_eff=d_eff, nobs=n,
                           nobs_pretrain=m, d_base=d_base)


def test_crossover_alpha_cases():
    ra = _known(d_base=6)
    assert ra.crossover_alpha() == pytest.approx(3.0 / (1.0 * 3))
    assert ra.crossover_alpha(d_base=4) == pytest.approx(3.0)
    # at alpha_0 the limit means tie
    alpha0 = ra.crossover_alpha(d_base=8)
    tied = _known(m=int(round(alpha0 * 1000)), n=1000)
    assert tied.mean == pytest.approx(1.0 * 8, rel=1e-3)
    assert ra.crossover_alpha(d_base=3) == np.inf
    assert ra.crossover_alpha(d_base=2) == np.inf
    assert _known(kappa=[0.0, 0.0]).crossover_alpha(d_base=5) == 0.0
    assert _known(sigma2=0.0).crossover_alpha(d_base=5) == np.inf
    with pytest.raises(ValueError, match="d_base"):
        _known().crossover_alpha()


def test_pretrain_size_for_share():
    ra = _known()
    for share in (0.05, 0.5, 0.9):
        m = ra.pretrain_size_for(share)
        at_m = _known(m=m)  # nobs_pretrain is stored as an int: compare loosely
        assert at_m.pretraining_share == pytest.approx(share, rel=1e-2)
    assert _known(kappa=[0.0]).pretrain_size_for(0.1) == 0.0
    assert _known(sigma2=0.0).pretrain_size_for(0.1) == np.inf
    with pytest.raises(ValueError, match="share"):
        ra.pretrain_size_for(1.0)


def test_known_law_validation():
    with pytest.raises(ValueError, match="shift 0"):
        RiskAsymptotics(WeightedChiSquare([1.0], 2.0), sigma2=1, d_eff=1, nobs=1,
                        nobs_pretrain=1)
    with pytest.raises(ValueError, match=">= 0"):
        RiskAsymptotics(WeightedChiSquare([-1.0]), sigma2=1, d_eff=1, nobs=1,
                        nobs_pretrain=1)


def test_nonlinear_features_have_no_default_baseline():
    rng = np.random.default_rng(0)
    X_pre = np.concatenate([rng.normal(-3, 1, 300), rng.normal(3, 1, 300)])[:, None]
    rep = ssi.GaussianMixture(2, random_state=0).fit(X_pre)
    X = np.concatenate([rng.normal(-3, 1, 100), rng.normal(3, 1, 100)])[:, None]
    y = 1.0 + 2.0 * rep.transform(X)[:, 0] + rng.normal(size=200)
    ra = ssi.OLS(y, np.ones((200, 1)), representation=rep, features=X).fit(
        ).risk_asymptotics()
    assert ra.d_base is None
    with pytest.raises(ValueError, match="affine"):
        ra.crossover_alpha()
    assert ra.d_eff == 2              # alpha_0 = E||L||^2 / (sigma^2 (d_base - d_eff))
    assert ra.crossover_alpha(d_base=3) == pytest.approx(ra.pretrain_law.mean / ra.sigma2)
    with pytest.raises(ValueError, match="GaussianMixture are not affine in x"):
        affine_feature_map(rep)


@pytest.mark.parametrize("make", [
    lambda X: ssi.PCA(2, symmetry="rotation").fit(X),
    lambda X: ssi.FactorModel(2).fit(X),
    lambda X: ssi.SpectralContrastive(2).fit(X, X + 0.1 * np.sin(X)),
])
def test_affine_feature_map_reproduces_the_features(make):
    rng = np.random.default_rng(5)
    X_pre = rng.normal(size=(600, 5)) * [3.0, 2.0, 1.0, 0.8, 0.5] + 4.0
    rep = make(X_pre)
    a, B = affine_feature_map(rep)
    X_new = rng.normal(size=(20, 5)) * 10.0   # far from the probe rows
    np.testing.assert_allclose(a + X_new @ B.T, rep.transform(X_new), rtol=1e-9, atol=1e-9)
    assert a.shape == (2,) and B.shape == (2, 5)


def test_formula_results_have_risk_asymptotics(problem, engine):
    import ssl_inference.formula.api as smf
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z + treat", data=df, representation=rep, features=cols).fit()
    ra = res.risk_asymptotics()
    assert ra.d_eff == 5 and ra.d_base == 3 + len(cols)
    assert ra.kappa.size == len(cols) - 2


def test_plot_returns_axes_and_explains_missing_matplotlib(monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    ra = _known()
    ax = ra.plot(excess=True)
    assert ax.get_xlabel() == "R - sigma^2" and len(ax.lines) >= 3
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"ssl_inference\[plot\]"):
        ra.plot()


# ------------------------------------------------------------- conditional risk
def _brute_force_risk(W, f, sigma2, pop, rng, draws=20_000):
    """Average over label-noise draws of the population risk of each OLS fit."""
    noise = rng.normal(scale=np.sqrt(sigma2), size=(draws, len(f)))
    B = np.linalg.lstsq(W, (f + noise).T, rcond=None)[0].T  # (draws, d)
    risk = (sigma2 + pop.signal_power - 2 * B @ pop.cross_moment
            + np.einsum("ij,jk,ik->i", B, pop.second_moment, B))
    return risk.mean(), risk.std() / np.sqrt(draws)


@pytest.mark.parametrize("duplicate_column", [False, True])
def test_conditional_risk_equals_brute_force(duplicate_column):
    rng = np.random.default_rng(8)
    p, n = 3, 40
    mean, cov = np.array([0.5, -1.0, 0.0]), np.array([[2.0, 0.5, 0.3], [0.5, 1.0, 0.2],
                                                       [0.3, 0.2, 0.8]])
    X = rng.multivariate_normal(mean, cov, size=n)
    slope = np.array([[0.9, 0.1, 0.0], [0.2, 1.0, 0.0]])  # features miss direction 3
    a = np.array([1.0, 0.3, -0.2])
    B = np.vstack([np.zeros(p), slope])
    if duplicate_column:
        a, B = np.append(a, a[1]), np.vstack([B, B[1]])
    W = a + X @ B.T
    g, c = np.array([1.0, -0.5, 0.7]), 0.4
    f = c + X @ g
    pop = PopulationMoments.affine(a, B, c, g, mean, cov)
    risk = conditional_risk(W, f, sigma2=0.8, population=pop)
    brute, se = _brute_force_risk(W, f, 0.8, pop, rng)
    assert abs(risk.total - brute) < 4 * se + 1e-12
    assert risk.representation > 0.1 and risk.leakage > 0 and risk.variance > 0
    assert risk.scaled_excess == pytest.approx(n * (risk.total - 0.8))


def test_population_moments_from_sample_agree_with_affine():
    rng = np.random.default_rng(1)
    mean, cov = np.array([1.0, 0.0]), np.array([[1.0, 0.4], [0.4, 2.0]])
    U = rng.multivariate_normal(mean, cov, size=400_000)
    a, B = np.array([1.0, 0.5]), np.array([[0.0, 0.0], [1.0, -1.0]])
    g, c = np.array([0.3, 0.8]), -0.2
    exact = PopulationMoments.affine(a, B, c, g, mean, cov)
    mc = PopulationMoments.from_sample(a + U @ B.T, c + U @ g)
    np.testing.assert_allclose(mc.second_moment, exact.second_moment, atol=0.02)
    np.testing.assert_allclose(mc.cross_moment, exact.cross_moment, atol=0.02)
    assert mc.signal_power == pytest.approx(exact.signal_power, abs=0.02)


def test_conditional_risk_accepts_results(pca_fit):
    X_pre, X, y, exog = pca_fit
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X).fit()
    W = np.asarray(res.model.exog)
    pop = PopulationMoments.from_sample(W, y)
    assert conditional_risk(res, y, sigma2=1.0, population=pop) == conditional_risk(
        W, y, sigma2=1.0, population=pop)
    with pytest.raises(ValueError, match="signal"):
        conditional_risk(W, y[:-1], sigma2=1.0, population=pop)


def test_more_parameters_than_labeled_rows_uses_the_row_gram(pca_fit):
    """q > n: K comes from the n x n Gram matrix; same kappa as the q x q route."""
    X_pre, X, y, exog = pca_fit
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X).fit()
    rows = slice(0, 12)  # q = 15 parameters > 12 rows
    W, params = np.asarray(res.model.exog)[rows], np.asarray(res.params)
    tall = plugin_risk_weights(rep, np.tile(X[rows], (2, 1)), np.tile(W, (2, 1)), params,
                               res.model.rep_cols)
    wide = plugin_risk_weights(rep, X[rows], W, params, res.model.rep_cols)
    # duplicating the rows doubles n - d_eff but not the sum of squares' shape
    dof_wide, dof_tall = 12 - 4, 24 - 4
    np.testing.assert_allclose(wide * dof_wide / 2, tall * dof_tall / 4, rtol=1e-8)
