"""statsmodels parity of the two-stage GLM, Logit, Probit and Poisson results (issue 5, part 1).

Tolerances: 1e-10 where the two sides run the same computation (naive results are
statsmodels' own fit on the same design), 1e-6 where two different iterative fits
meet (GLM-Binomial vs Logit), 1e-8 for finite differences of tightly converged refits.
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as sm_formula
from scipy.special import expit

import ssl_inference as ssi
import ssl_inference.formula.api as smf

from .conftest import make_problem

F, L = sm.families, sm.families.links
SECOND_STAGES = ["nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster"]
FORMULA = "~ z + treat"

# name: (ours, statsmodels, model kwargs factory, outcome column, fit kwargs)
SPECS = {
    "glm-gaussian": (smf.glm, sm_formula.glm, lambda: {"family": F.Gaussian()}, "y", {}),
    "glm-binomial": (smf.glm, sm_formula.glm, lambda: {"family": F.Binomial()}, "yb", {}),
    "glm-poisson": (smf.glm, sm_formula.glm, lambda: {"family": F.Poisson()}, "yc", {}),
    "glm-gamma-log": (smf.glm, sm_formula.glm, lambda: {"family": F.Gamma(L.Log())}, "ypos",
                      {}),
    "logit": (smf.logit, sm_formula.logit, dict, "yb", {"disp": 0}),
    "probit": (smf.probit, sm_formula.probit, dict, "yb", {"disp": 0}),
    "poisson": (smf.poisson, sm_formula.poisson, dict, "yc", {"disp": 0}),
}
ARRAY_MODELS = {
    "glm-binomial": (lambda y, X, **kw: ssi.GLM(y, X, family=F.Binomial(), **kw),
                     lambda y, X: sm.GLM(y, X, family=F.Binomial()), "yb", {}),
    "glm-gamma-log": (lambda y, X, **kw: ssi.GLM(y, X, family=F.Gamma(L.Log()), **kw),
                      lambda y, X: sm.GLM(y, X, family=F.Gamma(L.Log())), "ypos", {}),
    "logit": (ssi.Logit, sm.Logit, "yb", {"disp": 0}),
    "probit": (ssi.Probit, sm.Probit, "yb", {"disp": 0}),
    "poisson": (ssi.Poisson, sm.Poisson, "yc", {"disp": 0}),
}


def glm_problem(seed: int = 0, n: int = 150):
    """conftest's problem plus a binary, a count and a positive outcome, exposure, offset."""
    X_pre, df, cols = make_problem(seed=seed, n=n)
    rng = np.random.default_rng(seed + 100)
    eta = 0.3 * (df["x0"] - 0.5) / 3 - 0.2 * (df["x1"] - 0.5) / 2.2 + 0.3 * df["z"]
    df["yb"] = (rng.random(n) < expit(0.2 + 2 * eta + 0.4 * df["treat"])).astype(float)
    df["expo"] = rng.uniform(0.5, 2.0, size=n)
    df["off"] = rng.normal(scale=0.2, size=n)
    df["yc"] = rng.poisson(df["expo"] * np.exp(0.5 + eta)).astype(float)
    df["ypos"] = rng.gamma(3.0, np.exp(1.0 + eta) / 3.0)
    return X_pre, df, cols


@pytest.fixture
def gproblem():
    X_pre, df, cols = glm_problem()
    return ssi.PCA(2).fit(X_pre), df, cols


def _cov_kwds(second, df):
    kw = {"second_stage": second}
    if second == "cluster":
        kw["groups"] = df["g"].to_numpy()
    return kw


def _sm_cov(second, df):
    if second == "cluster":
        return {"cov_type": "cluster", "cov_kwds": {"groups": df["g"].to_numpy()}}
    return {"cov_type": second}


def _augmented(df, rep, cols):
    aug = df.copy()
    aug[list(rep.get_feature_names_out())] = rep.transform(df[cols].to_numpy())
    return aug


def _fit(name, df, rep, cols, **fit):
    ours, _, kw, y, fit_kwargs = SPECS[name]
    return ours(f"{y} {FORMULA}", df, representation=rep, features=cols, **kw()).fit(
        **fit_kwargs, **fit)


def _array_fit(name, df, rep, cols, **fit):
    ours, _, y, fit_kwargs = ARRAY_MODELS[name]
    exog = sm.add_constant(df[["z", "treat"]].to_numpy())
    return ours(df[y].to_numpy(), exog, representation=rep,
                features=df[cols].to_numpy()).fit(**fit_kwargs, **fit)


