"""Formula terms built from learned features: interactions, smooth transforms, drops.

The design is a function of the features, ``w_j = w(z_j, phi_j)``, and the two-stage
covariance needs the chain rule through it. Guarded here:

* the covariance equals delicatessen's stacked estimating equations (the features and
  every term of them computed inside the oracle's equations) to ~1e-9;
* without first-stage uncertainty it is exactly statsmodels' for the same formula;
* features the formula mentions are not appended again, ``- pc1`` is honoured;
* non-differentiable terms and gauge-dependent designs are refused with the reason;
* the group acts on the design through the formula (``z:pc0 = 0`` invariant,
  ``z:pc0 = 0.1`` not, under sign flips);
* predictions and the bootstrap move the formula terms with the features.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as sm_smf

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.covariance import TwoStageCovariance
from ssl_inference.design import DesignJacobian, FormulaFeatures
from ssl_inference.jacobian import coefficient_jacobian
from ssl_inference.exceptions import (GaugeDependentDesignError, NonDifferentiableDesignError,
                                      NonInvariantHypothesisError)

from .test_oracle_delicatessen import (K, N_FIRST, P, _make_problem, _max_rel, _unit_arrays,
                                       pca_equations, pca_init)

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402

FORMULA = "y ~ z * pc0 + pc1 + I(pc1**2) + np.tanh(pc1)"


def _terms(Z, feats):
    """The design columns of FORMULA in statsmodels' order, from z and the features."""
    z, pc0, pc1 = Z[:, 1], feats[0], feats[1]
    return [Z[:, 0], z, pc0, z * pc0, pc1, pc1 ** 2, np.tanh(pc1)]


def _frame(X, y, exog):
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(P)])
    df["z"], df["y"] = exog[:, 1], y
    return df


def _fit(problem, formula=FORMULA, cov_kwds=None):
    X_pre, X_lab, y, exog, _, pidx = problem
    rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    model = smf.ols(formula, _frame(X_lab, y, exog), representation=rep,
                    features=[f"x{i}" for i in range(P)], pretrain_index=pidx)
    return rep, model.fit(cov_kwds=cov_kwds or {"second_stage": "HC0"})


def _oracle(problem, rep, res):
    Xf, is_pre, Xl, Z, Y, wt = _unit_arrays(*problem)

    def psi(theta):
        rows, feats = pca_equations(theta, Xf, is_pre, Xl)
        beta = theta[N_FIRST:]
        cols = _terms(Z, feats)
        fitted = sum(c * b for c, b in zip(cols, beta))
        resid = wt * (Y - fitted)
        return np.vstack(rows + [c * resid for c in cols])

    init = np.array(pca_init(rep) + list(np.asarray(res.params)))
    est = MEstimator(psi, init=init)
    est.estimate(deriv_method="exact")
    return est, init


@pytest.mark.parametrize("overlap", [False, True], ids=["independent", "overlap"])
def test_formula_terms_match_stacked_oracle(overlap):
    problem = _make_problem(4242 + overlap, overlap=overlap, weighted=False)
    rep, res = _fit(problem)
    assert list(res.model.exog_names) == ["Intercept", "z", "pc0", "z:pc0", "pc1",
                                          "I(pc1 ** 2)", "np.tanh(pc1)"]
    est, init = _oracle(problem, rep, res)
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-9)
    d = len(init) - N_FIRST
    V = np.asarray(res.cov_params())
    assert _max_rel(est.variance[-d:, -d:], V) < 1e-8
    # not vacuous: the chain rule through the terms matters. Treating only the plain
    # pc0, pc1 columns as moving with theta (the old behaviour) is far from the oracle.
    model = res.model
    plain_only = DesignJacobian(d, [[c] for c in model.rep_cols],
                                [np.ones((len(model.endog), 1))] * K)
    g, g_prime, h_inv = model._loss_derivatives(res)
    J_old = coefficient_jacobian(rep, model.features, np.asarray(model.exog),
                                 np.asarray(res.params), plain_only, g, g_prime, h_inv)
    cov = res._covariance
    old = TwoStageCovariance(rep, J_old, cov.cov_second, cov.second_influence,
                             cov.pretrain_index).parts().total
    assert _max_rel(old, V) > 0.05


