"""Resampling replicates refit the first stage on weighted units, not on X_pre[rows]
(issue 13 §3): ``Representation._fit_weighted(X_pre, counts)``.

Oracle: the old path, ``clone.fit(X_pre[rows])`` on the gathered resample, kept
reachable here. Deterministic fits (moments, optimisers polished to rounding) agree
with it to 1e-10 whatever the order of the rows; fits with random starts (EM) agree
exactly with the gathered resample in the order of ``X_pre``
(``X_pre[np.sort(rows)]``: same random numbers, same rows drawn) and, with the rows in
draw order, to the tolerance of a fit that converges to the same maximum (the Newton
polish takes EM to rounding, so 1e-10 on well-separated clusters).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference import bootstrap as bootstrap_module
from ssl_inference import jackknife as jackknife_module
from ssl_inference.bootstrap import resample_units
from ssl_inference.representations.base import Representation

from .conftest import make_problem

ATOL = 1e-10


def _mixture_data(m=600, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-3.0, 1.0, (m // 2, 3)),
                           rng.normal(3.0, 1.0, (m - m // 2, 3)) * [1.0, 0.7, 1.3]])


def _location(X, t):
    return X - t


def _triples(m=500, seed=0):
    """Spectral contrastive units [x, x+, x-] (m, 12) with given negatives."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    return np.hstack([X, [0.9, 0.6, 0.3, 0.1] * X + rng.normal(size=(m, 4)),
                      rng.normal(size=(m, 4))])


REPRESENTATIONS = {
    "pca-sign": (lambda: ssi.PCA(2), None),
    "pca-rotation": (lambda: ssi.PCA(2, symmetry="rotation"), None),
    "pca-standardize-whiten": (lambda: ssi.PCA(2, standardize=True, whiten=True), None),
    "factor-diagonal": (lambda: ssi.FactorModel(1), "factor"),
    "factor-isotropic": (lambda: ssi.FactorModel(2, noise="isotropic"), None),
    "mixture-full": (lambda: ssi.GaussianMixture(2, random_state=0, tol=1e-10), "mixture"),
    "mixture-diag-gated": (lambda: ssi.GaussianMixture(2, covariance_type="diag",
                                                       features="gated", random_state=1,
                                                       tol=1e-10), "mixture"),
    "spectral-given": (lambda: ssi.SpectralContrastive(2, negatives="given"), "spectral"),
    "m-estimator-loss": (lambda: ssi.MEstimatorRepresentation(
        loss=lambda X, t: ((X - t) ** 2).sum(axis=1), transform=_location,
        params=np.zeros(5), optimize=True), None),
    "m-estimator-psi-hessian": (lambda: ssi.MEstimatorRepresentation(
        estimating_function=lambda X, t: X - t, hessian=lambda X, t: -np.eye(X.shape[1]),
        transform=_location, params=np.zeros(5), optimize=True), None),
}


def _data(kind, m=500, seed=3):
    if kind == "mixture":
        return _mixture_data(m, seed)
    if kind == "spectral":
        return _triples(m, seed)
    rng = np.random.default_rng(seed)  # clear eigengaps: PCA well identified
    X = rng.standard_t(8, size=(m, 5)) * [3.0, 2.0, 1.2, 0.7, 0.4] + 0.5
    if kind == "factor":  # one clear factor: an interior maximum (no Heywood case)
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(m, 1)) @ np.array([[2.0, 1.5, 1.0, 0.8, 0.5]]) + rng.normal(
            size=(m, 5)) * [1.0, 0.9, 0.8, 0.7, 0.6]
    return X


def _draws(m, design, rng):
    """Pre-training rows of one replicate: plain, clustered, or overlapping designs."""
    if design == "rows":
        return resample_units(rng, m, 50)[0]
    uneven = np.random.default_rng(0).integers(0, 40, size=m)  # clusters of 5 to 25 rows
    if design == "clusters":
        return resample_units(rng, m, 50, None, None, uneven)[0]
    if design == "shared-clusters":
        return resample_units(rng, m, 50, None, np.arange(50) % 40, uneven)[0]
    pidx = np.full(50, -1)
    pidx[:20] = np.arange(0, 40, 2)
    return resample_units(rng, m, 50, pidx)[0]  # overlap by rows


