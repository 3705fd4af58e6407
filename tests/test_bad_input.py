"""Bad input fails fast with a clear message and changes nothing (foundation, part 8)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.exceptions import IdentificationWarning, NotFittedError



@pytest.fixture
def fitted(problem):
    X_pre, df, cols = problem
    return ssi.PCA(2).fit(X_pre), X_pre, df, cols


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_x_pre_rejected_and_previous_fit_kept(fitted, bad):
    rep, X_pre, _, _ = fitted
    before = rep.params_.copy()
    X_bad = X_pre.copy()
    X_bad[7, 2] = bad
    with pytest.raises(ValueError, match=r"X_pre contains NaN or infinite values in 1 row\(s\) "
                                         r"\(first: \[7\]\)"):
        rep.fit(X_bad)
    np.testing.assert_array_equal(rep.params_, before)


@pytest.mark.parametrize("k", [0, 5, 6, -1, 2.0, True])
def test_bad_n_components(problem, k):
    X_pre = problem[0]
    with pytest.raises(ValueError, match="n_components must be an integer with 1 <= "
                                         "n_components < p = 5"):
        ssi.PCA(k).fit(X_pre)


def test_bad_symmetry(problem):
    with pytest.raises(ValueError, match="symmetry must be 'sign'"):
        ssi.PCA(2, symmetry="sgn").fit(problem[0])


def test_rank_deficient_x_pre(problem):
    X = problem[0][:, :1] @ np.ones((1, 4))
    with pytest.raises(ValueError, match="non-degenerate directions but n_components=2"):
        ssi.PCA(2).fit(X)


def test_unfitted_representation(problem):
    X_pre, df, cols = problem
    rep = ssi.PCA(2)
    with pytest.raises(NotFittedError, match=r"call \.fit\(X_pre\)"):
        rep.transform(X_pre)
    with pytest.raises(NotFittedError):
        smf.ols("y ~ z", df, representation=rep, features=cols)
    with pytest.raises(NotFittedError):
        ssi.OLS(df["y"], np.ones(len(df)), representation=rep, features=df[cols])


def test_feature_column_count_mismatch(fitted):
    rep, _, df, cols = fitted
    with pytest.raises(ValueError, match="features has 4 columns but the representation was "
                                         "fitted on 5 raw features"):
        ssi.OLS(df["y"].to_numpy(), np.ones(len(df)), representation=rep,
                features=df[cols[:4]].to_numpy())
    with pytest.raises(ValueError, match="X has 3 columns"):
        rep.transform(np.zeros((2, 3)))


def test_nonfinite_features(fitted):
    rep, _, df, cols = fitted
    X = df[cols].to_numpy().copy()
    X[4, 0] = np.inf
    with pytest.raises(ValueError, match="features contains infinite values"):
        ssi.OLS(df["y"].to_numpy(), np.ones(len(df)), missing="drop", representation=rep,
                features=X)
    X[4, 0] = np.nan
    with pytest.raises(ValueError, match="missing='drop'"):
        ssi.OLS(df["y"].to_numpy(), np.ones(len(df)), representation=rep, features=X)


def test_feature_columns_missing_from_data(fitted):
    rep, _, df, cols = fitted
    with pytest.raises(ValueError, match=r"features names columns not in data: \['x9'\]"):
        smf.ols("y ~ z", df, representation=rep, features=cols[:4] + ["x9"])
    with pytest.raises(ValueError, match="features= must name the raw columns"):
        smf.ols("y ~ z", df, representation=rep)


def test_feature_name_clash(fitted):
    rep, _, df, cols = fitted
    clash = df.rename(columns={"z": "pc0"})
    with pytest.raises(ValueError, match=r"data already has columns \['pc0'\]"):
        smf.ols("y ~ pc0", clash, representation=rep, features=cols)


@pytest.mark.parametrize("index, message", [
    (np.arange(10), "pretrain_index must be 1-D with one entry per labeled row"),
    (np.full(150, 400), r"outside \[-1, 399\]"),
    (np.full(150, -2), r"outside \[-1, 399\]"),
    (np.zeros(150, dtype=int), "same pre-training row"),
    (np.full(150, 0.5), "must hold integers"),
])
def test_bad_pretrain_index(fitted, index, message):
    rep, _, df, cols = fitted
    with pytest.raises(ValueError, match=message):
        smf.ols("y ~ z", df, representation=rep, features=cols, pretrain_index=index)
    with pytest.raises(ValueError, match=message):
        ssi.OLS(df["y"].to_numpy(), np.ones(len(df)), representation=rep,
                features=df[cols].to_numpy(), pretrain_index=index)


def test_orphan_first_stage_arguments(fitted):
    _, _, df, cols = fitted
    with pytest.raises(TypeError, match="need representation="):
        smf.ols("y ~ z", df, features=cols)
    with pytest.raises(TypeError, match="need representation="):
        ssi.OLS(df["y"], np.ones(len(df)), pretrain_index=np.arange(len(df)))


def test_unknown_model_keyword(fitted):
    rep, _, df, cols = fitted
    with pytest.raises(ValueError, match=r"unknown kwargs \['representaton'\]"):
        ssi.OLS(df["y"], np.ones(len(df)), representaton=rep)
    with pytest.raises(ValueError, match="unknown kwargs"):
        smf.ols("y ~ z", df, representation=rep, features=cols, wieghts=1.0)


@pytest.mark.parametrize("cov_type, cov_kwds, message", [
    ("HC4", None, r"cov_type must be one of \('two-stage', 'naive', 'bootstrap', "
                  r"'jackknife', 'nonrobust'"),
    ("bootstrap", {"reps": 1}, r"cov_kwds\['reps'\] must be an integer >= 2"),
    ("bootstrap", {"alpha": 1.5}, r"cov_kwds\['alpha'\] must be in \(0, 1\)"),
    ("bootstrap", {"second_stage": "HC1"}, r"Unknown cov_kwds \['second_stage'\]"),
    ("two-stage", {"secondstage": "HC1"}, r"Unknown cov_kwds \['secondstage'\]"),
    ("naive", {"reps": 10}, r"Unknown cov_kwds \['reps'\]"),
    ("two-stage", {"second_stage": "HC4"}, r"must be one of \('nonrobust'"),
    ("two-stage", {"second_stage": "cluster"}, "pass groups="),
    ("two-stage", {"groups": np.zeros(150)}, "set second_stage='cluster'"),
    ("two-stage", {"pretrain_groups": np.zeros(3)}, "one label per pre-training row"),
    ("two-stage", {"second_stage": "cluster", "groups": np.zeros(7)},
     "groups has 7 entries"),
])
def test_bad_cov_options(fitted, cov_type, cov_kwds, message):
    rep, _, df, cols = fitted
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    with pytest.raises(ValueError, match=message):
        model.fit(cov_type=cov_type, cov_kwds=cov_kwds)
    assert model.fit().cov_type == "two-stage"  # the model is unchanged


def _labels(kind, n, m):
    """Cluster-label inputs of the problem (150 labeled rows, 400 pre-training rows)."""
    pre = np.arange(m) % 20
    return {
        "mixed types": (np.arange(n) % 20, pre.astype(str)),
        "missing label": (np.where(np.arange(n) == 9, np.nan, np.arange(n) % 20), pre),
        "2-D groups": (np.zeros((n, 2)), pre),
        "Series, foreign index": (pd.Series(np.arange(n) % 20, index=np.arange(n) + 500),
                                  pre),
        "pretrain Series, own index": (np.arange(n) % 20,
                                       pd.Series(pre, index=np.arange(m) + 500)),
    }[kind]


@pytest.mark.parametrize("kind, error, message", [
    ("mixed types", TypeError, "hold different kinds of cluster labels"),
    ("missing label", ValueError, r"groups has 1 missing cluster label\(s\)"),
    ("2-D groups", ValueError, r"groups must be 1-D \(one label per row\); got shape \(150, 2\)"),
    ("Series, foreign index", ValueError,
     r"groups is a pandas Series whose index lacks 150 row label\(s\) of the model's data"),
    ("pretrain Series, own index", ValueError,
     r"pretrain_groups is a pandas Series with its own index, but the rows of X_pre are "
     r"numpy arrays"),
])
def test_bad_cluster_labels(fitted, kind, error, message):
    rep, _, df, cols = fitted
    groups, pre_groups = _labels(kind, len(df), rep.nobs_)
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    with pytest.raises(error, match=message):
        model.fit(cov_kwds={"second_stage": "cluster", "groups": groups,
                            "pretrain_groups": pre_groups})
    assert model.fit().cov_type == "two-stage"  # the model is unchanged


def test_unknown_fit_keyword(fitted):
    rep, _, df, cols = fitted
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['cov_kwargs'\]"):
        smf.ols("y ~ z", df, representation=rep, features=cols).fit(cov_kwargs={})


def test_overlap_with_one_sided_clusters(fitted):
    rep, _, df, cols = fitted
    idx = np.arange(len(df))
    model = smf.ols("y ~ z", df, representation=rep, features=cols, pretrain_index=idx)
    with pytest.raises(ValueError, match="clustering must cover both samples"):
        model.fit(cov_kwds={"second_stage": "cluster", "groups": "g"})
    # with both sides given, the naive fit is plain statsmodels' cluster covariance
    pre_groups = 100 + np.arange(rep.nobs_) % 7
    pre_groups[idx] = df["g"]  # an overlapping row is in its labeled row's cluster
    both = {"second_stage": "cluster", "groups": "g", "pretrain_groups": pre_groups}
    naive = model.fit(cov_type="naive", cov_kwds=both)
    df_pc = df.join(rep.transform(df[cols]))
    plain = sm.OLS.from_formula("y ~ z + pc0 + pc1", df_pc).fit(
        cov_type="cluster", cov_kwds={"groups": df["g"]})
    np.testing.assert_allclose(naive.bse, plain.bse, rtol=1e-10)
    np.testing.assert_allclose(naive.bse_naive, model.fit(cov_kwds=both).bse_naive,
                               rtol=1e-12)


def test_prediction_inputs(fitted):
    rep, _, df, cols = fitted
    res = smf.ols("y ~ z", df, representation=rep, features=cols).fit()
    with pytest.raises(ValueError, match=r"New data lack feature columns \['x0'\]"):
        res.get_prediction(df.drop(columns="x0"))
    with pytest.raises(TypeError, match="do not pass features="):
        res.get_prediction(df, features=df[cols].to_numpy())
    arr = ssi.OLS(df["y"].to_numpy(), sm.add_constant(df["z"].to_numpy()), representation=rep,
                  features=df[cols].to_numpy()).fit()
    with pytest.raises(ValueError, match="Pass the raw features of the new rows"):
        arr.get_prediction(np.ones((2, 2)))
    with pytest.raises(ValueError, match="covariates .* have 2"):
        arr.get_prediction(np.ones((2, 3)), features=df[cols].to_numpy()[:2])


def test_near_tie_warns_in_sign_mode_only():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 4)) * [2.0, 1.98, 1.0, 0.5]
    with pytest.warns(IdentificationWarning, match="symmetry='rotation'"):
        ssi.PCA(2).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ssi.PCA(2, symmetry="rotation").fit(X)
    with pytest.warns(IdentificationWarning, match="principal subspace itself is not identified"):
        ssi.PCA(1, symmetry="rotation").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ssi.PCA(2).fit(rng.normal(size=(3000, 4)) * [3.0, 2.0, 1.0, 0.5])


def test_fit_warnings_are_kept_reissued_once_and_repeated_in_the_summary():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 4)) * [2.0, 1.98, 1.0, 0.5]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = ssi.PCA(2).fit(X)
    assert [w.category for w in caught] == [IdentificationWarning]
    assert caught[0].filename == __file__  # located at the caller of fit
    assert rep.fit_warnings_ == [str(caught[0].message)]
    with pytest.raises(IdentificationWarning):  # the user's filters still apply
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ssi.PCA(2).fit(X)
    y = X[:500, 0] + rng.normal(size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = ssi.PCA(2).fit(X)
    text = str(ssi.OLS(y, np.ones((500, 1)), representation=rep, features=X[:500]).fit()
               .summary())
    assert "WARNING (first stage): Eigenvalues 0 and 1 of the pre-training covariance" in text
    quiet = ssi.PCA(2, symmetry="rotation").fit(X)
    assert quiet.fit_warnings_ == []

    class FailingPCA(ssi.PCA):
        def fit(self, X, y=None):
            warnings.warn("warned before failing", IdentificationWarning)
            raise RuntimeError("failed")

    with pytest.warns(IdentificationWarning, match="warned before failing"):
        with pytest.raises(RuntimeError, match="failed"):
            FailingPCA(2).fit(X)
    assert "WARNING" not in str(ssi.OLS(y, np.ones((500, 1)), representation=quiet,
                                        features=X[:500]).fit().summary())
