"""Exactness tests of the deviance-risk law of GLM-type second stages (issue 15 §3).

Oracles: the PCA closed form times the mean working weight on "population designs"
(equal-weight point sets with the Gaussian moments: the plug-in computed on them IS the
population quantity; see tests/test_risk.py), a direct q x q computation with explicit
V and G_omega, statsmodels' own per-row scores and expected Hessians for the sandwich
weights, and the least-squares law of the same fit for the Gaussian family. Error
messages of everything refused. The Monte Carlo check is
tests/test_risk_validation_glm.py.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import special
from statsmodels.genmod import families
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

import ssl_inference as ssi
from ssl_inference.risk import (RiskAsymptotics, WeightedChiSquare, deviance_risk_asymptotics,
                                excess_deviance_risk, fine_tuning_weights, pca_gaussian_law,
                                second_stage_family)

from .test_risk import DOWN_VARIANCES, EIGENVALUES, gauge, gaussian_design, labeled_design


def dof_factor(ra: RiskAsymptotics) -> float:
    """G_hat uses 1/(n - d_eff); the population design needs 1/n."""
    return (ra.nobs - ra.d_eff) / ra.nobs


# ------------------------------------------- plug-in = closed form at the population
LINKS = {
    "logit": (ssi.Logit, special.expit, lambda e: special.expit(e) * (1 - special.expit(e))),
    "poisson": (ssi.Poisson, np.exp, np.exp),
}


@pytest.mark.parametrize("second_stage", sorted(LINKS))
@pytest.mark.parametrize("symmetry", ["sign", "rotation"])
def test_plugin_equals_weighted_pca_closed_form_at_the_population(second_stage, symmetry):
    """kappa_GLM = E[omega u_j'x^2]-weighted PCA law. On the labeled design the rows
    outside the top subspace have eta* = b0, so E[omega (u_j'x)^2] = omega(b0) sigma_j,
    and u_j'x is omega-orthogonal to the span: kappa_j = omega(b0) kappa_j(LS)."""
    model, mean, omega = LINKS[second_stage]
    p, k = EIGENVALUES.size, 2
    Q = gauge(np.linalg.qr(np.random.default_rng(3).normal(size=(p, p)))[0])
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    rep = ssi.PCA(k, symmetry=symmetry).fit((gaussian_design(p) * np.sqrt(EIGENVALUES))
                                            @ Q.T + shift)
    X = (labeled_design(p) * np.sqrt(DOWN_VARIANCES)) @ Q.T + shift
    beta, b0 = np.array([0.6, -0.4]), 0.3
    y = mean(b0 + (X - shift) @ Q[:, :k] @ beta)  # E(y | x) itself: beta_hat = beta*
    with pytest.warns(PerfectSeparationWarning):  # statsmodels: y is predicted exactly
        res = model(y, np.ones((len(y), 1)), representation=rep, features=X).fit(disp=0)
    ra = res.risk_asymptotics()
    closed = pca_gaussian_law(EIGENVALUES, beta,
                              downstream_variances=omega(b0) * DOWN_VARIANCES)
    np.testing.assert_allclose(ra.kappa * dof_factor(ra), closed.weights, rtol=1e-10)
    # the unweighted (least-squares) weights would not match
    plain = pca_gaussian_law(EIGENVALUES, beta, downstream_variances=DOWN_VARIANCES)
    assert np.abs(ra.kappa * dof_factor(ra) / plain.weights - 1).min() > 0.3
    # binomial and Poisson: dispersion 1, fine-tuning chi2 with d_eff = 3 df
    np.testing.assert_array_equal(ra.fine_tuning_law.weights, np.ones(3))
    assert ra.sigma2 == 1.0 and ra.fine_tuning_law.shift == 0.0


# ---------------------------------------------------------- direct computation
@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(21)
    scales = np.array([3.0, 2.0, 1.2, 0.7, 0.4])
    X_pre = rng.standard_t(8, size=(900, 5)) * scales
    X = rng.standard_t(8, size=(300, 5)) * scales
    z = rng.normal(size=300)
    eta = -0.2 + 0.3 * X[:, 0] - 0.4 * X[:, 1] + 0.5 * z
    return X_pre, X, sm.add_constant(z), eta, rng


def _direct_kappa(rep, X, X_pre, W, params, rep_cols, omega):
    """eig(V^1/2 G_omega V^1/2) with V and G_omega formed explicitly."""
    D = rep.feature_vjp(X, np.tile(params[rep_cols], (len(X), 1)), per_row=True)
    Om = np.diag(omega)
    D_res = D - W @ np.linalg.solve(W.T @ Om @ W, W.T @ Om @ D)
    G = D_res.T @ Om @ D_res / (len(X) - W.shape[1])
    IF = rep.influence(X_pre)
    V = IF.T @ IF / len(X_pre)
    evals, evecs = np.linalg.eigh(V)
    root = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    return np.sort(np.linalg.eigvalsh(root @ G @ root))[::-1]


def test_logit_plugin_matches_a_direct_computation(small):
    X_pre, X, exog, eta, rng = small
    y = (rng.random(len(eta)) < special.expit(eta)).astype(float)
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.Logit(y, exog, representation=rep, features=X).fit(disp=0)
    ra = res.risk_asymptotics()
    W, params = np.asarray(res.model.exog), np.asarray(res.params)
    prob = special.expit(W @ params)
    direct = _direct_kappa(rep, X, X_pre, W, params, res.model.rep_cols, prob * (1 - prob))
    assert ra.kappa.size == 3
    np.testing.assert_allclose(ra.kappa, direct[:3], rtol=1e-7, atol=1e-10 * direct.max())
    # sandwich weights: eig(H^-1 S) from statsmodels' own scores and Hessian
    H = -res.model.hessian(params) / len(y)
    S = res.model.score_obs(params).T @ res.model.score_obs(params) / len(y)
    expected = np.sort(np.linalg.eigvals(np.linalg.solve(H, S)).real)[::-1]
    robust = res.risk_asymptotics(fine_tuning="robust")
    np.testing.assert_allclose(robust.fine_tuning_law.weights, expected, rtol=1e-9)
    np.testing.assert_allclose(robust.kappa, ra.kappa, rtol=1e-12)
    assert robust.fine_tuning_law.mean != pytest.approx(3.0, abs=1e-3)


@pytest.mark.parametrize("family, make_y", [
    (families.Gamma(link=families.links.Log()),
     lambda rng, mu: rng.gamma(shape=2.0, scale=mu / 2.0)),
    (families.Binomial(link=families.links.Probit()),
     lambda rng, mu: (rng.random(mu.shape) < mu).astype(float)),
    (families.Gaussian(link=families.links.Log()),
     lambda rng, mu: mu + 0.5 * rng.normal(size=mu.shape)),
])
def test_glm_sandwich_and_working_weights_use_the_expected_information(small, family,
                                                                       make_y):
    """Non-canonical links: omega is the EXPECTED information (statsmodels'
    hessian(observed=False)), not the observed one; the dispersion is the scale."""
    X_pre, X, exog, eta, rng = small
    if isinstance(family, families.Gaussian):
        eta = 0.5 + 0.3 * eta
    mu = family.link.inverse(eta)
    y = make_y(rng, mu)
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.GLM(y, exog, family=family, representation=rep, features=X).fit()
    params = np.asarray(res.params)
    model = res.model
    H = -model.hessian(params, scale=1.0, observed=False) / len(y)
    S = model.score_obs(params, scale=1.0).T @ model.score_obs(params, scale=1.0) / len(y)
    expected = np.sort(np.linalg.eigvals(np.linalg.solve(H, S)).real)[::-1]
    robust = res.risk_asymptotics(fine_tuning="robust")
    np.testing.assert_allclose(robust.fine_tuning_law.weights, expected, rtol=1e-8)
    # expected-information working weights in G_omega
    W = np.asarray(model.exog)
    omega = model.hessian_factor(params, scale=1.0, observed=False)
    direct = _direct_kappa(rep, X, X_pre, W, params, model.rep_cols, omega)
    np.testing.assert_allclose(robust.kappa, direct[:robust.kappa.size], rtol=1e-7,
                               atol=1e-10 * direct.max())
    ra = res.risk_asymptotics()
    np.testing.assert_allclose(ra.fine_tuning_law.weights, np.full(4, res.scale))
    assert ra.loss == f"{type(family).__name__} deviance"


def test_probit_is_the_binomial_probit_glm(small):
    X_pre, X, exog, eta, rng = small
    y = (rng.random(len(eta)) < special.ndtr(eta)).astype(float)
    rep = ssi.PCA(2).fit(X_pre)
    probit = ssi.Probit(y, exog, representation=rep, features=X).fit(disp=0)
    glm = ssi.GLM(y, exog, family=families.Binomial(link=families.links.Probit()),
                  representation=rep, features=X).fit(tol=1e-12)
    np.testing.assert_allclose(probit.params, glm.params, rtol=1e-6)
    a = probit.risk_asymptotics(fine_tuning="robust")
    b = glm.risk_asymptotics(fine_tuning="robust")
    np.testing.assert_allclose(a.kappa, b.kappa, rtol=1e-5)
    np.testing.assert_allclose(a.fine_tuning_law.weights, b.fine_tuning_law.weights,
                               rtol=1e-5)
    assert a.loss == b.loss == "Binomial deviance"


def test_offset_enters_the_working_weights(small):
    X_pre, X, exog, eta, rng = small
    exposure = rng.uniform(0.5, 3.0, size=len(eta))
    y = rng.poisson(exposure * np.exp(0.3 * eta)).astype(float)
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.Poisson(y, exog, exposure=exposure, representation=rep,
                      features=X).fit(disp=0)
    W, params = np.asarray(res.model.exog), np.asarray(res.params)
    omega = exposure * np.exp(W @ params)   # mu = exposure * exp(w'beta)
    direct = _direct_kappa(rep, X, X_pre, W, params, res.model.rep_cols, omega)
    ra = res.risk_asymptotics()
    np.testing.assert_allclose(ra.kappa, direct[:3], rtol=1e-7, atol=1e-10 * direct.max())
    without = _direct_kappa(rep, X, X_pre, W, params, res.model.rep_cols,
                            np.exp(W @ params))
    assert np.abs(ra.kappa / without[:3] - 1).max() > 0.05


def test_formula_glm_results_have_risk_asymptotics(problem, engine):
    import ssl_inference.formula.api as smf
    X_pre, df, cols = problem
    df = df.assign(yb=(df["y"] > df["y"].median()).astype(float))
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.logit("yb ~ z + treat", data=df, representation=rep, features=cols).fit(
        disp=0)
    ra = res.risk_asymptotics()
    assert ra.d_eff == 5 and ra.d_base == 3 + len(cols)
    assert ra.kappa.size == len(cols) - 2 and ra.loss == "Binomial deviance"


# ------------------------------------------------- Gaussian GLM = least squares
def test_gaussian_identity_glm_reduces_to_the_least_squares_law(small):
    """Deviance = squared error, omega = 1, phi = sigma^2: averaged over the labels the
    law IS the OLS law of the same fit; otherwise its fine-tuning part is
    sigma^2 chi2_{d_eff} with the same mean."""
    X_pre, X, exog, eta, rng = small
    y = eta + rng.normal(scale=0.8, size=len(eta))
    rep = ssi.PCA(2).fit(X_pre)
    ols = ssi.OLS(y, exog, representation=rep, features=X).fit().risk_asymptotics()
    fit = ssi.GLM(y, exog, representation=rep, features=X).fit()
    averaged = fit.risk_asymptotics(average_label_noise=True)
    np.testing.assert_allclose(averaged.law.weights, ols.law.weights, rtol=1e-9)
    assert averaged.law.shift == pytest.approx(ols.law.shift, rel=1e-12)
    assert averaged.sigma2 == pytest.approx(ols.sigma2, rel=1e-12)
    assert averaged.d_base == ols.d_base and averaged.d_eff == ols.d_eff == 4
    assert averaged.crossover_alpha() == pytest.approx(ols.crossover_alpha(), rel=1e-9)
    random = fit.risk_asymptotics()
    np.testing.assert_allclose(random.fine_tuning_law.weights, np.full(4, ols.sigma2),
                               rtol=1e-12)
    assert random.mean == pytest.approx(ols.mean, rel=1e-12)
    assert random.var == pytest.approx(ols.var + 2 * 4 * ols.sigma2 ** 2, rel=1e-12)
    assert random.excess_label == "R - R*" and ols.excess_label == "R - sigma^2"
    # var_weights are WLS weights: the weighted deviance is the weighted squared error
    wt = np.linspace(0.5, 2.0, len(y))
    wls = ssi.WLS(y, exog, weights=wt, representation=rep, features=X).fit(
        ).risk_asymptotics()
    glm_w = ssi.GLM(y, exog, var_weights=wt, representation=rep, features=X).fit(
        ).risk_asymptotics(average_label_noise=True)
    np.testing.assert_allclose(glm_w.law.weights, wls.law.weights, rtol=1e-9)
    assert glm_w.law.shift == pytest.approx(wls.law.shift, rel=1e-10)


def test_robust_average_is_the_point_mass_at_the_sandwich_mean(small):
    X_pre, X, exog, eta, rng = small
    y = rng.poisson(np.exp(0.3 * eta)).astype(float)
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.Poisson(y, exog, representation=rep, features=X).fit(disp=0)
    robust = res.risk_asymptotics(fine_tuning="robust")
    averaged = res.risk_asymptotics(fine_tuning="robust", average_label_noise=True)
    assert averaged.fine_tuning_law.is_degenerate
    assert averaged.fine_tuning_law.shift == pytest.approx(robust.fine_tuning_law.mean)
    assert averaged.mean == pytest.approx(robust.mean)
    assert averaged.var < robust.var


# ------------------------------------------------------------ the law object
def _glm_law(**kwargs):
    options = dict(sigma2=1.0, d_eff=3, nobs=100, nobs_pretrain=200, d_base=6,
                   loss="Binomial deviance",
                   fine_tuning_law=WeightedChiSquare([1.0, 1.0, 1.0]))
    options.update(kwargs)
    return RiskAsymptotics(WeightedChiSquare([2.0, 1.0]), **options)


def test_glm_law_answers_the_same_questions():
    ra = _glm_law()
    assert ra.law.shift == 0.0
    np.testing.assert_allclose(ra.law.weights, [1.0, 1.0, 1.0, 1.0, 0.5])
    assert ra.mean == 4.5 and ra.var == pytest.approx(2 * (3 + 1.25))
    assert ra.fine_tuning == pytest.approx(0.03) and ra.pretraining == pytest.approx(0.015)
    parts = ra.decomposition()
    assert parts.loc["total", "scaled"] == pytest.approx(4.5)
    assert ra.crossover_alpha() == pytest.approx(3.0 / 3.0)
    assert ra.pretrain_size_for(0.1) == pytest.approx(9 * 100 * 3.0 / 3.0)
    # quantiles of n (R - R*) are those of the whole law, and excess= divides by n
    assert ra.quantile(0.9) == pytest.approx(float(WeightedChiSquare(
        [1, 1, 1, 1, 0.5]).ppf(0.9)), rel=1e-10)
    assert ra.quantile(0.9, excess=True) == pytest.approx(ra.quantile(0.9) / 100, rel=1e-9)
    assert ra.cdf(0.0) == 0.0
    frame = ra.summary_frame()
    assert frame["fine_tuning_mean"] == 3.0 and frame["mean"] == 4.5
    assert "fine_tuning_mean" not in _glm_law(fine_tuning_law=None,
                                              loss="squared error").summary_frame()
    assert repr(ra).startswith("RiskAsymptotics(loss='Binomial deviance'")
    assert "E[fine-tuning]=3" in repr(ra)


def test_law_pickles():
    ra = _glm_law()
    back = pickle.loads(pickle.dumps(ra))
    np.testing.assert_array_equal(back.law.weights, ra.law.weights)
    assert back.loss == ra.loss and back.d_base == ra.d_base
    assert back.quantile(0.5) == ra.quantile(0.5)


def test_fitted_law_pickles(small):
    X_pre, X, exog, eta, rng = small
    y = (rng.random(len(eta)) < special.expit(eta)).astype(float)
    rep = ssi.PCA(2).fit(X_pre)
    ra = ssi.Logit(y, exog, representation=rep, features=X).fit(disp=0).risk_asymptotics()
    back = pickle.loads(pickle.dumps(ra))
    assert repr(back) == repr(ra)
    np.testing.assert_array_equal(back.kappa, ra.kappa)


def test_glm_plots():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ra = _glm_law()
    ax = ra.plot()
    assert ax.get_xlabel() == "n (R - R*)"
    assert any("mean of the fine-tuning part" in t.get_text()
               for t in ax.get_legend().get_texts())
    plt.close(ax.figure)
    sizes = np.array([50.0, 200.0, 1000.0])
    ax = ra.plot_pretrain_size(sizes=sizes)
    assert ax.get_ylabel() == "excess test risk R - R*"
    # the band is the quantile of the whole law (random fine-tuning part) at each m
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    hi = [float(WeightedChiSquare(np.r_[1.0, 1.0, 1.0, np.array([2.0, 1.0]) * 100 / m]
                                  ).ppf(0.9)) / 100 for m in sizes]
    assert all(np.any(np.isclose(band, h, rtol=1e-8)) for h in hi)
    baseline = [line.get_ydata()[0] for line in ax.lines[1:3]]
    assert pytest.approx(6 / 100) in baseline
    plt.close(ax.figure)


# ------------------------------------------------------------------ refusals
def test_robust_law_refuses_the_crossover():
    robust = _glm_law(fine_tuning_law=WeightedChiSquare([1.3, 1.1, 0.9]))
    with pytest.raises(ValueError, match="sandwich estimate"):
        robust.crossover_alpha()
    assert not robust.has_baseline
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ax = robust.plot_pretrain_size(sizes=[100.0, 1000.0])   # no baseline drawn
    assert not any("baseline" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="sandwich estimate"):
        robust.plot_pretrain_size(sizes=[100.0, 1000.0], d_base=6)


def test_bad_fine_tuning_law_raises():
    with pytest.raises(ValueError, match="fine_tuning_law must be a WeightedChiSquare"):
        _glm_law(fine_tuning_law=WeightedChiSquare([-1.0]))
    with pytest.raises(ValueError, match="fine_tuning_law must be a WeightedChiSquare"):
        _glm_law(fine_tuning_law=[1.0, 1.0])


def test_bad_options_raise(small):
    X_pre, X, exog, eta, rng = small
    y = (rng.random(len(eta)) < special.expit(eta)).astype(float)
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.Logit(y, exog, representation=rep, features=X).fit(disp=0)
    with pytest.raises(ValueError, match="fine_tuning must be one of"):
        res.risk_asymptotics(fine_tuning="sandwich")
    with pytest.raises(TypeError, match="average_label_noise must be True or False"):
        res.risk_asymptotics(average_label_noise="yes")
    ols = ssi.OLS(eta, exog, representation=rep, features=X).fit()
    with pytest.raises(TypeError, match="apply to GLM-type second stages"):
        RiskAsymptotics.from_results(ols, fine_tuning="robust")
    with pytest.raises(ValueError, match="needs a GLM-type second stage"):
        deviance_risk_asymptotics(ols)


def test_freq_weights_are_refused(small):
    X_pre, X, exog, eta, rng = small
    y = rng.poisson(np.exp(0.3 * eta)).astype(float)
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.GLM(y, exog, family=families.Poisson(), freq_weights=np.full(len(y), 2.0),
                  representation=rep, features=X).fit()
    with pytest.raises(NotImplementedError, match="freq_weights"):
        res.risk_asymptotics()


def test_other_models_are_refused():
    model = sm.NegativeBinomial(np.r_[0.0, 1.0, 3.0], np.ones((3, 1)))
    with pytest.raises(NotImplementedError, match="NegativeBinomial is neither"):
        second_stage_family(model)
    assert second_stage_family(sm.OLS(np.r_[0.0, 1.0], np.ones((2, 1)))) is None


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_singular_working_weights_raise():
    W = np.column_stack([np.ones(4), [0.0, 1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="working weights"):
        fine_tuning_weights(W, np.zeros(4), np.full(4, -800.0), families.Binomial())


# ----------------------------------------------------------- exact excess risk
def test_excess_deviance_risk_is_the_expected_deviance_difference():
    """E[d(y, mu_hat) - d(y, mu*)] over the outcome law equals d(mu*, mu_hat): brute
    force over the exact Poisson and binomial probabilities."""
    from scipy import stats
    mu_star, mu_hat = np.array([0.7, 2.5, 6.0]), np.array([0.9, 2.2, 6.4])
    fam = families.Poisson()
    ys = np.arange(0, 80)
    brute = [np.sum(stats.poisson.pmf(ys, m) * (fam.resid_dev(ys, h) ** 2
                                                - fam.resid_dev(ys, m) ** 2))
             for m, h in zip(mu_star, mu_hat)]
    assert excess_deviance_risk(fam, mu_star, mu_hat) == pytest.approx(np.mean(brute),
                                                                       rel=1e-10)
    fam = families.Binomial()
    p, q = np.array([0.1, 0.5, 0.8]), np.array([0.15, 0.45, 0.7])
    brute = p * (fam.resid_dev(np.ones(3), q) ** 2 - fam.resid_dev(np.ones(3), p) ** 2) \
        + (1 - p) * (fam.resid_dev(np.zeros(3), q) ** 2 - fam.resid_dev(np.zeros(3), p) ** 2)
    w = np.array([1.0, 2.0, 3.0])
    assert excess_deviance_risk(fam, p, q, weights=w) == pytest.approx(w @ brute / 6,
                                                                       rel=1e-10)
    # Gaussian: the squared error
    assert excess_deviance_risk(families.Gaussian(), [1.0, 2.0], [1.5, 1.0]) == 0.625
    with pytest.raises(ValueError, match="same length"):
        excess_deviance_risk(fam, p, q[:2])
    with pytest.raises(ValueError, match="non-negative"):
        excess_deviance_risk(fam, p, q, weights=[1.0, -1.0, 1.0])