def _params_quiet(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit()


@pytest.mark.parametrize("design", ["rows", "clusters", "shared-clusters", "overlap"])
@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_weighted_refit_equals_the_gathered_refit(name, design):
    make, kind = REPRESENTATIONS[name]
    X = _data(kind)
    rows = _draws(X.shape[0], design, np.random.default_rng(11))
    counts = np.bincount(rows, minlength=X.shape[0])
    assert counts.max() > 1 and (counts == 0).any()
    assert (rows.size != X.shape[0]) == (design in ("clusters", "shared-clusters"))
    weighted = _params_quiet(lambda: make().clone()._fit_weighted(X, counts))
    in_order = _params_quiet(lambda: make().clone().fit(X[np.sort(rows)]))
    drawn = _params_quiet(lambda: make().clone().fit(X[rows]))  # the old path
    for other in (in_order, drawn):
        np.testing.assert_allclose(weighted.params_, other.params_, rtol=0, atol=ATOL)
        # the linearisation too (influence of a few units)
        np.testing.assert_allclose(weighted.influence(X[:4]), other.influence(X[:4]),
                                   rtol=1e-8, atol=1e-8)
        assert weighted.nobs_ == other.nobs_ == rows.size
        assert weighted.fit_warnings_ == other.fit_warnings_
    assert weighted.pretrain_data_ is None  # a replicate keeps no pre-training data


def test_jackknife_deletion_weights_equal_the_deletion():
    X = _data(None)
    keep = np.delete(np.arange(X.shape[0]), [4, 17, 99])
    counts = np.bincount(keep, minlength=X.shape[0])
    np.testing.assert_allclose(ssi.PCA(2)._fit_weighted(X, counts).params_,
                               ssi.PCA(2).fit(X[keep]).params_, rtol=0, atol=ATOL)


def test_mixture_start_draws_the_same_rows_as_the_gathered_resample():
    """Three components on two clusters: EM ends at a start-dependent local maximum,
    so only the same starts (same random numbers, same rows) give the same fit."""
    X = _mixture_data(500, 0)[:, :2]
    rows = np.random.default_rng(2).integers(0, 500, 500)
    counts = np.bincount(rows, minlength=500)
    rep = ssi.GaussianMixture(3, covariance_type="diag", random_state=4, max_iter=50)
    weighted = _params_quiet(lambda: rep.clone()._fit_weighted(X, counts))
    copied = _params_quiet(lambda: rep.clone().fit(X[np.sort(rows)]))
    np.testing.assert_allclose(weighted.params_, copied.params_, rtol=0, atol=1e-9)
    assert weighted.n_iter_ == copied.n_iter_


def test_dask_pca_weighted_refit_reads_blocks():
    da = pytest.importorskip("dask.array")
    X = _data(None, m=900)
    counts = np.bincount(np.random.default_rng(5).integers(0, 900, 900), minlength=900)
    lazy = da.from_array(X, chunks=(250, 5))
    weighted = ssi.PCA(2)._fit_weighted(lazy, counts)
    np.testing.assert_allclose(weighted.params_,
                               ssi.PCA(2).fit(X[np.repeat(np.arange(900), counts)]).params_,
                               rtol=0, atol=ATOL)


class _OldPath:
    """The copying refit as it was: ``clone.fit(X_pre[pre_rows])`` in draw order
    (bootstrap resamples and jackknife deletions)."""

    def __init__(self, monkeypatch):
        self.rows = None
        real = bootstrap_module.refit_replicate

        def remember(model, X_pre, pre_rows, lab_rows, **kwds):
            self.rows = pre_rows
            return real(model, X_pre, pre_rows, lab_rows, **kwds)

        def gather(rep, X, weights, rows=None):
            assert np.array_equal(np.bincount(self.rows, minlength=len(weights)), weights)
            return rep.fit(X[self.rows])

        monkeypatch.setattr(bootstrap_module, "refit_replicate", remember)
        monkeypatch.setattr(jackknife_module, "refit_replicate", remember)
        for cls in (ssi.PCA, ssi.FactorModel, ssi.GaussianMixture,
                    ssi.MEstimatorRepresentation, ssi.SpectralContrastive):
            monkeypatch.setattr(cls, "_fit_weighted", gather)


PIPELINES = {
    "pca": (lambda: ssi.PCA(2), None, {}),
    "pca-clusters": (lambda: ssi.PCA(2), None, "clusters"),
    "pca-overlap": (lambda: ssi.PCA(2), None, "overlap"),
    "factor": (lambda: ssi.FactorModel(1), "factor", {}),
    "mixture": (lambda: ssi.GaussianMixture(2, random_state=0, tol=1e-10), "mixture", {}),
    "m-estimator": (REPRESENTATIONS["m-estimator-loss"][0], None, {}),
    "spectral-given": (REPRESENTATIONS["spectral-given"][0], "spectral", {}),
    # negatives drawn inside fit: the gathered copy (the fallback), rows as drawn
    "spectral-permutation": (lambda: ssi.SpectralContrastive(2, negatives="permutation",
                                                             random_state=0),
                             "spectral", {}),
}


def name_of(make):
    return type(make()).__name__


def _pipeline(make, kind, design):
    X_pre = _data(kind, m=400, seed=8)
    if name_of(make) == "SpectralContrastive" and make().negatives == "permutation":
        X_pre = X_pre[:, :8]  # pairs [x, x+]
    p = X_pre.shape[1] if kind != "spectral" else 4  # features of one view
    _, df, _ = make_problem(seed=9, n=150, p=p)
    cols = [f"x{i}" for i in range(p)]
    df[cols] = X_pre[::2][:150, :p] + 0.1 * df[cols].to_numpy()
    kwds, cov = {}, {"reps": 12, "seed": 4, "progress": False}
    if design == "clusters":
        cov.update(groups=df["g"].to_numpy(), pretrain_groups=np.arange(400) % 30)
    elif design == "overlap":
        pidx = np.full(150, -1)
        pidx[:60] = np.arange(60)
        X_pre = X_pre.copy()
        X_pre[:60] = df[cols].to_numpy()[:60]
        kwds["pretrain_index"] = pidx
    rep = _params_quiet(lambda: make().fit(X_pre))
    return (smf.ols("y ~ z", df, representation=rep, features=cols, **kwds), cov,
            (X_pre, df, cols))


@pytest.mark.parametrize("name", list(PIPELINES))
def test_bootstrap_standard_errors_equal_the_copying_path(name, monkeypatch):
    make, kind, design = PIPELINES[name]
    model, cov, _ = _pipeline(make, kind, design)
    new = model.fit(cov_type="bootstrap", cov_kwds=cov)
    with monkeypatch.context() as patch:
        _OldPath(patch)
        old = model.fit(cov_type="bootstrap", cov_kwds=cov)
    np.testing.assert_allclose(new.bootstrap_params, old.bootstrap_params, rtol=0,
                               atol=ATOL)
    np.testing.assert_allclose(new.bse, old.bse, rtol=1e-9, atol=ATOL)
    assert new.bse.min() > 0


def test_dask_pipeline_bootstrap_equals_numpy():
    da = pytest.importorskip("dask.array")
    model, cov, (X_pre, df, cols) = _pipeline(PIPELINES["pca"][0], None, {})
    lazy = ssi.PCA(2).fit(da.from_array(X_pre, chunks=(100, 5)))
    dask_model = smf.ols("y ~ z", df, representation=lazy, features=cols)
    a = model.fit(cov_type="bootstrap", cov_kwds=cov)
    b = dask_model.fit(cov_type="bootstrap", cov_kwds=cov)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-9, atol=ATOL)


