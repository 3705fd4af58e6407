"""Out-of-core and distributed first stages (numpy, memmap, dask, dask.distributed), and
predictions served from the first-stage cache without reading X_pre again."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.representations.chunked import reduce_rows, row_moments

da = pytest.importorskip("dask.array")

M, P, N = 3000, 6, 240


def _data(seed=0):
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.8, P)
    X_pre = rng.standard_t(6, size=(M, P)) * scales + 5.0
    X_lab = rng.standard_t(6, size=(N, P)) * scales + 5.0
    pidx = np.full(N, -1)
    pidx[:60] = np.arange(0, 600, 10)               # 60 labeled rows are pre-training rows
    X_lab[:60] = X_pre[pidx[:60]]
    Z = rng.normal(size=(N, 1))
    y = 1.0 + Z[:, 0] + 0.5 * (X_lab[:, 0] - 5.0) + rng.normal(size=N)
    pre_groups = np.arange(M) % 50
    groups = np.where(pidx >= 0, pre_groups[np.maximum(pidx, 0)], np.arange(N) % 70)
    return X_pre, X_lab, Z, y, pidx, groups, pre_groups


DATA = _data()
pytestmark = pytest.mark.filterwarnings("ignore::ssl_inference.IdentificationWarning")
REPS = {"pca": lambda: ssi.PCA(2), "pca-std": lambda: ssi.PCA(2, standardize=True),
        "factor": lambda: ssi.FactorModel(1, noise="isotropic")}
DESIGNS = ("independent", "overlap", "clusters+overlap")


def _pipeline(X_pre, rep_name, design):
    _, X_lab, Z, y, pidx, groups, pre_groups = DATA
    rep = REPS[rep_name]().fit(X_pre)
    kwargs, cov = {}, {}
    if design != "independent":
        kwargs["pretrain_index"] = pidx
    if design == "clusters+overlap":
        cov = {"cov_type": "cluster", "cov_kwds": {"groups": groups,
                                                   "pretrain_groups": pre_groups}}
    res = ssi.OLS(y, sm.add_constant(Z), representation=rep, features=X_lab,
                  **kwargs).fit(**cov)
    pred = res.get_prediction(sm.add_constant(Z[:7]), features=X_lab[:7] * 1.1)
    return np.r_[res.params, res.bse, pred.se_mean]


def _as_dask(X, rows=700):
    return da.from_array(X, chunks=(rows, 3))       # column chunks are rechunked to rows


@pytest.fixture(scope="module")
def memmap_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pre") / "x_pre.npy"
    np.save(path, DATA[0])
    return path


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("rep_name", sorted(REPS))
def test_numpy_memmap_dask_agree(rep_name, design, memmap_path):
    expected = _pipeline(DATA[0], rep_name, design)
    memmap = np.load(memmap_path, mmap_mode="r")
    got = {"memmap": _pipeline(memmap, rep_name, design),
           "dask": _pipeline(_as_dask(DATA[0]), rep_name, design),
           "dask-memmap": _pipeline(_as_dask(memmap, 1000), rep_name, design)}
    for name, values in got.items():
        np.testing.assert_allclose(values, expected, rtol=1e-10, atol=0, err_msg=name)


def test_float32_is_accumulated_in_float64():
    X32 = DATA[0].astype(np.float32)
    expected = _pipeline(X32.astype(np.float64), "pca", "independent")
    for X in (X32, _as_dask(X32)):
        np.testing.assert_allclose(_pipeline(X, "pca", "independent"), expected, rtol=1e-10)
    rep = ssi.PCA(2).fit(X32)
    assert rep.pretrain_data_.dtype == np.float32        # a reference, not a float64 copy


@pytest.mark.slow
def test_dask_distributed_cluster_agrees():
    distributed = pytest.importorskip("distributed")
    expected = _pipeline(DATA[0], "pca", "clusters+overlap")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        got = _pipeline(_as_dask(DATA[0]), "pca", "clusters+overlap")
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)


def test_mestimator_representation_streams_dask():
    def loss(X, t):
        return ((X - t) ** 2).sum(axis=1)
    kw = dict(loss=loss, transform=lambda X, t: X[:, :2] - t[:2], params=np.zeros(P),
              optimize=True)
    a = ssi.MEstimatorRepresentation(**kw).fit(DATA[0])
    b = ssi.MEstimatorRepresentation(**kw).fit(_as_dask(DATA[0]))
    np.testing.assert_allclose(b.params_, a.params_, rtol=1e-10)
    K = np.eye(P)[:3]
    np.testing.assert_allclose(b.influence_covariance(K), a.influence_covariance(K),
                               rtol=1e-10)


class _WholeArrayRead(AssertionError):
    pass


def test_dask_fit_never_materialises_the_whole_array(monkeypatch):
    """Computing, persisting or converting the whole array (or any slice wider than a
    dask block) raises; the fit, its standard errors and a prediction still work, and
    their peak memory stays far below the array's size."""
    m = 200_000
    X = np.random.default_rng(1).normal(size=(m, P)) * np.linspace(3, 1, P)
    X_pre = da.from_array(X, chunks=(20_000, P))
    def guard(method):
        def guarded(self, *args, **kwargs):
            if self.shape[0] > 20_000:
                raise _WholeArrayRead(f"{method.__name__} of {self.shape}")
            return method(self, *args, **kwargs)
        return guarded

    for name in ("__array__", "compute", "persist"):
        monkeypatch.setattr(da.Array, name, guard(getattr(da.Array, name)))
    with pytest.raises(_WholeArrayRead):       # the guard works
        np.asarray(X_pre)
    _, X_lab, Z, y, *_ = DATA
    tracemalloc.start()
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, sm.add_constant(Z), representation=rep, features=X_lab).fit()
    res.get_prediction(sm.add_constant(Z[:5]), features=X_lab[:5])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < X.nbytes / 4, f"peak {peak / 1e6:.1f} MB for a {X.nbytes / 1e6:.1f} MB X_pre"
    assert rep.pretrain_data_ is not None and rep.pretrain_data_.name == X_pre.name
    exp = ssi.OLS(y, sm.add_constant(Z), representation=ssi.PCA(2).fit(X),
                  features=X_lab).fit()
    np.testing.assert_allclose(res.bse, exp.bse, rtol=1e-10)