# ----------------------------------------------------------------- naive = statsmodels
@pytest.mark.parametrize("second", SECOND_STAGES)
@pytest.mark.parametrize("name", list(SPECS))
def test_naive_equals_statsmodels_formula(gproblem, engine, name, second):
    rep, df, cols = gproblem
    _, theirs, kw, y, fit_kwargs = SPECS[name]
    res = _fit(name, df, rep, cols, cov_type="naive", cov_kwds=_cov_kwds(second, df))
    plain = theirs(f"{y} {FORMULA} + pc0 + pc1", _augmented(df, rep, cols), **kw()).fit(
        **fit_kwargs, **_sm_cov(second, df))
    np.testing.assert_allclose(res.params, plain.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.bse, plain.bse, rtol=1e-10)
    np.testing.assert_allclose(res.bse_naive, plain.bse, rtol=1e-10)
    np.testing.assert_allclose(res.pvalues, plain.pvalues, rtol=1e-10, atol=1e-300)
    assert res.cov_type == plain.cov_type and res.use_t == plain.use_t
    assert res.llf == pytest.approx(plain.llf, rel=1e-12)


@pytest.mark.parametrize("second", ["nonrobust", "HC0", "cluster"])
@pytest.mark.parametrize("name", list(ARRAY_MODELS))
def test_fine_tuning_part_is_statsmodels_covariance(gproblem, name, second):
    rep, df, cols = gproblem
    _, theirs, y, fit_kwargs = ARRAY_MODELS[name]
    res = _array_fit(name, df, rep, cols, cov_kwds=_cov_kwds(second, df))
    exog = sm.add_constant(df[["z", "treat"]].to_numpy())
    plain = theirs(df[y].to_numpy(), np.column_stack([exog, rep.transform(df[cols].to_numpy())])
                   ).fit(**fit_kwargs, **_sm_cov(second, df))
    decomposition = res.variance_decomposition()
    np.testing.assert_allclose(decomposition["fine_tuning"], plain.bse ** 2, rtol=1e-10)
    np.testing.assert_allclose(res.cov_params() - res._parts.pretraining, plain.cov_params(),
                               rtol=1e-10, atol=1e-14)
    assert (decomposition["pretraining"] > 0).all()
    label = "two-stage" if second == "nonrobust" else f"two-stage {second}"
    assert res.cov_type == label and res.use_t is False


