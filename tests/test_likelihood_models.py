"""Generic likelihood second stages (issue 15, section 1): NegativeBinomial,
GeneralizedPoisson, ZeroInflatedPoisson, MNLogit and OrderedModel through statsmodels'
scores and Hessian.

* reduction: ``cov_type="naive"`` is statsmodels' fit of the same design (1e-10), and the
  fine-tuning part of the two-stage covariance is statsmodels' covariance, for arrays and
  formulas (both engines), nonrobust / HC0 / cluster;
* the generic derivative is the single-index closed form for Poisson and Logit (analytic
  score) and for a Poisson written as a ``GenericLikelihoodModel`` (numerical score: the
  log-likelihood fallback);
* the symmetry group acts on every equation's feature block (MNLogit, the inflation
  equation of ZIP): refused, allowed and invariant tests, coefficients moving by
  ``rho(g)`` per equation;
* predictions, margins, bootstrap and the refusals with their messages.

The delicatessen oracle is in ``test_oracle_likelihood.py``; Monte Carlo coverage in
``test_coverage_likelihood.py``.
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as sm_smf
from scipy import stats
from scipy.special import expit, gammaln
from statsmodels.base.model import GenericLikelihoodModel
from statsmodels.miscmodels.ordinal_model import OrderedModel as SMOrderedModel
from statsmodels.tools import sm_exceptions
from statsmodels.tools.numdiff import approx_hess

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.exceptions import (ConvergenceWarning, FirstStageBlindError,
                                      NonInvariantHypothesisError)
from ssl_inference.models.likelihood import TwoStageLikelihoodMixin

SCALES = np.array([3.0, 2.0, 1.0, 0.5])
COLS = ["x0", "x1", "x2", "x3"]


def _data(seed=0, n=500, m=1500):
    """Pre-training rows, a labeled frame with one outcome per model, the features."""
    rng = np.random.default_rng(seed)
    X_pre = rng.normal(size=(m, 4)) * SCALES
    X = rng.normal(size=(n, 4)) * SCALES
    z = rng.normal(size=n)
    s0, s1 = X[:, 0], X[:, 1]
    eta = 0.3 + 0.2 * z + 0.15 * s0 - 0.1 * s1
    df = pd.DataFrame(X, columns=COLS)
    df["z"] = z
    df["y_nb"] = rng.negative_binomial(2, 2 / (2 + np.exp(eta)))
    zero = rng.random(n) < expit(-1.0 + 0.3 * s1)
    df["y_zip"] = np.where(zero, 0, rng.poisson(np.exp(eta)))
    e = np.exp(np.column_stack([np.zeros(n), 0.3 * s0 + 0.2 * z, -0.2 * s1]))
    df["y_mn"] = (rng.random((n, 1)) > (e / e.sum(1, keepdims=True)).cumsum(1)).sum(1)
    df["y_ord"] = np.digitize(0.4 * s0 + 0.3 * z + rng.logistic(size=n), [-1.0, 1.0])
    return X_pre, df


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def rep(data):
    return ssi.PCA(2).fit(data[0])


def _zip_hessian(model, params):
    """The derivative of statsmodels' analytic ZIP score (its own Hessian is defective):
    five-point central differences."""
    def column(e):
        h = 1e-3 * max(abs(params @ e), 0.1)
        f = [model.score(params + t * h * e) for t in (-2, -1, 1, 2)]
        return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
    H = np.column_stack([column(e) for e in np.eye(params.size)])
    return (H + H.T) / 2


#: name -> (ssl_inference class, statsmodels class, outcome column, constant, init kw,
#:          fit kw)
MODELS = {
    "negativebinomial": (ssi.NegativeBinomial, sm.NegativeBinomial, "y_nb", True, {},
                         {"method": "newton"}),
    "generalizedpoisson": (ssi.GeneralizedPoisson, sm.GeneralizedPoisson, "y_nb", True, {},
                           {"method": "newton"}),
    # BFGS: statsmodels' Newton steps would use its defective Hessian, ours the correct one
    "zeroinflatedpoisson": (ssi.ZeroInflatedPoisson, sm.ZeroInflatedPoisson, "y_zip", True,
                            {}, {"maxiter": 500}),
    "mnlogit": (ssi.MNLogit, sm.MNLogit, "y_mn", True, {}, {}),
    "orderedmodel": (ssi.OrderedModel, SMOrderedModel, "y_ord", False, {"distr": "logit"},
                     {"method": "bfgs", "maxiter": 1000}),
}


def _arrays(df, rep, constant):
    exog = sm.add_constant(df[["z"]].to_numpy()) if constant else df[["z"]].to_numpy()
    return exog, np.column_stack([exog, rep.transform(df[COLS].to_numpy())])


def _reference(name, df, rep, **fit):
    """statsmodels on the design with the features as data, and its covariance."""
    _, sm_cls, y, constant, init, fit_kw = MODELS[name]
    _, W = _arrays(df, rep, constant)
    fit = {key: value for key, value in fit.items() if value is not None}
    res = sm_cls(df[y].to_numpy(), W, **init).fit(disp=0, **fit_kw, **fit)
    cov = np.asarray(res.cov_params())
    if name == "zeroinflatedpoisson" and not fit:
        cov = np.linalg.inv(-_zip_hessian(res.model, np.asarray(res.params)))
    return res, cov


# ----------------------------------------------------------------- reduction
@pytest.mark.parametrize("name", list(MODELS))
def test_naive_is_statsmodels(name, data, rep):
    _, df = data
    cls, _, y, constant, init, fit_kw = MODELS[name]
    exog, _ = _arrays(df, rep, constant)
    model = cls(df[y].to_numpy(), exog, representation=rep, features=df[COLS].to_numpy(),
                **init)
    naive = model.fit(disp=0, cov_type="naive", **fit_kw)
    two = model.fit(disp=0, **fit_kw)
    ref, cov = _reference(name, df, rep)
    np.testing.assert_allclose(np.asarray(naive.params), np.asarray(ref.params), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(naive.cov_params()), cov, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.asarray(two.cov_params_naive()), cov, rtol=1e-10,
                               atol=1e-14)
    # the fine-tuning part of the two-stage covariance is statsmodels' covariance
    dec = two.variance_decomposition()
    np.testing.assert_allclose(dec["fine_tuning"], np.diag(cov), rtol=1e-10)
    assert (dec["pretraining"] > 0).any()
    assert list(dec.index) == model.param_names
    # with the first stage known (J = 0) the engine returns exactly statsmodels'
    engine = two._covariance
    engine_known = type(engine)(engine.representation, np.zeros_like(engine.jacobian),
                                engine.cov_second, engine.second_influence)
    np.testing.assert_allclose(engine_known.parts().total, np.asarray(naive.cov_params()),
                               rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("second", ["HC0", "cluster"])
@pytest.mark.parametrize("name", ["negativebinomial", "mnlogit", "orderedmodel"])
def test_robust_second_stages_are_statsmodels(name, second, data, rep):
    _, df = data
    cls, _, y, constant, init, fit_kw = MODELS[name]
    groups = np.arange(len(df)) % 40
    cov_kwds = {"groups": groups} if second == "cluster" else None
    exog, _ = _arrays(df, rep, constant)
    res = cls(df[y].to_numpy(), exog, representation=rep, features=df[COLS].to_numpy(),
              **init).fit(disp=0, cov_type=second, cov_kwds=cov_kwds, **fit_kw)
    ref, cov = _reference(name, df, rep, cov_type=second, cov_kwds=cov_kwds)
    assert res._spec.second_stage == second
    np.testing.assert_allclose(res.variance_decomposition()["fine_tuning"], np.diag(cov),
                               rtol=1e-10)


@pytest.mark.parametrize("name", ["negativebinomial", "mnlogit", "orderedmodel",
                                  "zeroinflatedpoisson"])
def test_formula_naive_is_statsmodels(name, data, rep, engine):
    _, df = data
    cls, sm_cls, y, constant, init, fit_kw = MODELS[name]
    factory = {"negativebinomial": smf.negativebinomial, "mnlogit": smf.mnlogit}.get(
        name, cls.from_formula)
    res = factory(f"{y} ~ z", df, representation=rep, features=COLS, **init).fit(
        disp=0, cov_type="naive", **fit_kw)
    phi = rep.transform(df[COLS].to_numpy())
    plain = sm_cls.from_formula(f"{y} ~ z + pc0 + pc1", df.assign(pc0=phi[:, 0],
                                                                  pc1=phi[:, 1]),
                                **init).fit(disp=0, **fit_kw)
    np.testing.assert_allclose(np.asarray(res.params), np.asarray(plain.params), rtol=1e-10,
                               atol=1e-12)
    assert list(res.model.exog_names) == list(plain.model.exog_names)
    cov = np.asarray(plain.cov_params())
    if name == "zeroinflatedpoisson":
        cov = np.linalg.inv(-_zip_hessian(plain.model, np.asarray(plain.params)))
    np.testing.assert_allclose(np.asarray(res.cov_params()), cov, rtol=1e-9, atol=1e-14)


def test_formula_api_names_statsmodels_functions():
    assert smf.negativebinomial.__self__ is ssi.NegativeBinomial
    assert smf.mnlogit.__self__ is ssi.MNLogit
    assert {"negativebinomial", "mnlogit"} <= set(dir(sm_smf))


def test_statsmodels_zip_hessian_drops_the_cross_block(data, rep):
    """Why ZeroInflatedPoisson differentiates statsmodels' score for its Hessian:
    statsmodels 0.15's analytic Hessian has a zero inflation x count block (its
    standard errors are too small). When this fails statsmodels fixed it, and the
    override in ssl_inference.models.likelihood can go."""
    _, df = data
    ref, _ = _reference("zeroinflatedpoisson", df, rep)
    params = np.asarray(ref.params)
    numerical = approx_hess(params, ref.model.loglike)
    statsmodels_h = ref.model.hessian(params)
    k = ref.model.k_inflate
    assert np.all(statsmodels_h[:k, k:] == 0) and np.abs(numerical[:k, k:]).max() > 1.0
    exog, _ = _arrays(df, rep, True)
    model = ssi.ZeroInflatedPoisson(df["y_zip"].to_numpy(), exog, representation=rep,
                                    features=df[COLS].to_numpy())
    ours = model.hessian(params)
    np.testing.assert_allclose(ours, numerical, rtol=1e-5, atol=1e-5 * np.abs(ours).max())
    # without a first stage the model is statsmodels' (the same numbers as its parent)
    plain = ssi.ZeroInflatedPoisson(df["y_zip"].to_numpy(), ref.model.exog)
    np.testing.assert_array_equal(plain.hessian(params), statsmodels_h)


# ----------------------------------------------------------------- the generic derivative
class _GenericPoisson(TwoStageLikelihoodMixin, sm.Poisson):
    """statsmodels' Poisson through the generic path (analytic score)."""

    _results_name = "TwoStagePoissonResults"

    def __init__(self, endog, exog, *, representation=None, features=None, **kwargs):
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=None, **kwargs)