class _Unreadable:
    """Stands in for X_pre after the fit: any read fails."""

    def __init__(self, data):
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.readable, self._data = True, data

    def __getitem__(self, key):
        if not self.readable:
            raise OSError("X_pre is unreadable")
        return self._data[key]


@pytest.mark.parametrize("design", DESIGNS)
def test_predictions_after_the_cache_never_read_x_pre(design):
    guard = _Unreadable(DATA[0])
    X_pre = da.from_array(guard, chunks=(1000, P))
    _, X_lab, Z, y, pidx, groups, pre_groups = DATA
    rep = ssi.PCA(2).fit(X_pre)
    kwargs = {} if design == "independent" else {"pretrain_index": pidx}
    cov = ({"cov_type": "cluster", "cov_kwds": {"groups": groups,
                                                "pretrain_groups": pre_groups}}
           if design == "clusters+overlap" else {})
    res = ssi.OLS(y, sm.add_constant(Z), representation=rep, features=X_lab,
                  **kwargs).fit(**cov)
    res.get_prediction(sm.add_constant(Z[:3]), features=X_lab[:3])    # fills the cache
    rng = np.random.default_rng(7)
    new_X = rng.normal(size=(50, P)) * 3 + 5
    new_Z = sm.add_constant(rng.normal(size=(50, 1)))
    readable = res.get_prediction(new_Z, features=new_X).se_mean
    guard.readable = False
    with pytest.raises(OSError, match="unreadable"):  # reading X_pre would fail now
        rep.influence_covariance(np.eye(rep.params_.size)[:2])
    again = res.get_prediction(new_Z[::-1], features=new_X[::-1]).se_mean[::-1]
    np.testing.assert_allclose(again, readable, rtol=1e-10)
    assert np.all(np.isfinite(res.t_test(np.eye(len(res.params))[1]).sd))


