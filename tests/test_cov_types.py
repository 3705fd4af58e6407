"""statsmodels' cov_type habits with a first stage (issue 11, section 2).

* ``fit(cov_type="HC1")``, ``"cluster"``, ``"HAC"``, ... mean the two-stage covariance
  with that second-stage estimator, labeled so in the summary;
* HAC for OLS/WLS: the fine-tuning part is statsmodels' HAC, the first-stage part the
  one of the nonrobust fit (independent samples; refused with overlap);
* GLM and discrete models refuse HC1-HC3 (statsmodels computes HC0 there) and HAC;
* ``cov_type="naive"`` stays exactly statsmodels;
* every fit method documents every cov_type and cov_kwds key, from one text;
* without first-stage uncertainty (J = 0) every estimator reduces to statsmodels.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as sm_smf

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.covariance import COV_KWDS, COV_OPTIONS_DOC, COV_TYPES, CovarianceSpec

from .conftest import make_problem

NAMES = {"nonrobust": None, "HC0": None, "HC1": None, "HC2": None, "HC3": None,
         "cluster": {"groups": "g"}, "HAC": {"maxlags": 3}}


@pytest.fixture(scope="module")
def fitted():
    X_pre, df, cols = make_problem(seed=11)
    rep = ssi.PCA(2).fit(X_pre)
    return rep, df, cols


def _model(fitted, formula="y ~ z + treat", **kw):
    rep, df, cols = fitted
    return smf.ols(formula, df, representation=rep, features=cols, **kw)


def _augmented(fitted):
    rep, df, cols = fitted
    return df.join(rep.transform(df[cols]))


@pytest.mark.parametrize("name", list(NAMES))
def test_statsmodels_name_is_two_stage_with_that_second_stage(fitted, name):
    model = _model(fitted)
    res = model.fit(cov_type=name, cov_kwds=NAMES[name])
    spelled = model.fit(cov_kwds={"second_stage": name, **(NAMES[name] or {})})
    np.testing.assert_array_equal(res.cov_params(), spelled.cov_params())
    label = "two-stage" if name == "nonrobust" else f"two-stage {name}"
    assert res.cov_type == spelled.cov_type == label and len(label) <= 18
    assert res.use_t is False
    # the first stage is in it: not statsmodels' covariance of the same design
    assert np.all(np.asarray(res.bse)[-2:] > 1.2 * np.asarray(res.bse_naive)[-2:])
    description = res.cov_kwds["description"]
    assert f"second-stage {name} covariance (statsmodels) plus the first-stage" in description


def test_summary_says_which_covariance(fitted):
    res = _model(fitted).fit(cov_type="cluster", cov_kwds={"groups": "g"})
    text = str(res.summary())
    line = next(x for x in text.splitlines() if x.startswith("Covariance Type:"))
    assert line.split()[-2:] == ["two-stage", "cluster"] and len(line) <= 78
    assert re.search(r"Small-sample factors: statsmodels' on the second-stage part; "
                     r"G/\(G-1\) = 1\.0025 on the first-stage part \(G = 400 pre-training "
                     r"rows\)", text)
    hac = _model(fitted).fit(cov_type="HAC", cov_kwds={"maxlags": 2})
    assert "No small-sample factors" in str(hac.summary())
    assert re.search(r"Second-stage cov:\s+HAC \(2 lags\)", str(hac.summary()))


@pytest.mark.parametrize("name", list(NAMES))
def test_naive_is_statsmodels(fitted, name):
    _, df, _ = fitted
    kw = dict(NAMES[name] or {})
    res = _model(fitted).fit(cov_type="naive", cov_kwds={"second_stage": name, **kw})
    if "groups" in kw:
        kw["groups"] = df["g"]
    plain = sm_smf.ols("y ~ z + treat + pc0 + pc1", _augmented(fitted)).fit(
        cov_type=name, cov_kwds=kw or None)
    np.testing.assert_allclose(res.cov_params(), plain.cov_params(), rtol=1e-10, atol=0)
    assert res.cov_type == plain.cov_type and res.use_t == plain.use_t


# ----------------------------------------------------------------------------- HAC
@pytest.mark.parametrize("kernel", ["bartlett", "uniform"])
@pytest.mark.parametrize("use_correction", [False, True])
@pytest.mark.parametrize("weighted", [False, True], ids=["ols", "wls"])
def test_hac_parts(fitted, kernel, use_correction, weighted):
    """Fine-tuning part = statsmodels' HAC of the same design (exactly); first-stage part
    = the nonrobust fit's (independent of the second-stage estimator), carrying the
    factor G/(G-1) exactly when use_correction is set."""
    rep, df, cols = fitted
    weights = np.linspace(0.5, 2.0, len(df)) if weighted else None
    ours = (smf.wls if weighted else smf.ols)
    kw = {} if weights is None else {"weights": weights}
    model = ours("y ~ z + treat", df, representation=rep, features=cols, **kw)
    hac_kwds = {"maxlags": 4, "kernel": kernel, "use_correction": use_correction}
    res = model.fit(cov_type="HAC", cov_kwds=hac_kwds)
    plain = (sm_smf.wls if weighted else sm_smf.ols)(
        "y ~ z + treat + pc0 + pc1", _augmented(fitted), **kw).fit(cov_type="HAC",
                                                                  cov_kwds=hac_kwds)
    parts = res._parts
    np.testing.assert_allclose(parts.fine_tuning, plain.cov_params(), rtol=1e-10, atol=0)
    nonrobust = model.fit()._parts  # corrected: G/(G-1) with G = m rows
    m = rep.nobs_
    factor = 1.0 if use_correction else (m - 1) / m
    np.testing.assert_allclose(parts.pretraining, factor * nonrobust.pretraining,
                               rtol=1e-12, atol=0)
    np.testing.assert_array_equal(parts.cross, 0.0)
    np.testing.assert_allclose(res.cov_params(), plain.cov_params() + parts.pretraining,
                               rtol=1e-12)
    # the kernel and lags matter (not vacuous)
    other = model.fit(cov_type="HAC", cov_kwds={**hac_kwds, "maxlags": 0})
    assert np.max(np.abs(np.asarray(other.bse) / np.asarray(res.bse) - 1)) > 1e-3


def test_hac_with_clustered_pretraining(fitted):
    rep, df, cols = fitted
    pre_groups = np.arange(rep.nobs_) % 17
    model = _model(fitted)
    res = model.fit(cov_type="HAC", cov_kwds={"maxlags": 2, "pretrain_groups": pre_groups,
                                              "use_correction": True})
    hc1 = model.fit(cov_type="HC1", cov_kwds={"pretrain_groups": pre_groups})
    np.testing.assert_allclose(res._parts.pretraining, hc1._parts.pretraining, rtol=1e-12)
    assert res._covariance.pretrain_factor == pytest.approx(17 / 16, rel=1e-15)


def test_hac_refused_with_overlap(fitted):
    rep, df, cols = fitted
    model = _model(fitted, pretrain_index=np.arange(len(df)))
    with pytest.raises(ValueError, match=r"cov_type='HAC' with overlapping samples "
                                         r"\(pretrain_index\) is not available: the serial "
                                         "dependence of the labeled rows carries into the "
                                         "pre-training rows"):
        model.fit(cov_type="HAC", cov_kwds={"maxlags": 2})
    naive = model.fit(cov_type="naive", cov_kwds={"second_stage": "HAC", "maxlags": 2})
    assert naive.cov_type == "HAC"  # statsmodels' own, as asked


# ----------------------------------------------------------- GLM / discrete refusals
LIKELIHOOD = {
    "glm": lambda df, **kw: smf.glm("yb ~ z", df, family=sm.families.Binomial(), **kw),
    "logit": lambda df, **kw: smf.logit("yb ~ z", df, **kw),
    "probit": lambda df, **kw: smf.probit("yb ~ z", df, **kw),
    "poisson": lambda df, **kw: smf.poisson("yc ~ z", df, **kw),
}


@pytest.fixture(scope="module")
def counts(fitted):
    rep, df, cols = fitted
    rng = np.random.default_rng(5)
    df = df.copy()
    eta = 0.3 * (df["x0"] - df["x0"].mean()) / df["x0"].std()
    df["yb"] = (rng.random(len(df)) < 1 / (1 + np.exp(-eta))).astype(float)
    df["yc"] = rng.poisson(np.exp(0.5 + eta))
    return rep, df, cols


@pytest.mark.parametrize("name", ["HC1", "HC2", "HC3"])
@pytest.mark.parametrize("model", list(LIKELIHOOD))
def test_likelihood_models_refuse_hc1_to_hc3(counts, model, name):
    rep, df, cols = counts
    mod = LIKELIHOOD[model](df, representation=rep, features=cols)
    fit_kw = {} if model == "glm" else {"disp": 0}
    message = (rf"second_stage='{name}' is not available with a first stage here: "
               "statsmodels computes HC0 for GLM and discrete models whatever HC number is "
               rf"named .* a 'two-stage {name}' label would be wrong. Use 'HC0'")
    with pytest.raises(ValueError, match=message):
        mod.fit(cov_type=name, **fit_kw)
    with pytest.raises(ValueError, match=message):
        mod.fit(cov_kwds={"second_stage": name}, **fit_kw)
    # what statsmodels does is still available as such, and it is HC0's numbers
    naive = mod.fit(cov_type="naive", cov_kwds={"second_stage": name}, **fit_kw)
    hc0 = mod.fit(cov_type="naive", cov_kwds={"second_stage": "HC0"}, **fit_kw)
    assert naive.cov_type == name
    np.testing.assert_allclose(naive.cov_params(), hc0.cov_params(), rtol=1e-12)
    # ... and the honest label works, with the first stage
    two = mod.fit(cov_type="HC0", **fit_kw)
    assert two.cov_type == "two-stage HC0"
    assert np.all(np.asarray(two.bse) >= np.asarray(hc0.bse) * (1 - 1e-12))


@pytest.mark.parametrize("model", list(LIKELIHOOD))
def test_likelihood_models_refuse_hac(counts, model):
    rep, df, cols = counts
    mod = LIKELIHOOD[model](df, representation=rep, features=cols)
    fit_kw = {} if model == "glm" else {"disp": 0}
    with pytest.raises(ValueError, match="the two-stage HAC covariance is implemented for "
                                         "OLS/WLS second stages"):
        mod.fit(cov_type="HAC", cov_kwds={"maxlags": 2}, **fit_kw)


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cov_type, cov_kwds, message", [
    ("HAC", None, r"cov_type='HAC' needs cov_kwds\['maxlags'\], the highest lag of the "
                  r"Newey-West kernel \(an integer >= 0\); got None"),
    ("HAC", {"maxlags": -1}, r"an integer >= 0\); got -1"),
    ("HAC", {"maxlags": 2.5}, r"an integer >= 0\); got 2.5"),
    ("HAC", {"maxlags": 2, "kernel": "parzen"},
     r"cov_kwds\['kernel'\] must be one of \('bartlett', 'uniform'\); got 'parzen'"),
    ("cluster", {"groups": "g", "use_correction": "yes"},
     r"cov_kwds\['use_correction'\] must be True or False; got 'yes'"),
    ("HC1", {"use_correction": False},
     r"Unknown cov_kwds \['use_correction'\] for cov_type='HC1'; allowed keys are "
     r"\['pretrain_groups'\]"),
    ("HC1", {"second_stage": "HC1"}, r"Unknown cov_kwds \['second_stage'\] for "
                                     "cov_type='HC1'"),
    ("cluster", None, "pass groups="),
    ("two-stage", {"second_stage": "HC1", "maxlags": 3},
     r"cov_kwds \['maxlags'\] do not apply to second_stage='HC1'; they belong to \['HAC'\]"),
    ("naive", {"second_stage": "HC2", "use_correction": True},
     r"cov_kwds \['use_correction'\] do not apply to second_stage='HC2'; they belong to "
     r"\['HAC', 'cluster'\]"),
])
def test_bad_cov_options(fitted, cov_type, cov_kwds, message):
    model = _model(fitted)
    with pytest.raises(ValueError, match=message):
        model.fit(cov_type=cov_type, cov_kwds=cov_kwds)
    assert model.fit().cov_type == "two-stage"  # the model is unchanged


# ---------------------------------------------------------------- one documentation
FITS = [ssi.OLS.fit, ssi.WLS.fit, ssi.GLM.fit, ssi.Logit.fit, ssi.Probit.fit,
        ssi.Poisson.fit]


@pytest.mark.parametrize("fit", FITS, ids=lambda f: f.__qualname__)
def test_fit_documents_every_cov_type_and_key(fit):
    doc = fit.__doc__
    # the shared text, re-indented, not a copy with variations
    body = [line.strip() for line in COV_OPTIONS_DOC.splitlines() if line.strip()]
    doc_lines = [line.strip() for line in doc.splitlines() if line.strip()]
    start = doc_lines.index(body[0])
    assert doc_lines[start:start + len(body)] == body
    assert "{cov_options}" not in doc
    for cov_type in COV_TYPES:
        assert f'``"{cov_type}"``' in doc
    for key in sorted({k for keys in COV_KWDS.values() for k in keys}):
        assert f"``{key}``" in doc


# ------------------------------------------------------- reduction without a first stage
@pytest.mark.parametrize("overlap", [False, True], ids=["independent", "overlap"])
@pytest.mark.parametrize("name", list(NAMES))
def test_no_first_stage_uncertainty_is_statsmodels(fitted, name, overlap):
    """With J = 0 (coefficients that do not move with theta) the two-stage covariance is
    statsmodels' covariance of the second stage, whatever the small-sample factors."""
    rep, df, cols = fitted
    if overlap and name == "HAC":
        pytest.skip("HAC is refused with overlap")
    pidx = np.arange(len(df)) if overlap else None
    model = _model(fitted, pretrain_index=pidx)
    kw = dict(NAMES[name] or {})
    if overlap and name == "cluster":
        kw["pretrain_groups"] = np.arange(rep.nobs_) % 40
        kw["groups"] = (kw["pretrain_groups"][:len(df)]).astype(int)
    res = model.fit(cov_type=name, cov_kwds=kw)
    covariance = res._covariance
    frozen = model._two_stage_covariance(
        _statsmodels_second_stage(res), res._spec, covariance.groups,
        covariance.pretrain_groups, jacobian=np.zeros_like(covariance.jacobian))
    np.testing.assert_allclose(frozen.parts().total, res.cov_params_naive(), rtol=1e-12,
                               atol=0)
    assert covariance.small_sample == (name not in ("HC0", "HAC"))


def _statsmodels_second_stage(res):
    """statsmodels' own result of the second stage (what ``_fit_two_stage`` wraps)."""
    from statsmodels.regression.linear_model import RegressionResults
    spec = res._spec
    return RegressionResults(res.model, np.asarray(res.params),
                             normalized_cov_params=res.normalized_cov_params, scale=res.scale,
                             cov_type=spec.statsmodels_cov_type,
                             cov_kwds=spec.statsmodels_cov_kwds(res._covariance.groups))


def test_spec_normalises_statsmodels_names():
    spec = CovarianceSpec.parse("cluster", {"groups": np.zeros(3), "use_correction": False})
    assert (spec.cov_type, spec.second_stage, spec.use_correction, spec.small_sample) == (
        "two-stage", "cluster", False, False)
    assert CovarianceSpec.parse("two-stage", None).small_sample
    assert not CovarianceSpec.parse("HC0", None).small_sample
    assert pd.Series(COV_TYPES).is_unique
