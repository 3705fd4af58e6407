"""Resampling you can trust (issue 12): degenerate replicates, robust spreads, basic
intervals, the user's fit options in replicate refits, progress and parallel replicates."""
from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference import resampling
from ssl_inference.bootstrap import BootstrapDraws
from ssl_inference.resampling import (DegenerateReplicates, alignment_problem, reason_of,
                                      run_replicates)
from ssl_inference.symmetry import Orthogonal, Permutations, SignFlips

from .conftest import make_problem


@pytest.fixture(scope="module")
def pca_model():
    X_pre, df, cols = make_problem(seed=4, m=400, n=200)
    rep = ssi.PCA(2).fit(X_pre)
    return smf.ols("y ~ z + treat", df, representation=rep, features=cols)


# ------------------------------------------------------------------ parallel, seeds
def test_seeded_results_do_not_depend_on_n_jobs(pca_model):
    kwds = {"reps": 24, "seed": 3, "progress": False}
    one = pca_model.fit(cov_type="bootstrap", cov_kwds={**kwds, "n_jobs": 1})
    two = pca_model.fit(cov_type="bootstrap", cov_kwds={**kwds, "n_jobs": 2})
    np.testing.assert_array_equal(one.bootstrap_params, two.bootstrap_params)
    np.testing.assert_array_equal(one.bse, two.bse)
    other = pca_model.fit(cov_type="bootstrap", cov_kwds={**kwds, "seed": 4})
    assert not np.allclose(one.bse, other.bse)
    jk1 = pca_model.fit(cov_type="jackknife", cov_kwds={"n_jobs": 1})
    jk2 = pca_model.fit(cov_type="jackknife", cov_kwds={"n_jobs": 2})
    np.testing.assert_array_equal(jk1.jackknife_params, jk2.jackknife_params)
    np.testing.assert_array_equal(jk1.bse, jk2.bse)


def test_random_starts_of_refits_are_seeded_per_replicate():
    """A mixture with random_state=None draws its EM starts from each replicate's own
    stream: reproducible, and the same in worker processes."""
    rng = np.random.default_rng(1)
    X_pre = np.r_[rng.normal(size=(150, 2)) - 2.0, rng.normal(size=(150, 2)) + 2.0]
    X = np.r_[rng.normal(size=(60, 2)) - 2.0, rng.normal(size=(60, 2)) + 2.0]
    y = X[:, 0] + rng.normal(size=120)
    rep = ssi.GaussianMixture(2, n_init=2, random_state=None).fit(X_pre)
    model = ssi.OLS(y, np.ones((120, 1)), representation=rep, features=X)
    kwds = {"reps": 6, "seed": 11, "progress": False}
    one = model.fit(cov_type="bootstrap", cov_kwds={**kwds, "n_jobs": 1})
    again = model.fit(cov_type="bootstrap", cov_kwds={**kwds, "n_jobs": 1})
    two = model.fit(cov_type="bootstrap", cov_kwds={**kwds, "n_jobs": 2})
    np.testing.assert_array_equal(one.bootstrap_params, again.bootstrap_params)
    np.testing.assert_array_equal(one.bootstrap_params, two.bootstrap_params)


# ------------------------------------------------------------------ degenerate replicates
def issue_mixture_logit(seed=4):
    """The issue's setting: a 3-component Gaussian mixture first stage in d = 4 (means 3
    SD apart), m = n = 1000, Logit second stage."""
    rng = np.random.default_rng(seed)
    means = np.zeros((3, 4))
    means[1, 0] = means[2, 1] = 3.0
    X_pre = means[rng.integers(0, 3, 1000)] + rng.normal(size=(1000, 4))
    X = means[rng.integers(0, 3, 1000)] + rng.normal(size=(1000, 4))
    z = X[:, 2] + rng.normal(size=1000)
    rep = ssi.GaussianMixture(3, random_state=0).fit(X_pre)
    eta = -0.5 + 0.5 * z + rep.transform(X) @ np.array([1.0, -1.0])
    y = (rng.random(1000) < 1 / (1 + np.exp(-eta))).astype(float)
    return ssi.Logit(y, sm.add_constant(z), representation=rep, features=X)