def test_cache_outside_its_span_streams_once_and_matches_direct_sums():
    X_pre, X_lab, Z, y, pidx, *_ = DATA
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, sm.add_constant(Z), representation=rep, features=X_lab,
                  pretrain_index=pidx).fit(cov_type="HC0")
    engine = res._covariance
    q = rep.params_.size
    L_theta = np.random.default_rng(3).normal(size=(4, q))
    L_beta = np.zeros((4, len(res.params)))
    before = engine.first_stage_gram()[0].shape[0]
    parts = engine.parts(L_beta, L_theta)
    assert engine.first_stage_gram()[0].shape[0] > before       # the span grew
    np.testing.assert_allclose(parts.pretraining, rep.influence_covariance(L_theta),
                               rtol=1e-10, atol=1e-14)
    # the diagonal path and a second request inside the span agree with the full one
    np.testing.assert_allclose(engine.parts(L_beta, L_theta, diag=True).total,
                               np.diag(parts.total), rtol=1e-10)
    T, G, C = engine.first_stage_gram(np.eye(q))
    assert T.shape == (q, q) and G.shape == (q, q) and C.shape == (len(res.params), q)


def test_row_moments_and_reduce_rows_on_dask():
    X = DATA[0]
    mean, cov = row_moments(_as_dask(X, 333), chunk_rows=100)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(X.T, bias=True), rtol=1e-10)
    codes = np.arange(M) % 4
    got = reduce_rows(_as_dask(X, 333), lambda b, lo, hi, c: np.bincount(c, b[:, 0], 4),
                      aligned=[codes])
    np.testing.assert_allclose(got, np.bincount(codes, X[:, 0], 4), rtol=1e-12)


def test_bad_lazy_input_is_refused_with_the_reason():
    X = DATA[0].copy()
    X[17, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values"):
        ssi.PCA(2).fit(_as_dask(X))
    with pytest.raises(ValueError, match="NaN or infinite values"):
        ssi.PCA(2).fit(X.astype(np.float32))
    with pytest.raises(TypeError, match="GaussianMixture.fit does not take a dask array"):
        ssi.GaussianMixture(2).fit(_as_dask(DATA[0]))
    with pytest.raises(TypeError, match="SpectralContrastive.fit does not take a dask"):
        ssi.SpectralContrastive(1).fit(_as_dask(DATA[0][:, :3]), _as_dask(DATA[0][:, 3:]))
    with pytest.raises(ValueError, match="must be 2-dimensional"):
        ssi.PCA(1).fit(da.zeros(10, chunks=5))


def test_naive_fit_computes_no_first_stage_jacobian(monkeypatch):
    from ssl_inference.models import _two_stage
    X_pre, X_lab, Z, y, *_ = DATA
    rep = ssi.PCA(2).fit(X_pre)
    expected = ssi.OLS(y, sm.add_constant(Z), representation=rep,
                       features=X_lab).fit().first_stage_jacobian
    calls = []
    original = _two_stage.coefficient_jacobian
    monkeypatch.setattr(_two_stage, "coefficient_jacobian",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    res = ssi.OLS(y, sm.add_constant(Z), representation=rep, features=X_lab).fit(
        cov_type="naive")
    plain = sm.OLS(y, np.column_stack([sm.add_constant(Z), rep.transform(X_lab)])).fit()
    np.testing.assert_allclose(res.bse, plain.bse, rtol=1e-12)
    assert calls == []                                   # not computed by the fit
    np.testing.assert_allclose(res.first_stage_jacobian, expected, rtol=1e-12)
    assert calls == [1]                                  # computed once, when asked