class _GenericLogit(TwoStageLikelihoodMixin, sm.Logit):
    _results_name = "TwoStageLogitResults"

    def __init__(self, endog, exog, *, representation=None, features=None, **kwargs):
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=None, **kwargs)


class _LoglikePoisson(GenericLikelihoodModel):
    """A Poisson written as a GenericLikelihoodModel: statsmodels differentiates its
    log-likelihood numerically (score and Hessian)."""

    def loglikeobs(self, params):
        eta = self.exog @ params
        return self.endog * eta - np.exp(eta) - gammaln(self.endog + 1)


class _GenericLoglikePoisson(TwoStageLikelihoodMixin, _LoglikePoisson):
    _results_name = "TwoStagePoissonResults"

    def __init__(self, endog, exog, *, representation=None, features=None, **kwargs):
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=None, **kwargs)


@pytest.mark.parametrize("formula", [None, "y ~ z * pc0 + I(pc1**2)"])
@pytest.mark.parametrize("generic, closed, fit_kw, rtol", [
    (_GenericPoisson, ssi.Poisson, {"disp": 0}, 1e-10),       # measured 4e-13
    (_GenericLogit, ssi.Logit, {"disp": 0}, 1e-10),           # measured 4e-13
    # statsmodels' numerical Hessian and our mixed differences: measured 2e-7
    (_GenericLoglikePoisson, ssi.Poisson, {"disp": 0, "method": "bfgs", "maxiter": 500,
                                           "gtol": 1e-10}, 1e-6),
], ids=["poisson-score", "logit-score", "poisson-loglike"])
def test_generic_jacobian_is_the_single_index_closed_form(generic, closed, fit_kw, rtol,
                                                          formula, data, rep):
    """``ds/dw`` from the model (score, or mixed differences of ``loglikeobs``) gives the
    closed form ``g I + w beta' g'`` (:func:`ssl_inference.jacobian.coefficient_jacobian`),
    with features appended and through formula terms (chain rule in ``D_j``)."""
    _, df = data
    y = (df["y_nb"] > 1).astype(float) if generic is _GenericLogit else df["y_nb"]
    if formula is None:
        exog, _ = _arrays(df, rep, True)
        args = (y.to_numpy(), exog)
        kw = {"representation": rep, "features": df[COLS].to_numpy()}
        a, b = generic(*args, **kw), closed(*args, **kw)
    else:
        frame = df.assign(y=y)
        kw = {"representation": rep, "features": COLS}
        a, b = generic.from_formula(formula, frame, **kw), closed.from_formula(formula,
                                                                               frame, **kw)
    res_b = b.fit(disp=0)
    res_a = a.fit(start_params=np.asarray(res_b.params), **fit_kw)
    J_a, J_b = res_a.first_stage_jacobian, res_b.first_stage_jacobian
    scale = np.abs(J_b).max()
    np.testing.assert_allclose(J_a, J_b, rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(np.asarray(res_a.bse), np.asarray(res_b.bse), rtol=10 * rtol)


# ----------------------------------------------------------------- symmetry
@pytest.fixture(scope="module")
def rotation(data):
    return ssi.PCA(2, symmetry="rotation").fit(data[0])


def test_mnlogit_group_acts_on_every_equation(data, rotation):
    X_pre, df = data
    res = smf.mnlogit("y_mn ~ z", df, representation=rotation, features=COLS).fit(disp=0)
    with pytest.raises(NonInvariantHypothesisError, match="rotations O\\(2\\)"):
        res.t_test("y1_pc0 = 0")
    with pytest.raises(NonInvariantHypothesisError, match="not invariant"):
        res.wald_test("y1_pc0 = y2_pc0 = 0")      # one feature in both equations
    with pytest.raises(NonInvariantHypothesisError):
        res.wald_test("y1_pc0 = y1_pc1 = y2_pc0 = 0")
    block = res.wald_test("y1_pc0 = y1_pc1 = 0", scalar=True)
    both = res.wald_test("y1_pc0 = y1_pc1 = y2_pc0 = y2_pc1 = 0", scalar=True)
    assert res.t_test("y2_z = 0").tvalue.shape == (1, 1)
    tests = res.invariant_tests()
    assert list(tests.index) == ["y1_pc0 = y1_pc1 = y2_pc0 = y2_pc1 = 0",
                                 "y1_pc0 = y1_pc1 = 0", "y2_pc0 = y2_pc1 = 0"]
    # the same fit with the representation moved within its orbit: invariant statistics
    # and covariate coefficients unchanged, each equation's feature block moved by rho(g)
    g = rotation.symmetry_.sample(np.random.default_rng(3))
    moved = smf.mnlogit("y_mn ~ z", df, representation=rotation.act(g),
                        features=COLS).fit(disp=0)
    np.testing.assert_allclose(moved.wald_test("y1_pc0 = y1_pc1 = 0", scalar=True).statistic,
                               block.statistic, rtol=1e-6)
    np.testing.assert_allclose(
        moved.wald_test("y1_pc0 = y1_pc1 = y2_pc0 = y2_pc1 = 0", scalar=True).statistic,
        both.statistic, rtol=1e-6)
    P, P_moved = np.asarray(res.params), np.asarray(moved.params)
    np.testing.assert_allclose(P_moved[:2], P[:2], rtol=1e-6, atol=1e-8)
    rho = rotation.symmetry_.rho(g)
    np.testing.assert_allclose(P_moved[2:], rho @ P[2:], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(moved.bse)[:2], np.asarray(res.bse)[:2],
                               rtol=1e-6)
    with pytest.warns(ssi.GaugeDependentWarning):
        p = np.asarray(res.pvalues)
    assert np.isnan(p[2:]).all() and np.isfinite(p[:2]).all()
    text = str(res.summary())
    assert sum(line.startswith("pc1*") for line in text.splitlines()) == 2


def test_zip_inflation_equation_has_its_own_feature_block(data, rotation):
    _, df = data
    res = ssi.ZeroInflatedPoisson.from_formula(
        "y_zip ~ z", df, representation=rotation, features=COLS,
        inflation_features=True).fit(disp=0, method="newton")
    names = res.model.param_names
    assert names[:3] == ["inflate_const", "inflate_pc0", "inflate_pc1"]
    with pytest.raises(NonInvariantHypothesisError):
        res.t_test("inflate_pc1 = 0")
    with pytest.raises(NonInvariantHypothesisError):
        res.wald_test("inflate_pc0 = pc0 = 0")
    tests = res.invariant_tests()
    assert "inflate_pc0 = inflate_pc1 = 0" in tests.index
    assert "pc0 = pc1 = 0" in tests.index
    R = np.zeros((2, len(names)))
    R[0, names.index("inflate_pc0")] = R[1, names.index("inflate_pc1")] = 1
    V, b = np.asarray(res.cov_params()), np.asarray(res.params)
    stat = b @ R.T @ np.linalg.solve(R @ V @ R.T, R @ b)
    np.testing.assert_allclose(tests.loc["inflate_pc0 = inflate_pc1 = 0", "statistic"], stat,
                               rtol=1e-10)
    # the inflation equation's features move with the first stage
    dec = res.variance_decomposition()
    assert dec.loc["inflate_pc1", "pretraining"] > 0


def test_sign_flips_allow_single_components_and_extra_parameters(data, rep):
    _, df = data
    res = smf.negativebinomial("y_nb ~ z", df, representation=rep, features=COLS).fit(
        disp=0)
    assert np.isfinite(res.t_test("pc1 = 0").pvalue)
    assert np.isfinite(res.t_test("alpha = 0.5").pvalue)
    with pytest.raises(NonInvariantHypothesisError, match="sign flips"):
        res.t_test("pc0 = pc1")


# ----------------------------------------------------------------- predictions
@pytest.mark.parametrize("name", ["negativebinomial", "generalizedpoisson",
                                  "zeroinflatedpoisson"])
@pytest.mark.parametrize("which", ["mean", "linear"])
def test_naive_predictions_are_statsmodels(name, which, data, rep):
    _, df = data
    cls, _, y, _, init, fit_kw = MODELS[name]
    exog, W = _arrays(df, rep, True)
    res = cls(df[y].to_numpy(), exog, representation=rep, features=df[COLS].to_numpy(),
              **init).fit(disp=0, cov_type="naive", **fit_kw)
    ref, _ = _reference(name, df, rep)
    ours = res.get_prediction(exog[:5], features=df[COLS].to_numpy()[:5], which=which)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # statsmodels' default-link notice
        theirs = ref.get_prediction(W[:5], which=which)
    np.testing.assert_allclose(ours.predicted, theirs.predicted, rtol=1e-10)
    if name != "zeroinflatedpoisson":   # (statsmodels' ZIP SEs use its defective Hessian)
        np.testing.assert_allclose(ours.se, theirs.se, rtol=1e-6)
        np.testing.assert_allclose(ours.conf_int(), theirs.conf_int(), rtol=1e-6)


def test_prediction_rows_and_layouts(data, rep):
    _, df = data
    res = smf.mnlogit("y_mn ~ z", df, representation=rep, features=COLS).fit(disp=0)
    new = df.iloc[:4].copy()
    new.loc[new.index[1], "x2"] = np.nan
    pred = res.get_prediction(new)
    assert pred.predicted.shape == (3, 3) and list(pred.row_labels) == [0, 2, 3]
    np.testing.assert_allclose(pred.predicted.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.asarray(res.predict(new).dropna()), pred.predicted)
    frame = pred.summary_frame()
    assert frame.index.names == ["row", "level"] and len(frame) == 9
    assert pred.conf_int().shape == (3, 3, 2)
    # array models keep NaN rows
    exog, _ = _arrays(df, rep, True)
    X = df[COLS].to_numpy()[:3].copy()
    X[1, 0] = np.nan
    arr = ssi.MNLogit(df["y_mn"].to_numpy(), exog, representation=rep,
                      features=df[COLS].to_numpy()).fit(disp=0)
    p = arr.get_prediction(exog[:3], features=X)
    assert np.isnan(p.predicted[1]).all() and np.isfinite(p.predicted[[0, 2]]).all()
    # in-sample: the model's own rows
    assert arr.get_prediction().predicted.shape == (len(df), 3)


def test_average_predictions(data, rep):
    _, df = data
    exog, _ = _arrays(df, rep, True)
    X = df[COLS].to_numpy()
    res = ssi.NegativeBinomial(df["y_nb"].to_numpy(), exog, representation=rep,
                               features=X).fit(disp=0)
    one = res.get_prediction(exog[:1], features=X[:1], which="var")
    avg = res.get_prediction(exog[:1], features=X[:1], which="var", average=True)
    np.testing.assert_allclose(avg.predicted, one.predicted[0], rtol=1e-12)
    np.testing.assert_allclose(avg.se, one.se[0], rtol=1e-10)
    # a contrast of a row with itself is exactly zero, with zero variance
    rows = np.vstack([exog[:1], exog[:1]])
    diff = res.get_prediction(rows, features=np.vstack([X[:1], X[:1]]), average=True,
                              agg_weights=np.array([2.0, -2.0]), which="mean")
    assert abs(float(diff.predicted)) < 1e-12 and float(diff.se) < 1e-8
    with pytest.raises(ValueError, match="agg_weights are the weights of average=True"):
        res.get_prediction(exog[:2], features=X[:2], agg_weights=np.ones(2))


def test_zip_prediction_needs_the_inflation_covariates(data, rep):
    _, df = data
    exog, _ = _arrays(df, rep, True)
    X = df[COLS].to_numpy()
    zinf = np.column_stack([np.ones(len(df)), df["z"]])
    res = ssi.ZeroInflatedPoisson(df["y_zip"].to_numpy(), exog, exog_infl=zinf,
                                  representation=rep, features=X,
                                  inflation_features=True).fit(disp=0, method="newton")
    assert res.model.param_names[:4] == ["inflate_x1", "inflate_x2", "inflate_pc0",
                                         "inflate_pc1"]
    with pytest.raises(ValueError, match="Pass exog_infl=... for the new rows"):
        res.get_prediction(exog[:2], features=X[:2])
    with pytest.raises(ValueError, match="exog_infl for prediction has 1 columns"):
        res.get_prediction(exog[:2], features=X[:2], exog_infl=np.ones((2, 1)))
    pred = res.get_prediction(exog[:2], features=X[:2], exog_infl=zinf[:2])
    np.testing.assert_allclose(pred.predicted, res.predict()[:2], rtol=1e-10)


# ----------------------------------------------------------------- margins, bootstrap
@pytest.mark.parametrize("name", ["negativebinomial", "generalizedpoisson"])
def test_margins_reduce_to_statsmodels(name, data, rep):
    _, df = data
    cls, _, y, _, init, fit_kw = MODELS[name]
    exog, _ = _arrays(df, rep, True)
    model = cls(df[y].to_numpy(), exog, representation=rep, features=df[COLS].to_numpy())
    naive = model.fit(disp=0, cov_type="naive", **fit_kw).get_margeff()
    two = model.fit(disp=0, **fit_kw).get_margeff()
    ref = _reference(name, df, rep)[0].get_margeff()
    np.testing.assert_allclose(naive.margeff, ref.margeff, rtol=1e-10)
    np.testing.assert_allclose(naive.margeff_se, ref.margeff_se, rtol=1e-10)
    np.testing.assert_allclose(two.margeff, ref.margeff, rtol=1e-10)
    np.testing.assert_allclose(two.margeff_se_naive, ref.margeff_se, rtol=1e-10)
    assert (two.margeff_se[1:] > two.margeff_se_naive[1:]).all()  # pc0, pc1


def test_bootstrap_layouts(data, rep):
    _, df = data
    exog, _ = _arrays(df, rep, True)
    X = df[COLS].to_numpy()
    res = ssi.MNLogit(df["y_mn"].to_numpy(), exog, representation=rep, features=X).fit(
        disp=0, cov_type="bootstrap", cov_kwds={"reps": 25, "seed": 1})
    draws = res.bootstrap_params
    assert draws.shape == (25, 8)
    np.testing.assert_allclose(np.asarray(res.cov_params()), np.cov(draws, rowvar=False),
                               rtol=1e-12)
    ci = res.conf_int(method="percentile")
    assert ci.shape == (2, 4, 2)
    # equation e, column c of the interval is flat coefficient e * K + c
    np.testing.assert_allclose(ci[1, 2], np.quantile(draws[:, 6], [0.025, 0.975]))
    with pytest.raises(ValueError, match="inflation_features=True"):
        ssi.ZeroInflatedPoisson(df["y_zip"].to_numpy(), exog, representation=rep,
                                features=X, inflation_features=True).fit(
            disp=0, cov_type="bootstrap", cov_kwds={"reps": 5})


def test_jackknife_of_a_multi_equation_model(data, rep):
    """Exact jackknife deletions store MNLogit's flat coefficients, equation by
    equation; its covariance is the stratified jackknife of those deletions, close to
    the analytic two-stage one; the one-step jackknife is refused."""
    _, df = data
    exog, _ = _arrays(df, rep, True)
    X = df[COLS].to_numpy()
    model = ssi.MNLogit(df["y_mn"].to_numpy(), exog, representation=rep, features=X)
    clusters = {"groups": np.arange(len(df)) // (len(df) // 40),
                "pretrain_groups": 1000 + np.arange(rep.nobs_) // (rep.nobs_ // 30)}
    jk = model.fit(disp=0, cov_type="jackknife", cov_kwds={**clusters, "progress": False})
    draws = jk.jackknife_params
    units = sum(np.unique(labels).size for labels in clusters.values())  # 42 + 30
    assert draws.shape == (units, 8)
    np.testing.assert_allclose(np.asarray(jk.cov_params()),
                               jk._results._replicates.covariance(draws), rtol=1e-12)
    two = model.fit(disp=0, cov_type="cluster", cov_kwds=clusters)
    ratio = np.asarray(jk.bse).ravel() / np.asarray(two.bse).ravel()
    assert np.all((ratio > 0.7) & (ratio < 1.5)), ratio
    with pytest.raises(NotImplementedError, match="one-step jackknife is not available"):
        model.fit(disp=0, cov_type="jackknife", cov_kwds={"method": "one-step"})


# ----------------------------------------------------------------- refusals
def test_refusals_name_the_alternative(data, rep, rotation):
    _, df = data
    exog, _ = _arrays(df, rep, True)
    X = df[COLS].to_numpy()
    nb = ssi.NegativeBinomial(df["y_nb"].to_numpy(), exog, representation=rep, features=X)
    with pytest.raises(ValueError, match="statsmodels computes HC0 for GLM and discrete"):
        nb.fit(disp=0, cov_type="HC1")
    res = nb.fit(disp=0)
    with pytest.raises(FirstStageBlindError, match="get_diagnostic\\(\\) returns"):
        res.get_diagnostic()
    with pytest.raises(FirstStageBlindError, match="score_test\\(\\) evaluates"):
        res.score_test()
    with pytest.raises(NotImplementedError, match="likelihood second stages"):
        res.risk_asymptotics()
    with pytest.raises(FirstStageBlindError, match="fit_regularized\\(\\)"):
        nb.fit_regularized()
    mn = ssi.MNLogit(df["y_mn"].to_numpy(), exog, representation=rep, features=X).fit(
        disp=0)
    with pytest.raises(FirstStageBlindError, match="average=True"):
        mn.get_margeff()
    ordered = ssi.OrderedModel(df["y_ord"].to_numpy(), None, representation=rep,
                               features=X, distr="logit").fit(method="bfgs", disp=0)
    assert ordered.model.param_names == ["pc0", "pc1", "0/1", "1/2"]
    with pytest.raises(FirstStageBlindError, match="cov_type='bootstrap'"):
        ordered.bootstrap()
    with pytest.raises(NotImplementedError, match="no summary2"):
        ordered.summary2()
    with pytest.raises(TypeError, match="inflation_features=True .* needs representation"):
        ssi.ZeroInflatedPoisson(df["y_zip"].to_numpy(), exog, inflation_features=True)
    with pytest.raises(TypeError, match="inflation_features=True .* needs representation"):
        ssi.ZeroInflatedPoisson.from_formula("y_zip ~ z", df, inflation_features=True)
    with pytest.raises(ValueError, match="offset= has no effect in statsmodels' MNLogit"):
        ssi.MNLogit(df["y_mn"].to_numpy(), exog, offset=np.zeros(len(df)),
                    representation=rep, features=X)
    with pytest.raises(TypeError, match="unexpected keyword"):
        nb.fit(disp=0, not_an_option=1)
    with pytest.raises(ValueError, match="has no cols"):
        mn.conf_int(cols=[0])
    zi = ssi.ZeroInflatedPoisson(df["y_zip"].to_numpy(), exog, representation=rep,
                                 features=X).fit(disp=0, maxiter=500)
    before = zi.get_prediction(exog[:2], features=X[:2]).se
    zi.remove_data()
    with pytest.raises(ValueError, match="not available after remove_data"):
        zi.get_prediction(exog[:2], features=X[:2])
    res.remove_data()   # other models keep predicting new rows
    assert np.isfinite(res.get_prediction(exog[:2], features=X[:2]).se).all()
    assert np.isfinite(before).all()


def test_nonstationary_optimum_warns(data, rep):
    _, df = data
    model = ssi.OrderedModel(df["y_ord"].to_numpy(), df[["z"]].to_numpy(),
                             representation=rep, features=df[COLS].to_numpy(),
                             distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm_exceptions.ConvergenceWarning)  # statsmodels'
        with pytest.warns(ConvergenceWarning, match="standard errors away from a stationary"):
            model.fit(method="nm", maxiter=20, disp=0)


def test_pickle_and_plain_models(data, rep):
    """Results pickle; without a representation the classes are statsmodels' models
    (statsmodels re-instantiates them, e.g. for llnull in the summary)."""
    _, df = data
    res = smf.negativebinomial("y_nb ~ z", df, representation=rep, features=COLS).fit(disp=0)
    again = pickle.loads(pickle.dumps(res))
    np.testing.assert_allclose(np.asarray(again.bse), np.asarray(res.bse), rtol=0)
    assert "LLR p-value" in str(res.summary())
    exog, W = _arrays(df, rep, True)
    plain = ssi.NegativeBinomial(df["y_nb"].to_numpy(), W).fit(disp=0)
    ref = sm.NegativeBinomial(df["y_nb"].to_numpy(), W).fit(disp=0)
    np.testing.assert_array_equal(np.asarray(plain.bse), np.asarray(ref.bse))
    assert type(plain).__module__.startswith("statsmodels")


@pytest.mark.parametrize("distr, reference", [("logit", "logistic"), ("probit", "norm")])
def test_ordered_model_distribution_evaluates_scipys_values(distr, reference):
    # the named links evaluate cdf and pdf by scipy's own formulas, without its generic
    # argument handling: the same values, +-inf and NaN included
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [2.0, 1.0, 0.5]
    rep = ssi.PCA(1).fit(X)
    y = np.digitize(X[:100, 0] + rng.logistic(size=100), [-1.0, 1.0])
    model = ssi.OrderedModel(y, None, distr=distr, representation=rep, features=X[:100])
    ref = getattr(stats, reference)
    x = np.array([-np.inf, -40.0, -3.2, 0.0, 1e-3, 2.5, 40.0, np.inf, np.nan])
    for method in ("cdf", "pdf"):
        np.testing.assert_array_equal(getattr(model.distr, method)(x),
                                      getattr(ref, method)(x))
        assert getattr(model.distr, method)(0.3) == getattr(ref, method)(0.3)
    assert model.distr.cdf(0.3, loc=1.0) == ref.cdf(0.3, loc=1.0)   # the generic path
    assert model.distr.name == ref.name


@pytest.mark.parametrize("method", ["nb2", "nb1", "geometric"])
@pytest.mark.parametrize("rowwise", ["none", "offset", "exposure"])
def test_negative_binomial_score_obs_is_the_derivative_of_loglikeobs(method, rowwise):
    # the analytic per-observation score equals statsmodels' complex-step derivative
    from statsmodels.tools.numdiff import approx_fprime_cs
    rng = np.random.default_rng(2)
    rep = ssi.PCA(2).fit(rng.normal(size=(300, 3)) * [2.0, 1.0, 0.5])
    n = 150
    W = sm.add_constant(rng.normal(size=(n, 1)))
    mu = np.exp(0.3 + 0.2 * W[:, 1])
    y = rng.negative_binomial(2, 2 / (2 + mu))
    extra = {"none": {}, "offset": {"offset": 0.1 * rng.normal(size=n)},
             "exposure": {"exposure": np.exp(0.1 * rng.normal(size=n))}}[rowwise]
    model = ssi.NegativeBinomial(y, W, loglike_method=method, representation=rep,
                                 features=rng.normal(size=(n, 3)), **extra)
    params = np.r_[0.2, 0.1, 0.05, -0.03] if method == "geometric" else np.r_[
        0.2, 0.1, 0.05, -0.03, 0.7]
    expected = approx_fprime_cs(params, model.loglikeobs)
    np.testing.assert_allclose(model.score_obs(params), expected, rtol=1e-12,
                               atol=1e-12 * np.abs(expected).max())