def test_reduces_to_statsmodels_without_first_stage():
    problem = _make_problem(5, overlap=False, weighted=False)
    rep, res = _fit(problem, cov_kwds={"second_stage": "HC1"})
    X_pre, X_lab, y, exog, _, _ = problem
    df = _frame(X_lab, y, exog)
    df[["pc0", "pc1"]] = rep.transform(X_lab)
    plain = sm_smf.ols(FORMULA, df).fit(cov_type="HC1")
    np.testing.assert_allclose(res.params, plain.params, rtol=1e-12)
    np.testing.assert_allclose(res.cov_params_naive(), plain.cov_params(), rtol=1e-10)
    np.testing.assert_allclose(res.variance_decomposition()["fine_tuning"],
                               np.diag(plain.cov_params()), rtol=1e-10)


def _small():
    rng = np.random.default_rng(0)
    X_pre = rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5]
    X = rng.normal(size=(120, 4)) * [3.0, 2.0, 1.0, 0.5]
    df = pd.DataFrame(X, columns=list("abcd"))
    df["z"] = rng.normal(size=120)
    df["y"] = df.a + df.z * df.a / 3 + rng.normal(size=120)
    return X_pre, df


@pytest.mark.parametrize("formula, names", [
    ("y ~ z * pc0", ["Intercept", "z", "pc0", "z:pc0", "pc1"]),
    ("y ~ z + pc0 + pc0", ["Intercept", "z", "pc0", "pc1"]),
    ("y ~ z - pc1", ["Intercept", "z", "pc0"]),
    ("y ~ z + I(pc0**2)", ["Intercept", "z", "I(pc0 ** 2)", "pc1"]),
    ("y ~ z + pc1:pc0", ["Intercept", "z", "pc1:pc0"]),
])
def test_mentioned_features_are_not_appended(engine, formula, names):
    X_pre, df = _small()
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols(formula, df, representation=rep, features=list("abcd")).fit()
    assert list(res.model.exog_names) == names
    assert np.all(res.bse > 0)


def test_formula_dropping_every_feature_is_refused():
    X_pre, df = _small()
    rep = ssi.PCA(2).fit(X_pre)
    with pytest.raises(ValueError, match="removes every learned feature"):
        smf.ols("y ~ z - pc0 - pc1", df, representation=rep, features=list("abcd"))


@pytest.mark.parametrize("formula, match", [
    ("y ~ z + C(pc0 > 0)", "codes it by levels"),
    ("y ~ z + center(pc0)", "stateful transform"),
    ("y ~ z + np.floor(pc0)", "step function"),
    ("y ~ z + I(np.sign(pc0) * np.abs(pc0) ** 0 )", "step function"),
])
def test_non_differentiable_terms_are_refused(engine, formula, match):
    X_pre, df = _small()
    rep = ssi.PCA(2).fit(X_pre)
    with pytest.raises(NonDifferentiableDesignError, match=match):
        smf.ols(formula, df, representation=rep, features=list("abcd"))


def test_kinks_are_differentiable_almost_everywhere():
    """|pc0| and a ReLU are accepted (a.e. differentiable); their SEs are two-stage."""
    X_pre, df = _small()
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z + pc0 + np.abs(pc0) + pc1 + I(pc1 * (pc1 > 0))", df,
                  representation=rep, features=list("abcd")).fit()
    assert np.all(res.bse >= res.bse_naive)


def test_sign_flips_act_through_the_formula():
    X_pre, df = _small()
    rep = ssi.PCA(2, symmetry="sign").fit(X_pre)
    res = smf.ols("y ~ z * pc0 + I(pc1**2)", df, representation=rep,
                  features=list("abcd")).fit()
    # allowed, and tested with the two-stage covariance
    assert res.t_test("z:pc0 = 0").tvalue.item() == pytest.approx(
        res.params["z:pc0"] / res.bse["z:pc0"], rel=1e-10)
    assert res.t_test("I(pc1 ** 2) = 0.5").tvalue.item() == pytest.approx(  # squares do
        (res.params["I(pc1 ** 2)"] - 0.5) / res.bse["I(pc1 ** 2)"], rel=1e-10)  # not flip
    with pytest.raises(NonInvariantHypothesisError, match="z:pc0 = 0.1"):
        res.t_test("z:pc0 = 0.1")
    tests = res.invariant_tests()
    assert "z:pc0 = 0" in tests.index and "I(pc1 ** 2) = 0" in tests.index