def test_issue_case_a_replicate_with_another_mixture_is_dropped():
    """Replicate 3 of seed 0 refits a different mixture (weights .09/.58/.33: one small
    component, two clusters merged); kept, it alone makes the bootstrap SE of the first
    mixture coefficient 3.7 times the analytic one."""
    model = issue_mixture_logit()
    analytic = model.fit(disp=0)
    res = model.fit(disp=0, cov_type="bootstrap",
                    cov_kwds={"reps": 6, "seed": 0, "max_degenerate": 0.2, "progress": False})
    dropped = res.degenerate_replicates
    assert dropped.indices.tolist() == [3]
    assert dropped.reasons[0].startswith("alignment ambiguous: a component is nearest to "
                                         "another full-sample component")
    with_it = np.vstack([res.bootstrap_params, dropped.params]).std(axis=0, ddof=1)
    assert with_it[2] > 3 * analytic.bse[2]
    assert np.all(res.bse < 1.3 * analytic.bse), res.bse / analytic.bse
    assert "Degenerate bootstrap replicates: 1 of 6 replicates degenerate and dropped " \
        "(16.7%): alignment ambiguous" in str(res.summary())
    with pytest.raises(ValueError, match=r"1 of 6 bootstrap replicates were degenerate "
                                         r"\(16.7%, more than max_degenerate=0.1\)"):
        model.fit(disp=0, cov_type="bootstrap",
                  cov_kwds={"reps": 6, "seed": 0, "progress": False})


