"""PCA(standardize=, whiten=, feature_scale=) and FactorModel(feature_scale=) (issue 14):
the conventions other libraries use, with the estimated scales inside theta.

Oracles: the features against a direct computation (correlation-matrix eigenvectors,
unit variances), the influence against refits (the conformance check), the two-stage
standard errors against an OLS fit on rescaled features.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.testing import check_representation

MIX = np.array([[1.0, 0.9, 0.8, 0.7, 0.6], [0.0, 0.6, -0.5, 0.4, -0.8],
                [0.0, 0.0, 0.5, 0.3, 0.2], [0.0, 0.0, 0.0, 0.4, 0.1],
                [0.0, 0.0, 0.0, 0.0, 0.3]]) * [1.0, 1.0, 1.0, 30.0, 0.05]  # mixed units


def _data(seed=0, m=400):
    rng = np.random.default_rng(seed)
    return rng.standard_t(7, size=(m, 5)) @ MIX + [1.0, -2.0, 0.0, 50.0, 0.1]


@pytest.mark.parametrize("kwargs", [dict(standardize=True),
                                    dict(whiten=True, feature_scale=0.5),
                                    dict(standardize=True, whiten=True),
                                    dict(standardize=True, symmetry="rotation")])
def test_options_pass_the_conformance_check(kwargs):
    report = check_representation(ssi.PCA(2, **kwargs), _data())
    assert "influence_matches_refits" in report.passed


def test_standardized_features_are_correlation_pca():
    X = _data()
    rep = ssi.PCA(2, standardize=True).fit(X)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    evals, evecs = np.linalg.eigh(np.corrcoef(X, rowvar=False))
    U = evecs[:, ::-1][:, :2]
    U = U * np.sign(U[np.argmax(np.abs(U), axis=0), [0, 1]])
    np.testing.assert_allclose(rep.transform(X), Z @ U, rtol=0, atol=1e-10)
    np.testing.assert_allclose(rep.scale_, X.std(axis=0), rtol=1e-14)
    np.testing.assert_allclose(rep.explained_variance_, evals[::-1][:2], rtol=1e-12)
    assert rep.params_.size == 5 + 5 + 10
    # column units do not matter any more: scaling a column leaves the features alone
    X2 = X * [1.0, 1.0, 1.0, 1e-3, 1e3]
    np.testing.assert_allclose(ssi.PCA(2, standardize=True).fit(X2).transform(X2),
                               rep.transform(X), rtol=0, atol=1e-9)


def test_whitened_features_have_unit_variance_and_scale_multiplies():
    X = _data()
    white = ssi.PCA(3, whiten=True).fit(X)
    np.testing.assert_allclose(white.transform(X).var(axis=0), 1.0, rtol=1e-12)
    plain = ssi.PCA(3).fit(X)
    np.testing.assert_allclose(white.transform(X) * np.sqrt(plain.explained_variance_),
                               plain.transform(X), rtol=1e-12, atol=1e-12)
    half = ssi.PCA(3, feature_scale=0.5).fit(X)
    np.testing.assert_allclose(half.transform(X), 0.5 * plain.transform(X), rtol=1e-15)
    np.testing.assert_array_equal(half.influence(X[:5]), plain.influence(X[:5]))


def test_whitening_puts_the_eigenvalues_in_theta():
    """The scale 1/sqrt(lambda) is estimated: its influence reaches the coefficients of
    the whitened features, and feature-coefficient SEs differ from a fixed rescaling."""
    X = _data()
    rng = np.random.default_rng(1)
    X_lab = _data(2, 300)
    y = X_lab @ [0.2, -0.1, 0.3, 0.02, 1.0] + rng.normal(size=300)
    exog = sm.add_constant(rng.normal(size=300))
    plain = ssi.PCA(2).fit(X)
    white = ssi.PCA(2, whiten=True).fit(X)
    res_p = ssi.OLS(y, exog, representation=plain, features=X_lab).fit()
    res_w = ssi.OLS(y, exog, representation=white, features=X_lab).fit()
    sd = np.sqrt(plain.explained_variance_)
    # point estimates: the whitened coefficients are the plain ones times sd
    np.testing.assert_allclose(res_w.params[2:], res_p.params[2:] * sd, rtol=1e-10)
    # covariates, intercept and predictions do not depend on the scaling
    np.testing.assert_allclose(res_w.bse[:2], res_p.bse[:2], rtol=1e-8)
    # feature coefficients: a fixed rescaling would give bse_p * sd; the eigenvalues'
    # own uncertainty adds to it
    fixed = res_p.bse[2:] * sd
    assert np.all(res_w.bse[2:] > fixed * (1 + 1e-3))
    naive_w = res_w.bse_naive[2:]
    np.testing.assert_allclose(naive_w, res_p.bse_naive[2:] * sd, rtol=1e-8)


def test_feature_scale_of_a_factor_model():
    X = np.random.default_rng(3).normal(size=(400, 1)) @ [[1.0, 0.8, 0.6, 0.4]]
    X = X + 0.7 * np.random.default_rng(4).normal(size=(400, 4))
    base = ssi.FactorModel(1).fit(X)
    scaled = ssi.FactorModel(1, feature_scale=2.0).fit(X)
    np.testing.assert_allclose(scaled.transform(X), 2.0 * base.transform(X), rtol=1e-14)
    C = np.random.default_rng(0).normal(size=(10, 1, 2))
    np.testing.assert_allclose(scaled.feature_vjp(X[:10], C),
                               2.0 * base.feature_vjp(X[:10], C), rtol=1e-14)
    np.testing.assert_allclose(scaled.feature_vjp(X[:10], C[:, :, 0], per_row=True),
                               2.0 * base.feature_vjp(X[:10], C[:, :, 0], per_row=True),
                               rtol=1e-14)


@pytest.mark.parametrize("make, message", [
    (lambda: ssi.PCA(2, whiten=True, symmetry="rotation"),
     "whiten=True needs symmetry='sign'"),
    (lambda: ssi.PCA(2, whiten="yes"), "whiten must be True or False"),
    (lambda: ssi.PCA(2, standardize=1), "standardize must be True or False"),
    (lambda: ssi.PCA(2, feature_scale=0.0), "feature_scale must be a positive number"),
    (lambda: ssi.PCA(2, feature_scale=np.nan), "feature_scale must be a positive number"),
    (lambda: ssi.FactorModel(1, feature_scale=-1.0),
     "feature_scale must be a positive number"),
])
def test_bad_options(make, message):
    with pytest.raises(ValueError, match=message):
        make().fit(_data())


def test_constant_column_cannot_be_standardized():
    X = _data()
    X[:, 2] = 4.0
    with pytest.raises(ValueError, match=r"column\(s\) \[2\] are constant, so they cannot "
                                         "be standardized"):
        ssi.PCA(2, standardize=True).fit(X)
