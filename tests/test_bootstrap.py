"""Two-sample, orbit-aligned bootstrap (issue 3, part 5)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.bootstrap import resample_units, two_sample_bootstrap

from .conftest import make_problem

REPS = 400
# The bootstrap SD of a coefficient has relative Monte Carlo error about
# sqrt((kappa - 1) / (4 B)) with kappa the kurtosis of the replicates (~3-4 here): ~3-4%
# at B = 400. The bootstrap and the delta method also differ by O(1/n) terms (~2-4% at
# n = 500). A 15% band is about 3-4 such errors and still rejects the unaligned
# bootstrap, whose gauge-dependent SEs are off by more than 100%.
TOL = 0.15


@pytest.fixture(scope="module")
def moderate():
    X_pre, df, cols = make_problem(seed=4, m=2000, n=500)
    return X_pre, df, cols


def test_bootstrap_matches_analytic_two_stage(moderate):
    X_pre, df, cols = moderate
    rep = ssi.PCA(2).fit(X_pre)
    model = smf.ols("y ~ z + treat", df, representation=rep, features=cols)
    analytic = model.fit(cov_kwds={"second_stage": "HC0"})
    boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": REPS, "seed": 0})
    ratio = boot.bse / analytic.bse
    assert np.all(np.abs(ratio - 1) < TOL), ratio
    # the first stage matters here: the naive intercept SE is far off
    assert boot.bse["Intercept"] > 1.3 * boot.bse_naive["Intercept"]
    new = make_problem(seed=12, n=4)[1]
    se_ratio = boot.get_prediction(new).se_mean / analytic.get_prediction(new).se_mean
    assert np.all(np.abs(se_ratio - 1) < TOL), se_ratio
    assert boot.cov_type == "bootstrap"
    assert "bootstrap (400)" in str(boot.summary())


def test_alignment_is_what_makes_it_work():
    """Rotation mode with tied top eigenvalues: refits rotate freely inside the subspace."""
    X_pre, df, cols = make_problem(seed=5, m=2000, n=500)
    rng = np.random.default_rng(0)
    X_pre = rng.normal(size=(2000, 5)) * [2.0, 2.0, 1.0, 0.6, 0.4]
    rep = ssi.PCA(2, symmetry="rotation").fit(X_pre)
    model = smf.ols("y ~ z + treat", df, representation=rep, features=cols)
    analytic = model.fit(cov_kwds={"second_stage": "HC0"})
    aligned = two_sample_bootstrap(model, reps=REPS, seed=1, progress=False)
    raw = two_sample_bootstrap(model, reps=REPS, seed=1, align=False, progress=False)
    sd_aligned = aligned.params.std(axis=0, ddof=1)
    sd_raw = raw.params.std(axis=0, ddof=1)
    pcs = list(model.rep_cols)
    assert np.all(np.abs(sd_aligned / analytic.bse.to_numpy() - 1) < TOL)
    assert np.all(sd_raw[pcs] > 2 * analytic.bse.to_numpy()[pcs])
    # invariant coefficients do not care about the gauge
    np.testing.assert_allclose(sd_raw[:3], sd_aligned[:3], rtol=1e-10)


def test_reproducible_and_percentile_intervals(moderate):
    X_pre, df, cols = moderate
    rep = ssi.PCA(2).fit(X_pre)
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    a = model.fit(cov_type="bootstrap", cov_kwds={"reps": 30, "seed": 7})
    b = model.fit(cov_type="bootstrap", cov_kwds={"reps": 30, "seed": 7})
    c = model.fit(cov_type="bootstrap", cov_kwds={"reps": 30, "seed": 8})
    np.testing.assert_array_equal(a.bse, b.bse)
    assert not np.allclose(a.bse, c.bse)
    ci = a.conf_int(method="percentile")
    expected = np.quantile(a.bootstrap_params, [0.025, 0.975], axis=0).T
    np.testing.assert_allclose(ci, expected)
    narrow = model.fit(cov_type="bootstrap", cov_kwds={"reps": 30, "seed": 7, "alpha": 0.5})
    assert np.all(np.diff(narrow.conf_int(method="percentile").to_numpy(), axis=1)
                  < np.diff(ci.to_numpy(), axis=1))
    with pytest.raises(ValueError, match="Percentile intervals need bootstrap replicates"):
        model.fit().conf_int(method="percentile")
    with pytest.raises(ValueError, match="method must be 'wald', 'percentile' or 'basic'"):
        a.conf_int(method="bca")


def test_resampling_respects_overlap_and_clusters():
    rng = np.random.default_rng(0)
    pidx = np.array([3, -1, 0, 7, -1])
    for _ in range(20):
        pre, lab = resample_units(rng, 10, 5, pidx)
        counts = np.bincount(pre, minlength=10)
        for j in [0, 2, 3]:
            assert (lab == j).sum() == counts[pidx[j]]
        assert np.isin(lab, [1, 4]).sum() == 2
    groups = np.array(["a", "a", "b", "c", "c"])
    pre_groups = np.array(["a", "b", "b", "c", "d", "d"])
    pre, lab = resample_units(np.random.default_rng(1), 6, 5, np.array([0, -1, 2, 3, -1]),
                              groups, pre_groups)
    drawn = pd.Series(np.concatenate([pre_groups[pre], groups[lab]])).value_counts()
    sizes = pd.Series(np.concatenate([pre_groups, groups])).value_counts()
    assert (drawn % sizes[drawn.index] == 0).all()        # whole clusters only
    pre, lab = resample_units(np.random.default_rng(2), 6, 5, None, groups, pre_groups)
    assert (pd.Series(groups[lab]).value_counts()
            % pd.Series(groups).value_counts()).dropna().eq(0).all()


def test_bootstrap_with_overlap_runs_through_the_model(moderate):
    X_pre, df, cols = moderate
    pidx = np.full(len(df), -1)
    pidx[:100] = np.arange(100)
    X_pre = X_pre.copy()
    X_pre[:100] = df[cols].to_numpy()[:100]
    rep = ssi.PCA(2).fit(X_pre)
    model = smf.ols("y ~ z", df, representation=rep, features=cols, pretrain_index=pidx)
    analytic = model.fit(cov_kwds={"second_stage": "HC0"})
    boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": REPS, "seed": 3})
    assert np.all(np.abs(boot.bse / analytic.bse - 1) < TOL)