def separable_logit(seed=0, n=60):
    """Logit on one PCA feature whose labels are separated but for one row on each side
    of the boundary: a resample that misses both (probability about exp(-2)) separates
    perfectly."""
    rng = np.random.default_rng(seed)
    X_pre = rng.normal(size=(300, 3)) * [3.0, 1.0, 0.5]
    X = rng.normal(size=(n, 3)) * [3.0, 1.0, 0.5]
    pc = ssi.PCA(1).fit(X_pre)
    score = pc.transform(X)[:, 0]
    y = (score > 0).astype(float)
    order = np.argsort(score)
    flips = [order[n // 4], order[3 * n // 4]]
    y[flips] = 1 - y[flips]
    return ssi.Logit(y, np.ones((n, 1)), representation=pc, features=X)


def test_non_converged_second_stage_replicates_are_dropped_and_counted():
    model = separable_logit()
    analytic = model.fit(disp=0)
    res = model.fit(disp=0, cov_type="bootstrap",
                    cov_kwds={"reps": 60, "seed": 0, "max_degenerate": 0.5, "progress": False})
    dropped = res.degenerate_replicates
    assert 0 < dropped.count < 30
    assert set(dropped.counts()) <= {"second stage did not converge",
                                     "second stage: perfect separation"}
    assert res.bootstrap_params.shape == (60 - dropped.count, 2)
    # what keeping them would have done: coefficients running off towards infinity
    assert np.abs(dropped.params).max() > 20 * np.abs(analytic.params).max()
    kept_all = np.vstack([res.bootstrap_params, dropped.params]).std(axis=0, ddof=1)
    assert np.all(res.bse < kept_all / 5)
    text = str(res.summary())
    assert f"Degenerate bootstrap replicates: {dropped.count} of 60 replicates" in text
    assert "res.degenerate_replicates" in text
    with pytest.raises(ValueError, match=r"of 60 bootstrap replicates were degenerate "
                                         r"\(\d+\.\d%, more than max_degenerate=0.1\): "
                                         r"second stage"):
        model.fit(disp=0, cov_type="bootstrap",
                  cov_kwds={"reps": 60, "seed": 0, "progress": False})


def test_replicate_refits_use_the_fit_options():
    """maxiter=2 of the user's fit reaches every replicate: none converges."""
    X_pre, df, cols = make_problem(seed=8, m=2000, n=150)
    rep = ssi.PCA(2).fit(X_pre)
    df["b"] = (df["y"] > df["y"].median()).astype(float)
    model = smf.logit("b ~ z", df, representation=rep, features=cols)
    fine = model.fit(disp=0, cov_type="bootstrap",
                     cov_kwds={"reps": 10, "seed": 0, "progress": False})
    assert fine.degenerate_replicates.count == 0
    with pytest.warns(Warning):  # the full-sample fit does not converge either
        with pytest.raises(ValueError, match=r"10 of 10 bootstrap replicates were degenerate "
                                             r"\(100.0%.*second stage did not converge \(10\)"):
            model.fit(disp=0, method="bfgs", maxiter=2, cov_type="bootstrap",
                      cov_kwds={"reps": 10, "seed": 0, "progress": False})


def test_refusal_names_the_full_sample_warnings():
    dropped = DegenerateReplicates(10, np.arange(5), ("first stage: Heywood case",) * 5,
                                   np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"5 of 10 jackknife replicates were degenerate "
                                         r"\(50.0%, more than max_degenerate=0.1\): first "
                                         r"stage: Heywood case \(5\)\. .* The full-sample "
                                         r"first stage warned too \(Heywood case\)"):
        dropped.check(0.1, "jackknife", ["Heywood case: the unique variance is zero"])
    dropped.check(0.5, "jackknife")  # within the threshold: nothing
    with pytest.raises(ValueError, match="more than max_degenerate=1"):
        DegenerateReplicates(3, np.arange(2), ("x",) * 2, np.zeros((2, 1))).check(1.0, "b")


def test_reasons_count_equal_problems_together():
    assert reason_of("Component 2 of the mixture has collapsed: weight 0.0207, about "
                     "20.7 rows") == reason_of("Component 0 of the mixture has collapsed: "
                                               "weight 0.01") == \
        "Component # of the mixture has collapsed"
    assert reason_of("EM did not converge in max_iter=100 iterations (change ...") == \
        "EM did not converge in max_iter=# iterations"


def test_alignment_problems():
    assert alignment_problem(SignFlips(2), np.eye(2), np.eye(2)) is None
    swapped = np.array([[0.3, 1.0], [1.0, 0.3]])
    assert "feature 0 is more than 60 degrees" in alignment_problem(SignFlips(2), swapped,
                                                                    np.eye(2))
    B = np.eye(3)[:2]
    tilted = np.array([[1.0, 0.0, 0.0], [0.0, 0.3, 1.0]])
    assert alignment_problem(Orthogonal(2), B, B) is None
    assert "subspace is more than 60 degrees" in alignment_problem(Orthogonal(2), tilted, B)
    means = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    assert alignment_problem(Permutations(3), means + 0.1, means) is None
    merged = np.array([[0.0, 0.0], [0.2, 0.1], [1.5, 1.5]])    # two on one cluster
    assert "nearest to another full-sample component" in alignment_problem(
        Permutations(3), merged, means)


# ------------------------------------------------------------------ spreads and intervals
def test_robust_spreads(pca_model):
    sd = pca_model.fit(cov_type="bootstrap", cov_kwds={"reps": 300, "seed": 1,
                                                       "progress": False})
    for spread in ("iqr", "mad"):
        robust = pca_model.fit(cov_type="bootstrap", cov_kwds={
            "reps": 300, "seed": 1, "spread": spread, "progress": False})
        np.testing.assert_array_equal(robust.bootstrap_params, sd.bootstrap_params)
        assert np.all(np.abs(robust.bse / sd.bse - 1) < 0.2)
        assert f"spread: {'IQR' if spread == 'iqr' else '1.4826 x MAD'}" in \
            robust.cov_kwds["description"]
    # a few wild replicates inflate the SD, not the robust spreads
    wild = sd.bootstrap_params.copy()
    wild[:3] *= 50
    for spread, limit in (("sd", 3.0), ("iqr", 1.1), ("mad", 1.1)):
        draws = BootstrapDraws(wild, [], None, spread)
        ratio = np.sqrt(np.diag(draws.cov())) / sd.bse.to_numpy()
        assert (ratio.max() > limit) if spread == "sd" else (ratio.max() < limit), ratio
        np.testing.assert_allclose(draws.variance(wild), np.diag(draws.cov()), rtol=1e-12)


def test_basic_and_percentile_intervals(pca_model):
    res = pca_model.fit(cov_type="bootstrap", cov_kwds={"reps": 50, "seed": 2,
                                                        "alpha": 0.1, "progress": False})
    q = np.quantile(res.bootstrap_params, [0.05, 0.95], axis=0).T
    np.testing.assert_allclose(res.conf_int(method="percentile"), q)
    basic = res.conf_int(method="basic")
    np.testing.assert_allclose(basic, 2 * res.params.to_numpy()[:, None] - q[:, ::-1])
    assert list(basic.index) == list(res.params.index)
    np.testing.assert_allclose(res.conf_int(alpha=0.5, method="basic", cols=[1]),
                               2 * res.params.to_numpy()[[1], None]
                               - np.quantile(res.bootstrap_params[:, 1], [0.75, 0.25])[None])


# ------------------------------------------------------------------ progress
def test_long_runs_are_announced_when_no_bar_shows(monkeypatch, caplog):
    monkeypatch.setattr(resampling, "ANNOUNCE_SECONDS", 0.0)
    slow = lambda x: time.sleep(0.01) or x  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="ssl_inference"):
        assert run_replicates(slow, list(range(5)), desc="two-sample bootstrap") == \
            list(range(5))
    (record,) = caplog.records
    assert record.getMessage().startswith("two-sample bootstrap: 5 replicates, about ")
    assert "estimated from the first 3" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ssl_inference"):
        run_replicates(slow, list(range(5)), progress=False)
    assert not caplog.records


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("cov_type, cov_kwds, message", [
    ("bootstrap", {"n_jobs": 0}, r"cov_kwds\['n_jobs'\] must be a non-zero integer"),
    ("jackknife", {"n_jobs": 1.5}, r"cov_kwds\['n_jobs'\] must be a non-zero integer"),
    ("bootstrap", {"n_jobs": True}, r"cov_kwds\['n_jobs'\] must be a non-zero integer"),
    ("bootstrap", {"spread": "std"}, r"cov_kwds\['spread'\] must be one of \('sd', 'iqr', "
                                     r"'mad'\)"),
    ("bootstrap", {"max_degenerate": 1.5}, r"cov_kwds\['max_degenerate'\] is the largest "
                                           r"fraction"),
    ("jackknife", {"max_degenerate": "10%"}, r"cov_kwds\['max_degenerate'\] is the largest"),
    ("jackknife", {"progress": "yes"}, r"cov_kwds\['progress'\] must be True or False"),
    ("jackknife", {"spread": "iqr"}, r"Unknown cov_kwds \['spread'\] for "
                                     r"cov_type='jackknife'"),
])
def test_bad_resampling_options(pca_model, cov_type, cov_kwds, message):
    with pytest.raises(ValueError, match=message):
        pca_model.fit(cov_type=cov_type, cov_kwds=cov_kwds)


def test_bootstrap_results_refuse_jackknife_attributes(pca_model):
    res = pca_model.fit(cov_type="bootstrap", cov_kwds={"reps": 5, "seed": 0,
                                                        "progress": False})
    with pytest.raises(AttributeError, match=r"jackknife_params exists only after "
                                             r"fit\(cov_type='jackknife'\)"):
        res.jackknife_params
    assert res.degenerate_replicates.total == 5
    assert "Degenerate bootstrap replicates: none of 5." in str(res.summary())
