"""The rest of the statsmodels results surface: two-stage, or refused (issue 11, section 2).

* ``cov_HC0``..``cov_HC3`` / ``HC0_se``..``HC3_se``: the two-stage covariance with that
  second-stage estimator (equal to ``fit(cov_type="HCx")``), with an independent oracle
  for HC2/HC3: fine-tuning part = statsmodels' HC2/HC3, first-stage part = the
  delicatessen-verified HC0 fit's times the documented factor, overlap part = a brute
  force from residuals, an independently computed leverage and the first-stage
  influences (the same brute force with unit weights reproduces the verified HC0 part);
* ``compare_f_test``: a two-stage Wald F test of the restrictions nesting the restricted
  model (statsmodels' F test when the covariance is the nonrobust second stage alone);
* ``fvalue`` / ``f_pvalue`` (summary "F-statistic"): two-stage Wald, group invariant;
* ``anova_lm``: typ 2/3 per-term two-stage Wald F tests; typ 1 and several models refused;
* refused with an explanation: ``compare_lr_test``, ``compare_lm_test``, ``el_test``,
  ``conf_int_el``, ``get_influence`` / ``outlier_test``, ``score_test``,
  ``fit_regularized``; after ``cov_type="naive"`` all of them are statsmodels' own.
* ``llr_pvalue`` (discrete) is kept: under its null (all slopes zero) the first stage has
  no first-order effect (slow Monte Carlo size check).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as sm_smf
import statsmodels.stats.anova

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.anova import STATSMODELS_ANOVA_LM
from ssl_inference.exceptions import FirstStageBlindError, NonInvariantHypothesisError

from . import test_oracle_delicatessen as deli
from .conftest import make_problem

FORMULA = "y ~ z + treat"


@pytest.fixture(scope="module")
def fitted():
    X_pre, df, cols = make_problem(seed=31)
    rep = ssi.PCA(2).fit(X_pre)
    return rep, df, cols


def _fit(fitted, formula=FORMULA, rep=None, **fit):
    rep0, df, cols = fitted
    return smf.ols(formula, df, representation=rep or rep0, features=cols).fit(**fit)


def _plain(fitted, formula=FORMULA + " + pc0 + pc1", **fit):
    rep, df, cols = fitted
    return sm_smf.ols(formula, df.join(rep.transform(df[cols]))).fit(**fit)


# ------------------------------------------------------------------------ cov_HCx
@pytest.mark.parametrize("name", ["HC0", "HC1", "HC2", "HC3"])
@pytest.mark.parametrize("case", ["independent", "overlap", "pre-clusters", "wls"])
def test_cov_hc_is_the_two_stage_fit_with_that_second_stage(fitted, name, case):
    rep, df, cols = fitted
    kw, cov_kwds = {}, None
    if case == "overlap":
        kw["pretrain_index"] = np.arange(len(df))
    if case == "wls":
        kw["weights"] = np.linspace(0.5, 2.0, len(df))
    if case == "pre-clusters":
        cov_kwds = {"pretrain_groups": np.arange(rep.nobs_) % 23}
    model = (smf.wls if case == "wls" else smf.ols)(FORMULA, df, representation=rep,
                                                    features=cols, **kw)
    res = model.fit(cov_kwds=cov_kwds)  # nonrobust second stage
    direct = model.fit(cov_type=name, cov_kwds=cov_kwds)
    np.testing.assert_allclose(getattr(res, f"cov_{name}"), direct.cov_params(), rtol=1e-12)
    np.testing.assert_allclose(getattr(res, f"{name}_se"), direct.bse, rtol=1e-12)
    assert isinstance(getattr(res, f"{name}_se"), pd.Series)  # the wrapper's pandas output
    naive = model.fit(cov_type="naive", cov_kwds=cov_kwds)
    plain = sm.WLS(model.endog, model.exog, weights=model.weights).fit()
    np.testing.assert_allclose(getattr(naive, f"cov_{name}"), getattr(plain, f"cov_{name}"),
                               rtol=1e-12)
    assert np.all(np.asarray(getattr(res, f"{name}_se"))
                  > 1.1 * np.sqrt(np.diag(getattr(plain, f"cov_{name}")))[-2:].min())


def test_cov_hc_refused_for_clustered_overlap(fitted):
    rep, df, cols = fitted
    pre_groups = np.arange(rep.nobs_) % 30
    res = smf.ols(FORMULA, df, representation=rep, features=cols,
                  pretrain_index=np.arange(len(df))).fit(
        cov_type="cluster", cov_kwds={"groups": pre_groups[:len(df)],
                                      "pretrain_groups": pre_groups})
    with pytest.raises(ValueError, match="cov_HC1 is not available for this fit: it clusters "
                                         "overlapping samples"):
        res.HC1_se


def test_cov_hc_of_bootstrap_results_is_analytic_two_stage(fitted):
    boot = _fit(fitted, cov_type="bootstrap", cov_kwds={"reps": 3, "seed": 0})
    np.testing.assert_allclose(boot.cov_HC1, _fit(fitted, cov_type="HC1").cov_params(),
                               rtol=1e-12)


@pytest.mark.parametrize("name", ["HC2", "HC3"])
@pytest.mark.parametrize("weighted", [False, True], ids=["ols", "wls"])
def test_hc2_hc3_oracle(name, weighted):
    problem = deli._make_problem(4242, overlap=True, weighted=weighted)
    X_pre, X_lab, y, exog, weights, pidx = problem
    rep, hc0 = deli._fit_package(*problem)
    est, _ = deli._delicatessen(problem, rep, hc0, "exact")
    d = len(np.asarray(hc0.params))
    assert deli._max_rel(est.variance[-d:, -d:], np.asarray(hc0.cov_params())) < 1e-10
    res = hc0.model.fit(cov_type=name)
    parts, raw = res._parts, hc0._parts
    W = np.asarray(res.model.exog)
    wt = np.ones(len(y)) if weights is None else weights
    plain = sm.WLS(y, W, weights=wt).fit(cov_type=name)
    np.testing.assert_allclose(parts.fine_tuning, plain.cov_params(), rtol=1e-12, atol=0)
    m = rep.nobs_
    c_pre = m / (m - 1)
    np.testing.assert_allclose(parts.pretraining, c_pre * raw.pretraining, rtol=1e-12, atol=0)

    # overlap part: sum over overlapping units of sqrt(c_j) a_j (sqrt(c_pre) b_i(j))' + transpose
    e = y - W @ np.asarray(res.params)
    A = (W * (wt * e)[:, None]) @ np.linalg.inv(W.T @ (W * wt[:, None]))
    h = (np.linalg.qr(np.sqrt(wt)[:, None] * W)[0] ** 2).sum(axis=1)  # leverage via QR
    B = rep.influence(X_pre) @ res.first_stage_jacobian.T / m
    ov = pidx >= 0

    def cross(c):
        half = (A[ov] * np.sqrt(c[ov])[:, None]).T @ B[pidx[ov]]
        return half + half.T

    scale = np.abs(raw.cross).max()
    np.testing.assert_allclose(raw.cross, cross(np.ones(len(y))), rtol=0, atol=1e-12 * scale)
    c = 1 / (1 - h) if name == "HC2" else 1 / (1 - h) ** 2
    np.testing.assert_allclose(parts.cross, np.sqrt(c_pre) * cross(c), rtol=0,
                               atol=1e-12 * scale)
    # the leverage weights matter here (not vacuous), and the total is a Gram matrix
    assert np.abs(parts.cross - np.sqrt(c_pre) * raw.cross).max() > 1e-3 * scale
    assert np.linalg.eigvalsh(parts.total).min() > 0


# ---------------------------------------------------------------- compare_f_test
def test_compare_f_test_is_two_stage_wald(fitted):
    res = _fit(fitted)
    W = np.asarray(res.model.exog)
    restricted = sm.OLS(res.model.endog, W[:, :4]).fit()  # drops pc1
    f, p, df_diff = res.compare_f_test(restricted)
    wald = res.wald_test("pc1 = 0", use_f=True, scalar=True)
    b, V = np.asarray(res.params)[4], np.asarray(res.cov_params())[4, 4]
    assert f == pytest.approx(b ** 2 / V, rel=1e-12)
    assert (f, p, df_diff) == pytest.approx((wald.statistic, wald.pvalue, 1.0), rel=1e-12)
    # the same restricted model as a two-stage fit with the same representation
    two_stage_restricted = _fit(fitted, FORMULA + " - pc1")
    assert res.compare_f_test(two_stage_restricted) == pytest.approx((f, p, 1.0), rel=1e-12)
    # reduction: with the nonrobust second stage alone it is statsmodels' F test
    reduced = res.wald_test("pc1 = 0", cov_p=res.cov_params_naive(), use_f=True, scalar=True)
    plain_full = sm.OLS(res.model.endog, W).fit()
    f_sm, p_sm, _ = plain_full.compare_f_test(restricted)
    assert (reduced.statistic, reduced.pvalue) == pytest.approx((f_sm, p_sm), rel=1e-10)
    assert f < 0.5 * f_sm  # the first stage matters for pc1 here


def test_compare_f_test_general_nesting_and_naive(fitted):
    res = _fit(fitted)
    W = np.asarray(res.model.exog)
    combined = np.column_stack([W[:, 0], W[:, 1] + W[:, 2], W[:, 3:]])  # b_z = b_treat
    f, p, df_diff = res.compare_f_test(sm.OLS(res.model.endog, combined).fit())
    wald = res.wald_test("z - treat = 0", use_f=True, scalar=True)
    assert (f, p, df_diff) == pytest.approx((wald.statistic, wald.pvalue, 1.0), rel=1e-10)
    naive = _fit(fitted, cov_type="naive")
    restricted = sm.OLS(res.model.endog, W[:, [0, 2, 3, 4]]).fit()
    assert naive.compare_f_test(restricted) == pytest.approx(
        sm.OLS(res.model.endog, W).fit().compare_f_test(restricted), rel=1e-12)


def test_compare_f_test_refusals(fitted):
    rep, df, cols = fitted
    res = _fit(fitted)
    W = np.asarray(res.model.exog)
    y = np.asarray(res.model.endog)
    with pytest.raises(ValueError, match="The restricted model is not nested in this one: "
                                         "some of its design columns are not linear "
                                         "combinations"):
        res.compare_f_test(sm.OLS(y, np.column_stack([W[:, :2], W[:, 1] ** 2])).fit())
    with pytest.raises(ValueError, match="compare_f_test needs the restricted model fitted "
                                         "to the same rows, outcome and weights"):
        res.compare_f_test(sm.OLS(y + 1, W[:, :3]).fit())
    with pytest.raises(ValueError, match="spans the same columns as this one: there is no "
                                         "restriction to test"):
        res.compare_f_test(sm.OLS(y, W[:, ::-1]).fit())
    rotation = ssi.PCA(2, symmetry="rotation").fit(rep.pretrain_data_)
    full = _fit(fitted, rep=rotation)
    with pytest.raises(NonInvariantHypothesisError, match="O\\(2\\)"):
        full.compare_f_test(sm.OLS(y, np.asarray(full.model.exog)[:, :4]).fit())  # drop pc1
    f, _, df_diff = full.compare_f_test(sm.OLS(y, W[:, :3]).fit())  # the whole block
    assert df_diff == 2.0 and f == pytest.approx(
        full.wald_test("pc0 = pc1 = 0", use_f=True, scalar=True).statistic, rel=1e-10)


# ------------------------------------------------------------------ F statistic
def test_fvalue_is_two_stage_wald_and_invariant(fitted):
    rep, df, cols = fitted
    res = _fit(fitted)
    wald = res.wald_test("z = treat = pc0 = pc1 = 0", use_f=True, scalar=True)
    assert res.fvalue == pytest.approx(wald.statistic, rel=1e-12)
    assert res.f_pvalue == pytest.approx(wald.pvalue, rel=1e-10)
    naive = _fit(fitted, cov_type="naive")
    assert naive.fvalue == pytest.approx(_plain(fitted).fvalue, rel=1e-12)
    assert abs(res.fvalue / naive.fvalue - 1) > 0.05
    assert f"{res.fvalue:#8.4g}".strip() in str(res.summary().tables[0])
    for g in rep.symmetry_.generators():
        moved = _fit(fitted, rep=rep.act(g))
        assert moved.fvalue == pytest.approx(res.fvalue, rel=1e-10)
        assert not np.allclose(moved.params, res.params)  # the gauge did move


# -------------------------------------------------------------------------- anova
@pytest.mark.parametrize("typ", [2, 3])
@pytest.mark.parametrize("robust", [None, "hc3"])
def test_anova_typ2_typ3_are_two_stage_wald(fitted, typ, robust):
    res = _fit(fitted)
    table = sm.stats.anova_lm(res, typ=typ, robust=robust)
    cov = res.cov_params() if robust is None else res.cov_HC3
    for term in ["z", "treat", "pc0", "pc1"]:
        wald = res.wald_test(f"{term} = 0", cov_p=np.asarray(cov), use_f=True, scalar=True)
        assert table.loc[term, "F"] == pytest.approx(wald.statistic, rel=1e-10)
        assert table.loc[term, "PR(>F)"] == pytest.approx(wald.pvalue, rel=1e-8)
    naive = sm.stats.anova_lm(_plain(fitted), typ=typ, robust=robust)
    assert abs(table.loc["pc1", "F"] / naive.loc["pc1", "F"] - 1) > 0.05


def test_anova_typ1_and_several_models_refused(fitted):
    res = _fit(fitted)
    small = _fit(fitted, "y ~ treat")
    assert statsmodels.stats.anova.anova_lm is ssi.anova.anova_lm
    for anova_lm in (sm.stats.anova_lm, STATSMODELS_ANOVA_LM):  # also statsmodels' own
        with pytest.raises(FirstStageBlindError, match=r"Type I \(sequential\) ANOVA, "
                                                       r"statsmodels' anova_lm\(res\) default "
                                                       "typ=1, builds F tests from sums of "
                                                       "squares"):
            anova_lm(res)
    with pytest.raises(FirstStageBlindError, match=r"anova_lm\(...\) with several models "
                                                   "compares their residual sums of squares"):
        sm.stats.anova_lm(small, res)
    # naive results are statsmodels' own
    naive = sm.stats.anova_lm(_fit(fitted, cov_type="naive"))
    pd.testing.assert_frame_equal(naive, STATSMODELS_ANOVA_LM(_plain(fitted)), rtol=1e-10)
    both = sm.stats.anova_lm(_fit(fitted, "y ~ treat", cov_type="naive"),
                             _fit(fitted, cov_type="naive"))
    pd.testing.assert_frame_equal(both, STATSMODELS_ANOVA_LM(
        _plain(fitted, "y ~ treat + pc0 + pc1"), _plain(fitted)), rtol=1e-10)


# ---------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def likelihood_fits(fitted):
    rep, df, cols = fitted
    df = df.copy()
    rng = np.random.default_rng(2)
    df["yb"] = (rng.random(len(df)) < 1 / (1 + np.exp(-0.3 * df["x0"]))).astype(float)
    fits = {}
    for cov_type in ("two-stage", "naive"):
        fits["glm", cov_type] = smf.glm("yb ~ z", df, family=sm.families.Binomial(),
                                        representation=rep, features=cols).fit(
            cov_type=cov_type)
        fits["logit", cov_type] = smf.logit("yb ~ z", df, representation=rep,
                                            features=cols).fit(disp=0, cov_type=cov_type)
    return fits, df


OLS_REFUSALS = {
    "compare_lr_test": (lambda r, small: r.compare_lr_test(small),
                        r"compare_lr_test\(\) compares log-likelihoods .* Use "
                        r"res.compare_f_test\(restricted\)"),
    "compare_lr_test_large": (lambda r, small: r.compare_lr_test(small, large_sample=True),
                              r"compare_lr_test\(\) compares log-likelihoods \(or, with "
                              r"large_sample=True, scores\)"),
    "compare_lm_test": (lambda r, small: r.compare_lm_test(small),
                        r"compare_lm_test\(\) evaluates the scores of the restricted fit"),
    "el_test": (lambda r, small: r.el_test(np.array([0.0]), np.array([1])),
                r"el_test\(\) builds an empirical likelihood .* Use res.t_test"),
    "conf_int_el": (lambda r, small: r.conf_int_el(1),
                    r"conf_int_el\(\) builds an empirical likelihood"),
    "get_influence": (lambda r, small: r.get_influence(),
                      r"get_influence\(\) \(and what builds on it, such as outlier_test\) "
                      "computes leverage, Cook's distances"),
    "outlier_test": (lambda r, small: r.outlier_test(), r"get_influence\(\) \(and what "),
}


@pytest.mark.parametrize("method", list(OLS_REFUSALS))
def test_least_squares_refusals_and_naive_passthrough(fitted, method):
    call, message = OLS_REFUSALS[method]
    small = _fit(fitted, "y ~ treat")
    with pytest.raises(FirstStageBlindError, match=message):
        call(_fit(fitted), small)
    with pytest.raises(NotImplementedError):  # FirstStageBlindError is one
        call(_fit(fitted, cov_type="HC1"), small)
    # naive results are statsmodels' own (array models: statsmodels' compare_lm_test
    # fails on formula results, in statsmodels itself)
    rep, df, cols = fitted
    y, X = df["y"].to_numpy(), df[cols].to_numpy()
    Z = sm.add_constant(df[["z", "treat"]].to_numpy())

    def naive_fit(exog):
        return ssi.OLS(y, exog, representation=rep, features=X).fit(cov_type="naive")

    def plain_fit(exog):
        return sm.OLS(y, np.column_stack([exog, rep.transform(X)])).fit()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = call(naive_fit(Z), naive_fit(Z[:, [0, 2]]))
        theirs = call(plain_fit(Z), plain_fit(Z[:, [0, 2]]))
    if method in ("get_influence",):
        ours, theirs = ours.cooks_distance[0], theirs.cooks_distance[0]
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=1e-8)


@pytest.mark.parametrize("model", ["glm", "logit"])
def test_likelihood_refusals(likelihood_fits, model):
    fits, _ = likelihood_fits
    res, naive = fits[model, "two-stage"], fits[model, "naive"]
    with pytest.raises(FirstStageBlindError, match=r"score_test\(\) evaluates the "
                                                   "second-stage score at restricted "
                                                   r"estimates .* res.wald_test"):
        res.score_test(exog_extra=np.ones((int(res.nobs), 1)) * np.arange(res.nobs)[:, None])
    with pytest.raises(FirstStageBlindError, match=r"get_influence\(\)"):
        res.get_influence()
    infl = naive.get_influence()
    assert np.isfinite(np.asarray(infl.cooks_distance[0])).all()


def test_poisson_diagnostics_refused(fitted):
    rep, df, cols = fitted
    df = df.assign(yc=np.random.default_rng(4).poisson(np.exp(0.2 + 0.1 * df["x0"])))
    model = smf.poisson("yc ~ z", df, representation=rep, features=cols)
    with pytest.raises(FirstStageBlindError, match=r"get_diagnostic\(\) returns statsmodels' "
                                                   "specification tests of the count model"):
        model.fit(disp=0).get_diagnostic()
    naive = model.fit(disp=0, cov_type="naive").get_diagnostic()
    plain = sm_smf.poisson("yc ~ z + pc0 + pc1", df.join(rep.transform(df[cols]))).fit(
        disp=0).get_diagnostic()
    assert naive.test_dispersion().pvalue == pytest.approx(plain.test_dispersion().pvalue,
                                                           rel=1e-8)


@pytest.mark.parametrize("model", ["ols", "glm", "logit"])
def test_fit_regularized_refused_with_a_representation(fitted, likelihood_fits, model):
    rep, _, cols = fitted
    _, df = likelihood_fits
    mod = {"ols": lambda: smf.ols(FORMULA, df, representation=rep, features=cols),
           "glm": lambda: smf.glm("yb ~ z", df, family=sm.families.Binomial(),
                                  representation=rep, features=cols),
           "logit": lambda: smf.logit("yb ~ z", df, representation=rep, features=cols)}[model]()
    parent = {"ols": "OLS", "glm": "GLM", "logit": "Logit"}[model]
    with pytest.raises(FirstStageBlindError, match=r"fit_regularized\(\) is not available "
                                                   r"with a representation: .* e.g. "
                                                   rf"sm.{parent}\(model.endog, model.exog"):
        mod.fit_regularized(alpha=0.1)


def test_docs_of_refused_methods_say_so():
    for method in ("compare_lr_test", "compare_lm_test", "get_influence", "effects"):
        assert "Not available" in getattr(ssi.results.TwoStageOLSResults, method).__doc__


# ----------------------------------------------------------- llr_pvalue (kept)
@pytest.mark.slow
def test_llr_pvalue_has_its_size_under_the_global_null():
    """Under the LR test's null (y independent of z and x) the second-stage score at the
    null is a sum of mean-zero terms independent of the estimated features, so the first
    stage has no first-order effect (Pagan 1984) and ``llr_pvalue`` keeps its size even
    with a noisy first stage (m = 60). 600 replications: the rejection rate at 5% has a
    Monte Carlo SE of 0.9 points; the band is 3 SE."""
    rng = np.random.default_rng(2026)
    rejections = []
    for _ in range(600):
        X_pre = rng.normal(size=(60, 4)) * [3.0, 2.0, 1.0, 0.5]
        X = rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5]
        z = rng.normal(size=300) + 0.5 * X[:, 2]
        y = (rng.random(300) < 0.4).astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ssi.IdentificationWarning)
            rep = ssi.PCA(2).fit(X_pre)
        res = ssi.Logit(y, sm.add_constant(z), representation=rep, features=X).fit(disp=0)
        rejections.append(res.llr_pvalue < 0.05)
    rate = np.mean(rejections)
    se = np.sqrt(0.05 * 0.95 / 600)
    assert 0.05 - 3 * se <= rate <= 0.05 + 3 * se
