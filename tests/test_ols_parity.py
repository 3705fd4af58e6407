"""statsmodels parity of the two-stage OLS/WLS results (issue: foundation, part 4-7)."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as sm_formula

import ssl_inference as ssi
import ssl_inference.formula.api as smf

from .conftest import make_problem

SECOND_STAGES = ["nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster"]


def _cov_kwds(second, df):
    kw = {"second_stage": second}
    if second == "cluster":
        kw["groups"] = df["g"].to_numpy()
    return kw


def _plain_fit(model, second, df):
    if second == "cluster":
        return model.fit(cov_type="cluster", cov_kwds={"groups": df["g"].to_numpy()})
    return model.fit(cov_type=second)


def _augmented(df, rep, cols):
    aug = df.copy()
    aug[list(rep.get_feature_names_out())] = rep.transform(df[cols].to_numpy())
    return aug


@pytest.mark.parametrize("second", SECOND_STAGES)
def test_naive_equals_statsmodels_formula(problem, engine, second):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z + treat", df, representation=rep, features=cols).fit(
        cov_type="naive", cov_kwds=_cov_kwds(second, df))
    plain = _plain_fit(sm_formula.ols("y ~ z + treat + pc0 + pc1", _augmented(df, rep, cols)),
                       second, df)
    np.testing.assert_allclose(res.params, plain.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.bse, plain.bse, rtol=1e-10)
    np.testing.assert_allclose(res.bse_naive, plain.bse, rtol=1e-10)
    assert res.cov_type == plain.cov_type
    assert res.use_t == plain.use_t
    np.testing.assert_allclose(res.pvalues, plain.pvalues, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("second", SECOND_STAGES)
def test_fine_tuning_part_is_statsmodels_covariance(problem, second):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    exog = sm.add_constant(df[["z", "treat"]].to_numpy())
    res = ssi.OLS(df["y"].to_numpy(), exog, representation=rep,
                  features=df[cols].to_numpy()).fit(cov_kwds=_cov_kwds(second, df))
    plain = _plain_fit(sm.OLS(df["y"].to_numpy(),
                              np.column_stack([exog, rep.transform(df[cols].to_numpy())])),
                       second, df)
    decomposition = res.variance_decomposition()
    np.testing.assert_allclose(decomposition["fine_tuning"], plain.bse ** 2, rtol=1e-10)
    np.testing.assert_allclose(res.cov_params() - res._parts.pretraining,
                               plain.cov_params(), rtol=1e-10, atol=1e-14)
    assert (decomposition["pretraining"] > 0).all()
    label = "two-stage" if second == "nonrobust" else f"two-stage {second}"
    assert res.cov_type == label and res.use_t is False


@pytest.mark.parametrize("second", ["nonrobust", "HC3"])
def test_wls_naive_equals_statsmodels(problem, second):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    w = np.linspace(0.5, 2.0, len(df))
    res = smf.wls("y ~ z", df, weights=w, representation=rep, features=cols).fit(
        cov_type="naive", cov_kwds={"second_stage": second})
    plain = sm_formula.wls("y ~ z + pc0 + pc1", _augmented(df, rep, cols), weights=w).fit(
        cov_type=second)
    np.testing.assert_allclose(res.bse, plain.bse, rtol=1e-10)
    two = smf.wls("y ~ z", df, weights=w, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": second})
    assert (two.bse >= plain.bse * (1 - 1e-12)).all()


def test_wls_unit_weights_equal_ols(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    ols = smf.ols("y ~ z", df, representation=rep, features=cols).fit()
    wls = smf.wls("y ~ z", df, weights=np.ones(len(df)), representation=rep,
                  features=cols).fit()
    np.testing.assert_allclose(wls.cov_params(), ols.cov_params(), rtol=1e-10)


def test_engines_agree_and_chained_hypotheses_have_two_rows(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    import statsmodels.formula
    out = {}
    old = statsmodels.formula.options.formula_engine
    try:
        for name in ["patsy", "formulaic"]:
            statsmodels.formula.options.formula_engine = name
            res = smf.ols("y ~ z + C(treat)", df, representation=rep, features=cols).fit()
            out[name] = (res.bse.to_numpy(), res.wald_test("pc0 = pc1 = 0", scalar=True),
                         res.get_prediction(df.iloc[:5]).se_mean)
    finally:
        statsmodels.formula.options.formula_engine = old
    np.testing.assert_allclose(out["patsy"][0], out["formulaic"][0], rtol=1e-12)
    np.testing.assert_allclose(out["patsy"][2], out["formulaic"][2], rtol=1e-12)
    for name in out:
        assert out[name][1].df_denom == 2
    assert out["patsy"][1].statistic == pytest.approx(out["formulaic"][1].statistic, rel=1e-12)


def test_hypothesis_tests_use_two_stage_covariance(problem, engine):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z + treat", df, representation=rep, features=cols).fit()
    V = res.cov_params().to_numpy()
    names = list(res.params.index)
    t = res.t_test("pc0 = 0")
    i = names.index("pc0")
    assert t.sd.item() == pytest.approx(np.sqrt(V[i, i]), rel=1e-12)
    w = res.wald_test("pc0 = pc1 = 0", scalar=True)
    idx = [names.index("pc0"), names.index("pc1")]
    b = res.params.to_numpy()[idx]
    expected = b @ np.linalg.solve(V[np.ix_(idx, idx)], b)
    assert w.statistic == pytest.approx(expected, rel=1e-10)
    ci = res.conf_int()
    np.testing.assert_allclose(ci[1] - ci[0], 2 * 1.959963984540054 * res.bse, rtol=1e-9)
    f = res.f_test("treat = 0")
    assert float(f.fvalue) == pytest.approx((res.params["treat"] / res.bse["treat"]) ** 2,
                                            rel=1e-10)
    terms = res.wald_test_terms(scalar=True)
    assert "treat" in terms.table.index


def test_pandas_output_and_names(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit()
    assert list(res.params.index) == ["Intercept", "z", "pc0", "pc1"]
    assert isinstance(res.bse_naive, pd.Series) and list(res.bse_naive.index) == list(
        res.params.index)
    cov = res.cov_params_naive()
    assert isinstance(cov, pd.DataFrame) and list(cov.columns) == list(res.params.index)
    # labelled like params, and each label's fine-tuning part is that coefficient's
    # variance in plain statsmodels with the features as data columns
    aug = df.assign(**dict(zip(["pc0", "pc1"], rep.transform(df[cols].to_numpy()).T)))
    plain = sm_formula.ols("y ~ pc1 + z + pc0", aug).fit()     # another column order
    decomposition = res.variance_decomposition()
    assert list(decomposition.index) == list(res.params.index)
    np.testing.assert_allclose(decomposition["fine_tuning"],
                               plain.bse[decomposition.index] ** 2, rtol=1e-10)
    arr = ssi.OLS(df["y"].to_numpy(), sm.add_constant(df["z"].to_numpy()), representation=rep,
                  features=df[cols].to_numpy()).fit()
    assert arr.model.exog_names == ["const", "x1", "pc0", "pc1"]
    assert isinstance(arr.bse_naive, np.ndarray)


def _roundtrip(res):
    return pickle.loads(pickle.dumps(res))


def test_pickle_roundtrip(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    for res in [smf.ols("y ~ z", df, representation=rep, features=cols).fit(),
                ssi.OLS(df["y"].to_numpy(), sm.add_constant(df["z"].to_numpy()),
                        representation=rep, features=df[cols].to_numpy()).fit()]:
        back = _roundtrip(res)
        np.testing.assert_allclose(np.asarray(back.bse), np.asarray(res.bse), rtol=0)
        np.testing.assert_allclose(np.asarray(back.bse_naive), np.asarray(res.bse_naive))
        assert back.cov_type == "two-stage"
        assert "First stage:" in str(back.summary())


def test_missing_drop_removes_same_rows(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    holed = df.copy()
    holed.loc[[3, 10], "x2"] = np.nan
    holed.loc[20, "z"] = np.nan
    res = smf.ols("y ~ z", holed, representation=rep, features=cols).fit()
    clean = smf.ols("y ~ z", df.drop(index=[3, 10, 20]), representation=rep,
                    features=cols).fit()
    assert res.nobs == len(df) - 3
    np.testing.assert_allclose(res.bse, clean.bse, rtol=1e-12)
    y = holed["y"].to_numpy()
    exog = sm.add_constant(holed["z"].to_numpy())
    arr = ssi.OLS(y, exog, missing="drop", representation=rep,
                  features=holed[cols].to_numpy()).fit()
    np.testing.assert_allclose(arr.bse, clean.bse.to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="missing='drop'"):
        ssi.OLS(y, exog, representation=rep, features=holed[cols].to_numpy())


def test_prediction_naive_matches_statsmodels_and_two_stage_exceeds(problem, engine):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    new = make_problem(seed=5, n=7)[1]
    naive = smf.ols("y ~ z + treat", df, representation=rep, features=cols).fit(
        cov_type="naive")
    plain = sm_formula.ols("y ~ z + treat + pc0 + pc1", _augmented(df, rep, cols)).fit()
    frame = naive.get_prediction(new).summary_frame()
    ref = plain.get_prediction(_augmented(new, rep, cols)).summary_frame()
    np.testing.assert_allclose(frame.to_numpy(), ref.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(naive.predict(new), plain.predict(_augmented(new, rep, cols)),
                               rtol=1e-12)
    two = smf.ols("y ~ z + treat", df, representation=rep, features=cols).fit()
    se_two = two.get_prediction(new).se_mean
    assert np.all(se_two > frame["mean_se"].to_numpy())
    insample = two.get_prediction()
    np.testing.assert_allclose(insample.predicted_mean, two.fittedvalues, rtol=1e-12)


def test_prediction_delta_method_against_finite_differences(problem):
    """se_mean of a new raw point equals sqrt(g' Cov g) over the stacked (beta, theta)."""
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit()
    new = make_problem(seed=9, n=1)[1]
    # perturb the fit through X_pre weights and labeled weights: the total influence of the
    # prediction is the derivative of the refitted prediction w.r.t. each unit's weight
    x0 = new[cols].to_numpy()
    z0 = new["z"].item()

    def predict_with(wpre, wlab):
        mu = wpre @ X_pre / wpre.sum()
        V = X_pre - mu
        C = (V * wpre[:, None]).T @ V / wpre.sum()
        ev, E = np.linalg.eigh(C)
        E = E[:, ::-1][:, :2]
        E *= np.sign(E[np.argmax(np.abs(E), 0), [0, 1]])
        F = (df[cols].to_numpy() - mu) @ E
        W = np.column_stack([np.ones(len(df)), df["z"], F])
        beta = np.linalg.solve(W.T @ (W * wlab[:, None]), W.T @ (wlab * df["y"].to_numpy()))
        return np.concatenate([[1.0, z0], (x0[0] - mu) @ E]) @ beta

    m, n, h = len(X_pre), len(df), 1e-5
    infl_pre = np.array([(predict_with(np.where(np.arange(m) == i, 1 + h, 1.0), np.ones(n))
                          - predict_with(np.where(np.arange(m) == i, 1 - h, 1.0), np.ones(n)))
                         / (2 * h) for i in range(m)])
    infl_lab = np.array([(predict_with(np.ones(m), np.where(np.arange(n) == j, 1 + h, 1.0))
                          - predict_with(np.ones(m), np.where(np.arange(n) == j, 1 - h, 1.0)))
                         / (2 * h) for j in range(n)])
    hc0 = smf.ols("y ~ z", df, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": "HC0"})
    expected = np.sqrt((infl_pre ** 2).sum() + (infl_lab ** 2).sum())
    assert hc0.get_prediction(new).se_mean[0] == pytest.approx(expected, rel=1e-5)
    # nonrobust and HC0 share the first-stage part P up to the nonrobust fit's factor
    # m / (m - 1): var_nonrobust = w0' V_nonrobust w0 + m / (m - 1) P, with
    # P = var_HC0 - w0' V_HC0 w0
    w0 = np.concatenate([[1.0, z0], rep.transform(x0)[0]])
    first = hc0.get_prediction(new).se_mean[0] ** 2 - w0 @ np.asarray(
        hc0.cov_params_naive()) @ w0
    assert res.get_prediction(new).se_mean[0] ** 2 == pytest.approx(
        w0 @ np.asarray(res.cov_params_naive()) @ w0 + m / (m - 1) * first, rel=1e-8)


def test_get_robustcov_results_keeps_two_stage(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit()
    hc1 = res.get_robustcov_results("HC1")
    direct = smf.ols("y ~ z", df, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": "HC1"})
    np.testing.assert_allclose(hc1.bse, direct.bse.to_numpy(), rtol=1e-12)
    assert hc1.cov_type == "two-stage HC1"


def test_reinstantiated_model_behaves_like_statsmodels(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit()
    mod = res.model
    clone = mod.__class__(mod.endog, mod.exog, **mod._get_init_kwds())
    plain = sm.OLS(mod.endog, mod.exog).fit()
    refit = clone.fit()
    assert refit.cov_type == "nonrobust"
    np.testing.assert_allclose(refit.bse, plain.bse, rtol=1e-12)


def test_summary_has_first_stage_block_and_inflation(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2).fit(X_pre)
    res = smf.ols("y ~ z + treat", df, representation=rep, features=cols).fit()
    text = str(res.summary())
    assert "Covariance Type:            two-stage" in text
    assert "First stage:" in text and "Symmetry group:" in text
    assert "Pre-train rows m:" in text and f"{len(X_pre)}" in text
    assert "Standard errors: two-stage vs naive" in text
    assert "largest-|loading| entry positive" in text
    header = text.split("Standard errors: two-stage vs naive")[0]
    assert max(len(line) for line in header.splitlines()) <= 78
    ratio_line = [line for line in text.splitlines() if line.startswith("Intercept")][-1]
    ratio = float(ratio_line.split()[3])
    assert ratio == pytest.approx(res.bse["Intercept"] / res.bse_naive["Intercept"], rel=1e-3)
    naive_text = str(smf.ols("y ~ z", df, representation=rep, features=cols).fit(
        cov_type="naive").summary())
    assert "These SEs are naive" in naive_text
    s2 = str(res.summary2())
    assert "First stage:" in s2 and "SE ratio" in s2
    assert "overlap share" not in text
    overlap = smf.ols("y ~ z + treat", df, representation=rep, features=cols,
                      pretrain_index=np.arange(len(df))).fit()
    table = next(t for t in overlap.summary2().tables if "overlap share" in t)
    # the same fit without overlap has the same fine-tuning and pre-training parts, so
    # the shares follow from the three fits' public SEs alone
    total = overlap.bse ** 2
    expected_overlap = (total - res.bse ** 2) / total
    assert (expected_overlap.abs() > 1e-3).all()
    np.testing.assert_allclose(table["overlap share"], expected_overlap, rtol=1e-8)
    np.testing.assert_allclose(table["pretrain share"],
                               (res.bse ** 2 - res.bse_naive ** 2) / total, rtol=1e-8)
    assert "<table" in res.summary().as_html()


@pytest.mark.parametrize("covariates", ["constant first", "no constant", "constant last",
                                        "zero column"])
def test_array_model_names_covariates_as_statsmodels_does(covariates):
    # the covariate block is named by statsmodels' rule (x1, x2, ... and const at the
    # first zero-variance column) without a pass over the whole design
    rng = np.random.default_rng(3)
    rep = ssi.PCA(2).fit(rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5])
    z = rng.normal(size=(60, 2))
    W = {"constant first": sm.add_constant(z), "no constant": z,
         "constant last": np.column_stack([z, np.ones(60)]),
         "zero column": np.column_stack([z[:, 0], np.zeros(60)])}[covariates]
    features, y = rng.normal(size=(60, 4)), rng.normal(size=60)
    ours = ssi.OLS(y, W, representation=rep, features=features).exog_names
    plain = sm.OLS(y, np.column_stack([W, rep.transform(features)])).exog_names
    assert ours == plain[:W.shape[1]] + ["pc0", "pc1"]
