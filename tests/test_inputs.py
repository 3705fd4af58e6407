"""Inputs that used to give silently wrong standard errors (issue 11, section 3).

Cluster labels across the two samples, pandas Series aligned on their index, the
pre-training data changed after ``fit``, ``remove_data``, ``conf_int(cols=...)``,
``get_robustcov_results`` refits, plain ``fit_regularized`` and predictions of rows
with missing values. The clustered covariances themselves are checked against an
independent oracle in ``tests/test_oracle_clusters.py``.
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
from ssl_inference.bootstrap import resample_units
from ssl_inference.exceptions import PretrainDataModifiedError

from .conftest import make_problem

CLUSTER = "cluster"


@pytest.fixture
def fitted(problem):
    X_pre, df, cols = problem
    return ssi.PCA(2).fit(X_pre), X_pre, df, cols


def _overlap_problem(seed=0):
    """Every labeled row is a pre-training row (rows 100..249 of X_pre)."""
    X_pre, df, cols = make_problem(seed)
    pidx = np.arange(100, 100 + len(df))
    X_pre = X_pre.copy()
    X_pre[pidx] = df[cols].to_numpy()
    pre_groups = np.arange(len(X_pre)) % 30
    groups = pre_groups[pidx]
    return X_pre, df, cols, pidx, groups, pre_groups


# ------------------------------------------------------- 1. overlap with clusters
def test_overlapping_rows_must_carry_the_same_cluster_label():
    X_pre, df, cols, pidx, groups, pre_groups = _overlap_problem()
    model = smf.ols("y ~ z", df, representation=ssi.PCA(2).fit(X_pre), features=cols,
                    pretrain_index=pidx)
    bad = groups.copy()
    bad[[3, 40]] = (bad[[3, 40]] + 1) % 30
    with pytest.raises(ValueError, match=r"groups and pretrain_groups disagree on 2 overlapping "
                                         r"row\(s\): e\.g\. labeled row 3 is in cluster 14 but "
                                         r"it is pre-training row 103 \(pretrain_index\), which "
                                         r"is in cluster 13\. .*groups\[j\] == "
                                         r"pretrain_groups\[pretrain_index\[j\]\]"):
        model.fit(cov_kwds={"second_stage": CLUSTER, "groups": bad,
                            "pretrain_groups": pre_groups})
    ok = model.fit(cov_kwds={"second_stage": CLUSTER, "groups": groups,
                             "pretrain_groups": pre_groups})
    assert np.abs(ok.variance_decomposition()["overlap"]).max() > 0


@pytest.mark.parametrize("as_str", ["groups", "pretrain_groups"])
def test_number_and_string_labels_are_refused(as_str):
    X_pre, df, cols, pidx, groups, pre_groups = _overlap_problem()
    kw = {"second_stage": CLUSTER, "groups": groups, "pretrain_groups": pre_groups}
    kw[as_str] = kw[as_str].astype(str)
    model = smf.ols("y ~ z", df, representation=ssi.PCA(2).fit(X_pre), features=cols,
                    pretrain_index=pidx)
    with pytest.raises(TypeError, match=r"groups and pretrain_groups hold different kinds of "
                                        r"cluster labels \(one numbers, the other strings\)"
                                        r"\. .*3 and '3' would silently be two clusters"):
        model.fit(cov_kwds=kw)
    # the same clusters spelled with one type in both arrays: identical covariance
    as_ints = model.fit(cov_kwds={"second_stage": CLUSTER, "groups": groups,
                                  "pretrain_groups": pre_groups})
    as_strs = model.fit(cov_kwds={"second_stage": CLUSTER, "groups": groups.astype(str),
                                  "pretrain_groups": pre_groups.astype(str)})
    as_floats = model.fit(cov_kwds={"second_stage": CLUSTER, "groups": groups.astype(float),
                                    "pretrain_groups": pre_groups})
    np.testing.assert_allclose(as_strs.cov_params(), as_ints.cov_params(), rtol=1e-12)
    np.testing.assert_allclose(as_floats.cov_params(), as_ints.cov_params(), rtol=1e-12)


@pytest.mark.parametrize("which", ["groups", "pretrain_groups"])
def test_missing_cluster_labels_are_refused(which):
    X_pre, df, cols, pidx, groups, pre_groups = _overlap_problem()
    kw = {"second_stage": CLUSTER, "groups": groups.astype(float),
          "pretrain_groups": pre_groups.astype(float)}
    kw[which][5] = np.nan
    model = smf.ols("y ~ z", df, representation=ssi.PCA(2).fit(X_pre), features=cols)
    with pytest.raises(ValueError, match=rf"{which} has 1 missing cluster label\(s\) "
                                         r"\(NaN/None\), e\.g\. at rows \[5\]"):
        model.fit(cov_kwds=kw)


# ------------------------------------------ 2. clusters shared without row overlap
def _shared_cluster_fits(fitted):
    rep, X_pre, df, cols = fitted
    pre_groups = np.arange(len(X_pre)) % 40          # 0..39
    groups = df["g"].to_numpy() + 30                 # 30..54: 30..39 shared
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    kw = {"second_stage": CLUSTER, "groups": groups}
    return (model, groups, pre_groups,
            model.fit(cov_kwds={**kw, "pretrain_groups": pre_groups}),
            model.fit(cov_kwds={**kw, "pretrain_groups": pre_groups + 1000}))


def test_shared_clusters_get_the_cross_term_without_a_sentinel(fitted):
    model, groups, pre_groups, shared, unrelated = _shared_cluster_fits(fitted)
    parts, parts_u = shared._covariance.parts(), unrelated._covariance.parts()
    # the only difference between the two is the cross term of the shared clusters
    np.testing.assert_allclose(parts.fine_tuning, parts_u.fine_tuning, rtol=1e-12)
    np.testing.assert_allclose(parts.pretraining, parts_u.pretraining, rtol=1e-12)
    np.testing.assert_array_equal(parts_u.cross, 0.0)
    assert np.abs(np.diag(parts.cross) / np.diag(parts.total)).max() > 0.01
    np.testing.assert_allclose(shared.cov_params(), parts_u.total + parts.cross, rtol=1e-12)
    # the cross term is sum_c (A_c B_c' + B_c A_c') over the 10 shared clusters only
    assert shared._covariance.shared_clusters == 10
    assert unrelated._covariance.shared_clusters == 0
    # the old sentinel (pretrain_index all -1) is now the same fit, not a different one
    rep, _, df, cols = fitted
    sentinel = smf.ols("y ~ z", df, representation=rep, features=cols,
                       pretrain_index=np.full(len(df), -1)).fit(
        cov_kwds={"second_stage": CLUSTER, "groups": groups, "pretrain_groups": pre_groups})
    np.testing.assert_allclose(sentinel.cov_params(), shared.cov_params(), rtol=1e-12)
    # one-sided clustering is fine when no row is shared
    sentinel.model.fit(cov_kwds={"second_stage": CLUSTER, "groups": groups})


def test_summary_reports_shared_clusters(fitted):
    _, _, _, shared, unrelated = _shared_cluster_fits(fitted)
    text = str(shared.summary())
    assert re.search(r"X_pre clustered: +yes, 10 shared\n", text)
    assert ("10 clusters have rows in both samples (labels present in both groups and "
            "pretrain_groups); each is one unit") in text
    assert "overlap share" in text
    header = text.split("Standard errors: two-stage vs naive")[0]
    assert max(len(line) for line in header.splitlines()) <= 78
    text_u = str(unrelated.summary())
    assert re.search(r"X_pre clustered: +yes\n", text_u)
    assert "clusters have rows in both samples" not in text_u
    assert "overlap share" not in text_u
    assert "10 clusters have rows in both samples" in str(shared.summary2())


def test_bootstrap_resamples_shared_clusters_jointly():
    groups = np.array([1, 1, 2, 5, 5, 6])            # 1, 2 shared; 5, 6 labeled only
    pre_groups = np.array([1, 2, 2, 3, 3, 4, 4])     # 3, 4 pre-training only
    sizes_pre = pd.Series(pre_groups).value_counts()
    sizes_lab = pd.Series(groups).value_counts()
    rng = np.random.default_rng(4)
    for _ in range(50):
        pre, lab = resample_units(rng, 7, 6, None, groups, pre_groups)
        drawn_pre = pd.Series(pre_groups[pre]).value_counts()
        drawn_lab = pd.Series(groups[lab]).value_counts()
        times_pre = drawn_pre / sizes_pre[drawn_pre.index]
        times_lab = drawn_lab / sizes_lab[drawn_lab.index]
        assert (times_pre % 1 == 0).all() and (times_lab % 1 == 0).all()  # whole clusters
        for c in (1, 2):  # a shared cluster comes with its rows in both samples
            assert times_pre.get(c, 0) == times_lab.get(c, 0)
        # the union of the 6 clusters is the set of units
        assert times_pre.sum() + times_lab.drop([1, 2], errors="ignore").sum() == 6
    # labels made distinct: each sample resampled on its own, keeping its size in clusters
    pre, lab = resample_units(rng, 7, 6, None, groups, pre_groups + 100)
    assert (pd.Series(groups[lab]).value_counts() / sizes_lab).sum() == 4


def test_bootstrap_of_shared_clusters_through_the_model(fitted):
    model, groups, pre_groups, shared, _ = _shared_cluster_fits(fitted)
    boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": 8, "seed": 0, "groups": groups,
                                                     "pretrain_groups": pre_groups})
    assert boot._covariance.shared_clusters == 10
    assert "each is resampled as one unit, with its rows in both samples" in str(boot.summary())


# ----------------------------------------------------- 3. Series aligned on index
def _shuffled(values, index, seed=0):
    order = np.random.default_rng(seed).permutation(len(index))
    return pd.Series(np.asarray(values)[order], index=index[order])


def test_groups_series_is_aligned_on_the_data_index(fitted):
    rep, _, df, cols = fitted
    df = df.set_index(pd.Index([f"r{i}" for i in range(len(df))]))
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    kw = {"second_stage": CLUSTER, "pretrain_groups": np.arange(rep.nobs_) % 40 + 30}
    ref = model.fit(cov_kwds={**kw, "groups": df["g"].to_numpy()})
    aligned = model.fit(cov_kwds={**kw, "groups": _shuffled(df["g"], df.index)})
    np.testing.assert_allclose(aligned.cov_params(), ref.cov_params(), rtol=1e-12)
    positional = model.fit(cov_kwds={**kw, "groups": _shuffled(df["g"], df.index).to_numpy()})
    assert np.abs(positional.bse / ref.bse - 1).max() > 1e-3  # the order matters
    wrong = pd.Series(df["g"].to_numpy())  # RangeIndex, data indexed by strings
    with pytest.raises(ValueError, match=r"groups is a pandas Series whose index lacks 150 row "
                                         r"label\(s\) of the model's data \(e\.g\. \['r0', "
                                         r".*pass groups\.to_numpy\(\) to use it by position"):
        model.fit(cov_kwds={**kw, "groups": wrong})


def test_pretrain_index_series_is_aligned_on_the_data_index():
    X_pre, df, cols, pidx, groups, pre_groups = _overlap_problem()
    rep = ssi.PCA(2).fit(X_pre)
    df = df.set_index(df.index + 1000)
    ref = smf.ols("y ~ z", df, representation=rep, features=cols, pretrain_index=pidx).fit()
    series = _shuffled(pidx, df.index)
    aligned = smf.ols("y ~ z", df, representation=rep, features=cols,
                      pretrain_index=series).fit()
    np.testing.assert_allclose(aligned.cov_params(), ref.cov_params(), rtol=1e-12)
    np.testing.assert_array_equal(aligned.model.pretrain_index, pidx)
    # array models align on endog's / exog's index
    arr = ssi.OLS(df["y"], sm.add_constant(df["z"]), representation=rep, features=df[cols],
                  pretrain_index=series).fit()
    np.testing.assert_allclose(arr.cov_params(), ref.cov_params(), rtol=1e-10)
    with pytest.raises(ValueError, match=r"pretrain_index is a pandas Series whose index lacks "
                                         r"150 row label\(s\) of data"):
        smf.ols("y ~ z", df, representation=rep, features=cols,
                pretrain_index=pd.Series(pidx))
    with pytest.raises(ValueError, match=r"pretrain_index is a pandas Series with its own "
                                         r"index, but endog/exog are numpy arrays"):
        ssi.OLS(df["y"].to_numpy(), sm.add_constant(df["z"].to_numpy()), representation=rep,
                features=df[cols].to_numpy(), pretrain_index=series)


def test_pretrain_groups_series_is_aligned_on_the_x_pre_index(problem):
    X_pre, df, cols = problem
    pre_groups = np.arange(len(X_pre)) % 40
    kw = {"second_stage": CLUSTER, "groups": df["g"].to_numpy() + 30}
    X_df = pd.DataFrame(X_pre, index=[f"u{i}" for i in range(len(X_pre))])
    rep_df = ssi.PCA(2).fit(X_df)
    model = smf.ols("y ~ z", df, representation=rep_df, features=cols)
    ref = model.fit(cov_kwds={**kw, "pretrain_groups": pre_groups})
    aligned = model.fit(cov_kwds={**kw, "pretrain_groups": _shuffled(pre_groups, X_df.index)})
    np.testing.assert_allclose(aligned.cov_params(), ref.cov_params(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"pretrain_groups is a pandas Series whose index "
                                         r"lacks 400 row label\(s\) of the rows of X_pre"):
        model.fit(cov_kwds={**kw, "pretrain_groups": pd.Series(pre_groups)})
    # X_pre as an array: a default RangeIndex is positional, any other index refused
    rep = ssi.PCA(2).fit(X_pre)
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    positional = model.fit(cov_kwds={**kw, "pretrain_groups": pd.Series(pre_groups)})
    np.testing.assert_allclose(positional.cov_params(), ref.cov_params(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"pretrain_groups is a pandas Series with its own "
                                         r"index, but the rows of X_pre are numpy arrays"):
        model.fit(cov_kwds={**kw, "pretrain_groups": _shuffled(pre_groups, X_df.index)})


# ---------------------------------------------- 4. X_pre changed after the fit
def _first_stages(rng):
    d = 4
    scales = np.array([2.0, 1.5, 0.7, 0.4])
    X = rng.normal(size=(500, d)) * scales
    keep = np.array([0.9, 0.6, 0.25, 0.1])
    X_pos = keep * X + np.sqrt(1 - keep ** 2) * rng.normal(size=X.shape) * scales
    centers = np.array([[-2.5, 0, 0, 0], [2.5, 0, 0, 0], [0, 2.5, 0, 0.0]])
    X_mix = centers[rng.integers(0, 3, size=500)] + rng.normal(size=(500, d)) * 0.6
    return {
        "pca": (ssi.PCA(2), X, ()),
        "factor": (ssi.FactorModel(2, noise="isotropic"), X, ()),
        "mixture": (ssi.GaussianMixture(3, covariance_type="spherical", random_state=0),
                    X_mix, ()),
        "mestimator": (ssi.MEstimatorRepresentation(
            loss=lambda X, t: ((X - t) ** 2).sum(axis=1),
            transform=lambda X, t: (X - t)[:, :2], params=X.mean(axis=0), optimize=True),
            X, ()),
        "spectral": (ssi.SpectralContrastive(2), X, (X_pos,)),
    }


@pytest.mark.parametrize("name", ["pca", "factor", "mixture", "mestimator", "spectral"])
def test_x_pre_modified_after_fit(name):
    rng = np.random.default_rng(5)
    rep, X, extra = _first_stages(rng)[name]
    X = X.copy()
    original = X.copy()
    rep.fit(X, *extra)
    X_lab = X[rng.integers(0, len(X), size=200)] + 0.1 * rng.normal(size=(200, X.shape[1]))
    y = X_lab[:, 0] + rng.normal(size=200)
    exog = np.ones((200, 1))
    model = ssi.OLS(y, exog, representation=rep, features=X_lab)
    res = model.fit()
    before = res.get_prediction(exog[:3], features=X_lab[:3]).se_mean
    with pytest.raises(ValueError, match="read-only"):
        rep.pretrain_data_[0, 0] = 1.0   # no write through the representation
    X *= 10                              # the caller's own array stays theirs
    if name == "spectral":  # the stacked views are the representation's own copy
        np.testing.assert_allclose(res.get_prediction(exog[:3], features=X_lab[:3]).se_mean,
                                   before, rtol=1e-12)
        np.testing.assert_allclose(model.fit().bse, res.bse, rtol=1e-12)
        return
    message = (r"X_pre was modified after fit: the pre-training rows this "
               rf"{type(rep).__name__} was fitted on have changed in place .* Refit the "
               r"representation on the data you mean \(rep\.fit\(X_pre\)\) and refit the "
               r"model; pass X_pre\.copy\(\) to fit")
    # the fitted results answer from the first-stage sums cached from the data the fit
    # saw (no read of X_pre): still right; anything that reads X_pre again refuses
    np.testing.assert_allclose(res.get_prediction(exog[:3], features=X_lab[:3]).se_mean,
                               before, rtol=1e-12)
    with pytest.raises(PretrainDataModifiedError, match=message):
        res._covariance.first_stage_gram(np.eye(rep.params_.size))
    with pytest.raises(PretrainDataModifiedError, match=message):
        model.fit()
    with pytest.raises(PretrainDataModifiedError, match=message):
        model.fit(cov_type="bootstrap", cov_kwds={"reps": 2, "seed": 0})
    X[...] = original                    # restored bytes: usable again, same numbers
    np.testing.assert_allclose(res.get_prediction(exog[:3], features=X_lab[:3]).se_mean,
                               before, rtol=1e-12)


def test_single_changed_entry_of_a_dataframe_x_pre_is_detected(problem):
    X_pre, df, cols = problem
    X_df = pd.DataFrame(X_pre.copy(), columns=cols)
    rep = ssi.PCA(2).fit(X_df)
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit()
    shares_memory = np.shares_memory(rep.pretrain_data_, X_df.to_numpy())
    X_df.iloc[123, 2] += 1e-9
    if shares_memory:  # pandas handed out its block: the fingerprint catches the change
        with pytest.raises(PretrainDataModifiedError):
            res.get_prediction(df.iloc[:2])
    else:              # pandas copied: the representation owns its rows
        res.get_prediction(df.iloc[:2])


def test_influence_stream_checks_the_rows_it_reads():
    # the fingerprint is accumulated as the stream reads its chunks; a stream over
    # changed rows raises when it ends, and the checksum equals the one of a separate pass
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
    rep = ssi.PCA(2).fit(X)
    K = np.eye(rep.params_.size)[:3]
    assert len(list(rep.influence_contract(K, chunk_rows=64))) == 8
    X[499, 3] = np.nextafter(X[499, 3], np.inf)                # last chunk, one ulp
    with pytest.raises(PretrainDataModifiedError, match="X_pre was modified after fit"):
        list(rep.influence_contract(K, chunk_rows=64))
    with pytest.raises(PretrainDataModifiedError):
        rep.influence_gram(K)


def test_fingerprint_reads_non_contiguous_arrays_in_chunks():
    rng = np.random.default_rng(0)
    X = np.asfortranarray(rng.normal(size=(70_000, 30)))  # > 16 MB, Fortran order
    fp = ssi.Representation._pretrain_fingerprint
    assert fp(X) == fp(np.ascontiguousarray(X))
    Y = X.copy(order="F")
    Y[69_999, 29] = np.nextafter(Y[69_999, 29], np.inf)   # last chunk, one ulp
    assert fp(Y) != fp(X)
    Y = X.copy(order="F")
    Y[[10, 60_000]] = Y[[60_000, 10]]                      # two rows swapped
    assert fp(Y) != fp(X)
    assert fp(X.astype(np.float32)) != fp(X.astype(np.float32)[::-1])


# ------------------------------------------------------------- 5. remove_data
def _removal_cases(problem):
    X_pre, df, cols, pidx, groups, pre_groups = _overlap_problem()
    rep = ssi.PCA(2).fit(X_pre)
    df["yb"] = (df["y"] > df["y"].median()).astype(float)
    clusters = {"second_stage": CLUSTER, "groups": groups, "pretrain_groups": pre_groups}
    return rep, df, cols, {
        "ols-formula-overlap-clusters": lambda: smf.ols(
            "y ~ z", df, representation=rep, features=cols, pretrain_index=pidx).fit(
            cov_kwds=clusters),
        "ols-array": lambda: ssi.OLS(df["y"].to_numpy(), sm.add_constant(df["z"].to_numpy()),
                                     representation=rep, features=df[cols].to_numpy()).fit(),
        "glm-formula": lambda: smf.glm("yb ~ z", df, family=sm.families.Binomial(),
                                       representation=rep, features=cols,
                                       pretrain_index=pidx).fit(),
        "logit-formula": lambda: smf.logit("yb ~ z", df, representation=rep,
                                           features=cols).fit(disp=0),
        "ols-bootstrap": lambda: smf.ols("y ~ z", df, representation=rep, features=cols).fit(
            cov_type="bootstrap", cov_kwds={"reps": 5, "seed": 1}),
    }


@pytest.mark.parametrize("case", ["ols-formula-overlap-clusters", "ols-array", "glm-formula",
                                  "logit-formula", "ols-bootstrap"])
def test_remove_data_drops_first_stage_data_and_keeps_prediction(problem, case):
    rep, df, cols, cases = _removal_cases(problem)
    res = cases[case]()
    new = df.iloc[:4]
    args = (new,) if "array" not in case else (sm.add_constant(new["z"].to_numpy(),
                                                               has_constant="add"),)
    kw = {} if "array" not in case else {"features": new[cols].to_numpy()}
    pred = np.asarray(res.predict(*args, **kw))
    se = res.get_prediction(*args, **kw).se
    bse = np.asarray(res.bse)
    res.remove_data()
    model = res.model
    assert model.features is None and model._sample_jacobian is None
    assert model.exog is None and res._covariance.second_influence is None
    if "formula" in case:
        assert model.data.frame is None
    np.testing.assert_allclose(np.asarray(res.predict(*args, **kw)), pred, rtol=1e-12)
    np.testing.assert_allclose(res.get_prediction(*args, **kw).se, se, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(res.bse), bse, rtol=1e-12)
    with pytest.raises(ValueError, match=r"dropped by remove_data\(\), so in-sample "
                                         r"predictions are not available"):
        res.get_prediction()


@pytest.mark.parametrize("family", ["ols", "logit"])
def test_naive_fit_computes_the_jacobian_only_when_asked_also_after_remove_data(problem,
                                                                               family):
    """A naive fit skips the loss derivatives and J (issue 13 §3); J is computed on first
    use, and remove_data() computes it before dropping the data it needs."""
    rep, df, cols, _ = _removal_cases(problem)
    fit = {"ols": lambda f, **kw: smf.ols("y ~ z", df, representation=rep,
                                          features=cols).fit(**kw),
           "logit": lambda f, **kw: smf.logit("yb ~ z", df, representation=rep,
                                              features=cols).fit(disp=0, **kw)}[family]
    J = fit(None)._covariance.jacobian
    naive = fit(None, cov_type="naive")
    assert callable(naive._covariance.__dict__["_jacobian"])  # not computed by the fit
    naive.remove_data()
    assert naive.model.exog is None
    np.testing.assert_allclose(naive._covariance.jacobian, J, rtol=1e-12, atol=0)


# -------------------------------------------------------- 6. conf_int(cols=...)
def test_conf_int_cols(fitted):
    rep, _, df, cols = fitted
    res = smf.ols("y ~ z + treat", df, representation=rep, features=cols).fit()
    full = res.conf_int()
    assert list(full.index) == ["Intercept", "z", "treat", "pc0", "pc1"]
    sub = res.conf_int(cols=[1, 3])
    pd.testing.assert_frame_equal(sub, full.iloc[[1, 3]])
    pd.testing.assert_frame_equal(res.conf_int(0.1, [0]), res.conf_int(alpha=0.1).iloc[[0]])
    np.testing.assert_array_equal(res._results.conf_int(cols=[2]), full.to_numpy()[[2]])
    arr = ssi.OLS(df["y"].to_numpy(), sm.add_constant(df["z"].to_numpy()),
                  representation=rep, features=df[cols].to_numpy()).fit()
    np.testing.assert_array_equal(arr.conf_int(cols=[0, 2]), arr.conf_int()[[0, 2]])
    boot = smf.ols("y ~ z", df, representation=rep, features=cols).fit(
        cov_type="bootstrap", cov_kwds={"reps": 20, "seed": 0})
    pd.testing.assert_frame_equal(boot.conf_int(cols=[2], method="percentile"),
                                  boot.conf_int(method="percentile").iloc[[2]])


# ------------------------------------------------- 7. get_robustcov_results
def test_get_robustcov_results_refuses_bootstrap(fitted):
    rep, _, df, cols = fitted
    boot = smf.ols("y ~ z", df, representation=rep, features=cols).fit(
        cov_type="bootstrap", cov_kwds={"reps": 3, "seed": 0})
    with pytest.raises(ValueError, match=r"bootstrap standard errors \(cov_type='bootstrap'\) "
                                         r"use none.*fit\(cov_kwds=\{'second_stage': 'HC3'\}\)"):
        boot.get_robustcov_results("HC3")


@pytest.mark.filterwarnings("ignore:Maximum Likelihood optimization failed to converge")
def test_get_robustcov_results_keeps_the_fit_options(fitted, capsys):
    rep, _, df, cols = fitted
    df = df.assign(yb=(df["y"] > df["y"].median()).astype(float))
    model = smf.logit("yb ~ z", df, representation=rep, features=cols)
    # a few Nelder-Mead steps stop far from the optimum: a refit with the default
    # optimiser (newton) would land elsewhere
    early = model.fit(method="nm", maxiter=20, disp=0)
    capsys.readouterr()
    robust = early.get_robustcov_results("HC0")
    assert capsys.readouterr().out == ""          # disp=0 kept: nothing printed
    np.testing.assert_allclose(robust.params, np.asarray(early.params), rtol=1e-12)
    newton = model.fit(disp=0)
    assert np.abs(np.asarray(newton.params) - np.asarray(early.params)).max() > 1e-3
    assert robust.cov_type == "two-stage HC0" and robust._spec.second_stage == "HC0"
    # use_t follows the result unless given
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit(use_t=True)
    assert res.get_robustcov_results("HC1").use_t is True
    assert res.get_robustcov_results("HC1", use_t=False).use_t is False


def test_get_robustcov_results_glm_options(fitted):
    rep, _, df, cols = fitted
    df = df.assign(yc=np.round(np.exp(0.2 * df["z"])) + 1)
    model = smf.glm("yc ~ z", df, family=sm.families.Poisson(), representation=rep,
                    features=cols)
    loose = model.fit(maxiter=1)
    robust = loose.get_robustcov_results("HC0")
    np.testing.assert_allclose(robust.params, np.asarray(loose.params), rtol=1e-12)
    assert np.abs(np.asarray(model.fit().params) - np.asarray(loose.params)).max() > 1e-6


# ---------------------------------------------- 8. plain fit_regularized
@pytest.mark.parametrize("options", [{"alpha": 0.05}, {"alpha": 0.05, "L1_wt": 0.5},
                                     {"alpha": 0.05, "refit": True}])
def test_plain_ols_fit_regularized_is_statsmodels(problem, options):
    _, df, cols = problem
    X = sm.add_constant(df[cols + ["z"]].to_numpy())
    ours = ssi.OLS(df["y"].to_numpy(), X).fit_regularized(**options)
    theirs = sm.OLS(df["y"].to_numpy(), X).fit_regularized(**options)
    np.testing.assert_array_equal(np.asarray(ours.params), np.asarray(theirs.params))
    assert np.count_nonzero(theirs.params) < X.shape[1]  # the penalty bites
    assert type(ours).__name__ == type(theirs).__name__


def test_offset_is_refused_with_a_representation(fitted):
    rep, _, df, cols = fitted
    with pytest.raises(ValueError, match=r"unknown kwargs \['offset'\]"):
        ssi.OLS(df["y"], np.ones(len(df)), representation=rep, features=df[cols],
                offset=np.zeros(len(df)))


# ------------------------------------------- 9. predictions with missing values
def _with_missing(df, cols):
    new = df.iloc[:6].copy()
    new.index = new.index * 10 + 7
    new.iloc[1, new.columns.get_loc(cols[0])] = np.nan      # a raw feature
    new.iloc[4, new.columns.get_loc("z")] = np.nan          # a covariate
    return new


def test_predict_with_missing_rows_is_statsmodels(fitted):
    rep, _, df, cols = fitted
    new = _with_missing(df, cols)
    res = smf.ols("y ~ z + I(pc0 ** 2)", df, representation=rep, features=cols).fit(
        cov_type="naive")
    pred = res.predict(new)
    assert list(pred.index) == list(new.index)
    assert pred.isna().tolist() == [False, True, False, False, True, False]
    complete = new.drop(new.index[[1, 4]])
    np.testing.assert_allclose(pred.dropna(), res.predict(complete), rtol=1e-12)
    # statsmodels on the same design (features precomputed as data columns)
    pcs = lambda frame: frame.join(rep.transform(frame[cols].dropna()))  # noqa: E731
    plain = sm_smf.ols("y ~ z + I(pc0 ** 2) + pc1", pcs(df)).fit()
    pd.testing.assert_series_equal(pred, plain.predict(pcs(new)), rtol=1e-12)
    sm_frame = plain.get_prediction(pcs(new)).summary_frame()
    ours = res.get_prediction(new).summary_frame()
    assert list(ours.index) == list(sm_frame.index) == list(complete.index)
    np.testing.assert_allclose(ours.to_numpy(), sm_frame.to_numpy(), rtol=1e-10)
    # two-stage: the same rows, the values of the complete rows alone
    two = smf.ols("y ~ z + I(pc0 ** 2)", df, representation=rep, features=cols).fit()
    pd.testing.assert_frame_equal(two.get_prediction(new).summary_frame(),
                                  two.get_prediction(complete).summary_frame())


def test_array_predictions_with_missing_rows_are_nan_rows(fitted):
    rep, _, df, cols = fitted
    exog = sm.add_constant(df["z"].to_numpy())
    res = ssi.OLS(df["y"].to_numpy(), exog, representation=rep,
                  features=df[cols].to_numpy()).fit()
    X_new, Z_new = df[cols].to_numpy()[:5].copy(), exog[:5].copy()
    X_new[1, 2] = np.nan
    Z_new[3, 1] = np.nan
    pred = res.predict(Z_new, features=X_new)
    assert np.isnan(pred).tolist() == [False, True, False, True, False]
    ok = [0, 2, 4]
    np.testing.assert_allclose(pred[ok], res.predict(Z_new[ok], features=X_new[ok]),
                               rtol=1e-12)
    frame = res.get_prediction(Z_new, features=X_new).summary_frame()
    assert frame.shape == (5, 6) and frame.isna().all(axis=1).tolist() == [
        False, True, False, True, False]
    np.testing.assert_allclose(frame.to_numpy()[ok],
                               res.get_prediction(Z_new[ok], features=X_new[ok])
                               .summary_frame().to_numpy(), rtol=1e-12)


def test_link_predictions_with_missing_rows_subset_offsets(fitted):
    rep, _, df, cols = fitted
    df = df.assign(yc=np.round(np.exp(0.2 * df["z"])) + 1)
    res = smf.poisson("yc ~ z", df, representation=rep, features=cols).fit(disp=0)
    new = _with_missing(df, cols)
    offset = np.linspace(-0.5, 0.5, len(new))
    keep = [0, 2, 3, 5]
    pred = res.predict(new, offset=offset)
    assert pred.isna().tolist() == [False, True, False, False, True, False]
    np.testing.assert_allclose(pred.iloc[keep], res.predict(new.iloc[keep],
                                                            offset=offset[keep]), rtol=1e-12)
    frame = res.get_prediction(new, offset=offset).summary_frame()
    ref = res.get_prediction(new.iloc[keep], offset=offset[keep]).summary_frame()
    pd.testing.assert_frame_equal(frame, ref)