# --------------------------------------------------------- equivalences between models
@pytest.mark.parametrize("second", ["nonrobust", "HC0", "cluster"])
@pytest.mark.parametrize("overlap", [False, True], ids=["independent", "overlap"])
def test_glm_gaussian_equals_ols(gproblem, second, overlap):
    rep, df, cols = gproblem
    pidx = np.arange(len(df)) if overlap else None
    kw = _cov_kwds(second, df)
    if overlap and second == "cluster":
        kw["pretrain_groups"] = np.arange(rep.nobs_) % 25
        kw["pretrain_groups"][pidx] = kw["groups"]  # an overlapping row keeps its cluster
    ols = smf.ols(f"y {FORMULA}", df, representation=rep, features=cols,
                  pretrain_index=pidx).fit(cov_kwds=kw)
    glm = smf.glm(f"y {FORMULA}", df, representation=rep, features=cols,
                  pretrain_index=pidx).fit(cov_kwds=kw)
    np.testing.assert_allclose(glm.first_stage_jacobian, ols.first_stage_jacobian,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(glm.cov_params(), ols.cov_params(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("second", ["nonrobust", "HC0"])
def test_glm_gaussian_var_weights_equal_wls(gproblem, second):
    rep, df, cols = gproblem
    w = np.linspace(0.5, 2.0, len(df))
    wls = smf.wls(f"y {FORMULA}", df, weights=w, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": second})
    glm = smf.glm(f"y {FORMULA}", df, var_weights=w, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": second})
    np.testing.assert_allclose(glm.cov_params(), wls.cov_params(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("second", ["nonrobust", "HC0", "cluster"])
@pytest.mark.parametrize("pair", [("glm-binomial", "logit"), ("glm-poisson", "poisson")])
def test_glm_equals_discrete_canonical(gproblem, pair, second):
    rep, df, cols = gproblem
    kw = _cov_kwds(second, df)
    glm = _fit(pair[0], df, rep, cols, cov_kwds=kw, tol=1e-12)
    disc = _fit(pair[1], df, rep, cols, cov_kwds=kw)
    np.testing.assert_allclose(glm.params, disc.params, rtol=1e-6)
    np.testing.assert_allclose(glm.cov_params(), disc.cov_params(), rtol=1e-6)
    np.testing.assert_allclose(glm.variance_decomposition(), disc.variance_decomposition(),
                               rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("second", ["HC0", "cluster"])
def test_glm_probit_equals_probit(gproblem, second):
    """Non-canonical link: the same observed J; robust covariances agree (statsmodels'
    nonrobust ones do not: GLM inverts the expected, Probit the observed information)."""
    rep, df, cols = gproblem
    kw = _cov_kwds(second, df)
    glm = smf.glm(f"yb {FORMULA}", df, family=F.Binomial(L.Probit()), representation=rep,
                  features=cols).fit(cov_kwds=kw, tol=1e-13)
    probit = _fit("probit", df, rep, cols, cov_kwds=kw)
    np.testing.assert_allclose(glm.first_stage_jacobian, probit.first_stage_jacobian,
                               rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(glm.cov_params(), probit.cov_params(), rtol=1e-6)


FAMILIES = [
    ("gaussian-log", F.Gaussian(L.Log()), "pos"),
    ("binomial-probit", F.Binomial(L.Probit()), "binary"),
    ("binomial-cloglog", F.Binomial(L.CLogLog()), "binary"),
    ("binomial-cauchy", F.Binomial(L.Cauchy()), "binary"),
    ("poisson-sqrt", F.Poisson(L.Sqrt()), "count"),
    ("gamma-inverse", F.Gamma(), "pos"),
    ("gamma-identity", F.Gamma(L.Identity()), "pos"),
    ("inverse-gaussian-log", F.InverseGaussian(L.Log()), "pos"),
    ("negative-binomial", F.NegativeBinomial(alpha=0.5), "count"),
    ("tweedie-1.5", F.Tweedie(var_power=1.5), "pos"),
]


def _weak_signal_outcomes(df) -> dict:
    """Outcomes whose fits stay inside every link's domain (e.g. eta > 0 for sqrt)."""
    rng = np.random.default_rng(0)
    s = (0.15 * (df["x0"] - 0.5) / 3 - 0.1 * (df["x1"] - 0.5) / 2.2 + 0.2 * df["z"]).to_numpy()
    return {"binary": (rng.random(len(s)) < expit(0.2 + 3 * s)).astype(float),
            "count": rng.poisson(np.exp(0.8 + s)).astype(float),
            "pos": rng.gamma(3.0, np.exp(1.0 + s) / 3.0)}


@pytest.mark.parametrize("family, y", [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_jacobian_equals_finite_differences_of_refits(gproblem, family, y):
    """J = d beta / d theta (observed second derivative) for non-canonical links too.

    Refits converge on the parameters (IRLS is Fisher scoring, linear for
    non-canonical links, so a deviance criterion leaves them too loose for
    differencing)."""
    rep, df, cols = gproblem
    X, Z = df[cols].to_numpy(), sm.add_constant(df[["z"]].to_numpy())
    endog = _weak_signal_outcomes(df)[y]
    opts = dict(tol_criterion="params", atol=1e-15, rtol=0.0, maxiter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.tools.sm_exceptions.DomainWarning)
        res = ssi.GLM(endog, Z, family=family, representation=rep, features=X).fit(**opts)
        assert res.converged
        theta = rep.params_
        p, k = rep.n_features_in_, rep.n_features_out_

        def beta_at(th):
            W = np.column_stack([Z, (X - th[:p]) @ th[p:].reshape(k, p).T])
            return sm.GLM(endog, W, family=family).fit(
                start_params=np.asarray(res.params), **opts).params

        h = 1e-5
        J_fd = np.column_stack([(beta_at(theta + h * e) - beta_at(theta - h * e)) / (2 * h)
                                for e in np.eye(theta.size)])
    J = res.first_stage_jacobian
    assert np.max(np.abs(J - J_fd)) < 1e-7 * np.max(np.abs(J_fd))


def test_first_stage_term_does_not_depend_on_the_scale(gproblem):
    """J and the pre-training part are scale-free; only statsmodels' Cov_2 scales."""
    rep, df, cols = gproblem
    model = smf.glm(f"ypos {FORMULA}", df, family=F.Gamma(L.Log()), representation=rep,
                    features=cols)
    opts = dict(tol_criterion="params", atol=1e-15, rtol=0.0, maxiter=2000)
    estimated, fixed = model.fit(**opts), model.fit(scale=5.0, **opts)
    assert estimated.scale != pytest.approx(5.0)
    np.testing.assert_allclose(fixed.first_stage_jacobian, estimated.first_stage_jacobian,
                               rtol=1e-9, atol=1e-12)
    parts, parts_fixed = estimated.variance_decomposition(), fixed.variance_decomposition()
    np.testing.assert_allclose(parts_fixed["pretraining"], parts["pretraining"], rtol=1e-9)
    np.testing.assert_allclose(parts_fixed["fine_tuning"],
                               parts["fine_tuning"] * 5.0 / estimated.scale, rtol=1e-10)


def test_offset_and_exposure(gproblem):
    """exposure e = offset log(e); Poisson and GLM-Poisson agree with both; naive = sm."""
    rep, df, cols = gproblem
    args = dict(representation=rep, features=cols)
    by_exposure = smf.poisson(f"yc {FORMULA}", df, exposure=df["expo"], **args).fit(disp=0)
    by_offset = smf.poisson(f"yc {FORMULA}", df, offset=np.log(df["expo"]), **args).fit(disp=0)
    glm = smf.glm(f"yc {FORMULA}", df, family=F.Poisson(), exposure=df["expo"], **args).fit(
        tol=1e-12)
    np.testing.assert_allclose(by_offset.cov_params(), by_exposure.cov_params(), rtol=1e-10)
    np.testing.assert_allclose(glm.cov_params(), by_exposure.cov_params(), rtol=1e-6)
    naive = smf.poisson(f"yc {FORMULA}", df, offset=df["off"], **args).fit(disp=0,
                                                                          cov_type="naive")
    plain = sm_formula.poisson(f"yc {FORMULA} + pc0 + pc1", _augmented(df, rep, cols),
                               offset=df["off"]).fit(disp=0)
    np.testing.assert_allclose(naive.bse, plain.bse, rtol=1e-10)
    without = smf.poisson(f"yc {FORMULA}", df, **args).fit(disp=0)
    assert not np.allclose(by_exposure.first_stage_jacobian, without.first_stage_jacobian)


@pytest.mark.parametrize("second", ["nonrobust", "HC0"])
def test_freq_weights_equal_repeated_rows(gproblem, second):
    rep, df, cols = gproblem
    fw = np.tile([1, 2, 3], len(df) // 3)
    weighted = smf.glm(f"yc {FORMULA}", df, family=F.Poisson(), freq_weights=fw,
                       representation=rep, features=cols).fit(cov_kwds={"second_stage": second})
    repeated = smf.glm(f"yc {FORMULA}", df.loc[df.index.repeat(fw)].reset_index(drop=True),
                       family=F.Poisson(), representation=rep, features=cols).fit(
        cov_kwds={"second_stage": second})
    np.testing.assert_allclose(weighted.cov_params(), repeated.cov_params(), rtol=1e-10)


def test_binomial_counts_equal_proportions_with_var_weights(gproblem):
    rep, df, cols = gproblem
    rng = np.random.default_rng(7)
    trials = rng.integers(1, 6, size=len(df))
    successes = rng.binomial(trials, expit(0.3 * df["z"].to_numpy()))
    exog, X = sm.add_constant(df[["z"]].to_numpy()), df[cols].to_numpy()
    counts = ssi.GLM(np.column_stack([successes, trials - successes]), exog,
                     family=F.Binomial(), representation=rep, features=X).fit(tol=1e-12)
    props = ssi.GLM(successes / trials, exog, family=F.Binomial(), var_weights=trials,
                    representation=rep, features=X).fit(tol=1e-12)
    np.testing.assert_allclose(counts.first_stage_jacobian, props.first_stage_jacobian,
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(counts.cov_params(), props.cov_params(), rtol=1e-8)


def test_freq_weights_with_overlap_are_refused(gproblem):
    rep, df, cols = gproblem
    with pytest.raises(ValueError, match="freq_weights on labeled rows that are also "
                                         "pre-training rows"):
        smf.glm(f"yc {FORMULA}", df, family=F.Poisson(), freq_weights=np.full(len(df), 2.0),
                representation=rep, features=cols, pretrain_index=np.arange(len(df)))
    smf.glm(f"yc {FORMULA}", df, family=F.Poisson(), freq_weights=np.ones(len(df)),
            representation=rep, features=cols, pretrain_index=np.arange(len(df))).fit()


# ------------------------------------------------------------------------- prediction
def _pred_frames(ours, theirs):
    return ours.summary_frame().to_numpy(), theirs.summary_frame().to_numpy()


@pytest.mark.parametrize("which", [None, "mean", "linear"])
def test_glm_prediction_naive_matches_statsmodels(gproblem, engine, which):
    rep, df, cols = gproblem
    new = glm_problem(seed=5, n=7)[1]
    naive = smf.glm(f"yc {FORMULA}", df, family=F.Poisson(), offset=df["off"],
                    representation=rep, features=cols).fit(cov_type="naive")
    plain = sm_formula.glm(f"yc {FORMULA} + pc0 + pc1", _augmented(df, rep, cols),
                           family=F.Poisson(), offset=df["off"]).fit()
    ours = naive.get_prediction(new, offset=new["off"], which=which)
    theirs = plain.get_prediction(_augmented(new, rep, cols), offset=new["off"], which=which)
    np.testing.assert_allclose(*_pred_frames(ours, theirs), rtol=1e-10)
    assert list(ours.summary_frame().columns) == list(theirs.summary_frame().columns)
    if which != "linear":
        np.testing.assert_allclose(ours.conf_int(method="delta"),
                                   theirs.conf_int(method="delta"), rtol=1e-10)
    # in-sample: the model's offset is used (statsmodels' in-sample get_prediction drops
    # it, unlike its fittedvalues), so statsmodels gets it explicitly
    in_sample = naive.get_prediction(which=which)
    theirs = plain.get_prediction(_augmented(df, rep, cols), offset=df["off"], which=which)
    np.testing.assert_allclose(*_pred_frames(in_sample, theirs), rtol=1e-10)
    np.testing.assert_allclose(naive.get_prediction(which="mean").predicted,
                               naive.fittedvalues, rtol=1e-12)


@pytest.mark.parametrize("name", ["logit", "probit", "poisson"])
@pytest.mark.parametrize("which", ["mean", "linear"])
def test_discrete_prediction_naive_matches_statsmodels(gproblem, name, which):
    rep, df, cols = gproblem
    _, theirs, _, y, fit_kwargs = SPECS[name]
    new = glm_problem(seed=5, n=7)[1]
    naive = _fit(name, df, rep, cols, cov_type="naive")
    plain = theirs(f"{y} {FORMULA} + pc0 + pc1", _augmented(df, rep, cols)).fit(**fit_kwargs)
    np.testing.assert_allclose(
        *_pred_frames(naive.get_prediction(new, which=which),
                      plain.get_prediction(_augmented(new, rep, cols), which=which)),
        rtol=1e-10)
    np.testing.assert_allclose(naive.predict(new), plain.predict(_augmented(new, rep, cols)),
                               rtol=1e-12)


@pytest.mark.parametrize("name", ["glm-binomial", "logit", "poisson", "glm-gamma-log"])
def test_two_stage_prediction(gproblem, name):
    rep, df, cols = gproblem
    new = glm_problem(seed=5, n=7)[1]
    res = _fit(name, df, rep, cols)
    naive = _fit(name, df, rep, cols, cov_type="naive")
    lin = res.get_prediction(new, which="linear")
    mean = res.get_prediction(new, which="mean")
    assert np.all(lin.se > naive.get_prediction(new, which="linear").se)
    # delta method through the inverse link, and endpoint intervals are its image
    link = res.model.family.link if name.startswith("glm") else res.model.link \
        if name != "poisson" else res.model.family.link
    np.testing.assert_allclose(mean.se, np.abs(link.inverse_deriv(lin.predicted)) * lin.se,
                               rtol=1e-12)
    np.testing.assert_allclose(mean.conf_int(), link.inverse(lin.conf_int()), rtol=1e-12)
    np.testing.assert_allclose(mean.predicted, res.predict(new), rtol=1e-12)
    in_sample = res.get_prediction(which="mean")
    np.testing.assert_allclose(in_sample.predicted, res.predict(), rtol=1e-12)
    assert list(in_sample.summary_frame().index) == list(df.index)


def test_prediction_with_offset_and_array_inputs(gproblem):
    rep, df, cols = gproblem
    exog = sm.add_constant(df[["z"]].to_numpy())
    res = ssi.Poisson(df["yc"].to_numpy(), exog, exposure=df["expo"].to_numpy(),
                      representation=rep, features=df[cols].to_numpy()).fit(disp=0)
    base = res.get_prediction(exog[:3], features=df[cols].to_numpy()[:3])
    doubled = res.get_prediction(exog[:3], features=df[cols].to_numpy()[:3],
                                 exposure=np.full(3, 2.0))
    np.testing.assert_allclose(doubled.predicted, 2 * base.predicted, rtol=1e-12)
    np.testing.assert_allclose(doubled.se, 2 * base.se, rtol=1e-12)
    in_sample = res.get_prediction()
    np.testing.assert_allclose(in_sample.predicted, res.predict(), rtol=1e-12)
    np.testing.assert_allclose(res.get_prediction(which="linear").predicted,
                               res.predict(which="linear"), rtol=1e-12)


def test_prediction_options_that_are_refused(gproblem):
    rep, df, cols = gproblem
    glm = _fit("glm-poisson", df, rep, cols)
    logit = _fit("logit", df, rep, cols)
    with pytest.raises(NotImplementedError, match="average=True is not available"):
        glm.get_prediction(df.iloc[:3], average=True)
    with pytest.raises(ValueError, match="which must be 'mean' or 'linear'"):
        glm.get_prediction(df.iloc[:3], which="var_unscaled")
    with pytest.raises(ValueError, match="which must be 'mean' or 'linear'"):
        logit.get_prediction(df.iloc[:3], which="prob")
    with pytest.raises(ValueError, match="y_values goes with which='prob'"):
        logit.get_prediction(df.iloc[:3], y_values=[0, 1])
    with pytest.raises(ValueError, match=r"New data lack feature columns \['x0'\]"):
        logit.get_prediction(df.drop(columns="x0"))
    with pytest.raises(ValueError, match="method must be 'endpoint' or 'delta'"):
        glm.get_prediction(df.iloc[:3]).conf_int(method="profile")


# ------------------------------------------------------- results object behaviour
@pytest.mark.parametrize("name", list(SPECS))
def test_summary_has_first_stage_block_and_cov_note(gproblem, name):
    rep, df, cols = gproblem
    res = _fit(name, df, rep, cols)
    text = str(res.summary())
    assert "Covariance Type:            two-stage" in text
    assert "First stage:" in text and "Standard errors: two-stage vs naive" in text
    assert "Two-stage standard errors: second-stage nonrobust covariance" in text
    assert text.count("\nNotes:\n") == 1  # one statsmodels-style notes header
    header = text.split("Standard errors: two-stage vs naive")[0]
    assert max(len(line) for line in header.splitlines()) <= 78
    assert "SE ratio" in str(res.summary2())
    naive = str(_fit(name, df, rep, cols, cov_type="naive").summary())
    assert "These SEs are naive" in naive


def _roundtrip(res):
    return pickle.loads(pickle.dumps(res))


@pytest.mark.parametrize("name", ["glm-binomial", "probit", "poisson"])
def test_pickle_roundtrip(gproblem, name):
    rep, df, cols = gproblem
    for res in [_fit(name, df, rep, cols), _array_fit(name, df, rep, cols)]:
        back = _roundtrip(res)
        np.testing.assert_allclose(np.asarray(back.bse), np.asarray(res.bse), rtol=0)
        np.testing.assert_allclose(np.asarray(back.bse_naive), np.asarray(res.bse_naive))
        assert back.cov_type == "two-stage" and "First stage:" in str(back.summary())


def test_pandas_output_and_names(gproblem):
    rep, df, cols = gproblem
    res = _fit("glm-binomial", df, rep, cols)
    assert list(res.params.index) == ["Intercept", "z", "treat", "pc0", "pc1"]
    assert isinstance(res.bse_naive, pd.Series)
    assert list(res.bse_naive.index) == list(res.params.index)
    cov = res.cov_params_naive()
    assert isinstance(cov, pd.DataFrame) and list(cov.columns) == list(res.params.index)
    # labelled like params; each label's fine-tuning part is plain statsmodels' variance
    plain = sm_formula.glm("yb ~ pc1 + z + pc0 + treat", _augmented(df, rep, cols),
                           family=F.Binomial()).fit()                # another column order
    decomposition = res.variance_decomposition()
    assert list(decomposition.index) == list(res.params.index)
    np.testing.assert_allclose(decomposition["fine_tuning"],
                               plain.bse[decomposition.index] ** 2, rtol=1e-8)
    arr = _array_fit("logit", df, rep, cols)
    assert arr.model.exog_names == ["const", "x1", "x2", "pc0", "pc1"]
    assert isinstance(arr.bse_naive, np.ndarray)
    assert isinstance(_fit("poisson", df, rep, cols).cov_params_naive(), pd.DataFrame)


def test_missing_drop_removes_same_rows(gproblem):
    rep, df, cols = gproblem
    holed = df.copy()
    holed.loc[[3, 10], "x2"] = np.nan
    holed.loc[20, "z"] = np.nan
    clean = df.drop(index=[3, 10, 20])
    res = smf.glm(f"yc {FORMULA}", holed, family=F.Poisson(), offset=holed["off"],
                  representation=rep, features=cols).fit()
    ref = smf.glm(f"yc {FORMULA}", clean, family=F.Poisson(), offset=clean["off"],
                  representation=rep, features=cols).fit()
    assert res.nobs == len(df) - 3
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-12)
    exog = sm.add_constant(holed[["z", "treat"]].to_numpy())
    arr = ssi.Poisson(holed["yc"].to_numpy(), exog, offset=holed["off"].to_numpy(),
                      missing="drop", representation=rep,
                      features=holed[cols].to_numpy()).fit(disp=0)
    ref = smf.poisson(f"yc {FORMULA}", clean, offset=clean["off"], representation=rep,
                      features=cols).fit(disp=0)
    np.testing.assert_allclose(arr.bse, ref.bse.to_numpy(), rtol=1e-10)
    arr = ssi.Logit(holed["yb"].to_numpy(), exog, missing="drop", representation=rep,
                    features=holed[cols].to_numpy()).fit(disp=0)
    assert arr.nobs == len(df) - 3


def test_engines_agree(gproblem):
    rep, df, cols = gproblem
    import statsmodels.formula
    out = {}
    old = statsmodels.formula.options.formula_engine
    try:
        for name in ["patsy", "formulaic"]:
            statsmodels.formula.options.formula_engine = name
            res = smf.logit("yb ~ z + C(treat)", df, representation=rep,
                            features=cols).fit(disp=0)
            out[name] = (res.bse.to_numpy(), res.wald_test("pc0 = pc1 = 0", scalar=True),
                         res.get_prediction(df.iloc[:5]).se)
    finally:
        statsmodels.formula.options.formula_engine = old
    np.testing.assert_allclose(out["patsy"][0], out["formulaic"][0], rtol=1e-12)
    np.testing.assert_allclose(out["patsy"][2], out["formulaic"][2], rtol=1e-12)
    assert out["patsy"][1].statistic == pytest.approx(out["formulaic"][1].statistic, rel=1e-12)


def test_hypothesis_tests_use_two_stage_covariance(gproblem):
    rep, df, cols = gproblem
    res = _fit("poisson", df, rep, cols)
    V = res.cov_params().to_numpy()
    names = list(res.params.index)
    assert res.t_test("z = 0").sd.item() == pytest.approx(np.sqrt(V[1, 1]), rel=1e-12)
    idx = [names.index("pc0"), names.index("pc1")]
    b = res.params.to_numpy()[idx]
    expected = b @ np.linalg.solve(V[np.ix_(idx, idx)], b)
    assert res.wald_test("pc0 = pc1 = 0", scalar=True).statistic == pytest.approx(expected,
                                                                                  rel=1e-10)
    ci = res.conf_int()
    np.testing.assert_allclose(ci[1] - ci[0], 2 * 1.959963984540054 * res.bse, rtol=1e-9)


@pytest.mark.parametrize("name", ["glm-binomial", "logit", "poisson"])
def test_reinstantiated_model_behaves_like_statsmodels(gproblem, name):
    rep, df, cols = gproblem
    res = _fit(name, df, rep, cols)
    mod = res.model
    clone = mod.__class__(mod.endog, mod.exog, **mod._get_init_kwds())
    plain_cls = {"glm-binomial": sm.GLM, "logit": sm.Logit, "poisson": sm.Poisson}[name]
    plain = plain_cls(mod.endog, mod.exog, **mod._get_init_kwds())
    fit_kwargs = SPECS[name][4]
    refit, ref = clone.fit(**fit_kwargs), plain.fit(**fit_kwargs)
    assert refit.cov_type == "nonrobust" and type(refit) is type(ref)
    np.testing.assert_allclose(refit.bse, ref.bse, rtol=1e-12)
    if name != "glm-binomial":
        assert res.llnull == pytest.approx(ref.llnull, rel=1e-12)


def test_get_robustcov_results_keeps_two_stage(gproblem):
    rep, df, cols = gproblem
    res = _fit("glm-binomial", df, rep, cols)
    hc0 = res.get_robustcov_results("HC0")
    direct = _fit("glm-binomial", df, rep, cols, cov_kwds={"second_stage": "HC0"})
    np.testing.assert_allclose(hc0.bse, direct.bse.to_numpy(), rtol=1e-12)
    assert hc0.cov_type == "two-stage HC0"


# -------------------------------------------------------------------------- bad input
CONSTRUCTORS = {
    "GLM": lambda y, X, **kw: ssi.GLM(y, X, family=F.Binomial(), **kw),
    "Logit": ssi.Logit, "Probit": ssi.Probit, "Poisson": ssi.Poisson,
}
FORMULAS = {"glm": smf.glm, "logit": smf.logit, "probit": smf.probit, "poisson": smf.poisson}


@pytest.fixture(params=list(CONSTRUCTORS))
def constructor(request):
    return CONSTRUCTORS[request.param]


@pytest.fixture(params=list(FORMULAS))
def formula(request):
    return FORMULAS[request.param]


def test_unknown_model_keyword(gproblem, constructor, formula):
    rep, df, cols = gproblem
    with pytest.raises(ValueError, match=r"unknown kwargs \['representaton'\]"):
        constructor(df["yb"], np.ones(len(df)), representaton=rep)
    with pytest.raises(ValueError, match=r"unknown kwargs \['wieghts'\]"):
        formula("yb ~ z", df, representation=rep, features=cols, wieghts=1.0)


def test_unknown_fit_keyword(gproblem):
    rep, df, cols = gproblem
    glm = smf.glm("yb ~ z", df, family=F.Binomial(), representation=rep, features=cols)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['cov_kwargs'\]; "
                                        "IRLS accepts"):
        glm.fit(cov_kwargs={})
    with pytest.raises(TypeError, match="unexpected keyword arguments: Keyword arguments have "
                                        "been passed to the optimizer"):
        glm.fit(method="bfgs", gtoll=1e-8)
    logit = smf.logit("yb ~ z", df, representation=rep, features=cols)
    with pytest.raises(TypeError, match="unexpected keyword arguments.*cov_kwargs"):
        logit.fit(disp=0, cov_kwargs={})
    assert logit.fit(disp=0, method="bfgs", gtol=1e-8).cov_type == "two-stage"


@pytest.mark.parametrize("cov_type, cov_kwds, message", [
    ("HC4", None, r"cov_type must be one of"),
    ("HC1", None, r"statsmodels computes HC0 for GLM and discrete models"),
    ("two-stage", {"secondstage": "HC1"}, r"Unknown cov_kwds \['secondstage'\]"),
    ("two-stage", {"second_stage": "HC4"}, r"must be one of \('nonrobust'"),
    ("two-stage", {"second_stage": "cluster"}, "pass groups="),
    ("two-stage", {"pretrain_groups": np.zeros(3)}, "one label per pre-training row"),
    ("two-stage", {"second_stage": "cluster", "groups": np.zeros(7)},
     "groups has 7 entries"),
])
def test_bad_cov_options(gproblem, formula, cov_type, cov_kwds, message):
    rep, df, cols = gproblem
    model = formula("yb ~ z", df, representation=rep, features=cols)
    fit_kwargs = {} if formula is smf.glm else {"disp": 0}
    with pytest.raises(ValueError, match=message):
        model.fit(cov_type=cov_type, cov_kwds=cov_kwds, **fit_kwargs)
    assert model.fit(**fit_kwargs).cov_type == "two-stage"  # the model is unchanged


def test_bad_first_stage_inputs(gproblem, constructor):
    rep, df, cols = gproblem
    y, X = df["yb"].to_numpy(), df[cols].to_numpy()
    with pytest.raises(ValueError, match="features has 4 columns but the representation "
                                         "was fitted on 5 raw features"):
        constructor(y, np.ones(len(df)), representation=rep, features=X[:, :4])
    X_nan = X.copy()
    X_nan[4, 0] = np.nan
    with pytest.raises(ValueError, match="missing='drop'"):
        constructor(y, np.ones(len(df)), representation=rep, features=X_nan)
    X_nan[4, 0] = np.inf
    with pytest.raises(ValueError, match="features contains infinite values"):
        constructor(y, np.ones(len(df)), missing="drop", representation=rep, features=X_nan)
    with pytest.raises(ValueError, match="representation= needs features="):
        constructor(y, np.ones(len(df)), representation=rep)
    with pytest.raises(TypeError, match="representation must be a fitted ssl_inference"):
        constructor(y, np.ones(len(df)), representation=object(), features=X)
    with pytest.raises(TypeError, match="need representation="):
        constructor(y, np.ones(len(df)), pretrain_index=np.arange(len(df)))
    with pytest.raises(ValueError, match=r"outside \[-1, 399\]"):
        constructor(y, np.ones(len(df)), representation=rep, features=X,
                    pretrain_index=np.full(len(df), 400))
    with pytest.raises(ValueError, match="features has 150 rows but endog/exog have"):
        constructor(y, None, representation=rep, features=X)


def test_bad_formula_inputs(gproblem, formula):
    rep, df, cols = gproblem
    with pytest.raises(ValueError, match=r"features names columns not in data: \['x9'\]"):
        formula("yb ~ z", df, representation=rep, features=cols[:4] + ["x9"])
    with pytest.raises(ValueError, match="features= must name the raw columns"):
        formula("yb ~ z", df, representation=rep)
    with pytest.raises(ValueError, match=r"data already has columns \['pc0'\]"):
        formula("yb ~ pc0", df.rename(columns={"z": "pc0"}), representation=rep,
                features=cols)
    with pytest.raises(ssi.NotFittedError):
        formula("yb ~ z", df, representation=ssi.PCA(2), features=cols)
    model = formula("yb ~ z", df, representation=rep, features=cols,
                    pretrain_index=np.arange(len(df)))
    with pytest.raises(ValueError, match="clustering must cover both samples"):
        model.fit(cov_kwds={"second_stage": "cluster", "groups": "g"})