class NoGather(np.ndarray):
    """An X_pre whose rows cannot be gathered: indexing with an integer or boolean
    array (``X[rows]``) raises; slices (chunked reads) work."""

    def __getitem__(self, key):
        parts = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, (list, np.ndarray)) and not np.ndim(k) == 0 for k in parts):
            raise AssertionError("X_pre[rows] was gathered")
        return super().__getitem__(key)


@pytest.mark.parametrize("name", ["pca-sign", "factor-diagonal", "m-estimator-loss"])
def test_bootstrap_does_not_gather_rows(name):
    make, kind = REPRESENTATIONS[name]
    X_pre = _data(kind, m=400, seed=8)
    guarded = X_pre.view(NoGather)
    with pytest.raises(AssertionError, match="gathered"):
        guarded[np.array([0, 1])]
    _, df, _ = make_problem(seed=9, n=150, p=5)
    rep = _params_quiet(lambda: make().fit(guarded))
    assert isinstance(rep.pretrain_data_, NoGather)
    model = smf.ols("y ~ z", df, representation=rep, features=[f"x{i}" for i in range(5)])
    res = model.fit(cov_type="bootstrap", cov_kwds={"reps": 5, "seed": 0, "progress": False})
    assert res.bootstrap_params.shape[0] == 5 and np.all(res.bse > 0)
    # the copying default would have gathered: the guard is live on this path
    with pytest.raises(AssertionError, match="gathered"):
        Representation._fit_weighted(make().clone(), guarded, np.ones(400, dtype=int))


class _OwnFit(ssi.PCA):
    """A third-party subclass that overrides fit: its refits must go through it."""

    calls = 0

    def fit(self, X, y=None):
        type(self).calls += 1
        return super().fit(np.asarray(X) + 0.0)


def test_subclass_overriding_fit_is_refitted_through_its_fit(monkeypatch):
    model, cov, (X_pre, df, cols) = _pipeline(PIPELINES["pca"][0], None, {})
    own = smf.ols("y ~ z", df, representation=_OwnFit(2).fit(X_pre), features=cols)
    _OwnFit.calls = 0
    a = own.fit(cov_type="bootstrap", cov_kwds=cov)
    assert _OwnFit.calls == cov["reps"]  # the gathered copy, through the override
    with monkeypatch.context() as patch:
        _OldPath(patch)
        b = model.fit(cov_type="bootstrap", cov_kwds=cov)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-9, atol=ATOL)


@pytest.mark.parametrize("name", ["factor", "mixture"])
def test_exact_jackknife_equals_the_copying_path(name, monkeypatch):
    make, kind, _ = PIPELINES[name]
    X_pre = _data(kind, m=120, seed=8)
    _, df, _ = make_problem(seed=9, n=40, p=X_pre.shape[1])
    cols = [f"x{i}" for i in range(X_pre.shape[1])]
    df[cols] = X_pre[::3][:40] + 0.1 * df[cols].to_numpy()
    model = smf.ols("y ~ z", df, representation=_params_quiet(lambda: make().fit(X_pre)),
                    features=cols)
    cov = {"progress": False, "max_degenerate": 1.0}
    new = model.fit(cov_type="jackknife", cov_kwds=cov)
    with monkeypatch.context() as patch:
        _OldPath(patch)
        old = model.fit(cov_type="jackknife", cov_kwds=cov)
    np.testing.assert_allclose(new.bse, old.bse, rtol=1e-9, atol=ATOL)
    assert new.bse.min() > 0
