"""ssi.from_sklearn / ssi.from_statsmodels (issue 14, part 2).

Each adapter must give (i) the estimator's own features on X_pre and on new rows (to
1e-10 where its estimate is the exact optimum; otherwise the polished optimum, with a
PolishedEstimateWarning that says by how much the features moved), and (ii) exactly the
two-stage standard errors of the native ssl_inference first stage fitted on the same
X_pre (to 1e-8), once both are in the same gauge.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.exceptions import PolishedEstimateWarning, UnsupportedEstimatorError
from ssl_inference.testing import check_representation

skd = pytest.importorskip("sklearn.decomposition")
skm = pytest.importorskip("sklearn.mixture")
from statsmodels.multivariate.factor import Factor  # noqa: E402
from statsmodels.multivariate.pca import PCA as SmPCA  # noqa: E402

RNG = np.random.default_rng(0)
MIX = np.array([[3, 1, 0, .5, 0], [0, 2, 1, 0, .3], [0, 0, 1, .4, 0], [0, 0, 0, 1, .2],
                [0, 0, 0, 0, .5]])
X = RNG.standard_t(7, size=(500, 5)) @ MIX + 1.0
LOADINGS = np.array([[1.0, 0.8, 0.6, 0.0, 0.4, 0.7], [0.0, 0.3, -0.5, 1.0, 0.7, 0.2]])
F = RNG.normal(size=(600, 2)) @ LOADINGS + 0.6 * RNG.normal(size=(600, 6))
M = np.vstack([RNG.normal(size=(200, 2)) + [4, 0], RNG.normal(size=(200, 2)) - [4, 0],
               RNG.normal(size=(150, 2)) + [0, 4]])
M_NEW = RNG.normal(size=(40, 2)) * 3.0


def _sm_factor(rotation=None, method="ml"):
    res = Factor(F, 2, method=method).fit()
    if rotation:
        res.rotate(rotation)
    return res


# name: (make the adapted first stage, its data, the estimator's features on new rows
#        (or None), the native first stage, exact?)
CASES = {
    "sklearn PCA": (lambda: skd.PCA(2).fit(X), "X", lambda e, Z: e.transform(Z),
                    lambda: ssi.PCA(2), True, {}),
    "sklearn PCA whiten": (lambda: skd.PCA(2, whiten=True).fit(X), "X",
                           lambda e, Z: e.transform(Z),
                           lambda: ssi.PCA(2, whiten=True, feature_scale=np.sqrt(499 / 500)),
                           True, {}),
    "sklearn PCA randomized rotation": (
        lambda: skd.PCA(3, svd_solver="randomized", random_state=0).fit(X), "X",
        lambda e, Z: e.transform(Z), lambda: ssi.PCA(3, symmetry="rotation"), None,
        {"symmetry": "rotation"}),
    "sklearn IncrementalPCA": (lambda: skd.IncrementalPCA(2, batch_size=50).fit(X), "X",
                               None, lambda: ssi.PCA(2), False, {}),
    "sklearn FactorAnalysis": (lambda: skd.FactorAnalysis(2, random_state=0).fit(F), "F",
                               None, lambda: ssi.FactorModel(2), False, {}),
    "sklearn FactorAnalysis varimax": (
        lambda: skd.FactorAnalysis(2, rotation="varimax", random_state=0).fit(F), "F",
        None, lambda: ssi.FactorModel(2), False, {}),
    "sklearn GaussianMixture": (lambda: skm.GaussianMixture(3, random_state=0).fit(M), "M",
                                None, lambda: ssi.GaussianMixture(3, coding="full",
                                                                  random_state=0), False, {}),
    "sklearn GaussianMixture diag contrast": (
        lambda: skm.GaussianMixture(3, covariance_type="diag", random_state=0).fit(M), "M",
        None, lambda: ssi.GaussianMixture(3, covariance_type="diag", random_state=0),
        False, {"coding": "contrast"}),
    "statsmodels PCA": (lambda: SmPCA(X, ncomp=2), "X", None,
                        lambda: ssi.PCA(2, standardize=True, whiten=True,
                                        feature_scale=1 / np.sqrt(500)), True, {}),
    "statsmodels PCA covariance": (
        lambda: SmPCA(X, ncomp=2, standardize=False, normalize=False), "X", None,
        lambda: ssi.PCA(2), True, {}),
    "statsmodels Factor": (lambda: _sm_factor(), "F", None,
                           lambda: ssi.FactorModel(2, scores="bartlett",
                                                   feature_scale=np.sqrt(599 / 600)),
                           False, {}),
    "statsmodels Factor varimax regression": (
        lambda: _sm_factor("varimax"), "F", None,
        lambda: ssi.FactorModel(2, feature_scale=np.sqrt(599 / 600)), False,
        {"scores": "regression"}),
}
DATA = {"X": X, "F": F, "M": M}


def _adapt(estimator, data, options):
    adapter = (ssi.from_sklearn if type(estimator).__module__.startswith("sklearn")
               else ssi.from_statsmodels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = adapter(estimator, data, **options)
    polished = [w for w in caught if issubclass(w.category, PolishedEstimateWarning)]
    return rep, polished


def _their_features(estimator, data, rep):
    what = rep.adapted_from_.features
    if what.startswith("predict_proba"):
        proba = estimator.predict_proba(data)
        return proba if "contrast" not in what else (
            proba @ ssi.symmetry.PermutationContrasts.contrast_matrix(proba.shape[1]))
    if what == "factors":
        return estimator.factors
    if what.startswith("factor_scoring"):
        return estimator.factor_scoring(method=what.split("'")[1])
    return estimator.transform(data)


@pytest.mark.parametrize("name", list(CASES))
def test_adapter_reproduces_the_estimators_features(name):
    make, data_name, new_features, _, exact, options = CASES[name]
    data = DATA[data_name]
    estimator = make()
    rep, polished = _adapt(estimator, data, options)
    theirs = _their_features(estimator, data, rep)
    diff = np.abs(rep.transform(data) - theirs).max() / np.abs(theirs).max()
    assert rep.adapted_from_.feature_difference == pytest.approx(diff, rel=1e-6, abs=1e-15)
    if exact is True or (exact is None and not polished):
        assert diff < 1e-10 and not polished and not rep.adapted_from_.polished
    else:
        # not the exact optimum: polished, said so with the size of the change
        assert rep.adapted_from_.polished and len(polished) == 1
        assert f"by up to {diff:.2g} (relative)" in str(polished[0].message)
        assert 1e-8 < diff < 5e-2
    if new_features is not None:  # the same map on rows the estimator never saw
        Z = data[:50] * 1.7 - 0.3
        np.testing.assert_allclose(rep.transform(Z), new_features(estimator, Z), rtol=0,
                                   atol=1e-10 * np.abs(theirs).max())


@pytest.mark.parametrize("name", list(CASES))
def test_adapter_gives_the_native_standard_errors(name):
    make, data_name, _, native, _, options = CASES[name]
    data = DATA[data_name]
    rep, _ = _adapt(make(), data, options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssi.IdentificationWarning)
        aligned, _ = ssi.align(native().fit(data), rep)      # same gauge as the adapter
    rng = np.random.default_rng(1)
    X_lab = data[:250] + 0.2 * rng.normal(size=data[:250].shape)
    y = X_lab[:, 0] - 0.5 * X_lab[:, 1] + rng.normal(size=250)
    exog = rng.normal(size=(250, 1))
    if getattr(rep, "coding", "contrast") == "contrast":   # full-coded levels replace it
        exog = sm.add_constant(exog)
    fits = [ssi.OLS(y, exog, representation=r, features=X_lab).fit(cov_type="two-stage")
            for r in (rep, aligned)]
    np.testing.assert_allclose(fits[0].bse, fits[1].bse, rtol=1e-8, atol=0)
    np.testing.assert_allclose(fits[0].params, fits[1].params, rtol=1e-8, atol=1e-12)
    assert np.all(fits[0].bse > fits[0].bse_naive - 1e-12)   # the correction is there


def test_adapted_first_stages_pass_the_conformance_check():
    for name in ("sklearn FactorAnalysis varimax", "statsmodels PCA",
                 "sklearn GaussianMixture"):
        make, data_name, _, _, _, options = CASES[name]
        rep, _ = _adapt(make(), DATA[data_name], options)
        check_representation(rep, DATA[data_name])


def test_adapted_mixture_is_moved_onto_the_estimators_labels():
    est = skm.GaussianMixture(3, covariance_type="spherical", reg_covar=0.0, tol=1e-12,
                              max_iter=5000, random_state=3).fit(M)
    rep, _ = _adapt(est, M, {})
    np.testing.assert_allclose(rep.means_, est.means_, atol=1e-5)
    np.testing.assert_allclose(rep.transform(M_NEW), est.predict_proba(M_NEW), atol=1e-6)
    assert rep.adapted_from_.feature_difference < 1e-5


def test_adapted_representation_in_a_model_and_its_repr():
    est = skd.PCA(2, whiten=True).fit(X)
    rep = ssi.from_sklearn(est, X, feature_prefix="skpc")
    assert repr(rep) == "PCA(n_components=2, whiten=True, feature_scale=0.998999, " \
                        "feature_prefix='skpc')"
    assert rep.adapted_from_.source == "sklearn.decomposition.PCA"
    assert rep.adapted_from_.features == "transform"
    res = ssi.OLS(X[:, 2] + RNG.normal(size=500), np.ones((500, 1)), representation=rep,
                  features=X).fit()
    assert list(res.params.index if hasattr(res.params, "index") else
                res.model.exog_names) == ["const", "skpc0", "skpc1"]


# ------------------------------------------------------------------------ refusals
def test_unsupported_objects_name_what_is_supported():
    with pytest.raises(UnsupportedEstimatorError,
                       match=r"from_sklearn cannot wrap sklearn\.decomposition\..*KernelPCA.*"
                             r"Supported: sklearn\.decomposition\.PCA, sklearn\."
                             r"decomposition\.IncrementalPCA, sklearn\.decomposition\."
                             r"FactorAnalysis, sklearn\.mixture\.GaussianMixture"):
        ssi.from_sklearn(skd.KernelPCA(2).fit(X), X)
    with pytest.raises(UnsupportedEstimatorError,
                       match=r"takes a fitted scikit-learn estimator; got statsmodels\..*"
                             r"use ssi\.from_statsmodels\(model, X_pre\)"):
        ssi.from_sklearn(SmPCA(X, ncomp=2), X)
    with pytest.raises(UnsupportedEstimatorError,
                       match=r"cannot wrap sklearn\.decomposition\.PCA\. For scikit-learn "
                             r"estimators use ssi\.from_sklearn"):
        ssi.from_statsmodels(skd.PCA(2).fit(X), X)
    with pytest.raises(UnsupportedEstimatorError, match="needs no adapter"):
        ssi.from_statsmodels(ssi.PCA(2).fit(X), X)
    with pytest.raises(UnsupportedEstimatorError, match=r"Supported: statsmodels\."
                                                        r"multivariate\.pca\.PCA"):
        ssi.from_statsmodels(sm.OLS(X[:, 0], X[:, 1:]).fit(), X)


@pytest.mark.parametrize("make, data, options, error, message", [
    (lambda: skd.PCA(2), "X", {}, ValueError, "This PCA is not fitted: call .fit"),
    (lambda: skd.PCA(5).fit(X), "X", {}, UnsupportedEstimatorError,
     "keeps all 5 components"),
    (lambda: skd.PCA(2).fit(X), "F", {}, ValueError, "X_pre has 6 columns but the PCA"),
    (lambda: skd.PCA(2).fit(X), "X_shifted", {}, ValueError,
     "X_pre is not the data the PCA was fitted on: its column means differ"),
    (lambda: skd.PCA(2).fit(X[:400]), "X_first", {}, ValueError,
     "fitted on 400 rows but X_pre has 450"),
    (lambda: skd.PCA(2, whiten=True).fit(X), "X", {"symmetry": "rotation"}, ValueError,
     "whiten=True needs symmetry='sign'"),
    (lambda: skd.PCA(2).fit(X), "X", {"coding": "full"}, TypeError,
     r"\['coding'\] do not apply to PCA \(options for it: \['symmetry'\]\)"),
    (lambda: skm.GaussianMixture(2, covariance_type="tied").fit(M), "M", {},
     UnsupportedEstimatorError, "covariance_type='tied'. has no ssl_inference counterpart"),
    (lambda: skd.FactorAnalysis(2, max_iter=2, tol=0.0).fit(F), "F", {}, ValueError,
     "far from the optimum of its objective"),
    (lambda: SmPCA(X, ncomp=2, demean=False, standardize=False), "X", {},
     UnsupportedEstimatorError, "demean=False"),
    (lambda: SmPCA(X, ncomp=2, weights=np.arange(1.0, 6.0)), "X", {},
     UnsupportedEstimatorError, "with weights"),
    (lambda: SmPCA(X, ncomp=5), "X", {}, UnsupportedEstimatorError, "ncomp=5 = p"),
    (lambda: SmPCA(X, ncomp=2), "X_first", {}, ValueError, "is not the data this statsmodels"),
    (lambda: _sm_factor(method="pa"), "F", {}, UnsupportedEstimatorError,
     "method='pa'. is not maximum likelihood"),
    (lambda: _sm_factor("oblimin"), "F", {}, UnsupportedEstimatorError,
     "'oblimin' rotation is oblique"),
    (lambda: Factor(F, 2, method="ml"), "F", {}, ValueError, "Factor is not fitted"),
    (lambda: Factor(corr=np.corrcoef(F, rowvar=False), n_factor=2, method="ml",
                    nobs=600).fit(), "F", {}, UnsupportedEstimatorError,
     "built from a correlation matrix only"),
    (lambda: _sm_factor(), "F", {"scores": "ols"}, ValueError,
     "scores must be 'bartlett' or 'regression'"),
])
def test_refusals_say_why(make, data, options, error, message):
    frames = {"X": X, "F": F, "M": M, "X_shifted": X + 1.0, "X_first": X[:450]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the estimators' own warnings
        est = make()
    adapter = (ssi.from_sklearn if type(est).__module__.startswith("sklearn")
               else ssi.from_statsmodels)
    with pytest.raises(error, match=message):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PolishedEstimateWarning)
            adapter(est, frames[data], **options)