def test_wald_statistics_are_gauge_invariant():
    """Flipping the fitted components leaves invariant tests and covariates unchanged."""
    X_pre, df = _small()
    rep = ssi.PCA(2, symmetry="sign").fit(X_pre)
    flipped = rep.act(np.array([-1.0, 1.0]))
    out = []
    for r in (rep, flipped):
        res = smf.ols("y ~ z * pc0 + I(pc1**2)", df, representation=r,
                      features=list("abcd")).fit()
        out.append((res.params["z"], res.bse["z"], res.t_test("z:pc0 = 0").tvalue.item() ** 2,
                    res.predict(df.iloc[:5]).to_numpy()))
    np.testing.assert_allclose(out[0][:3], out[1][:3], rtol=1e-10)
    np.testing.assert_allclose(out[0][3], out[1][3], rtol=1e-10)


def test_gauge_dependent_design_is_refused_or_opted_in():
    X_pre, df = _small()
    rep = ssi.PCA(2, symmetry="rotation").fit(X_pre)
    with pytest.raises(GaugeDependentDesignError, match="not mapped onto"):
        smf.ols("y ~ z + I(pc0**2)", df, representation=rep, features=list("abcd"))
    # the sum of squares is rotation invariant: accepted
    ok = smf.ols("y ~ z + pc0 + pc1 + I(pc0**2 + pc1**2)", df, representation=rep,
                 features=list("abcd")).fit()
    name = "I(pc0 ** 2 + pc1 ** 2)"
    assert ok.t_test(f"{name} = 0").tvalue.item() == pytest.approx(
        ok.params[name] / ok.bse[name], rel=1e-10)
    res = smf.ols("y ~ z + I(pc0**2)", df, representation=rep, features=list("abcd"),
                  allow_gauge=True).fit()
    assert "every number" in str(res.summary())
    assert getattr(res.t_test("z = 0"), "gauge_dependent", False)


def test_prediction_moves_formula_terms_with_the_features():
    """Prediction SE by the delta method equals a finite-difference total influence."""
    problem = _make_problem(11, overlap=False, weighted=False)
    rep, res = _fit(problem, cov_kwds={"second_stage": "HC0"})
    X_pre, X_lab, y, exog, _, _ = problem
    new = _frame(X_lab[:3], y[:3], exog[:3])
    pred = res.get_prediction(new)
    # oracle: predictions as functionals in the stacked system, total influence by
    # the oracle's covariance of (theta, beta) and the gradient of f(theta, beta)
    est, _ = _oracle(problem, rep, res)
    Xn, Zn = X_lab[:3], exog[:3]

    def f(theta):
        mu = theta[:P]
        feats = [((Xn - mu) * theta[P + l * (P + 1):P + l * (P + 1) + P]).sum(1)
                 for l in range(K)]
        return sum(c * b for c, b in zip(_terms(Zn, feats), theta[N_FIRST:]))

    theta = est.theta
    eps = 1e-6
    grad = np.array([(f(theta + eps * e) - f(theta - eps * e)) / (2 * eps)
                     for e in np.eye(theta.size)]).T
    var = np.einsum("ij,jk,ik->i", grad, est.variance, grad)
    np.testing.assert_allclose(pred.se_mean ** 2, var, rtol=1e-6)
    np.testing.assert_allclose(pred.predicted_mean, f(theta), rtol=1e-10)


def test_bootstrap_rebuilds_formula_terms():
    X_pre, df = _small()
    rep = ssi.PCA(2, symmetry="sign").fit(X_pre)
    model = smf.ols("y ~ z * pc0", df, representation=rep, features=list("abcd"))
    boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": 200, "seed": 1})
    analytic = model.fit()
    ratio = boot.bse / analytic.bse
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio


def test_difference_steps_build_only_the_moved_terms(monkeypatch):
    # the patsy difference steps rebuild only the terms holding a feature's columns:
    # the Jacobian is the one of whole-design builds, bit for bit
    rng = np.random.default_rng(0)
    rep = ssi.PCA(2).fit(rng.normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5])
    df = pd.DataFrame(rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5], columns=list("abcd"))
    df["z"], df["y"] = rng.normal(size=300), rng.normal(size=300)
    model = smf.ols("y ~ z * pc0 + I(pc1**2) + np.exp(pc0 / 3)", df, representation=rep,
                    features=list("abcd"), allow_gauge=True)
    design, rows, phi = model.feature_design, model._design_rows(), model._sample_features()
    partial = design.jacobian(rows, phi)
    monkeypatch.setattr(FormulaFeatures, "_moved_terms", lambda self, f: (None, self._moved[f]))
    whole = design.jacobian(rows, phi)
    for a, b in zip(partial.cols + partial.vals, whole.cols + whole.vals):
        np.testing.assert_array_equal(a, b)
