"""Two-stage delete-one-unit jackknife (issue 12, part 2).

The oracle is a brute-force jackknife written here: for every unit, drop its rows from
both samples, refit PCA by hand, align it with ``ssi.align``, rebuild the design and
solve the least-squares problem with numpy; then the stratified formula
``sum_s (G_s - 1)/G_s sum_{u in s} (b_u - bbar_s)(b_u - bbar_s)'``.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.jackknife import jackknife_covariance, jackknife_units

from .conftest import make_problem


def small_problem(seed=0, m=40, n=30, overlap=0):
    """PCA(2) on p = 4, OLS of y on [1, z, pc0, pc1]; the first ``overlap`` labeled rows
    are pre-training rows 5, 6, ... (their raw features copied into X_pre)."""
    rng = np.random.default_rng(seed)
    scales = np.array([4.0, 1.5, 0.5, 0.25])        # clear eigengaps even at m = 40
    X_pre = rng.normal(size=(m, 4)) * scales + 0.5
    X = rng.normal(size=(n, 4)) * scales + 0.5
    pidx = np.full(n, -1)
    if overlap:
        pidx[:overlap] = 5 + np.arange(overlap)
        X_pre[pidx[:overlap]] = X[:overlap]
    z = 0.4 * X[:, 3] + rng.normal(size=n)
    y = 1.0 + 0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.3 * z + rng.normal(size=n)
    return X_pre, X, z, y, pidx


def brute_force(X_pre, X, z, y, pre_unit, lab_unit, stratum, reference):
    """Delete-one-unit estimates by hand, and their stratified jackknife covariance."""
    estimates = []
    for u in range(stratum.size):
        keep_pre, keep_lab = pre_unit != u, lab_unit != u
        rep = reference
        if not keep_pre.all():
            rep = ssi.PCA(2).fit(X_pre[keep_pre])
            rep, _ = ssi.align(rep, reference)
        W = np.column_stack([np.ones(keep_lab.sum()), z[keep_lab],
                             rep.transform(X[keep_lab])])
        estimates.append(np.linalg.lstsq(W, y[keep_lab], rcond=None)[0])
    estimates = np.array(estimates)
    cov = np.zeros((4, 4))
    for s in np.unique(stratum):
        block = estimates[stratum == s]
        centred = block - block.mean(axis=0)
        cov += (len(block) - 1) / len(block) * centred.T @ centred
    return estimates, cov


def fit_model(X_pre, X, z, y, pidx=None, **fit):
    rep = ssi.PCA(2).fit(X_pre)
    model = ssi.OLS(y, sm.add_constant(z), representation=rep, features=X,
                    pretrain_index=pidx)
    return rep, model.fit(cov_type="jackknife", **fit)


def test_exact_jackknife_matches_brute_force_with_overlapping_rows():
    X_pre, X, z, y, pidx = small_problem(overlap=8)
    rep, res = fit_model(X_pre, X, z, y, pidx)
    m, n = len(X_pre), len(X)
    # units: the m pre-training rows (each with the labeled row that is it), then the
    # 22 labeled rows that are not pre-training rows
    pre_unit = np.arange(m)
    lab_unit = np.where(pidx >= 0, pidx, m + np.cumsum(pidx < 0) - 1)
    stratum = np.r_[np.zeros(m, int), np.ones(n - 8, int)]
    estimates, cov = brute_force(X_pre, X, z, y, pre_unit, lab_unit, stratum, rep)
    np.testing.assert_allclose(res.cov_params(), cov, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.jackknife_params, estimates, rtol=1e-10, atol=1e-12)
    assert res.cov_type == "jackknife"
    assert res.degenerate_replicates.count == 0
    # deleting an overlapping unit removes it from both samples: its estimate differs
    # from the one deleting the pre-training row alone
    alone = ssi.PCA(2).fit(np.delete(X_pre, 5, axis=0))
    alone, _ = ssi.align(alone, rep)
    W = np.column_stack([np.ones(n), z, alone.transform(X)])
    assert not np.allclose(np.linalg.lstsq(W, y, rcond=None)[0], estimates[5])


def test_exact_jackknife_matches_brute_force_with_shared_clusters():
    X_pre, X, z, y, pidx = small_problem(seed=1, m=48, n=36, overlap=6)
    rng = np.random.default_rng(5)
    pre_groups = np.repeat(np.arange(12), 4)              # clusters 0..11 in X_pre
    groups = 6 + rng.integers(0, 12, size=36)             # clusters 6..17 labeled
    groups[:6] = pre_groups[pidx[:6]]                     # overlapping rows agree
    rep = ssi.PCA(2).fit(X_pre)
    model = ssi.OLS(y, sm.add_constant(z), representation=rep, features=X,
                    pretrain_index=pidx)
    res = model.fit(cov_type="jackknife", cov_kwds={"groups": groups,
                                                    "pretrain_groups": pre_groups})
    labels, codes = np.unique(np.r_[pre_groups, groups], return_inverse=True)
    _, cov = brute_force(X_pre, X, z, y, codes[:48], codes[48:],
                         np.zeros(labels.size, int), rep)
    np.testing.assert_allclose(res.cov_params(), cov, rtol=1e-10, atol=1e-14)
    assert f"jackknife ({labels.size})" in str(res.summary())
    assert "is deleted as one unit" in str(res.summary())


def test_exact_jackknife_matches_brute_force_with_independent_clusters():
    X_pre, X, z, y, _ = small_problem(seed=2, m=45, n=32)
    pre_groups = np.repeat(np.arange(9), 5)
    groups = np.repeat(np.arange(100, 108), 4)
    rep, res = fit_model(X_pre, X, z, y, cov_kwds={"groups": groups,
                                                   "pretrain_groups": pre_groups})
    units = jackknife_units(45, 32, None, groups, pre_groups)
    assert np.bincount(units.stratum).tolist() == [9, 8]
    _, cov = brute_force(X_pre, X, z, y, pre_groups, 9 + (groups - 100),
                         np.r_[np.zeros(9, int), np.ones(8, int)], rep)
    np.testing.assert_allclose(res.cov_params(), cov, rtol=1e-10, atol=1e-14)


@pytest.mark.slow
def test_jackknife_agrees_with_analytic_at_large_n():
    X_pre, df, cols = make_problem(seed=3, m=1000, n=1000)
    rep = ssi.PCA(2).fit(X_pre)
    model = smf.ols("y ~ z + treat", df, representation=rep, features=cols)
    analytic = model.fit(cov_type="HC1")
    exact = model.fit(cov_type="jackknife")
    one_step = model.fit(cov_type="jackknife", cov_kwds={"method": "one-step"})
    assert one_step.cov_type == "jackknife one-step"
    for res in (exact, one_step):
        ratio = res.bse / analytic.bse
        assert np.all(np.abs(ratio - 1) < 0.02), ratio  # measured: within 0.5%
    new = make_problem(seed=12, n=5)[1]
    for res in (exact, one_step):
        ratio = res.get_prediction(new).se_mean / analytic.get_prediction(new).se_mean
        assert np.all(np.abs(ratio - 1) < 0.02), ratio  # measured: within 0.5%
    # the one-step deletions approximate the exact ones to second order
    shift_exact = exact.jackknife_params - exact.params.to_numpy()
    shift_one = one_step.jackknife_params - one_step.params.to_numpy()
    assert np.abs(shift_one - shift_exact).max() < 0.05 * np.abs(shift_exact).max()


def test_one_step_is_exact_for_labeled_rows_of_ols():
    """Deleting a labeled row leaves the first stage alone; for OLS the one-step change
    is the exact delete-one coefficient change, -(X'X)^{-1} x_j e_j / (1 - h_j)."""
    X_pre, X, z, y, _ = small_problem(seed=4, m=60, n=40)
    _, exact = fit_model(X_pre, X, z, y)
    _, one_step = fit_model(X_pre, X, z, y, cov_kwds={"method": "one-step"})
    np.testing.assert_allclose(one_step.jackknife_params[60:], exact.jackknife_params[60:],
                               rtol=1e-10, atol=1e-13)
    # ... and its first-stage part is the linearisation -J IF(x_i) / (m - 1)
    J = exact._covariance.jacobian
    IF = exact.model.representation.influence(X_pre)
    np.testing.assert_allclose(one_step.jackknife_params[:60] - one_step.params,
                               -IF @ J.T / 59, rtol=1e-10, atol=1e-14)


def test_one_step_with_clusters_and_overlap_against_a_direct_newton_step():
    X_pre, X, z, y, pidx = small_problem(seed=6, m=48, n=36, overlap=6)
    pre_groups = np.repeat(np.arange(12), 4)
    groups = np.r_[pre_groups[pidx[:6]], 6 + np.arange(30) % 12]
    rep = ssi.PCA(2).fit(X_pre)
    model = ssi.OLS(y, sm.add_constant(z), representation=rep, features=X,
                    pretrain_index=pidx)
    res = model.fit(cov_type="jackknife", cov_kwds={"groups": groups, "method": "one-step",
                                                    "pretrain_groups": pre_groups})
    W = np.asarray(model.exog)
    beta = res.params
    resid = y - W @ beta
    J = res._covariance.jacobian
    IF = rep.influence(X_pre)
    labels, codes = np.unique(np.r_[pre_groups, groups], return_inverse=True)
    for u in range(labels.size):
        pre, lab = codes[:48] == u, codes[48:] == u
        dtheta = -IF[pre].sum(0) / (48 - pre.sum())
        H_keep = W[~lab].T @ W[~lab]
        step = np.linalg.solve(H_keep, -W[lab].T @ resid[lab] + W.T @ W @ J @ dtheta)
        np.testing.assert_allclose(res.jackknife_params[u], beta + step, rtol=1e-10,
                                   atol=1e-13)


def test_jackknife_units_and_formula():
    units = jackknife_units(4, 3, np.array([1, -1, 3]))
    assert units.lab_unit.tolist() == [1, 4, 3] and units.stratum.tolist() == [0] * 4 + [1]
    assert units.kept_rows(1)[0].tolist() == [0, 2, 3]
    assert units.kept_rows(1)[1].tolist() == [1, 2]
    assert units.kept_rows(4)[0] is None             # labeled-only unit: no refit
    values = np.array([[1.0], [3.0], [10.0], [14.0]])
    expected = 0.5 * (1.0 + 1.0) + 0.5 * (4.0 + 4.0)
    assert jackknife_covariance(values, np.array([0, 0, 1, 1]))[0, 0] == expected


def test_jackknife_refusals():
    X_pre, df, cols = make_problem(seed=7, m=120, n=60)
    rep = ssi.PCA(2).fit(X_pre)
    model = smf.ols("y ~ z", df, representation=rep, features=cols)
    res = model.fit(cov_type="jackknife", cov_kwds={"method": "one-step"})
    with pytest.raises(ValueError, match=r"Percentile intervals need bootstrap replicates: "
                                         r"fit with cov_type='bootstrap'. Jackknife"):
        res.conf_int(method="percentile")
    with pytest.raises(ValueError, match="Basic intervals need bootstrap replicates"):
        res.conf_int(method="basic")
    with pytest.raises(ValueError, match=r"jackknife standard errors \(cov_type='jackknife'\) "
                                         "use none"):
        res.get_robustcov_results("HC1")
    with pytest.raises(AttributeError, match=r"bootstrap_params exists only after "
                                             r"fit\(cov_type='bootstrap'\)"):
        res.bootstrap_params
    with pytest.raises(AttributeError, match=r"degenerate_replicates exists only after"):
        model.fit().degenerate_replicates
    with pytest.raises(ValueError, match=r"cov_kwds\['method'\] must be one of "
                                         r"\('exact', 'one-step'\)"):
        model.fit(cov_type="jackknife", cov_kwds={"method": "approximate"})
    with pytest.raises(ValueError, match=r"Unknown cov_kwds \['reps'\] for "
                                         r"cov_type='jackknife'"):
        model.fit(cov_type="jackknife", cov_kwds={"reps": 10})
    # Wald intervals come from the jackknife covariance
    ci = res.conf_int()
    np.testing.assert_allclose((ci[1] - ci[0]) / 2, 1.959963984540054 * res.bse)


def test_use_t_takes_the_clusters_of_the_smaller_sample():
    X_pre, X, z, y, _ = small_problem(seed=2, m=45, n=32)
    pre_groups = np.repeat(np.arange(9), 5)
    groups = np.repeat(np.arange(100, 108), 4)
    _, res = fit_model(X_pre, X, z, y, use_t=True,
                       cov_kwds={"groups": groups, "pretrain_groups": pre_groups})
    assert res.df_resid_inference == 7                      # 8 labeled clusters - 1
    q = stats.t.ppf(0.975, 7)
    ci = res.conf_int()
    np.testing.assert_allclose((ci[:, 1] - ci[:, 0]) / 2, q * res.bse, rtol=1e-12)
    pred = res.get_prediction(np.array([[1.0, 0.5]]), features=X[:1])
    np.testing.assert_allclose(np.diff(pred.conf_int(), axis=1)[0, 0] / 2,
                               q * pred.se_mean[0], rtol=1e-12)
    _, normal = fit_model(X_pre, X, z, y,
                          cov_kwds={"groups": groups, "pretrain_groups": pre_groups})
    np.testing.assert_allclose(normal.bse, res.bse, rtol=1e-12)
    assert np.all(np.diff(normal.conf_int(), axis=1) < np.diff(ci, axis=1))


def test_warnings_the_full_sample_fit_shares_are_kept_and_counted():
    """Nearly tied eigenvalues in the full-sample fit: every deletion repeats the
    warning; those deletions are as regular as the estimate and are kept."""
    rng = np.random.default_rng(9)
    X_pre = rng.normal(size=(60, 4)) * [2.0, 1.9, 0.5, 0.3]
    X = rng.normal(size=(40, 4)) * [2.0, 1.9, 0.5, 0.3]
    y = X[:, 0] + rng.normal(size=40)
    with pytest.warns(ssi.IdentificationWarning, match="nearly tied"):
        rep = ssi.PCA(2).fit(X_pre)
    model = ssi.OLS(y, np.ones((40, 1)), representation=rep, features=X)
    res = model.fit(cov_type="jackknife")
    dropped = res.degenerate_replicates
    assert dropped.count == 0 and dropped.repeated > 50
    assert f"{dropped.repeated} kept replicates repeated the full-sample first stage's " \
        "warnings" in str(res.summary())
